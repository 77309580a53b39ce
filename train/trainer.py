"""Training of the joint category + pose network on rendered views (CPU-first, GPU when present).

The frozen feature network runs once per (augmented) crop and its activations are
cached, so each epoch only runs the fine-tuned trunk block, the category network
and the pose heads. The loss is the joint-pose paper's L = L_pose + λ·L_category
(Eq. 3, λ = 0.1). Its "pose-first" protocol is followed in a compact form: during
the first `pose_first_fraction` of the epochs the pose loss uses the oracle
category's head (the ground-truth hint), afterwards the fused output.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from vantage.imaging import IMAGENET_MEAN, IMAGENET_STD, normalise
from vantage.train.data import AugmentConfig, Sample, batches, load_crop, read_samples
from vantage.train.geometry_torch import axis_angle_to_rotation, geodesic_distance
from vantage.train.model import JointPoseNet, ModelConfig, fuse, fusion_weights

CHECKPOINT = "checkpoint.pt"


@dataclass
class TrainConfig:
    """Everything a run depends on; saved into the checkpoint and the run folder."""

    data: list[str]
    out: str
    model: ModelConfig = field(default_factory=ModelConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    epochs: int = 25
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 1e-4
    lambda_category: float = 0.1
    pose_first_fraction: float = 0.3
    augmented_copies: int = 2
    crop_margin: float = 0.1
    seed: int = 0
    threads: int = 0
    progress: bool = True

    def to_dict(self) -> dict:
        d = asdict(self)
        d["model"] = self.model.to_dict()
        d["augment"]["jpeg_quality"] = list(self.augment.jpeg_quality)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        d = dict(d)
        d["model"] = ModelConfig.from_dict(d.get("model", {}))
        aug = dict(d.get("augment", {}))
        if "jpeg_quality" in aug:
            aug["jpeg_quality"] = tuple(aug["jpeg_quality"])
        d["augment"] = AugmentConfig(**aug)
        return cls(**d)


def device() -> torch.device:
    """A CUDA GPU when there is one, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


class FrozenFeatures:
    """Runs the frozen feature network: ONNX Runtime on CPU (3–5× faster than eager
    PyTorch there, MEASURED.md), PyTorch on a GPU. Outputs agree within ~1e-5."""

    def __init__(self, model: JointPoseNet, workdir: Path) -> None:
        self.model = model.features.eval()
        self.device = next(model.parameters()).device
        self.session = None
        if self.device.type == "cpu":
            import onnxruntime as ort

            path = workdir / "frozen_features.onnx"
            size = model.config.input_size
            torch.onnx.export(
                self.model, (torch.zeros(1, 3, size, size),), str(path), input_names=["image"],
                output_names=["features"], dynamic_axes={"image": {0: "n"}, "features": {0: "n"}},
                opset_version=17, dynamo=False,
            )
            opts = ort.SessionOptions()
            opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
            self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])

    @torch.no_grad()
    def __call__(self, x: np.ndarray) -> torch.Tensor:
        if self.session is not None:
            return torch.from_numpy(self.session.run(None, {"image": x})[0])
        return self.model(torch.from_numpy(x).to(self.device)).cpu()


def extract_features(
    frozen: FrozenFeatures, samples: list[Sample], cfg: TrainConfig, copy: int, progress: bool
) -> torch.Tensor:
    """Frozen tap activations of every sample's crop (augmented copy `copy`; copy 0 is clean)."""
    rng = np.random.default_rng([cfg.seed, copy])
    out = []
    size = cfg.model.input_size
    bar = tqdm(total=len(samples), desc=f"features (copy {copy})", disable=not progress, unit="img")
    for sl in batches(len(samples), 64):
        crops = np.stack(
            [
                load_crop(s, size, cfg.crop_margin, cfg.augment if copy > 0 else None, rng)
                for s in samples[sl]
            ]
        )
        out.append(frozen(normalise(crops, IMAGENET_MEAN, IMAGENET_STD)).half())
        bar.update(len(crops))
    bar.close()
    return torch.cat(out)


def _cache_key(cfg: TrainConfig, samples: list[Sample]) -> str:
    h = hashlib.sha256()
    h.update(json.dumps([cfg.model.tap, cfg.model.input_size, cfg.crop_margin, cfg.seed, cfg.augmented_copies]).encode())
    h.update(json.dumps(asdict(cfg.augment), default=list).encode())
    for s in samples:
        h.update(str(s.image_path).encode())
    return h.hexdigest()[:16]


