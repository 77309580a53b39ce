"""A real, small model bundle made by the real exporter, for serving tests.

The network is Vantage's joint network (ImageNet EfficientNet-Lite0 features, random
heads, 64² inputs) exported by `vantage.export.onnx_export`, so
serving tests run the exact graph contract a trained bundle has.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import cv2
import numpy as np

from vantage.categories import CATEGORIES

INPUT_SIZE = 64


def make_tiny_bundle(path: str | Path, categories: tuple[str, ...] = CATEGORIES) -> Path:
    """Export a random-weight joint network to a bundle at `path` and return `path`."""
    import torch

    from vantage.export.onnx_export import export_bundle
    from vantage.train.model import JointPoseNet, ModelConfig

    torch.manual_seed(0)
    model = JointPoseNet(
        ModelConfig(categories=list(categories), input_size=INPUT_SIZE, head_hidden=(32, 16), pretrained=True)
    )
    with torch.no_grad():  # spread the heads so that rotations differ between categories
        for head in model.pose_heads:
            head.net[-1].weight.mul_(20.0)
            head.net[-1].bias.normal_(0.0, 1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return export_bundle(model.eval(), path, training={"note": "random weights, serving tests only"},
                             model_version="test-1", name="tiny-test")


def make_test_image(width: int = 160, height: int = 120, seed: int = 0, ext: str = ".png") -> bytes:
    """Encoded synthetic picture: a gradient background with a few coloured shapes."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    img = np.stack(
        [xx * 255 // max(width - 1, 1), yy * 255 // max(height - 1, 1), (xx + yy) * 127 // max(width + height, 1)],
        -1,
    ).astype(np.uint8)
    for _ in range(4):
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        x0, y0 = int(rng.integers(0, width - 10)), int(rng.integers(0, height - 10))
        x1, y1 = x0 + int(rng.integers(8, width // 2)), y0 + int(rng.integers(8, height // 2))
        cv2.rectangle(img, (x0, y0), (x1, y1), colour, -1)
        cv2.circle(img, (int(rng.integers(0, width)), int(rng.integers(0, height))), int(rng.integers(5, 30)), colour[::-1], -1)
    ok, buf = cv2.imencode(ext, img)
    assert ok, f"cv2.imencode({ext!r}) failed"
    return buf.tobytes()
