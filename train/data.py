"""Labelled renders → network inputs, with the augmentation that fights render-to-photo drift.

Reads the renderer's `manifest.jsonl`, crops each image with the serving code's
`vantage.imaging.crop_square` (so training and serving see identical pixels),
jitters the box the way a detector would, and applies photometric noise: colour
jitter, Gaussian noise, blur and JPEG re-encoding (image-graphics paper, Sec. 5:
the drift from graphics to photos is the main source of error); optionally occluders,
low resolution and a camera's corruptions of the whole frame (vantage.train.corruptions).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import ClassVar, Iterator, Sequence

import cv2
import numpy as np

from vantage.categories import category_index
from vantage.geometry import crop_view
from vantage.imaging import crop_rectified, crop_square, normalise
from vantage.train.backgrounds import texture_background
from vantage.train.coordinates import coordinate_target, missing_target, read_coordinates
from vantage.train.corruptions import corruption, random_corruption
from vantage.train.symmetry import ZSymmetry


OCCLUDERS = ("noise", "texture")


@dataclass
class AugmentConfig:
    """Strength of each augmentation; probabilities are per image."""

    box_jitter: float = 0.08  # fraction of the box size, shift and scale
    colour_jitter: float = 0.25
    noise_prob: float = 0.4
    noise_std: float = 8.0
    blur_prob: float = 0.3
    jpeg_prob: float = 0.5
    jpeg_quality: tuple[int, int] = (30, 90)
    # random erasing (Zhong et al. 2020): a rectangle of random noise covering a fraction of the
    # crop in `occlude_area`, as an occluder in front of the object would; off by default (see `occlude`)
    occlude_prob: float = 0.0
    occlude_area: tuple[float, float] = (0.05, 0.3)
    # what covers the rectangle: "noise" (uniform), or "texture" (vantage.train.backgrounds; measured in RecipeConfig)
    occluder: str = "noise"
    # low resolution: the crop shrunk to a fraction in `lowres_scale` of its side and enlarged
    # back, as a small detection in a photo is; renders always fill the crop. Off (see `lower_resolution`):
    # the reference recipe with it on 0.3 of the crops, on its held-out views 17.0° / Acc@π/6 0.628 /
    # cat-acc 0.883 vs 15.3° / 0.669 / 0.908, and on the same views shrunk 4x (objects ~50 px) 20.4° /
    # 0.614 / 0.847 vs 19.2° / 0.625 / 0.836, 6x 24.3° / 0.556 / 0.786 vs 23.7° / 0.556 / 0.750: the blur
    # above already covers small objects.
    lowres_prob: float = 0.0
    lowres_scale: tuple[float, float] = (1 / 6, 2 / 3)
    # what a camera does to a frame, on the whole image before it is cropped: with probability
    # `camera_prob` one of `camera_effects` (vantage.train.corruptions) at a random level between its
    # severity 1 and 3; off by default (see `camera_effect`; the reference recipe with it: RecipeConfig)
    camera_prob: float = 0.0
    camera_effects: tuple[str, ...] = ("noise", "dark", "bright", "motion_blur", "defocus", "jpeg", "colour_cast")
    RANGES: ClassVar[tuple[str, ...]] = ("jpeg_quality", "occlude_area", "lowres_scale", "camera_effects")  # lists

    def __post_init__(self) -> None:
        if not self.camera_effects:
            raise ValueError("camera_effects must name at least one corruption (camera_prob 0 turns them off)")
        for name in self.camera_effects:
            corruption(name)  # a ValueError that lists the names
        if self.occluder not in OCCLUDERS:
            raise ValueError(f"occluder must be one of {OCCLUDERS}, got {self.occluder!r}")

    def to_dict(self) -> dict:
        """JSON/YAML-ready fields (the ranges as lists)."""
        return {**asdict(self), **{key: list(getattr(self, key)) for key in self.RANGES}}

    @classmethod
    def from_dict(cls, d: dict) -> "AugmentConfig":
        d = dict(d)
        for key in cls.RANGES:
            if key in d:
                d[key] = tuple(d[key])
        return cls(**d)


@dataclass
class Sample:
    """One labelled view; `rotation` is POSE.md's R (3×3); `z_symmetry` None when rendered before it was recorded;
    `intrinsics` the image's K (3×3), None in manifests without it; `mask_path` / `coords_path` the view's
