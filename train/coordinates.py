"""Object-coordinate maps: which point of the object each pixel sees, as a dense training target.

A pose label says where the whole object points; an object-coordinate map (NOCS, Wang et al.
2019, for unseen instances of a category) says, for every pixel, which part of the object is
there, in POSE.md's normalised object frame (|p| <= 1). The renderer saves one per view
(`RenderConfig.coordinates`, coords/N.png: p mapped to 0..255 per axis); training pools it to the
trunk's grid over the same square crop the network sees (`coordinate_target`), and an auxiliary
head on the trunk (`ModelConfig.coordinates`) predicts it, so that the fine-tuned features learn
parts that carry across the few training meshes of a category, not only their silhouettes.
Symmetric meshes keep their label's coordinates: the target is exactly as ambiguous as the pose label.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from vantage.imaging import crop_square

MISSING = -1.0  # the cover channel of a view without a map: the loss ignores it


def write_coordinates(path: str | Path, coords: np.ndarray) -> None:
    """Save an (H, W, 3) float map in [-1, 1] as an 8-bit PNG (x, y, z in its R, G, B)."""
    code = np.clip(np.round((np.asarray(coords, np.float32) + 1.0) * 127.5), 0, 255).astype(np.uint8)
    if not cv2.imwrite(str(path), code[:, :, ::-1], [cv2.IMWRITE_PNG_COMPRESSION, 1]):
        raise OSError(f"cannot write {path}")


def read_coordinates(path: str | Path) -> np.ndarray:
    """The (H, W, 3) float32 map `write_coordinates` saved (to within 1/127.5)."""
    code = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if code is None:
        raise FileNotFoundError(f"cannot read object-coordinate map {path}")
    return code[:, :, ::-1].astype(np.float32) / 127.5 - 1.0


def coordinate_target(
    coords: np.ndarray, mask: np.ndarray, box: Sequence[float], margin: float, grid: int
) -> np.ndarray:
    """(4, grid, grid) float32 target of the square crop of `box` (vantage.imaging.crop_square, as the
    network's input): per cell the mean object point of the pixels on the object, and the share of
    the cell they cover. Area resampling of the mask-weighted map gives exactly those cell means."""
    weighted = np.concatenate([coords * mask[..., None], mask[..., None]], -1).astype(np.float32)
    cells = crop_square(weighted, box, grid, margin)
    cover = cells[..., 3]
    points = cells[..., :3] / np.maximum(cover, 1e-6)[..., None]
    return np.concatenate([points, cover[..., None]], -1).transpose(2, 0, 1).astype(np.float32)


def missing_target(grid: int) -> np.ndarray:
    """The target of a view rendered without a map: ignored by `vantage.train.losses.coordinate_loss`."""
    target = np.zeros((4, grid, grid), np.float32)
    target[3] = MISSING
    return target


def mirror_target(target: np.ndarray) -> np.ndarray:
    """Target of the horizontally flipped crop (vantage.train.trainer.mirror_rotation): the mirrored
    object is the original with x ↦ −x, so cells swap left and right and the x coordinate changes sign."""
    out = target[..., ::-1].copy()
    out[0] = -out[0]
    return out
