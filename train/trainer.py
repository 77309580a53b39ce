"""Training of the joint category + pose network on rendered views (CPU-first, GPU when present).

The frozen feature network runs once per (augmented) crop and its activations are
cached, so each epoch only runs the fine-tuned trunk block, the category network
and the pose heads. The loss is the joint-pose paper's L = L_pose + λ·L_category
(Eq. 3, λ = 0.1), with the pose loss of the configured head (`vantage.train.losses`).
Training protocols (joint-pose paper, Table 1), by epoch fractions:
- "compact": oracle-category pose loss + λ·CE for `pose_first_fraction`, then joint.
- "pose_first": trunk + pose heads with the oracle category (step 3), then the
  category network alone on the fixed trunk (step 4, `category_fraction`), then joint.
- "balanced": trunk fixed, pose heads (oracle) and category network learnt
  independently (steps 2–3), then everything jointly (step 4).
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from tqdm import tqdm

from vantage.imaging import IMAGENET_MEAN, IMAGENET_STD, normalise
from vantage.train.coordinates import mirror_target
from vantage.train.data import AugmentConfig, Sample, batches, crop_and_box, crop_coordinates, read_samples
from vantage.train.distributed import (
    Ranks, all_sum, check_replicas, forward_features, main_first, process_group, seed_dropout, shard,
)
from vantage.train.instance_adversary import instance_labels, instance_loss, reversal_scale
from vantage.train.instance_mix import mix, pose_partners
from vantage.train.keyposes import assign, kmeans, pose_targets
from vantage.train.losses import Targets, coordinate_loss, joint_loss
from vantage.train.model import JointPoseNet, ModelConfig
from vantage.train.sharpness import perturbed
from vantage.train.symmetry import ZSymmetry, canonical_rotations
from vantage.train.weight_average import WeightAverage, decay_per_step

PROTOCOLS = ("compact", "pose_first", "balanced")
MIRROR = np.diag([-1.0, 1.0, 1.0])  # x ↦ −x, in the camera and in the object frame

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
    # λ of the joint loss (joint-pose paper, Eq. 3). λ = 1 in the reference recipe on fold 0 (from its renders and
    # feature cache): MedErr 16.5° / Acc@π/6 0.647 / cat-acc 0.889 vs 15.3° / 0.669 / 0.908 (symmetry-reduced 13.5° /
    # 0.750 vs 12.9° / 0.786): ten times the category's weight makes the category no better and the pose worse.
    lambda_category: float = 0.1
    pose_first_fraction: float = 0.3
    category_fraction: float = 0.1  # "pose_first"/"balanced": length of the category-network step
    protocol: str = "compact"  # one of PROTOCOLS
    # Bin & Delta weight α of the delta / geodesic term (Eq. 5–14). In the reference recipe (M_P+, fold 0, from its
    # renders and feature cache) α = 0.3 gave MedErr 16.3° / Acc@π/6 0.633 / cat-acc 0.903 and α = 3 15.9° / 0.661 /
    # 0.897 vs 15.3° / 0.669 / 0.908 (symmetry-reduced 13.3° / 0.758 and 13.9° / 0.761 vs 12.9° / 0.786): both worse,
    # although M_G+ at 128² preferred 0.1 (RESULTS.md).
    alpha: float = 1.0
    # γ of Eq. 9 (the soft bin targets' sharpness); 0 = data-driven, 1 / mean squared distance to the nearest key
    # pose (5.9 on the reference recipe's fold 0). Halved to 3.0 there (from its renders and feature cache): MedErr
    # 16.8° / Acc@π/6 0.622 / cat-acc 0.906 vs 15.3° / 0.669 / 0.908 (symmetry-reduced 14.3° / 0.725 vs 12.9° / 0.786):
    # softer targets are worse beyond the run-to-run noise. Doubled to 11.8: 16.1° / 0.653 / 0.889 (12.8° / 0.775): the
    # pose within the noise, the category a little worse: the data-driven γ stays.
    soft_gamma: float = 0.0
    simple_warmup_epochs: int = 1  # M_G trains as M_S first (Bin & Delta paper, §3.3)
    flip: bool = False  # mirror half of the augmented crops, with the matching pose R ↦ F·R·F
    # Label each view of a symmetric mesh with the one equivalent pose nearest the front
    # (vantage.train.symmetry.canonical_rotations); needs manifests that record z_symmetry.
    # Off by default: on the reference recipe's renders (14 of 41 CAD meshes and 29 of 96
    # built-ins symmetric), one M_P+ network, two seeds: MedErr 17.2° / 18.0°, Acc@π/6
    # 0.633 / 0.608, symmetry-reduced 13.9° / 14.3° against 16.7°, 0.656, 14.0° without.
    canonical_symmetric_poses: bool = False
    augmented_copies: int = 2
    feature_cache: str | None = None  # folder of cached frozen features shared between runs (default: `out`)
    crop_margin: float = 0.1
    seed: int = 0
    # Ensemble member (vantage.train.ensemble): shifts the initialisation, batch order and dropout
    # seeds, not the augmentations of the cached features, so members share one feature cache.
    member: int = 0
    # Weight of the object-coordinate auxiliary loss (vantage.train.losses.coordinate_loss), added to the
    # pose loss whenever the trunk trains; used only by models with ModelConfig.coordinates.
    coordinate_weight: float = 1.0
    # Exponential moving average of the trained weights (vantage.train.weight_average), its time constant in
    # epochs; the checkpoint keeps both, `load_model` answers with the average. 0 = off: 6 epochs in the
    # reference recipe (folds 0 and 1 side by side from their renders and feature caches, 63 min each): fold 0
    # MedErr 16.5° / Acc@π/6 0.667 / cat-acc 0.881 vs 15.3° / 0.669 / 0.908 (symmetry-reduced 13.4° / 0.769 vs
    # 12.9° / 0.786), fold 1 19.8° / 0.614 / 0.783 vs 18.2° / 0.639 / 0.778 (13.5° / 0.775 vs 13.5° / 0.778):
    # worse on both folds, by a little more than other training seeds move them (0.6° and 0.9°: RESULTS.md's
    # run-to-run noise); the one-cycle schedule's annealed end already settles the weights.
    average_epochs: float = 0.0
    # Sharpness-aware minimisation (vantage.train.sharpness): each step's gradient taken at the worst weights
    # within this L2 radius of the trained ones, for flat minima; twice the compute per step. 0 = off: ρ = 0.05 at the
    # reference recipe's compute (20 epochs against 40 plain; folds 0 and 1 side by side, 67 min each): fold 0 MedErr
    # 17.7° / Acc@π/6 0.614 / cat-acc 0.892 vs 15.3° / 0.669 / 0.908 (symmetry-reduced 14.3° / 0.719 vs 12.9° / 0.786),
    # fold 1 22.2° / 0.603 / 0.786 vs 18.2° / 0.639 / 0.778 (15.0° / 0.744 vs 13.5° / 0.778): worse on both, beyond
    # the run-to-run noise; it held the training error at ~20° (7.7° plain), an under-fit, not a flatter fit.
    sam_rho: float = 0.0
    # Label smoothing ε of the category cross-entropy (Szegedy et al. 2016): the category network learns the few
    # training meshes of a category with near-certain logits (training cat-acc ~1 against ~0.9 on unseen meshes), and
    # its softmax weighs the fused pose; ε asks for (1 − ε) on the true category and ε/C on each. 0 = off: ε = 0.1 in the
    # reference recipe (folds 0 and 1 side by side from their renders and feature caches, 72 min each): fold 0 MedErr
    # 17.0° / Acc@π/6 0.656 / cat-acc 0.889 vs 15.3° / 0.669 / 0.908 (symmetry-reduced 13.9° / 0.761 vs 12.9° / 0.786),
    # fold 1 18.1° / 0.622 / 0.786 vs 18.2° / 0.639 / 0.778 (13.3° / 0.775 vs 13.5° / 0.778): no better category, a
    # worse pose on fold 0.
    category_smoothing: float = 0.0
    # Cross-instance mixing at matched poses (vantage.train.instance_mix): each drawn view's cached features are
    # blended with those of another instance of its category seen from the nearest pose within
    # `instance_mix_radius` degrees, the partner weighing U(0, instance_mix) (at most 0.5), the pose label
    # slerped alike. 0 = off: 0.5 within 20° in the reference recipe (the nearest other instance's pose a median 5.7°
    # away, every view has one within 20°; folds 0 and 1 from their renders and feature caches): fold 0 MedErr 14.9° /
    # Acc@π/6 0.661 / cat-acc 0.894 vs 15.3° / 0.669 / 0.908 (symmetry-reduced 12.9° / 0.761 vs 12.9° / 0.786), fold 1
    # 18.4° / 0.617 / 0.786 vs 18.2° / 0.639 / 0.778 (14.0° / 0.753 vs 13.5° / 0.778): MedErr and Acc@π/6 within the
    # run-to-run noise, the symmetry-reduced Acc@π/6 a little lower on both folds (RESULTS.md's levers table).
    instance_mix: float = 0.0
    instance_mix_radius: float = 20.0
    # Instance-adversarial pose features (vantage.train.instance_adversary): weight of the cross-entropy of an
    # auxiliary head that tells a view's training instance within its category from the pose heads' input, its
    # gradient reversed into the trunk (ramped in as Ganin & Lempitsky 2015), so that the pose features drop the
    # instance's identity. 0 = off: 0.1 in the reference recipe (folds 0 and 1 from their renders and feature caches):
    # fold 0 MedErr 15.2° / Acc@π/6 0.703 / cat-acc 0.897 vs 15.3° / 0.669 / 0.908 (symmetry-reduced 12.9° / 0.811 vs
    # 12.9° / 0.786), fold 1 18.7° / 0.628 / 0.783 vs 18.2° / 0.639 / 0.778 (13.6° / 0.767 vs 13.5° / 0.778): the
    # accuracies better on fold 0 only, fold 1 within the run-to-run noise; fold 2 (rendered afresh, same seeds)
    # 24.1° / 0.531 / 0.822 vs 20.3° / 0.567 / 0.797 (14.3° / 0.756 vs 13.1° / 0.783): the pose worse, the category
    # a little better (mixed). Better on one fold of three, so it stays off. The adversary did not win at 0.1 (its
    # instance cross-entropy fell to ~0.4-0.5 nats, chance ~2.4; training error 7.2° vs 6.9°); at 1 it did (back at
    # chance from epoch 9) and the training pose error ran 2-3° behind the plain run's (stopped at epoch 17).
    instance_adversary: float = 0.0
    threads: int = 0  # torch threads (0 = default); 1 on a busy shared CPU: 2 threads ran 16× slower per step there
    progress: bool = True

    def to_dict(self) -> dict:
        d = asdict(self)
        d["model"] = self.model.to_dict()
        d["augment"] = self.augment.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        d = dict(d)
        d["model"] = ModelConfig.from_dict(d.get("model", {}))
        d["augment"] = AugmentConfig.from_dict(d.get("augment", {}))
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

            workdir.mkdir(parents=True, exist_ok=True)  # a shared feature cache is filled before any run folder exists
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


def mirror_rotation(rotation: np.ndarray) -> np.ndarray:
    """Pose of the horizontally flipped image of a left-right symmetric object: R' = F·R·F.

    Flipping the image negates camera x; mirroring the object (x ↦ −x, its own
    symmetry plane in POSE.md's frame) keeps the shape, so X'_cam = F·R·F·X'_obj:
    azimuth and in-plane rotation change sign, elevation stays.
    """
    return MIRROR @ rotation @ MIRROR


class FeatureCache(NamedTuple):
    """What the frozen network's pass over the training crops leaves on disk, per augmented copy."""

    features: torch.Tensor  # (copies, N, C, h, w) float16 tap activations
    flipped: torch.Tensor  # (copies, N) bool: the crop was mirrored
    coordinates: torch.Tensor | None  # (copies, N, 4, g, g) float16 object-coordinate targets (ModelConfig.coordinates)


def extract_features(
    frozen: FrozenFeatures, samples: list[Sample], cfg: TrainConfig, copy: int, progress: bool,
    grid: int | None = None,
) -> FeatureCache:
    """Frozen tap activations of every sample's crop (augmented copy `copy`; copy 0 is clean),
    which crops were mirrored (half of the augmented ones when `cfg.flip`) and, with a trunk `grid`,
    the object-coordinate targets of the same crops (vantage.train.coordinates), mirrored with them."""
    rng = np.random.default_rng([cfg.seed, copy])
    flips = (rng.random(len(samples)) < 0.5) & cfg.flip & (copy > 0)
    out, targets = [], []
    size = cfg.model.input_size
    bar = tqdm(total=len(samples), desc=f"features (copy {copy})", disable=not progress, unit="img")
    for sl in batches(len(samples), 64):
        parts = [crop_and_box(s, size, cfg.crop_margin, cfg.augment if copy > 0 else None, rng) for s in samples[sl]]
        crops = np.stack([crop for crop, _ in parts])
        crops = np.where(flips[sl, None, None, None], crops[:, :, ::-1], crops)
        out.append(frozen(normalise(crops, IMAGENET_MEAN, IMAGENET_STD)).half())
        if grid is not None:
            for s, (_, box), flip in zip(samples[sl], parts, flips[sl]):
                target = crop_coordinates(s, box, cfg.crop_margin, grid)
                targets.append(mirror_target(target) if flip else target)
        bar.update(len(crops))
    bar.close()
    coords = torch.from_numpy(np.stack(targets)).half() if grid is not None else None
    return FeatureCache(torch.cat(out), torch.from_numpy(flips), coords)


def _cache_key(cfg: TrainConfig, samples: list[Sample]) -> str:
    """Identity of a feature cache: the extraction settings and every sample's path, box and pose.

    The labels are part of it because a folder rendered again with other settings keeps
    its file names: a key of paths alone would hand back the old views' features.
    """
    h = hashlib.sha256()
    m = cfg.model  # the feature network that made the cache: two backbones may share a tap index
    settings = [m.backbone, m.backbone_weights, m.pretrained, m.tap, m.input_size, cfg.crop_margin, cfg.seed,
                cfg.augmented_copies, cfg.flip]
    h.update(json.dumps(settings + (["coordinates"] if m.coordinates else [])).encode())  # old keys unchanged
    h.update(json.dumps(asdict(cfg.augment), default=list).encode())
    for s in samples:
        h.update(str(s.image_path).encode())
        h.update(np.asarray(s.box, np.float64).tobytes() + np.asarray(s.rotation, np.float64).tobytes())
    return h.hexdigest()[:16]


def cached_features(model: JointPoseNet, samples: list[Sample], cfg: TrainConfig) -> FeatureCache:
    """The frozen network's pass over every augmented copy of the training crops, computed once per run folder."""
    folder = Path(cfg.feature_cache or cfg.out)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"features-{_cache_key(cfg, samples)}.pt"
    if path.is_file():
        cached = torch.load(path, map_location="cpu", weights_only=True)
        return FeatureCache(cached["features"], cached["flipped"], cached.get("coordinates"))
    frozen = FrozenFeatures(model, Path(cfg.out))
    grid = model.trunk_grid if model.config.coordinates else None
    parts = [extract_features(frozen, samples, cfg, c, cfg.progress, grid) for c in range(1 + cfg.augmented_copies)]
    cache = FeatureCache(torch.stack([p.features for p in parts]), torch.stack([p.flipped for p in parts]),
                         torch.stack([p.coordinates for p in parts]) if grid is not None else None)
    tmp = path.with_suffix(".tmp")
    torch.save({k: v for k, v in cache._asdict().items() if v is not None}, tmp)
    tmp.replace(path)
    return cache


def balanced_epoch_length(labels: np.ndarray) -> int:
    """Indices in one `balanced_order` epoch: each category ⌈N / categories⌉ times, so at least N."""
    cats = len(np.unique(labels))
    return int(math.ceil(len(labels) / cats)) * cats


def balanced_order(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One epoch of indices drawn so that every category appears equally often.

    Category-balanced batches (joint-pose paper, Sec. 4.1) stop large categories
    from dominating the shared trunk.
    """
    cats = np.unique(labels)
    per = balanced_epoch_length(labels) // len(cats)
    picks = [rng.choice(np.flatnonzero(labels == c), per, replace=True) for c in cats]
    order = np.concatenate(picks)
    rng.shuffle(order)
    return order


class Phase(NamedTuple):
    """What one epoch trains: which losses, which parts, and whether the category is the oracle's."""

    name: str
    oracle: bool
    pose: bool
    category: bool
    trunk: bool


def phase_of(epoch: int, cfg: TrainConfig) -> Phase:
    """The training step of `cfg.protocol` that `epoch` belongs to (joint-pose paper, Table 1)."""
    first = int(round(cfg.pose_first_fraction * cfg.epochs))
    second = first + int(round(cfg.category_fraction * cfg.epochs))
    joint = Phase("joint (fused)", False, True, True, True)
    if cfg.protocol == "compact":
        return Phase("pose-first (oracle category)", True, True, True, True) if epoch < first else joint
    if cfg.protocol == "pose_first":
        if epoch < first:
            return Phase("pose (oracle category)", True, True, False, True)
        return Phase("category (trunk fixed)", True, False, True, False) if epoch < second else joint
    if cfg.protocol == "balanced":
        return Phase("pose + category (trunk fixed)", True, True, True, False) if epoch < second else joint
    raise ValueError(f"protocol must be one of {PROTOCOLS}, got {cfg.protocol!r}")


def set_trainable(model: JointPoseNet, phase: Phase) -> None:
    """Freeze the parts a phase does not train (their gradients stay None, AdamW skips them)."""
    for name, p in model.named_parameters():
        if name.startswith("features."):
            continue
        # the object-coordinate and instance heads act on the trunk: they train when the trunk does
        auxiliary = ("coordinate_head.", "instance_head.")
        part = "trunk" if name.startswith(("trunk.", *auxiliary)) else "category" if name.startswith("classifier.") else "pose"
        p.requires_grad_(getattr(phase, part))


def training_targets(model: JointPoseNet, rotations: np.ndarray, cfg: TrainConfig) -> tuple[Targets, float]:
    """(Targets of every (copy, sample) rotation, γ of Eq. 9); learns the K-means key poses first for bin heads."""
    flat = rotations.reshape(-1, 3, 3)
    if model.key_poses is None:
        return targets_of(flat, None, 1.0), 1.0
    unique = np.unique(np.round(flat, 6), axis=0)
    centres = kmeans(pose_targets(unique, np.zeros((1, 3)), 1.0).axis_angle, cfg.model.num_bins, seed=cfg.seed)
    model.set_key_poses(centres)
    gamma = cfg.soft_gamma
    if gamma <= 0:
        _, d2 = assign(pose_targets(unique, centres, 1.0).axis_angle, centres)
        gamma = 1.0 / max(float(d2.mean()), 1e-6)
    return targets_of(flat, centres, gamma), gamma


def targets_of(rotations: np.ndarray, centres: np.ndarray | None, gamma: float) -> Targets:
    """Pose targets of rotations (N, 3, 3): regression ones only without key poses (`centres` None)."""
    t = pose_targets(rotations, np.zeros((1, 3)) if centres is None else centres, gamma)
    fields = Targets._fields[1:2] if centres is None else Targets._fields[1:]
    return Targets(torch.tensor(rotations, dtype=torch.float32), *(torch.from_numpy(getattr(t, f)) for f in fields))


def _batch(t: Targets, index: torch.Tensor | slice, dev: torch.device) -> Targets:
    return Targets(*(None if v is None else v[index].to(dev) for v in t))


def save_checkpoint(path: Path, model: JointPoseNet, opt, sched, epoch: int, cfg: TrainConfig, history: list,
                    average: WeightAverage | None = None) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(
        {
            "model": model.state_dict(),
            **({"averaged": average.state_dict()} if average else {}),
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
    model_cfg = ModelConfig.from_dict({**cfg.model.to_dict(), "pretrained": False, "backbone_weights": None})
    model = JointPoseNet(model_cfg)
    model.load_state_dict({**ckpt["model"], **ckpt.get("averaged", {})})
    model.eval()
    info = {"config": cfg, "epoch": ckpt["epoch"], "history": json.loads(ckpt["history"])}
    return model, info


def write_curves(history: list[dict], out: Path) -> None:
    """CSV log and a PNG of the loss curves."""
    if not history:
        return
    with open(out / "log.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(dict.fromkeys(k for row in history for k in row)))  # resumed runs may add columns
        w.writeheader()
        w.writerows(history)
    (out / "log.json").write_text(json.dumps(history, indent=1))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ep = [h["epoch"] for h in history]
    fig, ax = plt.subplots(1, 2, figsize=(9, 3.2))
    ax[0].plot(ep, [math.degrees(h["pose_err"]) for h in history], label="pose (geodesic °)")
    ax[0].set_xlabel("epoch"), ax[0].set_ylabel("mean geodesic error °"), ax[0].legend()
    ax[1].plot(ep, [h["ce"] for h in history], label="cross-entropy")
    ax[1].plot(ep, [h["cat_acc"] for h in history], label="train cat-acc")
    ax[1].set_xlabel("epoch"), ax[1].legend()
    fig.tight_layout()
    fig.savefig(out / "curves.png", dpi=90)
    plt.close(fig)


class TrainingData(NamedTuple):
    """What every epoch draws from: cached features, pose targets, categories (and instances)."""

    feats: torch.Tensor  # (copies, N, C, h, w) float16
    targets: Targets  # of every (copy, sample), flattened copy-major
    cats: torch.Tensor  # (N,) category indices
    coordinates: torch.Tensor | None = None  # (copies, N, 4, g, g) float16 (ModelConfig.coordinates)
    # TrainConfig.instance_mix: each (copy, sample)'s pose partner (-1: none, vantage.train.instance_mix), the
    # trained rotations (copies, N, 3, 3) and γ of Eq. 9, from which a mixed batch's targets are made
    partners: torch.Tensor | None = None
    rotations: np.ndarray | None = None
    gamma: float = 1.0
    # TrainConfig.instance_adversary: each sample's instance index (N,) and each instance's category (I,)
    instances: torch.Tensor | None = None
    instance_category: torch.Tensor | None = None


class Step(NamedTuple):
    """What one optimisation step of an epoch needs."""

    model: JointPoseNet
    forward: Callable  # model.forward_features, DDP-wrapped when distributed
    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LRScheduler
    cfg: TrainConfig
    phase: Phase
    simple: bool  # M_G warm-up as M_S
    average: WeightAverage | None  # TrainConfig.average_epochs
    reversal: float | None  # the instance adversary's gradient reversal this epoch (None: no adversary)


def train(cfg: TrainConfig, resume: bool = True, stop_after: int | None = None) -> Path:
    """Train, checkpointing every epoch; returns the checkpoint path.

    A run in `cfg.out` is resumed where it stopped and continues exactly as an
    uninterrupted run would (optimiser, schedule, RNG streams restored).
    `stop_after` ends this call after that many epochs (time-boxed sessions).
    Under `torchrun` the processes train data-parallel (`vantage.train.distributed`).
    """
    with process_group(device()) as ranks:
        return _train(cfg, ranks, resume, stop_after)


def _restore(path: Path, model: JointPoseNet, opt, sched, cfg: TrainConfig, dev: torch.device,
             average: WeightAverage | None) -> tuple[int, list]:
    """Load a checkpoint into the run's state; returns (first epoch to train, history so far)."""
    ckpt = torch.load(path, map_location=dev, weights_only=True)
    saved_epochs = json.loads(ckpt["config"])["epochs"]
    if saved_epochs != cfg.epochs:
        raise ValueError(
            f"{path} belongs to a {saved_epochs}-epoch schedule, not {cfg.epochs}: "
            "use the same epochs to resume, or restart the run"
        )
    model.load_state_dict(ckpt["model"])
    torch.set_rng_state(ckpt["torch_rng"])
    opt.load_state_dict(ckpt["optimizer"])
    sched.load_state_dict(ckpt["scheduler"])
    if average:
        if "averaged" not in ckpt:
            raise ValueError(f"{path} was trained without a weight average (average_epochs): restart the run to average")
        average.load_state_dict(ckpt["averaged"])
    return int(ckpt["epoch"]) + 1, json.loads(ckpt["history"])


def _set_modes(model: JointPoseNet, phase: Phase) -> None:
    """Train mode (batch statistics, dropout) for the parts the phase trains only."""
    model.train()
    model.features.eval()
    for part, on in ((model.trunk, phase.trunk), (model.pose_heads, phase.pose), (model.pose_reduce, phase.pose),
                     (model.head_input, phase.pose), (model.classifier, phase.category)):
        if part is not None:
            part.train(on)


def training_samples(cfg: TrainConfig) -> list[Sample]:
    """Every labelled view of the configured categories in the run's data folders (an error if none, or if the
    model learns object-coordinate maps that none of them has)."""
    samples = [s for d in cfg.data for s in read_samples(d, cfg.model.categories)]
    if not samples:
        raise ValueError(f"no training samples of categories {cfg.model.categories} in {cfg.data}")
    if cfg.model.coordinates and not any(s.coords_path for s in samples):
        raise ValueError(f"model.coordinates learns object-coordinate maps, but none of the {len(samples)} views in "
                         f"{cfg.data} has one: render them with `vantage render --coordinates` (RenderConfig.coordinates)")
    return samples


def training_rotations(samples: list[Sample], cfg: TrainConfig) -> np.ndarray:
    """(N, 3, 3) pose labels; canonical among each symmetric mesh's equivalent poses when
    `cfg.canonical_symmetric_poses` (mirroring later keeps them canonical: it negates azimuths)."""
    rots = np.stack([s.rotation for s in samples])
    if not cfg.canonical_symmetric_poses:
        return rots
    missing = sorted({str(s.image_path.parent.parent) for s in samples if s.z_symmetry is None})
    if missing:
        raise ValueError(f"canonical_symmetric_poses needs the z_symmetry that renders record since manifest "
                         f"format 2; render {missing} again")
    by_symmetry: dict[ZSymmetry, list[int]] = defaultdict(list)
    for i, s in enumerate(samples):
        by_symmetry[s.z_symmetry].append(i)
    for symmetry, index in by_symmetry.items():
        rots[index] = canonical_rotations(rots[index], symmetry)
    return rots


def prepare_feature_cache(cfg: TrainConfig) -> None:
    """Compute the frozen-feature cache once, so that ensemble members trained in parallel
    processes load it instead of each computing it (`cfg.feature_cache` names the shared folder)."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    cached_features(JointPoseNet(cfg.model), training_samples(cfg), cfg)


def check_settings(cfg: TrainConfig) -> None:
    """Refuse settings no run can take (a ValueError naming the setting), so that a caller such as the recipe
    can fail before minutes of rendering rather than when training starts."""
    if cfg.protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, got {cfg.protocol!r}")
    if cfg.sam_rho < 0:
        raise ValueError(f"sam_rho must be 0 (off) or more, got {cfg.sam_rho}")
    if not 0.0 <= cfg.category_smoothing < 1.0:
        raise ValueError(f"category_smoothing must be in [0, 1), got {cfg.category_smoothing}")
    if not 0.0 <= cfg.instance_mix <= 0.5 or cfg.instance_mix_radius <= 0:
        raise ValueError(f"instance_mix must be in [0, 0.5] and instance_mix_radius above 0 degrees, got "
                         f"{cfg.instance_mix} and {cfg.instance_mix_radius}")
    if cfg.instance_mix and cfg.model.coordinates:
        raise ValueError("instance_mix blends two instances' features, whose object-coordinate maps do not blend: "
                         "train with model.coordinates or with instance_mix, not both")
    if cfg.instance_adversary < 0:
        raise ValueError(f"instance_adversary must be 0 (off) or more, got {cfg.instance_adversary}")
    if cfg.instance_adversary and cfg.instance_mix:
        raise ValueError("instance_mix blends two instances, whose blend no instance head can name: train with "
                         "instance_adversary or with instance_mix, not both")


def _train(cfg: TrainConfig, ranks: Ranks, resume: bool, stop_after: int | None) -> Path:
    out = Path(cfg.out)
    run_seed = cfg.seed + 1000 * cfg.member
    torch.manual_seed(run_seed)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    dev = device()
    check_settings(cfg)
    samples = training_samples(cfg)  # after the settings are checked: a bad one fails before the views are read
    labels = np.array([s.category for s in samples])
    instances, instance_category = instance_labels([s.model_id for s in samples], labels)
    if cfg.instance_adversary:  # the head's size follows the data; the stored config rebuilds it
        cfg = replace(cfg, model=replace(cfg.model, instance_classes=len(instance_category)))
    if ranks.main:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2))
    model = JointPoseNet(cfg.model).to(dev)
    cache = main_first(ranks, lambda: cached_features(model, samples, cfg))
    feats, flipped = cache.features, cache.flipped
    rots = training_rotations(samples, cfg)
    rots = np.where(flipped.numpy()[..., None, None], mirror_rotation(rots), rots)  # (copies, N, 3, 3)
    targets, gamma = training_targets(model, rots, cfg)
    partners = None
    if cfg.instance_mix:
        partners = torch.from_numpy(pose_partners(rots, labels, instances, cfg.instance_mix_radius))
    data = TrainingData(feats, targets, torch.tensor(labels, dtype=torch.long), cache.coordinates, partners, rots,
                        gamma, torch.from_numpy(instances), torch.from_numpy(instance_category))

    model.features.requires_grad_(False)
    params = [p for n, p in model.named_parameters() if not n.startswith("features.")]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = int(math.ceil(balanced_epoch_length(labels) / cfg.batch_size))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, cfg.lr, total_steps=cfg.epochs * steps_per_epoch, pct_start=0.15)
    average = WeightAverage(model, decay_per_step(cfg.average_epochs, steps_per_epoch)) if cfg.average_epochs else None
    start, history = 0, []
    ckpt_path = out / CHECKPOINT
    if resume and ckpt_path.is_file():
        start, history = _restore(ckpt_path, model, opt, sched, cfg, dev, average)
    rng = np.random.default_rng(run_seed)
    for _ in range(start):  # keep the sampling stream identical after a resume
        balanced_order(labels, rng), rng.integers(0, feats.shape[0], len(samples))
    end = cfg.epochs if stop_after is None else min(cfg.epochs, start + stop_after)
    for epoch in range(start, end):
        phase = phase_of(epoch, cfg)
        set_trainable(model, phase)
        _set_modes(model, phase)
        seed_dropout(run_seed, epoch, ranks)
        order = balanced_order(labels, rng)
        copy_of = rng.integers(0, feats.shape[0], len(order))
        t0 = time.time()
        bar = tqdm(total=len(order), desc=f"epoch {epoch + 1}/{cfg.epochs}", disable=not (cfg.progress and ranks.main),
                   unit="img")
        reversal = reversal_scale(epoch / cfg.epochs) if cfg.instance_adversary and phase.trunk else None
        step = Step(model, forward_features(model, ranks), opt, sched, cfg, phase, epoch < cfg.simple_warmup_epochs,
                    average, reversal)
        mix_of = np.random.default_rng([run_seed, epoch]).uniform(0.0, cfg.instance_mix, len(order))
        sums = all_sum(_run_epoch(step, data, order, copy_of, mix_of, ranks, bar), ranks, dev)
        bar.close()
        check_replicas(params, ranks, epoch)
        history.append(_epoch_record(epoch, phase, sums, sched.get_last_lr()[0], time.time() - t0))
        if ranks.main:
            save_checkpoint(ckpt_path, model, opt, sched, epoch, cfg, history, average)
    if ranks.main:
        write_curves(history, out)
    return ckpt_path


def _run_epoch(
    step: Step, data: TrainingData, order: np.ndarray, copy_of: np.ndarray, mix_of: np.ndarray, ranks: Ranks,
    bar: tqdm
) -> dict[str, float]:
    """One pass over `order` in global batches, this process taking its shard of each; the metric sums.
    `mix_of` is each drawn sample's partner weight where it has a pose partner (TrainConfig.instance_mix)."""
    cfg, phase, dev = step.cfg, step.phase, next(step.model.parameters()).device
    sums = {"loss": 0.0, "pose_loss": 0.0, "ce": 0.0, "pose_err": 0.0, "coord_loss": 0.0, "instance_ce": 0.0,
            "correct": 0, "n": 0}
    coords = data.coordinates is not None and phase.trunk
    for sl in batches(len(order), cfg.batch_size):
        if sl.stop - sl.start < 2 * ranks.world:  # batch norm needs two samples in each process
            continue
        part = shard(sl.start, sl.stop, ranks)
        idx, copy = torch.from_numpy(order[part]), torch.from_numpy(copy_of[part])
        x = data.feats[copy, idx].to(dev).float()
        if data.partners is None:
            t = _batch(data.targets, copy * data.feats.shape[1] + idx, dev)
        else:
            x, t = _mixed(step.model, data, x, copy, idx, mix_of[part])
        scale = ranks.world * len(part) / (sl.stop - sl.start)
        loss, pl, ce, err, logits, cl, il = _step_losses(step, data, x, t, copy, idx, coords)
        step.opt.zero_grad(set_to_none=True)
        # DDP averages the processes' gradients: weighing each by its share of the batch gives the batch mean's
        (loss * scale).backward()
        if cfg.sam_rho:  # the step takes the gradient at the worst weights within ρ (vantage.train.sharpness)
            with perturbed([p for g in step.opt.param_groups for p in g["params"]], cfg.sam_rho, step.model):
                step.opt.zero_grad(set_to_none=True)
                (_step_losses(step, data, x, t, copy, idx, coords)[0] * scale).backward()
        sums["coord_loss"] += cl.item() * len(idx)
        sums["instance_ce"] += il.item() * len(idx)
        step.opt.step()
        step.sched.step()
        if step.average:
            step.average.update(step.model)
        n = len(idx)
        sums["loss"] += loss.item() * n
        sums["pose_loss"] += pl.item() * n
        sums["ce"] += ce.item() * n
        sums["pose_err"] += err.item() * n
        sums["correct"] += int((logits.argmax(1).cpu() == data.cats[idx]).sum())
        sums["n"] += n
        bar.update(sl.stop - sl.start)
        bar.set_postfix(pose=f"{math.degrees(err.item()):.1f}°", ce=f"{ce.item():.2f}")
    return sums


def _mixed(model: JointPoseNet, data: TrainingData, x: torch.Tensor, copy: torch.Tensor, idx: torch.Tensor,
           weight: np.ndarray) -> tuple[torch.Tensor, Targets]:
    """A batch blended with its samples' pose partners (vantage.train.instance_mix) and its targets."""
    partner = data.partners[copy, idx]
    weight = np.where(partner.numpy() >= 0, weight, 0.0)
    partner = torch.where(partner >= 0, partner, idx)
    c, i, j = copy.numpy(), idx.numpy(), partner.numpy()
    x, rotations = mix(x, data.feats[copy, partner].to(x.device).float(), data.rotations[c, i], data.rotations[c, j],
                       weight)
    centres = None if model.key_poses is None else model.key_poses.cpu().numpy().astype(np.float64)
    return x, _batch(targets_of(rotations, centres, data.gamma), slice(None), x.device)


def _step_losses(step: Step, data: TrainingData, x: torch.Tensor, t: Targets, copy: torch.Tensor,
                 idx: torch.Tensor, coords: bool) -> tuple[torch.Tensor, ...]:
    """One forward pass of a batch with its pose targets `t`: (total loss, pose loss, cross-entropy, pose error,
    logits, coordinate loss, instance cross-entropy)."""
    cfg, phase, dev = step.cfg, step.phase, x.device
    with torch.autocast(dev.type, enabled=dev.type == "cuda"):
        logits, heads, *aux = step.forward(x, coords, step.reversal)
    heads = type(heads)(*(None if v is None else v.float() for v in heads))
    pl, ce, err = joint_loss(
        step.model, logits.float(), heads, t, data.cats[idx].to(dev), phase.oracle, cfg.alpha, step.simple,
        cfg.category_smoothing,
    )
    # CE is weighed by λ only where it shares trainable parts with the pose loss
    ce_weight = (cfg.lambda_category if phase.pose and phase.trunk else 1.0) if phase.category else 0.0
    loss = (pl if phase.pose else 0.0) + ce_weight * ce
    cl, il = torch.zeros(()), torch.zeros(())
    if coords:
        cl = coordinate_loss(aux[0].float(), data.coordinates[copy, idx].to(dev).float())
        loss = loss + cfg.coordinate_weight * cl
    if step.reversal is not None:
        il = instance_loss(aux[1].float(), data.instances[idx].to(dev), data.cats[idx].to(dev),
                           data.instance_category.to(dev))
        loss = loss + cfg.instance_adversary * il
    return loss, pl, ce, err, logits, cl, il


def _epoch_record(epoch: int, phase: Phase, sums: dict[str, float], lr: float, seconds: float) -> dict:
    """One `history` / `log.csv` row: the epoch's sample-weighted means."""
    n = max(sums["n"], 1)
    return {
        "epoch": epoch + 1,
        "phase": phase.name,
        "loss": sums["loss"] / n,
        "pose_loss": sums["pose_loss"] / n,
        "pose_err": sums["pose_err"] / n,
        "coord_loss": sums["coord_loss"] / n,
        "instance_ce": sums["instance_ce"] / n,
        "ce": sums["ce"] / n,
        "cat_acc": sums["correct"] / n,
        "lr": lr,
        "seconds": seconds,
    }