mask and object-coordinate map (vantage.train.coordinates) where the manifest has them."""

    image_path: Path
    box: tuple[float, float, float, float]
    category: int
    rotation: np.ndarray
    viewpoint: tuple[float, float, float]
    model_id: str
    z_symmetry: ZSymmetry | None = None
    intrinsics: np.ndarray | None = None
    mask_path: Path | None = None
    coords_path: Path | None = None  # object-coordinate map (RenderConfig.coordinates), None if not rendered


def read_samples(root: str | Path, categories: list[str]) -> list[Sample]:
    """Samples of a rendered dataset folder (its `manifest.jsonl`), categories restricted to `categories`."""
    root = Path(root)
    manifest = root / "manifest.jsonl"
    if not manifest.is_file():
        raise FileNotFoundError(f"{root} has no manifest.jsonl: render it with `vantage render` first")
    samples = []
    for line in manifest.read_text().splitlines():
        if not line.strip():
            continue
        rec = json.loads(line)
        if rec["category"] not in categories:
            continue
        samples.append(
            Sample(
                image_path=root / rec["file"],
                box=tuple(rec["box"]),
                category=category_index(rec["category"], categories),
                rotation=np.asarray(rec["rotation"], np.float64).reshape(3, 3),
                viewpoint=(rec["azimuth"], rec["elevation"], rec["theta"]),
                model_id=rec["model_id"],
                z_symmetry=ZSymmetry.from_dict(rec["z_symmetry"]) if "z_symmetry" in rec else None,
                intrinsics=np.asarray(rec["K"], np.float64).reshape(3, 3) if "K" in rec else None,
                mask_path=root / rec["mask"] if "mask" in rec else None,
                coords_path=root / rec["coords"] if "coords" in rec else None,
            )
        )
    return samples


def jitter_box(box: tuple[float, float, float, float], amount: float, rng: np.random.Generator) -> list[float]:
    """Shift and rescale a box by up to `amount` of its size, as an imperfect detector would."""
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    cx, cy = (x0 + x1) / 2 + rng.uniform(-amount, amount) * w, (y0 + y1) / 2 + rng.uniform(-amount, amount) * h
    s = 1.0 + rng.uniform(-amount, amount)
    return [cx - w * s / 2, cy - h * s / 2, cx + w * s / 2, cy + h * s / 2]


def occlude(crop: np.ndarray, cfg: AugmentConfig, rng: np.random.Generator) -> np.ndarray:
    """With probability `occlude_prob`, cover a random rectangle (area fraction in `occlude_area`,
    aspect 1:3 to 3:1) with uniform noise or a procedural texture (`occluder`: real occluders are
    things with edges and shading, not noise); draws nothing from `rng` when the probability is 0,
    so configurations without it augment exactly as before."""
    if not cfg.occlude_prob or rng.random() >= cfg.occlude_prob:
        return crop
    h, w = crop.shape[:2]
    area = rng.uniform(*cfg.occlude_area) * h * w
    aspect = np.exp(rng.uniform(np.log(1 / 3), np.log(3)))
    eh, ew = min(h, max(1, round(np.sqrt(area * aspect)))), min(w, max(1, round(np.sqrt(area / aspect))))
    y, x = int(rng.integers(0, h - eh + 1)), int(rng.integers(0, w - ew + 1))
    out = crop.copy()
    if cfg.occluder == "texture":
        out[y : y + eh, x : x + ew] = texture_background(max(eh, ew), rng)[:eh, :ew]
    else:
        out[y : y + eh, x : x + ew] = rng.integers(0, 256, size=(eh, ew, crop.shape[2]), dtype=np.uint8)
    return out


def camera_effect(image: np.ndarray, box: Sequence[float], cfg: AugmentConfig, rng: np.random.Generator) -> np.ndarray:
    """With probability `camera_prob`, the BGR image as one of `camera_effects` spoils it (object box `box`);
    draws nothing from `rng` when the probability is 0, so configurations without it augment exactly as before."""
    if not cfg.camera_prob or rng.random() >= cfg.camera_prob:
        return image
    return random_corruption(image, cfg.camera_effects, rng, box)


def lower_resolution(crop: np.ndarray, cfg: AugmentConfig, rng: np.random.Generator) -> np.ndarray:
    """With probability `lowres_prob`, shrink the crop to a random fraction in `lowres_scale` of its
    side (area averaging, at least 8 pixels) and enlarge it back (bilinear); draws nothing from
    `rng` when the probability is 0, so configurations without it augment exactly as before."""
    if not cfg.lowres_prob or rng.random() >= cfg.lowres_prob:
        return crop
    h, w = crop.shape[:2]
    scale = rng.uniform(*cfg.lowres_scale)
    small = cv2.resize(crop, (max(8, round(w * scale)), max(8, round(h * scale))), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def photometric(crop: np.ndarray, cfg: AugmentConfig, rng: np.random.Generator) -> np.ndarray:
    """Colour jitter, noise, blur and JPEG artefacts on a uint8 RGB crop."""
    x = crop.astype(np.float32)
    gain = 1.0 + rng.uniform(-cfg.colour_jitter, cfg.colour_jitter, size=3)
    bias = rng.uniform(-cfg.colour_jitter, cfg.colour_jitter) * 60.0
    x = x * gain + bias
    mean = x.mean()
    x = (x - mean) * (1.0 + rng.uniform(-cfg.colour_jitter, cfg.colour_jitter)) + mean
    if rng.random() < cfg.noise_prob:
        x = x + rng.normal(0.0, cfg.noise_std * rng.random(), size=x.shape)
    out = np.clip(x, 0, 255).astype(np.uint8)
    if rng.random() < cfg.blur_prob:
        sigma = rng.uniform(0.4, 1.5)
        out = cv2.GaussianBlur(out, (0, 0), sigma)
    if rng.random() < cfg.jpeg_prob:
        q = int(rng.integers(cfg.jpeg_quality[0], cfg.jpeg_quality[1] + 1))
        ok, enc = cv2.imencode(".jpg", out[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, q])
        if ok:
            out = cv2.imdecode(enc, cv2.IMREAD_COLOR)[:, :, ::-1]
    return np.ascontiguousarray(out)


View = tuple[np.ndarray, np.ndarray]  # (K, turn): the intrinsics a crop is taken with and the camera's turn


def view_turns(samples: list[Sample], camera: bool = False, gravity: bool = False) -> list[View] | None:
    """How the server would crop each view for a request with its camera and/or gravity (vantage.serve.
    engine.Predictor.prepare): the intrinsics (the view's, else a camera centred on the box) and the
    turn from the crop's axes to the camera's (the ray to the box centre, then the roll that levels
    gravity, vantage.geometry.level_turn); None for plain crops. Gravity is each view's own: rendered
    objects stand upright, so it points along −R[:, 2]."""
    if not (camera or gravity):
        return None
    if camera:
        missing = [str(s.image_path) for s in samples if s.intrinsics is None]
        if missing:
            raise ValueError(f"{len(missing)} views have no intrinsics (K) in their manifest, e.g. {missing[0]}: "
                             f"they cannot be cropped as with a camera")
    return [crop_view(np.array([(s.box[0] + s.box[2]) / 2.0, (s.box[1] + s.box[3]) / 2.0]),
                      s.intrinsics if camera else None, -np.asarray(s.rotation)[:, 2] if gravity else None)
            for s in samples]


def load_crop(
    sample: Sample,
    size: int,
    margin: float,
    augment: AugmentConfig | None = None,
    rng: np.random.Generator | None = None,
    view: View | None = None,
) -> np.ndarray:
    """The network input crop (uint8 RGB size×size) of a sample, augmented when `augment` is given;
    `view` (K, turn): taken from the view turned so (`vantage.imaging.crop_rectified`, as the
    server crops a request that gives its camera or gravity: `view_turns`)."""
    return crop_and_box(sample, size, margin, augment, rng, view)[0]


def crop_and_box(
    sample: Sample,
    size: int,
    margin: float,
    augment: AugmentConfig | None = None,
    rng: np.random.Generator | None = None,
    view: View | None = None,
) -> tuple[np.ndarray, list[float]]:
    """`load_crop` and the (jittered) box it was cropped around, for targets taken over the same crop."""
    bgr = cv2.imread(str(sample.image_path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise FileNotFoundError(f"cannot read rendered image {sample.image_path}")
    box = list(sample.box)
    if augment is not None and rng is not None:
        bgr = camera_effect(bgr, box, augment, rng)
        box = jitter_box(sample.box, augment.box_jitter, rng)
        h, w = bgr.shape[:2]
        box = [max(box[0], 0.0), max(box[1], 0.0), min(box[2], float(w)), min(box[3], float(h))]
    image = bgr[:, :, ::-1]
    if view is not None:
        crop = crop_rectified(image, box, view[0], size, margin, turn=view[1])
    else:
        crop = crop_square(image, box, size, margin)
    if augment is not None and rng is not None:
        crop = photometric(lower_resolution(occlude(crop, augment, rng), augment, rng), augment, rng)
    return crop, box


def crop_coordinates(sample: Sample, box: Sequence[float], margin: float, grid: int) -> np.ndarray:
    """(4, grid, grid) object-coordinate target (vantage.train.coordinates) of the square crop of `box`;
    ignored by the loss when the view was rendered without a map."""
    if sample.coords_path is None or sample.mask_path is None:
        return missing_target(grid)
    mask = cv2.imread(str(sample.mask_path), cv2.IMREAD_GRAYSCALE)
    if mask is None:
        raise FileNotFoundError(f"cannot read mask {sample.mask_path}")
    return coordinate_target(read_coordinates(sample.coords_path), mask >= 128, box, margin, grid)


def normalised_crops(
    samples: list[Sample],
    size: int,
    margin: float,
    mean: Sequence[float],
    std: Sequence[float],
    augment: AugmentConfig | None = None,
    rng: np.random.Generator | None = None,
    views: list[View] | None = None,
) -> np.ndarray:
    """Float32 (N, 3, size, size) network inputs of `samples`, augmented when `augment` and `rng` are given
    (`views`, one per sample: see `load_crop`)."""
    views = views if views is not None else [None] * len(samples)
    out = [normalise(np.stack([load_crop(s, size, margin, augment, rng, v) for s, v in zip(samples[sl], views[sl])]),
                     mean, std)
           for sl in batches(len(samples), 64)]
    return np.concatenate(out).astype(np.float32)


def batches(n: int, size: int) -> Iterator[slice]:
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))
