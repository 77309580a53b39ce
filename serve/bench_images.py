"""Inputs of the benchmark: image files from a folder, renders of the built-in shapes, or synthetic pictures.

Rendering uses the training side (`vantage.train`), imported only here and only when
it is installed; a serving-only install falls back to synthetic pictures (drawn with
OpenCV), which cost the server the same to decode and crop.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

log = logging.getLogger(__name__)

IMAGE_SUFFIXES: tuple[str, ...] = (".jpg", ".jpeg", ".png")


@dataclass(frozen=True)
class BenchInput:
    """One encoded image and the object box sent with it (None = whole image)."""

    image: bytes
    box: tuple[float, float, float, float] | None = None


def synthetic_image(width: int = 160, height: int = 120, seed: int = 0, ext: str = ".png") -> bytes:
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
    if not ok:
        raise ValueError(f"cv2.imencode({ext!r}) failed")
    return buf.tobytes()


def folder_inputs(folder: str | Path, count: int) -> list[BenchInput]:
    """Up to `count` JPEG/PNG files of `folder` (sorted by name), whole images."""
    files = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ValueError(f"no {'/'.join(IMAGE_SUFFIXES)} files in {str(folder)!r}")
    return [BenchInput(p.read_bytes()) for p in files[:count]]


def rendered_inputs(count: int, size: int = 160) -> list[BenchInput] | None:
    """`count` JPEG renders of the built-in procedural models with their boxes; None without `vantage.train`."""
    try:
        from vantage.train.meshes import builtin_specs
        from vantage.train.render import RenderConfig, read_manifest, render_dataset
    except ImportError as exc:
        log.info("vantage.train is not installed (%s): synthetic images instead of renders", exc)
        return None
    specs = builtin_specs(1)
    views = -(-count // len(specs))
    with tempfile.TemporaryDirectory(prefix="vantage-bench-") as tmp:
        render_dataset(specs, tmp, RenderConfig(image_size=size, views_per_model=views, seed=7), workers=1, progress=False)
        records = read_manifest(tmp)[:count]
        return [BenchInput((Path(tmp) / r["file"]).read_bytes(), tuple(float(v) for v in r["box"])) for r in records]


def bench_inputs(folder: str | Path | None = None, count: int = 16, size: int = 160) -> tuple[list[BenchInput], str]:
    """The benchmark's inputs and where they came from ("folder", "rendered" or "synthetic")."""
    if folder:
        return folder_inputs(folder, count), "folder"
    rendered = rendered_inputs(count, size)
    if rendered:
        return rendered, "rendered"
    return [BenchInput(synthetic_image(size, size * 3 // 4, seed=i, ext=".jpg")) for i in range(count)], "synthetic"
