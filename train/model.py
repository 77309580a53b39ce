"""The integrated network of the joint-pose paper (Mahendran, Ali, Vidal, Fig. 2–3).

feature network (frozen EfficientNet-Lite0 up to the tap block, cached on CPU)
  → shared trunk (the remaining ImageNet blocks, fine-tuned: the paper's "stage 5")
  → category network (global pool + linear → K logits)
  → K category-dependent pose networks (3 FC layers with BN + ReLU, axis-angle out)
  → fusion: weighted y = Σ pᵢ yᵢ (Eq. 1) or top-1 y = y_ĉ (Eq. 2).
The retrieval embedding is the image-graphics paper's transfer feature: the
frozen tap activations average-pooled to a 2×2 grid and L2-normalised.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from vantage.categories import CATEGORIES
from vantage.train.backbone import FeatureNetwork, load_efficientnet_lite0
from vantage.train.geometry_torch import axis_angle_to_rotation, bound_axis_angle

FUSIONS = ("weighted", "top1")


@dataclass
class ModelConfig:
    """Architecture choices; stored in checkpoints so a model rebuilds exactly."""

    categories: list[str] = field(default_factory=lambda: list(CATEGORIES))
    input_size: int = 128
    tap: int = 14
    pose_channels: int = 64
    head_hidden: tuple[int, int] = (256, 128)
    fusion: str = "weighted"
    embedding_grid: int = 2
    pretrained: bool = True

    def to_dict(self) -> dict:
        d = asdict(self)
        d["head_hidden"] = list(self.head_hidden)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        d = dict(d)
        d["head_hidden"] = tuple(d.get("head_hidden", (256, 128)))
        return cls(**d)


def fuse(pose: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Weighted fusion y = Σ wᵢ yᵢ over category heads (joint-pose paper, Eq. 1); (N,K,3),(N,K) → (N,3)."""
    return (pose * weights.unsqueeze(-1)).sum(1)


def top1_weights(probs: torch.Tensor) -> torch.Tensor:
    """One-hot of the most probable category built from a comparison (Eq. 2 as a weighting).

    `probs >= max` avoids ArgMax, which TensorRT mishandles on some versions; ties
    (practically never with softmax outputs) are shared equally.
    """
    hot = (probs >= probs.max(dim=1, keepdim=True).values).to(probs.dtype)
    return hot / hot.sum(1, keepdim=True)


def fusion_weights(probs: torch.Tensor, hint: torch.Tensor, fusion: str) -> torch.Tensor:
    """Head weights: the known category when `hint` has a non-zero row, else the fusion of `probs`.

    The hint convention (zeros = unknown, one-hot = known) lets one graph serve both
    cases; with p = δ(c*) Eq. 1 reduces to y = y_c* as the paper notes.
    """
    base = probs if fusion == "weighted" else top1_weights(probs)
    total = hint.sum(1, keepdim=True)
    known = total > 0
    return torch.where(known, hint / torch.where(known, total, torch.ones_like(total)), base)


class PoseHead(nn.Module):
    """One 3-layer FC pose network d-h1-h2-3 with BN + ReLU (joint-pose paper, Fig. 3b)."""

    def __init__(self, in_dim: int, hidden: Sequence[int]) -> None:
        super().__init__()
        h1, h2 = hidden
        self.net = nn.Sequential(
            nn.Linear(in_dim, h1), nn.BatchNorm1d(h1), nn.ReLU(),
            nn.Linear(h1, h2), nn.BatchNorm1d(h2), nn.ReLU(),
            nn.Linear(h2, 3),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return bound_axis_angle(self.net(x))


class JointPoseNet(nn.Module):
    """Category network + category-dependent pose networks over a shared trunk.

    `forward_features` takes the frozen tap activations, so training can run on
    cached features; `forward` takes normalised images (export and evaluation).
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        if config.fusion not in FUSIONS:
            raise ValueError(f"fusion must be one of {FUSIONS}, got {config.fusion!r}")
        self.config = config
        self.features = FeatureNetwork(config.tap, pretrained=config.pretrained)
        net = load_efficientnet_lite0(config.pretrained)
        self.trunk = nn.ModuleList(net._blocks[config.tap + 1 :])
        trunk_channels = net._blocks[-1]._block_args.output_filters if len(self.trunk) else self.features.out_channels
        k = len(config.categories)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(trunk_channels, k))
        self.pose_reduce = nn.Sequential(
            nn.Conv2d(trunk_channels, config.pose_channels, 1, bias=False),
            nn.BatchNorm2d(config.pose_channels),
            nn.ReLU(),
        )
        self.tap_grid, grid = self._grids(config.input_size)
        if self.tap_grid % config.embedding_grid:
            raise ValueError(f"embedding_grid {config.embedding_grid} must divide the tap grid {self.tap_grid}")
        self.pose_heads = nn.ModuleList(
            PoseHead(config.pose_channels * grid * grid, config.head_hidden) for _ in range(k)
        )

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

    def forward_features(self, feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Tap activations → (category logits (N,K), per-category axis-angles (N,K,3))."""
        x = self.run_trunk(feats)
        logits = self.classifier(x.mean((2, 3)))
        p = self.pose_reduce(x).flatten(1)
        pose = torch.stack([head(p) for head in self.pose_heads], 1)
        return logits, pose

    def forward(self, image: torch.Tensor, category_hint: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Full inference with the post-processing of the bundle graph.

        Returns (category_probs, axis_angle, rotation, embedding); `category_hint`
        is (N,K): zeros = unknown category, one-hot = known.
        """
        feats = self.features(image)
        logits, pose = self.forward_features(feats)
        probs = torch.softmax(logits, 1)
        y = fuse(pose, fusion_weights(probs, category_hint, self.config.fusion))
        return probs, y, axis_angle_to_rotation(y), self.embed(feats)
