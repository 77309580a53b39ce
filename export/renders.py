"""Labelled network inputs from a folder written by `vantage render`, prepared as a bundle expects.

Calibration (int8 ONNX Runtime and TensorRT) and the accuracy checks of exported
variants both need real crops of the training meshes, pre-processed exactly as the
server will (the bundle's input size, crop margin, mean and std).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vantage.bundle import BundleMetadata
from vantage.imaging import normalise
from vantage.train.data import load_crop, read_samples


@dataclass
class RenderSet:
    """Normalised crops with their labels; `categories` index `names`."""

    images: np.ndarray  # float32 (N, 3, S, S)
    categories: np.ndarray  # int (N,)
    rotations: np.ndarray  # float64 (N, 3, 3), POSE.md
    names: list[str]
    source: str

    def __len__(self) -> int:
        return len(self.images)

    def unknown_hints(self, count: int | None = None) -> np.ndarray:
        """All-zero category hints (category unknown) for the first `count` images."""
        return np.zeros((len(self) if count is None else count, len(self.names)), np.float32)


def load_renders(root: str | Path, meta: BundleMetadata, limit: int | None = None, seed: int = 0) -> RenderSet:
    """Up to `limit` views (a seeded random subset, in manifest order) of the bundle's categories."""
    samples = read_samples(root, list(meta.categories))
    if not samples:
        raise ValueError(f"{root} has no views of the bundle's categories {meta.categories}")
    if limit is not None and len(samples) > limit:
        keep = np.sort(np.random.default_rng(seed).choice(len(samples), limit, replace=False))
        samples = [samples[i] for i in keep]
    crops = np.stack([load_crop(s, int(meta.input_size), float(meta.crop_margin)) for s in samples])
    return RenderSet(
        images=normalise(crops, meta.mean, meta.std),
        categories=np.array([s.category for s in samples], np.int64),
        rotations=np.stack([s.rotation for s in samples]),
        names=list(meta.categories),
        source=str(root),
    )
