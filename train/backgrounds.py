"""Random backgrounds for synthetic renders.

Three kinds, chosen by the renderer with `RenderConfig.background_weights`:

- ``"plain"``: one random colour.
- ``"texture"``: procedural clutter, one of several generators picked at random
  (linear/radial gradients, multi-octave value noise, stripes and checkerboards,
  random shapes over a gradient, mixtures), optionally blurred and grain-noised.
  Edges, textures and distractor shapes keep a network from learning "object =
  the only thing with edges", the main render-to-photo drift.
- ``"photo"``: a random crop (random scale, position, horizontal flip) of one of
  the given photo files. Decoded photos are cached per process (bounded).

All generators are numpy/OpenCV only and take well under a millisecond at 160²
(the photo kind after its file is cached). Every function takes a
`numpy.random.Generator`, so a render is reproducible from its seed.
"""

from __future__ import annotations

import colorsys
from collections import OrderedDict
from pathlib import Path
from typing import Callable, Sequence

import cv2
import numpy as np

BACKGROUND_KINDS = ("plain", "texture", "photo")
PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
_PHOTO_CACHE_SIZE = 128  # decoded photos kept per process
_PHOTO_MAX_SIDE = 640  # photos are downscaled to this longer side when cached
_photo_cache: "OrderedDict[str, np.ndarray]" = OrderedDict()


def random_colour(rng: np.random.Generator) -> np.ndarray:
    """A random RGB colour (float32, 0..255), drawn in HSV so that greys and saturated colours both occur."""
    h = rng.random()
    s = rng.random() if rng.random() < 0.8 else 0.0
    v = rng.uniform(0.08, 1.0)
    return np.array(colorsys.hsv_to_rgb(h, s, v), dtype=np.float32) * 255.0


def plain_background(size: int, rng: np.random.Generator) -> np.ndarray:
    """One uniform random colour."""
    out = np.empty((size, size, 3), np.uint8)
    out[:] = np.clip(random_colour(rng), 0, 255).astype(np.uint8)
    return out


def _mix(t: np.ndarray, c0: np.ndarray, c1: np.ndarray) -> np.ndarray:
    """Blend two colours with weights t (H, W) in [0, 1] → float32 (H, W, 3)."""
    return t.astype(np.float32)[..., None] * (c1 - c0)[None, None, :] + c0[None, None, :]


def _axis(size: int) -> np.ndarray:
    """Pixel-centre coordinates along one axis, in units of the image size (0..1)."""
    return (np.arange(size, dtype=np.float32) + 0.5) / size


def _sin_plane(size: int, kx: float, ky: float, phase: float) -> np.ndarray:
    """sin(kx·x + ky·y + phase) on the pixel grid (x, y in pixels), via separable outer products."""
    ax = np.arange(size, dtype=np.float32) + 0.5
    a, b = kx * ax + phase, ky * ax
    return np.outer(np.cos(b), np.sin(a)) + np.outer(np.sin(b), np.cos(a))


def gradient(size: int, rng: np.random.Generator) -> np.ndarray:
    """Linear (or, one time in four, radial) gradient between two random colours, float32."""
    ax = _axis(size)
    if rng.random() < 0.25:
        cx, cy = rng.uniform(-0.2, 1.2, 2)
        t = np.sqrt(((ax - cx) ** 2)[None, :] + ((ax - cy) ** 2)[:, None]) / rng.uniform(0.5, 1.5)
    else:
        phi = rng.uniform(0, 2 * np.pi)
        t = ((ax - 0.5) * np.cos(phi))[None, :] + ((ax - 0.5) * np.sin(phi) + 0.5)[:, None]
    return _mix(np.clip(t, 0, 1), random_colour(rng), random_colour(rng))


def value_noise(size: int, rng: np.random.Generator) -> np.ndarray:
    """Multi-octave value noise (bicubically upsampled random grids), colourised or in RGB, float32."""
    octaves = int(rng.integers(1, 4))
    base = int(rng.integers(2, 10))
    rgb = rng.random() < 0.3
    ch = 3 if rgb else 1
    acc = np.zeros((size, size, ch), np.float32)
    amp, total = 1.0, 0.0
    for i in range(octaves):
        g = min(base * 2**i, size)
        grid = rng.random((g, g, ch), dtype=np.float32)
        up = cv2.resize(grid, (size, size), interpolation=cv2.INTER_CUBIC)
        acc += amp * up.reshape(size, size, ch)
        total += amp
        amp *= rng.uniform(0.35, 0.65)
    acc = np.clip(acc / total, 0, 1)
    if rgb:
        return acc * 255.0
    return _mix(acc[..., 0], random_colour(rng), random_colour(rng))


def stripes(size: int, rng: np.random.Generator) -> np.ndarray:
    """Stripes or a checkerboard at a random period and angle, hard-edged or smooth, float32."""
    phi = rng.uniform(0, np.pi)
    k = 2 * np.pi / rng.uniform(4, 40)
    s = _sin_plane(size, k * np.cos(phi), k * np.sin(phi), rng.uniform(0, 2 * np.pi))
    if rng.random() < 0.4:
        k2 = k / rng.uniform(0.7, 1.5)
        s = s * _sin_plane(size, -k2 * np.sin(phi), k2 * np.cos(phi), rng.uniform(0, 2 * np.pi))
    t = (s > 0).astype(np.float32) if rng.random() < 0.6 else (s + 1.0) * 0.5
    return _mix(t, random_colour(rng), random_colour(rng))