def cached_features(model: JointPoseNet, samples: list[Sample], cfg: TrainConfig) -> torch.Tensor:
    """(copies, N, C, h, w) float16 features, computed once and kept in the run folder."""
    path = Path(cfg.out) / f"features-{_cache_key(cfg, samples)}.pt"
    if path.is_file():
        return torch.load(path, map_location="cpu", weights_only=True)
    frozen = FrozenFeatures(model, Path(cfg.out))
    feats = torch.stack(
        [extract_features(frozen, samples, cfg, c, cfg.progress) for c in range(1 + cfg.augmented_copies)]
    )
    torch.save(feats, path)
    return feats


def balanced_order(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One epoch of indices drawn so that every category appears equally often.

    Category-balanced batches (joint-pose paper, Sec. 4.1) stop large categories
    from dominating the shared trunk.
    """
    cats = np.unique(labels)
    per = int(math.ceil(len(labels) / len(cats)))
    picks = [rng.choice(np.flatnonzero(labels == c), per, replace=True) for c in cats]
    order = np.concatenate(picks)
    rng.shuffle(order)
    return order


def joint_loss(
    logits: torch.Tensor,
    pose: torch.Tensor,
    target_cat: torch.Tensor,
    target_rot: torch.Tensor,
    fusion: str,
    lambda_category: float,
    oracle: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """L = geodesic(R(y), R*) + λ·CE (joint-pose paper, Eq. 3 and Sec. 3.2); returns (total, pose, ce)."""
    k = logits.shape[1]
    hint = F.one_hot(target_cat, k).to(pose.dtype)
    if oracle:
        y = fuse(pose, hint)
    else:
        y = fuse(pose, fusion_weights(torch.softmax(logits, 1), torch.zeros_like(hint), fusion))
    pose_loss = geodesic_distance(axis_angle_to_rotation(y), target_rot).mean()
    ce = F.cross_entropy(logits, target_cat)
    return pose_loss + lambda_category * ce, pose_loss, ce


def save_checkpoint(path: Path, model: JointPoseNet, opt, sched, epoch: int, cfg: TrainConfig, history: list) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(
        {
            "model": model.state_dict(),
            "optimizer": opt.state_dict(),
            "scheduler": sched.state_dict(),
            "epoch": epoch,
            "config": json.dumps(cfg.to_dict()),
            "history": json.dumps(history),
            "torch_rng": torch.get_rng_state(),
        },
        tmp,
    )
    tmp.replace(path)


def load_model(path: str | Path, map_location: str = "cpu") -> tuple[JointPoseNet, dict]:
    """Rebuild a model from a checkpoint, loaded safely (`weights_only=True`)."""
    ckpt = torch.load(path, map_location=map_location, weights_only=True)
    cfg = TrainConfig.from_dict(json.loads(ckpt["config"]))
    model_cfg = ModelConfig.from_dict({**cfg.model.to_dict(), "pretrained": False})
    model = JointPoseNet(model_cfg)
    model.load_state_dict(ckpt["model"])
    model.eval()
    info = {"config": cfg, "epoch": ckpt["epoch"], "history": json.loads(ckpt["history"])}
    return model, info


def write_curves(history: list[dict], out: Path) -> None:
    """CSV log and a PNG of the loss curves."""
    if not history:
        return
    with open(out / "log.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(history[0]))
        w.writeheader()
        w.writerows(history)
    (out / "log.json").write_text(json.dumps(history, indent=1))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ep = [h["epoch"] for h in history]
    fig, ax = plt.subplots(1, 2, figsize=(9, 3.2))
    ax[0].plot(ep, [math.degrees(h["pose_loss"]) for h in history], label="pose (geodesic °)")
    ax[0].set_xlabel("epoch"), ax[0].set_ylabel("mean geodesic error °"), ax[0].legend()
    ax[1].plot(ep, [h["ce"] for h in history], label="cross-entropy")
    ax[1].plot(ep, [h["cat_acc"] for h in history], label="train cat-acc")
    ax[1].set_xlabel("epoch"), ax[1].legend()
    fig.tight_layout()
    fig.savefig(out / "curves.png", dpi=90)
    plt.close(fig)


def train(cfg: TrainConfig, resume: bool = True, stop_after: int | None = None) -> Path:
    """Train, checkpointing every epoch; returns the checkpoint path.

    A run in `cfg.out` is resumed where it stopped and continues exactly as an
    uninterrupted run would (optimiser, schedule, RNG streams restored).
    `stop_after` ends this call after that many epochs (time-boxed sessions).
    """
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2))
    torch.manual_seed(cfg.seed)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    dev = device()
    samples = [s for d in cfg.data for s in read_samples(d, cfg.model.categories)]
    if not samples:
        raise ValueError(f"no training samples of categories {cfg.model.categories} in {cfg.data}")
    model = JointPoseNet(cfg.model).to(dev)
    feats = cached_features(model, samples, cfg)
    labels = np.array([s.category for s in samples])
    rots = torch.tensor(np.stack([s.rotation for s in samples]), dtype=torch.float32)
    cats = torch.tensor(labels, dtype=torch.long)

    model.features.requires_grad_(False)
    params = [p for n, p in model.named_parameters() if not n.startswith("features.")]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = int(math.ceil(len(samples) / cfg.batch_size))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, cfg.lr, total_steps=cfg.epochs * steps_per_epoch, pct_start=0.15)
    start, history = 0, []
    ckpt_path = out / CHECKPOINT
    if resume and ckpt_path.is_file():
        ckpt = torch.load(ckpt_path, map_location=dev, weights_only=True)
        saved_epochs = json.loads(ckpt["config"])["epochs"]
        if saved_epochs != cfg.epochs:
            raise ValueError(
                f"{ckpt_path} belongs to a {saved_epochs}-epoch schedule, not {cfg.epochs}: "
                "use the same epochs to resume, or restart the run"
            )
        model.load_state_dict(ckpt["model"])
        torch.set_rng_state(ckpt["torch_rng"])
        opt.load_state_dict(ckpt["optimizer"])
        sched.load_state_dict(ckpt["scheduler"])
        start, history = int(ckpt["epoch"]) + 1, json.loads(ckpt["history"])
    use_amp = dev.type == "cuda"
    pose_first = int(round(cfg.pose_first_fraction * cfg.epochs))
    rng = np.random.default_rng(cfg.seed)
    for _ in range(start):  # keep the sampling stream identical after a resume
        balanced_order(labels, rng), rng.integers(0, feats.shape[0], len(samples))
    end = cfg.epochs if stop_after is None else min(cfg.epochs, start + stop_after)
    for epoch in range(start, end):
        model.train()
        model.features.eval()
        order = balanced_order(labels, rng)
        copy_of = rng.integers(0, feats.shape[0], len(order))
        oracle = epoch < pose_first
        sums = {"loss": 0.0, "pose_loss": 0.0, "ce": 0.0, "correct": 0, "n": 0}
        t0 = time.time()
        bar = tqdm(total=len(order), desc=f"epoch {epoch + 1}/{cfg.epochs}", disable=not cfg.progress, unit="img")
        for sl in batches(len(order), cfg.batch_size):
            idx = torch.from_numpy(order[sl])
            if len(idx) < 2:
                continue
            x = feats[torch.from_numpy(copy_of[sl]), idx].to(dev).float()
            with torch.autocast(dev.type, enabled=use_amp):
                logits, pose = model.forward_features(x)
            loss, pl, ce = joint_loss(
                logits.float(), pose.float(), cats[idx].to(dev), rots[idx].to(dev),
                cfg.model.fusion, cfg.lambda_category, oracle,
            )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            n = len(idx)
            sums["loss"] += loss.item() * n
            sums["pose_loss"] += pl.item() * n
            sums["ce"] += ce.item() * n
            sums["correct"] += int((logits.argmax(1).cpu() == cats[idx]).sum())
            sums["n"] += n
            bar.update(n)
            bar.set_postfix(pose=f"{math.degrees(pl.item()):.1f}°", ce=f"{ce.item():.2f}")
        bar.close()
        n = max(sums["n"], 1)
        history.append(
            {
                "epoch": epoch + 1,
                "phase": "pose-first (oracle category)" if oracle else "joint (fused)",
                "loss": sums["loss"] / n,
                "pose_loss": sums["pose_loss"] / n,
                "ce": sums["ce"] / n,
                "cat_acc": sums["correct"] / n,
                "lr": sched.get_last_lr()[0],
                "seconds": time.time() - t0,
            }
        )
        save_checkpoint(ckpt_path, model, opt, sched, epoch, cfg, history)
    write_curves(history, out)
    return ckpt_path
