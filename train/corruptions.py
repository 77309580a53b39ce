"""What a phone's or a robot's camera does to a picture, at three severities, applied to labelled renders.

Renders are sharp, well exposed and clean; photos are not. Each corruption models one way a real
frame differs, on the whole image (the server crops after the camera has done its damage), and
keeps the labels: pose, box, mask and intrinsics stay exact, so a bundle's error on the corrupted
views measures its robustness to that one thing (vantage.train.corruption_bench). The levels are
chosen so that severity 1 is an ordinary bad frame and 3 a frame a user would still send:

- `noise`: sensor noise, Gaussian σ in grey levels (a high ISO in dim light);
- `dark` / `bright`: under / over exposure, a gain in linear light (stops = log2 of it), with
  read noise on the dark ones and clipped highlights on the bright ones;
- `motion_blur`: the camera moving during the exposure, a line kernel of that many pixels at a random angle;
- `defocus`: out of focus, a disk kernel of that radius;
- `jpeg`: a client's compression, that quality;
- `colour_cast`: a wrong white balance, red and blue gains 1 ± s (warm or cool at random);
- `low_res`: a distant object, the image shrunk by that factor and enlarged back;
- `occlusion`: something in front of the object, a solid rectangle over that share of its box.

    vantage corrupt --data TEST_DIR --out OUT --corruption motion_blur --severity 2
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import cv2
import numpy as np
from tqdm import tqdm

from vantage.train.derived_views import close_derived, open_derived

Box = Sequence[float]
SEVERITIES = (1, 2, 3)
GAMMA = 2.2  # sRGB ↔ linear light, near enough for exposure changes
READ_NOISE = 2.0  # grey levels of noise a dark frame keeps after the gain


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def _noise(image: np.ndarray, sigma: float, rng: np.random.Generator, box: Box) -> np.ndarray:
    return _to_uint8(image + rng.normal(0.0, sigma, image.shape))


def _exposed(image: np.ndarray, gain: float, rng: np.random.Generator, box: Box) -> np.ndarray:
    linear = (image / 255.0) ** GAMMA * gain
    out = 255.0 * np.clip(linear, 0.0, 1.0) ** (1.0 / GAMMA)
    return _to_uint8(out + rng.normal(0.0, READ_NOISE, image.shape) if gain < 1 else out)


def _motion_blur(image: np.ndarray, length: float, rng: np.random.Generator, box: Box) -> np.ndarray:
    n = int(length) | 1  # odd, so the kernel has a centre
    angle = rng.uniform(0.0, np.pi)
    kernel = np.zeros((n, n), np.float32)
    half = (n - 1) / 2
    d = half * np.array([np.cos(angle), np.sin(angle)])
    cv2.line(kernel, tuple(np.rint(half - d).astype(int)), tuple(np.rint(half + d).astype(int)), 1.0, 1)
    return cv2.filter2D(image, -1, kernel / kernel.sum(), borderType=cv2.BORDER_REFLECT)


def _defocus(image: np.ndarray, radius: float, rng: np.random.Generator, box: Box) -> np.ndarray:
    r = int(radius)
    kernel = np.zeros((2 * r + 1, 2 * r + 1), np.float32)
    cv2.circle(kernel, (r, r), r, 1.0, -1)
    return cv2.filter2D(image, -1, kernel / kernel.sum(), borderType=cv2.BORDER_REFLECT)


def _jpeg(image: np.ndarray, quality: float, rng: np.random.Generator, box: Box) -> np.ndarray:
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError("OpenCV could not encode a JPEG")
    return cv2.imdecode(encoded, cv2.IMREAD_COLOR)


def _colour_cast(image: np.ndarray, strength: float, rng: np.random.Generator, box: Box) -> np.ndarray:
    sign = 1.0 if rng.random() < 0.5 else -1.0  # warm or cool
    gains = np.array([1.0 - sign * strength, 1.0, 1.0 + sign * strength])  # OpenCV's B, G, R
    return _to_uint8(image * gains)


def _low_res(image: np.ndarray, factor: float, rng: np.random.Generator, box: Box) -> np.ndarray:
    h, w = image.shape[:2]
    small = cv2.resize(image, (max(1, round(w / factor)), max(1, round(h / factor))), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def _occlusion(image: np.ndarray, share: float, rng: np.random.Generator, box: Box) -> np.ndarray:
    x0, y0, x1, y1 = box
    bw, bh = x1 - x0, y1 - y0
    aspect = np.exp(rng.uniform(np.log(0.5), np.log(2.0)))
    w, h = min(bw, np.sqrt(share * bw * bh * aspect)), min(bh, np.sqrt(share * bw * bh / aspect))
    left, top = x0 + rng.uniform(0.0, bw - w), y0 + rng.uniform(0.0, bh - h)
    out = image.copy()
    out[int(round(top)):int(round(top + h)), int(round(left)):int(round(left + w))] = rng.integers(0, 256, 3)
    return out


@dataclass(frozen=True)
class Corruption:
    """One way a photo differs from a render: its parameter at severities 1, 2, 3 and what it does."""

    name: str
    levels: tuple[float, float, float]
    unit: str  # what the level is, for tables
    apply: Callable[[np.ndarray, float, np.random.Generator, Box], np.ndarray]  # (BGR uint8, level, rng, box)


CORRUPTIONS = {c.name: c for c in (
    Corruption("noise", (10.0, 20.0, 40.0), "σ in grey levels", _noise),
    Corruption("dark", (0.25, 0.1, 0.04), "gain in linear light", _exposed),
    Corruption("bright", (2.5, 4.0, 8.0), "gain in linear light", _exposed),
    Corruption("motion_blur", (7.0, 13.0, 21.0), "kernel length in px", _motion_blur),
    Corruption("defocus", (2.0, 4.0, 6.0), "disk radius in px", _defocus),
    Corruption("jpeg", (20.0, 10.0, 5.0), "quality", _jpeg),
    Corruption("colour_cast", (0.2, 0.35, 0.5), "red / blue gain 1 ± s", _colour_cast),
    Corruption("low_res", (3.0, 5.0, 8.0), "shrink factor", _low_res),
    Corruption("occlusion", (0.15, 0.3, 0.45), "share of the box", _occlusion),
)}


def corruption(name: str) -> Corruption:
    """The named corruption; a ValueError that lists the names for any other."""
    if name not in CORRUPTIONS:
        raise ValueError(f"unknown corruption {name!r}: choose one of {', '.join(CORRUPTIONS)}")
    return CORRUPTIONS[name]


def corrupt(image: np.ndarray, name: str, severity: int, rng: np.random.Generator, box: Box) -> np.ndarray:
    """`image` (H×W×3 uint8, OpenCV's BGR) as the named corruption at `severity` (1-3) leaves it; `box` is the
    object's (x0, y0, x1, y1), where an occluder goes."""
    c = corruption(name)
    if severity not in SEVERITIES:
        raise ValueError(f"severity must be one of {SEVERITIES}, got {severity}")
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an H×W×3 uint8 image, got {image.shape} {image.dtype}")
    return c.apply(image, c.levels[severity - 1], rng, box)


def random_corruption(image: np.ndarray, names: Sequence[str], rng: np.random.Generator, box: Box) -> np.ndarray:
    """`image` spoilt by one of `names` at a level drawn log-uniformly between its severity-1 and severity-3
    levels: the training side of these corruptions (AugmentConfig.camera_prob), never the bench's fixed levels."""
    c = corruption(names[int(rng.integers(len(names)))])
    ends = np.log([c.levels[0], c.levels[2]])
    level = float(np.exp(rng.uniform(ends.min(), ends.max())))
    return c.apply(image, level, rng, box)


def make_corrupted(data: str | Path, out: str | Path, name: str, severity: int, seed: int = 0,
                   progress: bool = True) -> Path:
    """Write every view of rendered folder `data`, corrupted, into `out` (same layout, lossless PNG images,
    the masks copied, manifest records with `corruption` and `severity` added); returns the manifest path."""
    corruption(name)  # an unknown name fails before anything is written
    src, dst, records = open_derived(data, out, "corrupts")
    rng = np.random.default_rng(seed)
    written = []
    for rec in tqdm(records, desc=f"{name} {severity}", unit="view", disable=not progress):
        image = cv2.imread(str(src / rec["file"]), cv2.IMREAD_COLOR)
        if image is None:
            raise FileNotFoundError(f"cannot read view {rec['index']} of {src} ({rec['file']})")
        file = f"images/{Path(rec['file']).stem}.png"
        cv2.imwrite(str(dst / file), corrupt(image, name, severity, rng, rec["box"]))
        shutil.copyfile(src / rec["mask"], dst / rec["mask"])
        written.append({**rec, "file": file, "corruption": name, "severity": severity})
    return close_derived(dst, written, "corruption.json", {"source": str(src), "corruption": name, "severity": severity,
                                                           "level": CORRUPTIONS[name].levels[severity - 1],
                                                           "seed": seed, "views": len(written)})