def clutter(size: int, rng: np.random.Generator) -> np.ndarray:
    """Random rectangles, circles, ellipses, lines and polygons over a gradient or plain base, float32."""
    base = gradient(size, rng) if rng.random() < 0.6 else np.broadcast_to(random_colour(rng), (size, size, 3))
    img = np.ascontiguousarray(np.clip(base, 0, 255).astype(np.uint8))
    n = int(rng.integers(4, 30))
    for _ in range(n):
        colour = tuple(int(c) for c in random_colour(rng))
        kind = int(rng.integers(0, 5))
        p = rng.integers(-size // 4, size + size // 4, 2)
        r = int(rng.integers(2, max(3, size // 3)))
        thick = -1 if rng.random() < 0.6 else int(rng.integers(1, 4))
        if kind == 0:
            q = p + rng.integers(2, size // 2, 2)
            cv2.rectangle(img, (int(p[0]), int(p[1])), (int(q[0]), int(q[1])), colour, thick, cv2.LINE_AA)
        elif kind == 1:
            cv2.circle(img, (int(p[0]), int(p[1])), r, colour, thick, cv2.LINE_AA)
        elif kind == 2:
            axes = (r, int(rng.integers(1, r + 1)))
            angle = float(rng.uniform(0, 180))
            cv2.ellipse(img, (int(p[0]), int(p[1])), axes, angle, 0, 360, colour, thick, cv2.LINE_AA)
        elif kind == 3:
            q = rng.integers(0, size, 2)
            cv2.line(img, (int(p[0]), int(p[1])), (int(q[0]), int(q[1])), colour, int(rng.integers(1, 5)), cv2.LINE_AA)
        else:
            pts = (p + rng.integers(-r, r + 1, (int(rng.integers(3, 7)), 2))).astype(np.int32)
            cv2.fillPoly(img, [pts], colour, cv2.LINE_AA)
    return img.astype(np.float32)


def mixture(size: int, rng: np.random.Generator) -> np.ndarray:
    """Two procedural textures blended through a value-noise mask, float32."""
    a = _TEXTURES[int(rng.integers(0, 4))](size, rng)
    b = _TEXTURES[int(rng.integers(0, 4))](size, rng)
    g = int(rng.integers(2, 6))
    m = cv2.resize(rng.random((g, g), dtype=np.float32), (size, size), interpolation=cv2.INTER_CUBIC)
    m = np.clip((m - 0.5) * rng.uniform(1, 8) + 0.5, 0, 1)[..., None]
    return a * m + b * (1.0 - m)


_TEXTURES: tuple[Callable[[int, np.random.Generator], np.ndarray], ...] = (gradient, value_noise, stripes, clutter)


def texture_background(size: int, rng: np.random.Generator) -> np.ndarray:
    """A random procedural texture, sometimes blurred, sometimes with grain noise."""
    generators = _TEXTURES + (mixture,)
    weights = np.array([0.15, 0.25, 0.15, 0.3, 0.15])
    img = generators[int(rng.choice(len(generators), p=weights))](size, rng)
    if rng.random() < 0.3:
        sigma = rng.uniform(0.5, 2.5)
        img = cv2.GaussianBlur(np.ascontiguousarray(img, dtype=np.float32), (0, 0), sigma)
    if rng.random() < 0.3:
        img = img + rng.normal(0, rng.uniform(2, 12), (size, size, 1)).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


def list_photos(photo_dir: str | Path | None) -> list[str]:
    """Image files directly or recursively under `photo_dir`, sorted; [] for None."""
    if photo_dir is None:
        return []
    root = Path(photo_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"photo_dir {root} is not a directory")
    return sorted(str(p) for p in root.rglob("*") if p.suffix.lower() in PHOTO_SUFFIXES and p.is_file())


def _load_photo(path: str) -> np.ndarray:
    img = _photo_cache.get(path)
    if img is not None:
        _photo_cache.move_to_end(path)
        return img
    bgr = cv2.imread(path, cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f"background photo {path} cannot be decoded")
    h, w = bgr.shape[:2]
    scale = _PHOTO_MAX_SIDE / max(h, w)
    if scale < 1.0:
        bgr = cv2.resize(bgr, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    img = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    _photo_cache[path] = img
    if len(_photo_cache) > _PHOTO_CACHE_SIZE:
        _photo_cache.popitem(last=False)
    return img


def photo_background(size: int, rng: np.random.Generator, photo_paths: Sequence[str]) -> np.ndarray:
    """Random square crop (side 30–100 % of the shorter side) of a random photo, resized, maybe flipped."""
    if not photo_paths:
        raise ValueError("photo background needs at least one photo path")
    img = _load_photo(str(photo_paths[int(rng.integers(0, len(photo_paths)))]))
    h, w = img.shape[:2]
    side = max(1, int(round(min(h, w) * rng.uniform(0.3, 1.0))))
    y0 = int(rng.integers(0, h - side + 1))
    x0 = int(rng.integers(0, w - side + 1))
    crop = img[y0 : y0 + side, x0 : x0 + side]
    interp = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
    out = cv2.resize(crop, (size, size), interpolation=interp)
    if rng.random() < 0.5:
        out = out[:, ::-1]
    return np.ascontiguousarray(out)


def make_background(
    kind: str, size: int, rng: np.random.Generator, photo_paths: Sequence[str] | None = None
) -> np.ndarray:
    """Background of `kind` ("plain", "texture", "photo") as uint8 RGB (size, size, 3)."""
    if kind == "plain":
        return plain_background(size, rng)
    if kind == "texture":
        return texture_background(size, rng)
    if kind == "photo":
        return photo_background(size, rng, photo_paths or [])
    raise ValueError(f"unknown background kind {kind!r}; expected one of {BACKGROUND_KINDS}")
