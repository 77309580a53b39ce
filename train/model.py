"""The integrated network of the joint-pose paper (Mahendran, Ali, Vidal, Fig. 2–3).

feature network (frozen EfficientNet-Lite up to the tap block, cached on CPU)
  → shared trunk (the remaining ImageNet blocks, fine-tuned: the paper's "stage 5")
  → category network (global pool + linear → K logits)
  → K category-dependent pose networks (3 FC layers with BN + ReLU), or one shared
    network of equal size: regression, classification or Bin & Delta heads
    (`vantage.train.heads`, Bin & Delta paper Eq. 1–14)
  → fusion: weighted y = Σ pᵢ yᵢ (Eq. 1) or top-1 y = y_ĉ (Eq. 2), for bin heads on
    the bin probabilities and deltas; then key pose + delta → axis-angle → rotation.
The retrieval embedding is the image-graphics paper's transfer feature: the
frozen tap activations average-pooled to a 2×2 grid and L2-normalised.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vantage.categories import CATEGORIES
from vantage.train.backbone import DEFAULT_TAPS, build_backbone
from vantage.train.geometry_torch import axis_angle_to_rotation
from vantage.train.heads import (HEAD_TYPES, REGRESSION_HEADS, HeadOutput, PoseHead, candidates, decode, fuse, stack_heads,
                                 top1)
from vantage.train.hypotheses import Looks, conclude
from vantage.train.instance_adversary import reverse_gradient

FUSIONS = ("weighted", "top1")


@dataclass
class ModelConfig:
    """Architecture choices; stored in checkpoints so a model rebuilds exactly."""

    categories: list[str] = field(default_factory=lambda: list(CATEGORIES))
    input_size: int = 128
    backbone: str = "efficientnet_lite0"  # or efficientnet_lite1/2, or "resnet50" (vantage.train.resnet)
    # EfficientNet: last frozen block; ResNet-50: stage after which it is split (4 in the paper);
    # None = the backbone's DEFAULT_TAPS entry (all but the last block / stage frozen)
    tap: int | None = None
    backbone_weights: str | None = None  # ResNet-50: local torchvision-layout state dict (else random init)
    # Channels of the pose reduction (1×1 conv on the trunk's output), the pose heads' input width over the grid.
    # 32 in the reference recipe on fold 0 (from its renders and feature cache, 42.2 min): MedErr 16.4° / Acc@π/6
    # 0.647 / cat-acc 0.900 vs 15.3° / 0.669 / 0.908 (symmetry-reduced 13.5° / 0.764 vs 12.9° / 0.786; training
    # error 7.5° vs 6.9°): worse, like the shared head input below, so it stays 64.
    pose_channels: int = 64
    head_hidden: tuple[int, int] = (256, 128)
    fusion: str = "weighted"
    embedding_grid: int = 2
    pretrained: bool = True
    head: str = "regression_g"  # one of vantage.train.heads.HEAD_TYPES
    num_bins: int = 16  # K of the K-means key-pose dictionary (bin heads)
    per_bin_delta: bool = False  # the "+" models: one delta per bin (Bin & Delta paper, §3.6)
    category_dependent: bool = True  # one head per category, else one shared head of equal size
    # Dropout on the pose heads' input (the reduced trunk map, flattened), against heads that learn the
    # few training meshes of a category by heart (train pose error ~7° vs ~15° on unseen meshes); 0 = none.
    # 0.3 in the reference recipe on fold 0: MedErr 16.0° / Acc@π/6 0.658 / cat-acc 0.889 vs 15.3° / 0.669 / 0.908
    # (symmetry-reduced 12.5° / 0.792 vs 12.9° / 0.786; training error 8.9° vs 6.6°): noise, so it stays off.
    pose_dropout: float = 0.0
    # Multi-level pose features: the frozen tap activations (average-pooled to the trunk's grid) join the
    # fine-tuned trunk's output before the pose reduction, so the heads see the ImageNet features directly.
    # In the reference recipe on fold 0: 16.2° / 0.653 / 0.897 (symmetry-reduced 12.4° / 0.786; best of two
    # hypotheses 0.847 vs 0.808); on fold 1 18.8° / 0.619 / 0.775 vs 18.2° / 0.639 / 0.778 (best of two 0.750 vs
    # 0.758): noise, so it stays off.
    pose_skip: bool = False
    # Object-coordinate auxiliary head (vantage.train.coordinates): a 1×1 convolution on the trunk's output
    # predicts, per cell, which point of the object it sees; trained with TrainConfig.coordinate_weight,
    # left out of the exported graph. Needs training renders with RenderConfig.coordinates. In the reference
    # recipe (weight 1; folds 0 and 1 side by side, 82 min each): fold 0 MedErr 15.0° / Acc@π/6 0.675 / cat-acc
    # 0.908 vs 15.3° / 0.669 / 0.908 (symmetry-reduced 13.0° / 0.783 vs 12.9° / 0.786; best of two hypotheses
    # 0.819 vs 0.808), fold 1 17.5° / 0.600 / 0.781 vs 18.2° / 0.639 / 0.778 (13.3° / 0.758 vs 13.5° / 0.778;
    # best of two 0.731 vs 0.758): noise, so it stays off.
    coordinates: bool = False
    # Instance-adversarial auxiliary head (vantage.train.instance_adversary): an MLP on the pose heads' input
    # tells a view's training instance within its category, its gradient reversed into the trunk; the trainer
    # sets this to the training set's number of instances under TrainConfig.instance_adversary (0 = no head).
    # Left out of the exported graph.
    instance_classes: int = 0
    # Width of one FC layer (+ BN + ReLU) that every category's pose head shares before its own MLPs; 0 = none
    # (the papers' heads, each reading the pose input itself). The pose input is pose_channels × trunk grid² wide
    # (2,304 in the recipe), so the first layers hold 14.2 M of the twelve heads' 15.1 M weights, each category's
    # 1.2 M fitted on its two to seven training meshes; a shared layer learns its weights from every mesh of every
    # category (256 wide: 0.6 M shared, the heads 2.5 M). 256 in the reference recipe on fold 0 (from its renders
    # and feature cache, 49.4 min): MedErr 16.1° / Acc@π/6 0.656 / cat-acc 0.894 vs 15.3° / 0.669 / 0.908
    # (symmetry-reduced 14.1° / 0.761 vs 12.9° / 0.786), worse; its members' training error 10.8° vs 6.9°: the gap to
    # unseen meshes narrower, the fit worse by more. The per-category first layers are used, so the heads stay apart.
    shared_head_input: int = 0

    def __post_init__(self) -> None:
        if not 0.0 <= self.pose_dropout < 1.0:
            raise ValueError(f"pose_dropout must be in [0, 1), got {self.pose_dropout}")
        if self.shared_head_input < 0:
            raise ValueError(f"shared_head_input must be 0 (none) or a layer width, got {self.shared_head_input}")
        if self.instance_classes < 0:
            raise ValueError(f"instance_classes must be 0 (no head) or more, got {self.instance_classes}")
        if self.tap is None:
            if self.backbone not in DEFAULT_TAPS:
                raise ValueError(f"backbone must be one of {sorted(DEFAULT_TAPS)}, got {self.backbone!r}")
            self.tap = DEFAULT_TAPS[self.backbone]

    def to_dict(self) -> dict:
        d = asdict(self)
        d["head_hidden"] = list(self.head_hidden)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        d = dict(d)
        d["head_hidden"] = tuple(d.get("head_hidden", (256, 128)))
        return cls(**d)


def top1_weights(probs: torch.Tensor) -> torch.Tensor:
    """One-hot of the most probable category built from a comparison (Eq. 2 as a weighting).

    `probs >= max` avoids ArgMax, which TensorRT mishandles on some versions; ties
    (practically never with softmax outputs) are shared equally.
    """
    return top1(probs)


def fusion_weights(probs: torch.Tensor, hint: torch.Tensor, fusion: str) -> torch.Tensor:
    """Head weights: the known category when `hint` has a non-zero row, else the fusion of `probs`.

    The hint convention (zeros = unknown, one-hot = known) lets one graph serve both
    cases; with p = δ(c*) Eq. 1 reduces to y = y_c* as the paper notes.
    """
    base = probs if fusion == "weighted" else top1_weights(probs)
    total = hint.sum(1, keepdim=True)
    known = total > 0
    return torch.where(known, hint / torch.where(known, total, torch.ones_like(total)), base)


class JointPoseNet(nn.Module):
    """Category network + category-dependent pose networks over a shared trunk.

    `forward_features` takes the frozen tap activations, so training can run on
    cached features; `forward` takes normalised images (export and evaluation).
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        if config.fusion not in FUSIONS:
            raise ValueError(f"fusion must be one of {FUSIONS}, got {config.fusion!r}")
        if config.head not in HEAD_TYPES:
            raise ValueError(f"head must be one of {HEAD_TYPES}, got {config.head!r}")
        self.config = config
        self.features, trunk, trunk_channels = build_backbone(
            config.backbone, config.tap, config.pretrained, config.backbone_weights
        )
        self.trunk = nn.ModuleList(trunk)
        k = len(config.categories)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(trunk_channels, k))
        reduce_in = trunk_channels + (self.features.out_channels if config.pose_skip else 0)
        self.pose_reduce = nn.Sequential(
            nn.Conv2d(reduce_in, config.pose_channels, 1, bias=False),
            nn.BatchNorm2d(config.pose_channels),
            nn.ReLU(),
            *([nn.Dropout(config.pose_dropout)] if config.pose_dropout else []),  # after: old checkpoints' keys stay
        )
        self.tap_grid, self.trunk_grid = self._grids(config.input_size)  # the trunk's: object-coordinate targets
        grid = self.trunk_grid
        if config.pose_skip and self.tap_grid % grid:
            raise ValueError(f"pose_skip pools the tap grid {self.tap_grid} to the trunk grid {grid}, "
                             f"which must divide it: choose another input size or tap")
        if self.tap_grid % config.embedding_grid:
            raise ValueError(f"embedding_grid {config.embedding_grid} must divide the tap grid {self.tap_grid} that "
                             f"input_size {config.input_size} gives: choose an input size whose tap grid is a "
                             f"multiple of {config.embedding_grid}")
        # auxiliary only: forward() never uses it, so exported graphs do not carry it
        self.coordinate_head = nn.Conv2d(trunk_channels, 4, 1) if config.coordinates else None
        heads = k if config.category_dependent else 1
        pose_dim = config.pose_channels * grid * grid
        # auxiliary only, like the coordinate head
        self.instance_head = nn.Sequential(nn.Linear(pose_dim, 256), nn.ReLU(), nn.Linear(256, config.instance_classes)
                                           ) if config.instance_classes else None
        width = config.shared_head_input
        self.head_input = nn.Sequential(nn.Linear(pose_dim, width), nn.BatchNorm1d(width), nn.ReLU()) if width else None
        self.pose_heads = nn.ModuleList(
            PoseHead(width or pose_dim, config.head_hidden, config.head, config.num_bins,
                     config.per_bin_delta, copies=1 if config.category_dependent else k)
            for _ in range(heads)
        )
        # K-means dictionary of bin heads (Bin & Delta paper, §2): saved in checkpoints, a constant in the graph
        bins = None if config.head in REGRESSION_HEADS else torch.zeros(config.num_bins, 3)
        self.register_buffer("key_poses", bins)

    def set_key_poses(self, centres: np.ndarray) -> None:
        """Install the K-means key poses learned on the training poses (bin heads only)."""
        if self.key_poses is None:
            raise ValueError(f"head {self.config.head!r} has no key-pose dictionary")
        self.key_poses.copy_(torch.as_tensor(centres, dtype=self.key_poses.dtype))

    def _grids(self, size: int) -> tuple[int, int]:
        """Spatial sizes of the tap and trunk outputs for the fixed input size."""
        with torch.no_grad():
            was = self.training
            self.eval()
            f = self.features(torch.zeros(1, 3, size, size))
            x = self.run_trunk(f)
            self.train(was)
        return int(f.shape[-1]), int(x.shape[-1])

    def run_trunk(self, feats: torch.Tensor) -> torch.Tensor:
        x = feats
        for block in self.trunk:
            x = block(x)
        return x

    def embed(self, feats: torch.Tensor) -> torch.Tensor:
        """Image-graphics transfer feature: tap activations pooled to a small grid, L2-normalised."""
        k = self.tap_grid // self.config.embedding_grid  # fixed kernel: exports with a static shape
        pooled = F.avg_pool2d(feats, k).flatten(1)
        return pooled / pooled.norm(dim=1, keepdim=True).clamp_min(1e-12)

    @property
    def embedding_dim(self) -> int:
        return self.features.out_channels * self.config.embedding_grid**2

    def forward_features(self, feats: torch.Tensor, coordinates: bool = False,
                         reversal: float | None = None) -> tuple[torch.Tensor, ...]:
        """Tap activations → (category logits (N,K), raw pose-head outputs with a category axis); with
        `coordinates` or `reversal` also (the object-coordinate head's (N, 4, g, g) output
        (vantage.train.losses.coordinate_loss) or None, the instance head's (N, I) logits on the pose
        input with its gradient reversed times `reversal` (vantage.train.instance_adversary) or None)."""
        x = self.run_trunk(feats)
        logits = self.classifier(x.mean((2, 3)))
        p = self.pose_reduce(self._pose_input(feats, x)).flatten(1)
        q = p if self.head_input is None else self.head_input(p)
        heads = stack_heads([head(q) for head in self.pose_heads], len(self.config.categories))
        if not coordinates and reversal is None:
            return logits, heads
        if coordinates and self.coordinate_head is None:
            raise ValueError("this model has no object-coordinate head (ModelConfig.coordinates)")
        if reversal is not None and self.instance_head is None:
            raise ValueError("this model has no instance head (ModelConfig.instance_classes)")
        return (logits, heads, self.coordinate_head(x) if coordinates else None,
                None if reversal is None else self.instance_head(reverse_gradient(p, reversal)))

    def _pose_input(self, feats: torch.Tensor, trunk_out: torch.Tensor) -> torch.Tensor:
        """What the pose reduction sees: the trunk's output, with the tap activations beside it under `pose_skip`."""
        if not self.config.pose_skip:
            return trunk_out
        k = feats.shape[-1] // trunk_out.shape[-1]  # a fixed kernel (checked in __init__): a static ONNX shape
        return torch.cat([trunk_out, F.avg_pool2d(feats, k) if k > 1 else feats], 1)

    def decode(self, fused: HeadOutput) -> tuple[torch.Tensor, torch.Tensor]:
        """Fused (or per-category) head outputs → (axis-angle, rotation)."""
        return decode(fused, self.config.head, self.key_poses)

    def forward(self, image: torch.Tensor, category_hint: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Full inference with the post-processing of the bundle graph.

        Returns (category_probs, axis_angle, rotation, embedding, pose_hypotheses,
        hypothesis_scores) (vantage.train.hypotheses.conclude); `category_hint` is
        (N,K): zeros = unknown category, one-hot = known.
        """
        return conclude(self.looks_at(image, category_hint))

    def looks_at(self, image: torch.Tensor, category_hint: torch.Tensor) -> Looks:
        """This network's one look at the crops, in the form that test-time fusion
        (vantage.train.test_time) votes over, as it does over an ensemble's members."""
        return self.looks(self.features(image), category_hint)

    def looks(self, feats: torch.Tensor, category_hint: torch.Tensor) -> Looks:
        """The look from frozen tap activations: fused answer, its weighed candidates, embedding."""
        logits, out = self.forward_features(feats)
        probs = torch.softmax(logits, 1)
        fused = fuse(out, fusion_weights(probs, category_hint, self.config.fusion))
        y, _ = self.decode(fused)
        poses, weights = candidates(fused, self.config.head, self.key_poses)
        return Looks(probs, [y], [poses], [weights], self.embed(feats))

    def infer(self, feats: torch.Tensor, category_hint: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(category_probs, axis_angle, rotation, embedding) from frozen tap activations (evaluation on cached features)."""
        look = self.looks(feats, category_hint)
        y = look.answers[0]
        return look.probs, y, axis_angle_to_rotation(y), look.embedding
