"""Small real models, renders and bundles for the edge-export tests (ops, variants, Triton, bench)."""

from __future__ import annotations

import warnings
from pathlib import Path
from types import SimpleNamespace

import torch
import torch.nn.functional as F
from torch import nn

from vantage.categories import CATEGORIES
from vantage.train.hypotheses import Looks, conclude
from vantage.train.model import JointPoseNet, ModelConfig, fusion_weights

SIZE = 64


def joint_model(fusion: str = "weighted", pretrained: bool = False) -> JointPoseNet:
    """Vantage's joint network at 64², small heads, BN statistics made non-trivial."""
    torch.manual_seed(0)
    model = JointPoseNet(ModelConfig(input_size=SIZE, head_hidden=(32, 16), pretrained=pretrained, fusion=fusion))
    model.train()
    with torch.no_grad():
        for _ in range(2):
            model(torch.randn(8, 3, SIZE, SIZE), torch.zeros(8, len(CATEGORIES)))
    return model.eval()


class ContractModel(nn.Module):
    """Not a JointPoseNet: any model with the bundle graph contract must export (e.g. future heads).

    `select="argmax"` picks the top category with ArgMax, which the allow-list refuses.
    """

    def __init__(self, select: str = "compare", k: int = 4) -> None:
        super().__init__()
        self.config = SimpleNamespace(categories=list(CATEGORIES[:k]), input_size=32, fusion="top1")
        self.select = select
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU6())
        self.classifier = nn.Linear(8, k)
        self.pose = nn.Linear(8, 3 * k)
        self.embedding_dim = 8

    def forward(self, image: torch.Tensor, category_hint: torch.Tensor) -> tuple[torch.Tensor, ...]:
        f = self.features(image).mean((2, 3))
        probs = torch.softmax(self.classifier(f), 1)
        k = probs.shape[1]
        if self.select == "argmax":
            weights = F.one_hot(probs.argmax(1), k).to(probs.dtype)
        else:
            weights = fusion_weights(probs, category_hint, "top1")
        y = (self.pose(f).view(-1, k, 3).tanh() * weights.unsqueeze(-1)).sum(1)
        return conclude(Looks(probs, [y], [y.unsqueeze(1)], [torch.ones_like(y[:, :1])], F.normalize(f, dim=1)))


def render_small_set(out: Path) -> Path:
    """Two rendered views of one procedural model per category (80², real renderer)."""
    from vantage.train.meshes import builtin_specs
    from vantage.train.render import RenderConfig, render_dataset

    render_dataset(builtin_specs(1), out, RenderConfig(image_size=80, views_per_model=2), workers=1, progress=False)
    return out


def export_small_bundle(out: Path, fusion: str = "weighted") -> Path:
    """A bundle of the 64² joint network with the ImageNet backbone (what int8/fp16 act on)."""
    from vantage.export.onnx_export import export_bundle

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return export_bundle(joint_model(fusion, pretrained=True), out, training={"note": "random heads, tests only"})
