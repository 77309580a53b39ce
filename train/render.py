"""Synthetic training views of 3D meshes: an Embree ray-casting renderer and a dataset writer.

Geometry (POSE.md, binding)
---------------------------
A viewpoint (azimuth a, elevation e, in-plane θ in degrees, distance d in object
radii) puts the camera centre at ``C = d·(cos e sin a, −cos e cos a, sin e)`` in
object coordinates and gives ``R = viewpoint_to_rotation(a, e, θ)``;
``X_cam = R·(X_obj − C)`` in OpenCV camera coordinates (x right, y down, z forward).
Intrinsics ``K = [[f, 0, cx], [0, f, cy], [0, 0, 1]]`` with
``f = (image_size/2) / tan(fov/2)``; the principal point ``(cx, cy)`` is the image
centre plus a small random jitter so that the object is not always centred.

Pixel convention
----------------
Continuous image coordinates: pixel (u, v) (column u, row v) covers
``[u, u+1) × [v, v+1)`` and its centre is ``(u + 0.5, v + 0.5)``. A 3D point
projects to ``(x, y) = (K·X_cam)[:2] / z`` in these coordinates and lands in pixel
``(floor(x), floor(y))``; the ray of pixel (u, v) is ``K⁻¹·[u + 0.5, v + 0.5, 1]``
(camera coordinates), ``Rᵀ·ray`` in object coordinates, from origin ``C``. Boxes
``(x0, y0, x1, y1)`` are in the same coordinates, tight around the mask with an
exclusive maximum: a mask whose pixels span columns 10..19 has x0 = 10, x1 = 20.
Crops and resizes map these coordinates affinely (``x' = s·(x − left)``), and the
``K`` of every saved image is adjusted the same way, so projecting the mesh with
a label's ``rotation``, ``distance·camera_position`` and ``K`` reproduces the
saved mask (tests/test_render.py checks it).

Shading: flat Lambert + ambient with the face normal flipped towards the camera
(CAD meshes are seldom consistently oriented), a random light direction biased
towards the camera's hemisphere and upwards, random ambient/diffuse strengths,
a random base colour and optional Blinn–Phong highlights. The object is
composited over a random background (`vantage.train.backgrounds`) with a softened
mask edge (or 2× supersampling) against jaggies; optionally it casts its shadow on a
ground plane under it (`vantage.train.ground`).

Dataset layout written by `render_dataset` (see its docstring for the manifest keys)::

    out_dir/images/0000000.jpg   RGB views (jpg or png)
    out_dir/masks/0000000.png    object masks, 0 / 255
    out_dir/coords/0000000.png   object-coordinate maps (RenderConfig.coordinates; vantage.train.coordinates)
    out_dir/manifest.jsonl       one JSON object per view, in index order
    out_dir/render.json          configuration, counts, timing
"""

from __future__ import annotations

import colorsys
import functools
import json
import math
import multiprocessing
import os
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np
import trimesh

from vantage.geometry import camera_position, viewpoint_to_rotation
from vantage.imaging import crop_square
from vantage.train.backgrounds import BACKGROUND_KINDS, list_photos, make_background
from vantage.train.ground import EPSILON, ground_points, shadow_darkening, upward_light
from vantage.train.meshes import MeshError, ModelSpec, normalise_mesh
from vantage.train.coordinates import write_coordinates
from vantage.train.symmetry import detect_z_symmetry

MANIFEST_NAME = "manifest.jsonl"
RENDER_INFO_NAME = "render.json"
MANIFEST_FORMAT = 2  # 2: records carry "z_symmetry"; render.json without "format" is 1
MANIFEST_KEYS = (
    "index",
    "file",
    "mask",
    "model_id",
    "category",
    "model_index",
    "view_index",
    "azimuth",
    "elevation",
    "theta",
    "distance",
    "rotation",
    "camera_position",
    "box",
    "K",
    "width",
    "height",
    "background",
    "crop",
    "truncated",
    "ground",
    "stretch",
    "z_symmetry",
)
SAMPLINGS = ("random", "icosphere")
CROPS = ("none", "box", "square")
ANTIALIAS = ("none", "blur", "supersample")
IMAGE_FORMATS = ("jpg", "png")


@dataclass(frozen=True)
class RenderConfig:
    """Everything that decides a rendered dataset; saved in render.json (`dataclasses.asdict`).

    Defaults are for training on 128² square crops: at 160² with a 36° field of view,
    distances from 2.2 object radii and `fit_in_frame`, the long side of the object
    box is about 98 / 128 / 130 pixels (5th / 50th / 95th percentile over the 53
    PASCAL3D+ CAD models), so the square crop (margin 0.1) lies inside the image and
    is resampled by at most about 1.2×. Close views are moved back by the fitting
    (about 70 % of them with these defaults; the recorded distance is the one used).
    """

    # Output image
    image_size: int = 160  # rendered image side (pixels, square), before any crop
    views_per_model: int = 40  # views per mesh in render_dataset (icosphere sampling: use the
    #                            direction count, 162 at subdivision 2, or a multiple of it)
    # Viewpoint sampling
    sampling: str = "random"  # "random" or "icosphere" (see sample_viewpoints)
    icosphere_subdivisions: int = 2  # icosphere sampling: 162 directions at 2, 42 at 1, 642 at 3
    upper_hemisphere: bool = False  # icosphere sampling: only directions with elevation ≥ 0
    azimuth_range: tuple[float, float] = (0.0, 360.0)  # degrees, uniform; wrapped into [0, 360)
    elevation_range: tuple[float, float] = (-20.0, 60.0)  # degrees, uniform in angle (random sampling)
    theta_std_deg: float = 8.0  # in-plane rotation ~ N(0, std), clipped to (−180, 180]
    distance_range: tuple[float, float] = (2.2, 3.5)  # camera distance in object radii, uniform
    fov_deg: float = 36.0  # full field of view across the image side; f = (size/2)/tan(fov/2)
    # Framing
    center_jitter: float = 0.08  # max principal-point offset from the centre, fraction of image_size per axis
    fit_in_frame: bool = True  # keep the object's square context window (below) inside the image:
    #                            clamp the jitter, and move the camera back (larger distance label)
    #                            when it would not fit
    fit_margin: float = 0.1  # context window = the box squared around its centre, enlarged by this
    #                          fraction of its long side per side; 0.1 = crop_margin, so the square
    #                          crop of a view (here or at training time) needs no edge padding
    frame_margin_px: float = 1.0  # free pixels kept between that window and the image border
    # Background
    background_weights: dict[str, float] = field(
        default_factory=lambda: {"plain": 0.15, "texture": 0.55, "photo": 0.3}
    )  # relative weights per kind; "photo" counts only when photo_dir has images
    photo_dir: str | None = None  # folder of background photos (searched recursively)
    # Lighting and material
    ambient_range: tuple[float, float] = (0.15, 0.5)  # ambient strength, uniform
    diffuse_range: tuple[float, float] = (0.45, 0.9)  # Lambert strength, uniform
    light_camera_bias: float = 1.0  # 0: light from any direction; larger: more from the camera side
    specular_prob: float = 0.3  # probability of a Blinn–Phong highlight (0 = specular-free)
    specular_range: tuple[float, float] = (0.1, 0.5)  # highlight strength, uniform
    shininess_range: tuple[float, float] = (8.0, 64.0)  # Blinn–Phong exponent, log-uniform
    # Ground shadow (vantage.train.ground): the probability that a view stands on the plane
    # under the mesh and casts its shadow there (light then always above the plane), the
    # shadow's darkening of the background, uniform, and its penumbra (Gaussian sigma, a
    # fraction of image_size). 0 draws nothing from the random stream: renders stay as before.
    ground_prob: float = 0.0
    ground_shadow_range: tuple[float, float] = (0.3, 0.7)
    ground_softness: float = 0.012
    # Anti-aliasing: "blur" softens the mask edge inside the object before compositing
    # (cheap); "supersample" casts 2×2 rays per pixel (about 3× slower); "none" is hard-edged.
    antialias: str = "blur"
    # Saved crop: "none" keeps the full image; "box" cuts the box enlarged by crop_margin per
    # side (clipped to the image, not squared, not resized: size varies per view); "square"
    # applies vantage.imaging.crop_square(image, box, crop_size, crop_margin) — the crop of
    # serving — to image and mask.
    crop: str = "none"
    crop_margin: float = 0.1
    crop_size: int = 128
    # Shape augmentation, against over-fitting to the training instances (the pose error on
    # unseen models is several times the training error): the views of a model are split
    # evenly over `shape_variants` copies of its mesh; copy 0 is the mesh itself, copy i > 0 is
    # scaled along each object axis by a factor log-uniform in [1/shape_stretch, shape_stretch]
    # and normalised again (POSE.md: box-centred, farthest vertex at 1). Scaling along the
    # object axes keeps the object frame, so the pose labels stay exact. The manifest's
    # "stretch" holds the factors: `stretch_mesh(mesh, stretch)` rebuilds the drawn surface.
    # Off by default: on the reference recipe's held-out CAD meshes, 8 copies at 1.3 gave one
    # network MedErr 16.7° (symmetry-reduced 15.2°) vs 16.3° (14.7°) without, within run noise.
    shape_variants: int = 1
    shape_stretch: float = 1.3
    # Object-coordinate maps: each view also saves coords/N.png, the object-frame point (POSE.md's
    # normalised frame, |p| <= 1) of the surface seen at each pixel (vantage.train.coordinates),
    # the dense target of ModelConfig.coordinates. Uncropped views only (crop "none").
    coordinates: bool = False
    # Files
    image_format: str = "jpg"  # "jpg" or "png"
    jpeg_quality_range: tuple[int, int] = (75, 95)  # JPEG quality, uniform integer per image
    seed: int = 0  # model i uses numpy.random.default_rng([seed, i])
    max_resample: int = 20  # tries per view when the object is not visible (empty mask)

    def __post_init__(self) -> None:
        def check(ok: bool, msg: str) -> None:
            if not ok:
                raise ValueError(f"RenderConfig: {msg}")

        for name in ("azimuth_range", "elevation_range", "distance_range", "ambient_range", "diffuse_range",
                     "specular_range", "shininess_range", "jpeg_quality_range", "ground_shadow_range"):
            value = getattr(self, name)
            check(len(value) == 2 and value[0] <= value[1], f"{name} must be (low, high) with low <= high, got {value}")
            object.__setattr__(self, name, tuple(value))
        check(self.image_size >= 8, f"image_size must be >= 8, got {self.image_size}")
        check(self.views_per_model >= 1, f"views_per_model must be >= 1, got {self.views_per_model}")
        check(self.sampling in SAMPLINGS, f"sampling must be one of {SAMPLINGS}, got {self.sampling!r}")
        check(self.icosphere_subdivisions >= 0, "icosphere_subdivisions must be >= 0")
        check(-90 <= self.elevation_range[0] and self.elevation_range[1] <= 90, "elevation_range must lie in [-90, 90]")
        check(self.distance_range[0] > 0, "distance_range must be positive")
        check(0 < self.fov_deg < 180, f"fov_deg must be in (0, 180), got {self.fov_deg}")
        check(0 <= self.center_jitter < 0.5, "center_jitter must be in [0, 0.5)")
        check(self.fit_margin >= 0 and self.frame_margin_px >= 0, "fit_margin and frame_margin_px must be >= 0")
        check(self.theta_std_deg >= 0, "theta_std_deg must be >= 0")
        unknown = set(self.background_weights) - set(BACKGROUND_KINDS)
        check(not unknown, f"unknown background kinds {sorted(unknown)}; expected {BACKGROUND_KINDS}")
        check(all(w >= 0 for w in self.background_weights.values()), "background weights must be >= 0")
        check(self.antialias in ANTIALIAS, f"antialias must be one of {ANTIALIAS}, got {self.antialias!r}")
        check(self.crop in CROPS, f"crop must be one of {CROPS}, got {self.crop!r}")
        check(self.crop_margin >= 0 and self.crop_size >= 8, "crop_margin must be >= 0 and crop_size >= 8")
        check(self.image_format in IMAGE_FORMATS, f"image_format must be one of {IMAGE_FORMATS}")
        check(1 <= self.jpeg_quality_range[0] and self.jpeg_quality_range[1] <= 100, "jpeg_quality_range in [1, 100]")
        check(0 <= self.specular_prob <= 1, "specular_prob must be in [0, 1]")
        check(0 <= self.ground_prob <= 1, f"ground_prob must be in [0, 1], got {self.ground_prob}")
        check(0 <= self.ground_shadow_range[0] and self.ground_shadow_range[1] <= 1, "ground_shadow_range in [0, 1]")
        check(self.ground_softness >= 0, "ground_softness must be >= 0")
        check(self.max_resample >= 1, "max_resample must be >= 1")
        check(1 <= self.shape_variants <= self.views_per_model,
              f"shape_variants must be in [1, views_per_model], got {self.shape_variants}")
        check(self.shape_stretch >= 1, f"shape_stretch must be >= 1, got {self.shape_stretch}")
        check(not self.coordinates or self.crop == "none",
              f"coordinates are saved for uncropped views only (crop 'none'), got crop {self.crop!r}")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RenderConfig":
        """Inverse of `dataclasses.asdict` (e.g. the "config" of render.json); unknown keys are an error."""
        names = {f.name for f in fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"RenderConfig: unknown keys {sorted(unknown)}")
        return cls(**data)

    @property
    def focal(self) -> float:
        """Focal length in pixels of the uncropped image."""
        return (self.image_size / 2.0) / math.tan(math.radians(self.fov_deg) / 2.0)


@dataclass
class RenderedView:
    """One rendered view, after the configured crop.

    image: (H, W, 3) uint8 RGB; mask: (H, W) bool; box: (x0, y0, x1, y1) tight around
    the mask (exclusive max, pixel convention of the module docstring); K: 3×3
    intrinsics of this image; rotation: POSE.md R; viewpoint: (azimuth, elevation,
    theta, distance) actually used (distance may exceed the request when
    `fit_in_frame` moved the camera back); background: kind; truncated: the object
    touched the border of the uncropped render; ground: the view casts its shadow on a
    ground plane (vantage.train.ground); coords: (H, W, 3) float32 object-frame point seen at
    each pixel, 0 off the mask (only with `RenderConfig.coordinates`).
    """

    image: np.ndarray
    mask: np.ndarray
    box: tuple[float, float, float, float]
    K: np.ndarray
    rotation: np.ndarray
    viewpoint: tuple[float, float, float, float]
    background: str
    truncated: bool
    ground: bool = False
    coords: np.ndarray | None = None


def intrinsics(focal: float, cx: float, cy: float) -> np.ndarray:
    return np.array([[focal, 0.0, cx], [0.0, focal, cy], [0.0, 0.0, 1.0]])


def mask_box(mask: np.ndarray) -> tuple[float, float, float, float] | None:
    """Tight (x0, y0, x1, y1) of a boolean mask with exclusive max; None when empty."""
    cols = mask.any(axis=0)
    if not cols.any():
        return None
    rows = mask.any(axis=1)
    x0 = int(np.argmax(cols))
    x1 = len(cols) - int(np.argmax(cols[::-1]))
    y0 = int(np.argmax(rows))
    y1 = len(rows) - int(np.argmax(rows[::-1]))
    return float(x0), float(y0), float(x1), float(y1)


def square_crop_window(box: Sequence[float], margin: float) -> tuple[int, int, int]:
    """(left, top, side) in pixels of `vantage.imaging.crop_square`'s window (same arithmetic)."""
    x0, y0, x1, y1 = (float(v) for v in box)
    side = max(x1 - x0, y1 - y0) * (1.0 + 2.0 * margin)
    cx, cy = (x0 + x1) / 2.0, (y0 + y1) / 2.0
    side_px = max(1, int(round(side)))
    return int(math.floor(cx - side_px / 2.0)), int(math.floor(cy - side_px / 2.0)), side_px


def sample_viewpoints(n: int | None, config: RenderConfig, rng: np.random.Generator) -> np.ndarray:
    """Viewpoints (n, 4): azimuth [0, 360), elevation, theta (−180, 180] (degrees), distance.

    "random": azimuth uniform in `azimuth_range`, elevation uniform (in angle) in
    `elevation_range`. "icosphere": the directions of the vertices of
    `trimesh.creation.icosphere(icosphere_subdivisions)` (only those with z ≥ 0 when
    `upper_hemisphere`), as camera positions C/d; n is the number of rows: the rows
    cycle through random permutations of the directions, so n = V (the direction
    count; n=None means V) uses each exactly once, n = k·V each k times, n < V a
    random subset. In both modes theta ~ N(0, theta_std_deg) clipped to
    (−180, 180] and distance uniform in `distance_range`, drawn per row.
    """
    if config.sampling == "icosphere":
        dirs = icosphere_directions(config.icosphere_subdivisions, config.upper_hemisphere)
        count = len(dirs) if n is None else int(n)
        reps = max(1, math.ceil(count / len(dirs)))
        order = np.concatenate([rng.permutation(len(dirs)) for _ in range(reps)])[:count]
        d = dirs[order]
        az = np.mod(np.degrees(np.arctan2(d[:, 0], -d[:, 1])), 360.0)
        pole = np.abs(d[:, 2]) > 1.0 - 1e-9
        az = np.where(pole | (az >= 360.0), 0.0, az)
        el = np.degrees(np.arcsin(np.clip(d[:, 2], -1.0, 1.0)))
    else:
        count = int(n if n is not None else config.views_per_model)
        az = np.mod(rng.uniform(*config.azimuth_range, size=count), 360.0)
        el = rng.uniform(*config.elevation_range, size=count)
    th = np.clip(rng.normal(0.0, config.theta_std_deg, size=count), -180.0 + 1e-9, 180.0)
    dist = rng.uniform(*config.distance_range, size=count)
    return np.stack([az, el, th, dist], axis=1)


def icosphere_directions(subdivisions: int, upper_hemisphere: bool = False) -> np.ndarray:
    """Unit vertices (V, 3) of trimesh's icosphere, optionally only z ≥ 0."""
    v = np.asarray(trimesh.creation.icosphere(subdivisions=subdivisions).vertices, dtype=np.float64)
    v = v / np.linalg.norm(v, axis=1, keepdims=True)
    if upper_hemisphere:
        v = v[v[:, 2] >= -1e-9]
    return v


def _background_kinds(config: RenderConfig, have_photos: bool) -> tuple[list[str], np.ndarray]:
    kinds, weights = [], []
    for kind in BACKGROUND_KINDS:
        w = float(config.background_weights.get(kind, 0.0))
        if w > 0 and (kind != "photo" or have_photos):
            kinds.append(kind)
            weights.append(w)
    if not kinds:
        return ["plain"], np.ones(1)
    p = np.asarray(weights)
    return kinds, p / p.sum()


@functools.lru_cache(maxsize=8)
def _photos(photo_dir: str | None) -> tuple[str, ...]:
    return tuple(list_photos(photo_dir))


class MeshRenderer:
    """Ray-casting renderer of one normalised mesh; the Embree BVH is built once here.

    `photo_paths` are the photo backgrounds (default: the files of `config.photo_dir`).
    Not thread-safe (a ray buffer is reused); use one renderer per thread or process.
    """

    def __init__(self, mesh: trimesh.Trimesh, photo_paths: Sequence[str] | None = None):
        from embreex import mesh_construction, rtcore_scene

        vertices = np.asarray(mesh.vertices, dtype=np.float64)
        faces = np.asarray(mesh.faces, dtype=np.int64)
        if len(faces) == 0:
            raise MeshError("mesh has no triangles")
        tri = vertices[faces]
        normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
        length = np.linalg.norm(normals, axis=1, keepdims=True)
        self.face_normals = np.where(length > 0, normals / np.where(length > 0, length, 1.0), 0.0).astype(np.float32)
        self.face_anchor = tri[:, 0].astype(np.float32)  # a point of each face's plane (hit points)
        self.points = vertices[np.unique(faces)]  # referenced vertices, for the framing projection
        self.bottom = float(self.points[:, 2].min())  # height of the ground plane (vantage.train.ground)
        self.n_faces = len(faces)
        self.scene = rtcore_scene.EmbreeScene()
        mesh_construction.TriangleMesh(self.scene, vertices.astype(np.float32), faces.astype(np.int32))
        self.photo_paths = list(photo_paths or [])
        self._origins = np.empty((0, 3), np.float32)

    @classmethod
    def from_spec(cls, spec: ModelSpec, photo_paths: Sequence[str] | None = None) -> "MeshRenderer":
        return cls(spec.load(), photo_paths)

    # -- ray casting ---------------------------------------------------------------
    def _rays(self, rotation: np.ndarray, K: np.ndarray, x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
        """Object-frame ray directions (h·w, 3) float32 of pixels [x0, x1) × [y0, y1), not normalised."""
        kinv = np.linalg.inv(K)
        us = np.arange(x0, x1, dtype=np.float64) + 0.5
        vs = np.arange(y0, y1, dtype=np.float64) + 0.5
        # camera ray of (u, v) is K⁻¹[u, v, 1]; object-frame direction is Rᵀ·ray, i.e. row·(K⁻ᵀ Rᵀ)ᵀ.
        m = rotation.T @ kinv  # object dir = m @ [u, v, 1]
        d = (m[:, 0][None, None, :] * us[None, :, None] + m[:, 1][None, None, :] * vs[:, None, None]) + m[:, 2]
        return d.reshape(-1, 3).astype(np.float32)

    def _run(self, centre: np.ndarray, dirs: np.ndarray) -> np.ndarray:
        n = len(dirs)
        if len(self._origins) < n:
            self._origins = np.empty((n, 3), np.float32)
        origins = self._origins[:n]
        origins[:] = centre.astype(np.float32)
        return np.asarray(self.scene.run(origins, dirs))

    def occluded(self, origins: np.ndarray, dirs: np.ndarray) -> np.ndarray:
        """(N,) bool: whether each ray from its own origin hits the mesh (shadow rays)."""
        return np.asarray(self.scene.run(origins.astype(np.float32), dirs.astype(np.float32))) >= 0

    def cast(
        self, rotation: np.ndarray, camera_centre: np.ndarray, K: np.ndarray, width: int, height: int
    ) -> np.ndarray:
        """Face index (H, W) int32 hit by each pixel's centre ray, −1 = background."""
        dirs = self._rays(np.asarray(rotation, np.float64), np.asarray(K, np.float64), 0, 0, width, height)
        return self._run(np.asarray(camera_centre, np.float64), dirs).reshape(height, width).astype(np.int32)

    def hit_points(self, centre: np.ndarray, dirs: np.ndarray, prim: np.ndarray) -> np.ndarray:
        """(N, 3) object-frame points where rays from `centre` along `dirs` meet their hit faces `prim` (≥ 0)."""
        n = self.face_normals[prim]
        o = np.asarray(centre, np.float32)
        denom = np.einsum("ij,ij->i", n, dirs)
        t = np.einsum("ij,ij->i", n, self.face_anchor[prim] - o) / np.where(np.abs(denom) > 1e-12, denom, 1e-12)
        return o + t[:, None] * dirs

    # -- framing -----------------------------------------------------------------
    def _extent(
        self, rotation: np.ndarray, centre: np.ndarray, focal: float
    ) -> tuple[float, float, float, float] | None:
        """Projected bounds (x_min, x_max, y_min, y_max) of the mesh relative to the principal point."""
        xc = (self.points - centre) @ rotation.T
        z = xc[:, 2]
        if np.any(z <= 1e-6):
            return None
        x = focal * xc[:, 0] / z
        y = focal * xc[:, 1] / z
        return float(x.min()), float(x.max()), float(y.min()), float(y.max())

    def _frame(
        self,
        rotation: np.ndarray,
        direction: np.ndarray,
        distance: float,
        rng: np.random.Generator,
        config: RenderConfig,
    ) -> tuple[float, float, float, tuple[float, float, float, float] | None]:
        """(distance, cx, cy, extent): principal point with jitter; camera moved back if it must fit."""
        size, focal = config.image_size, config.focal
        jitter = config.center_jitter * size
        jx, jy = rng.uniform(-1.0, 1.0, 2)
        ext = self._extent(rotation, direction * distance, focal)
        if not config.fit_in_frame or ext is None:
            return distance, size / 2.0 + jx * jitter, size / 2.0 + jy * jitter, ext
        avail = size - 2.0 * config.frame_margin_px
        for _ in range(12):
            side = max(ext[1] - ext[0], ext[3] - ext[2]) * (1.0 + 2.0 * config.fit_margin)
            if side <= avail:
                break
            distance *= side / avail * 1.01
            ext = self._extent(rotation, direction * distance, focal)
            assert ext is not None
        side = max(ext[1] - ext[0], ext[3] - ext[2]) * (1.0 + 2.0 * config.fit_margin)
        mid_x, mid_y = (ext[0] + ext[1]) / 2.0, (ext[2] + ext[3]) / 2.0  # box centre, relative
        centres = []
        for lo_e, hi_e, t in ((mid_x - side / 2, mid_x + side / 2, jx), (mid_y - side / 2, mid_y + side / 2, jy)):
            # feasible principal points keep [c + lo_e, c + hi_e] inside the margins
            lo = max(config.frame_margin_px - lo_e, size / 2.0 - jitter)
            hi = min(size - config.frame_margin_px - hi_e, size / 2.0 + jitter)
            if lo <= hi:
                centres.append(lo + (t + 1.0) / 2.0 * (hi - lo))
            else:  # the jitter window and the feasible window do not meet: nearest feasible point
                f_lo, f_hi = config.frame_margin_px - lo_e, size - config.frame_margin_px - hi_e
                centres.append(float(np.clip(size / 2.0, min(f_lo, f_hi), max(f_lo, f_hi))))
        return distance, centres[0], centres[1], ext

    # -- rendering ---------------------------------------------------------------
    def render(
        self,
        azimuth: float,
        elevation: float,
        theta: float,
        distance: float,
        rng: np.random.Generator,
        config: RenderConfig,
    ) -> RenderedView | None:
        """Render one view (crop applied as configured); None when the object is not visible."""
        size = config.image_size
        rotation = viewpoint_to_rotation(azimuth, elevation, theta)
        direction = camera_position(azimuth, elevation)
        distance, cx, cy, ext = self._frame(rotation, direction, float(distance), rng, config)
        centre = direction * distance
        K = intrinsics(config.focal, cx, cy)

        # Pixel region that can contain the object: the projected vertex bounds (the
        # silhouette's bounding box) plus a pixel, clipped to the image.
        if ext is None:
            x0, y0, x1, y1 = 0, 0, size, size
        else:
            x0 = max(0, int(math.floor(cx + ext[0] - 0.5)) - 1)
            x1 = min(size, int(math.ceil(cx + ext[1] - 0.5)) + 2)
            y0 = max(0, int(math.floor(cy + ext[2] - 0.5)) - 1)
            y1 = min(size, int(math.ceil(cy + ext[3] - 0.5)) + 2)
            if x1 <= x0 or y1 <= y0:
                return None
        ss = 2 if config.antialias == "supersample" else 1
        k_ss = np.diag([ss, ss, 1.0]) @ K
        h, w = (y1 - y0) * ss, (x1 - x0) * ss
        dirs = self._rays(rotation, k_ss, x0 * ss, y0 * ss, x1 * ss, y1 * ss)
        prim = self._run(centre, dirs)
        hit = prim >= 0
        if not hit.any():
            return None

        ground = config.ground_prob > 0 and rng.random() < config.ground_prob
        colour, light = self._shade(prim[hit], dirs[hit], rotation, rng, config, light_above=ground)
        obj = np.zeros((h * w, 3), np.float32)
        obj[hit] = colour
        obj = obj.reshape(h, w, 3)
        hit2 = hit.reshape(h, w)
        if ss > 1:
            cover = cv2.resize(hit2.astype(np.float32), (x1 - x0, y1 - y0), interpolation=cv2.INTER_AREA)
            obj = cv2.resize(obj, (x1 - x0, y1 - y0), interpolation=cv2.INTER_AREA)  # premultiplied by coverage
            region_mask = cover >= 0.5
            alpha = cover
        else:
            region_mask = hit2
            alpha = hit2.astype(np.float32)
            if config.antialias == "blur":
                # soften the edge inside the object only: outside it no object colour exists
                alpha = alpha * cv2.GaussianBlur(alpha, (3, 3), 0.65)
                obj = obj * alpha[..., None]  # premultiplied
            # with "none", obj is already premultiplied (0 outside the mask)
        if not region_mask.any():
            return None

        photos = self.photo_paths or _photos(config.photo_dir)
        kinds, probs = _background_kinds(config, bool(photos))
        kind = kinds[int(rng.choice(len(kinds), p=probs))]
        image = make_background(kind, size, rng, photos).astype(np.float32)
        mask = np.zeros((size, size), bool)
        mask[y0:y1, x0:x1] = region_mask
        if ground:
            image *= self._ground_darkening(rotation, centre, K, mask, light, rng, config)[..., None]
        bg = image[y0:y1, x0:x1]
        image[y0:y1, x0:x1] = obj + bg * (1.0 - alpha[..., None])
        image = np.clip(image + 0.5, 0, 255).astype(np.uint8)
        box = mask_box(mask)
        assert box is not None
        truncated = box[0] <= 0 or box[1] <= 0 or box[2] >= size or box[3] >= size
        coords = None
        if config.coordinates:
            coords = np.zeros((size, size, 3), np.float32)
            points = np.zeros((h * w, 3), np.float32)
            points[hit] = self.hit_points(centre, dirs[hit], prim[hit])
            points = points.reshape(h, w, 3)
            if ss > 1:  # coverage-weighted mean of the sub-pixels that hit
                points = cv2.resize(points, (x1 - x0, y1 - y0), interpolation=cv2.INTER_AREA) / np.maximum(cover, 1e-6)[..., None]
            coords[y0:y1, x0:x1] = np.where(region_mask[..., None], np.clip(points, -1.0, 1.0), 0.0)
        image, mask, box, K = apply_crop(image, mask, box, K, config)
        return RenderedView(
            image=image,
            mask=mask,
            box=box,
            K=K,
            rotation=rotation,
            viewpoint=(float(azimuth), float(elevation), float(theta), float(distance)),
            background=kind,
            truncated=bool(truncated),
            ground=ground,
            coords=coords,
        )

    def _ground_darkening(
        self, rotation: np.ndarray, centre: np.ndarray, K: np.ndarray, mask: np.ndarray, light: np.ndarray,
        rng: np.random.Generator, config: RenderConfig,
    ) -> np.ndarray:
        """(size, size) factor on the background: the object's shadow on the plane under it."""
        size = config.image_size
        dirs = self._rays(rotation, K, 0, 0, size, size)
        points, valid = ground_points(centre, dirs.astype(np.float64), self.bottom)
        valid &= ~mask.reshape(-1)
        shadow = np.zeros(size * size, np.float32)
        if valid.any():
            origins = points[valid] + np.array([0.0, 0.0, EPSILON])
            shadow[valid] = self.occluded(origins, np.broadcast_to(light, origins.shape))
        strength = rng.uniform(*config.ground_shadow_range)
        return shadow_darkening(shadow.reshape(size, size), strength, config.ground_softness * size)

    def _shade(
        self, prim: np.ndarray, dirs: np.ndarray, rotation: np.ndarray, rng: np.random.Generator, config: RenderConfig,
        light_above: bool = False,
    ) -> tuple[np.ndarray, np.ndarray]:
        """(RGB float32 (N, 3) in 0..255 of hit pixels, the light direction in the object frame): flat Lambert
        + ambient (+ optional highlight); `light_above` moves the light above the ground plane."""
        n = self.face_normals[prim]
        d = dirs / np.linalg.norm(dirs, axis=1, keepdims=True)
        facing = np.einsum("ij,ij->i", n, d)
        n = n * np.where(facing > 0, -1.0, 1.0).astype(np.float32)[:, None]  # normal towards the camera
        # Light direction (towards the light) drawn in camera coordinates, biased to the
        # camera side (−z_cam) and a little upwards (−y_cam), then taken to the object frame.
        bias = np.array([0.0, -0.4, -1.0]) / math.hypot(0.4, 1.0)
        light = rng.normal(size=3)
        light = light / max(np.linalg.norm(light), 1e-9) + config.light_camera_bias * bias
        light = light / max(np.linalg.norm(light), 1e-9)
        light_obj = rotation.T @ light
        light_obj = (upward_light(light_obj) if light_above else light_obj).astype(np.float32)
        ambient = rng.uniform(*config.ambient_range)
        diffuse = rng.uniform(*config.diffuse_range)
        base = _object_colour(rng)
        tint = np.clip(1.0 + rng.normal(0.0, 0.06, 3), 0.8, 1.2).astype(np.float32)
        lam = np.clip(n @ light_obj, 0.0, None)
        intensity = (ambient + diffuse * lam)[:, None]
        colour = base[None, :] * tint[None, :] * intensity
        if rng.random() < config.specular_prob:
            strength = rng.uniform(*config.specular_range)
            shininess = math.exp(rng.uniform(math.log(config.shininess_range[0]), math.log(config.shininess_range[1])))
            half = light_obj[None, :] - d
            half = half / np.maximum(np.linalg.norm(half, axis=1, keepdims=True), 1e-9)
            spec = np.clip(np.einsum("ij,ij->i", n, half), 0.0, None) ** shininess
            spec = spec * (lam > 0)
            colour = colour + (255.0 * strength) * spec[:, None] * tint[None, :]
        return np.clip(colour, 0.0, 255.0).astype(np.float32), light_obj


def _object_colour(rng: np.random.Generator) -> np.ndarray:
    """Random base colour (float32 RGB 0..255): any hue, 20 % greys, value 0.15–1 so shading stays visible."""
    h = rng.random()
    s = rng.uniform(0.0, 0.9) if rng.random() < 0.8 else 0.0
    v = rng.uniform(0.15, 1.0)
    return np.array(colorsys.hsv_to_rgb(h, s, v), dtype=np.float32) * 255.0


def apply_crop(
    image: np.ndarray, mask: np.ndarray, box: tuple[float, float, float, float], K: np.ndarray, config: RenderConfig
) -> tuple[np.ndarray, np.ndarray, tuple[float, float, float, float], np.ndarray]:
    """The configured crop of (image, mask); returns (image, mask, box, K) of the crop."""
    if config.crop == "none":
        return image, mask, box, K
    h, w = mask.shape
    if config.crop == "box":
        mx = (box[2] - box[0]) * config.crop_margin
        my = (box[3] - box[1]) * config.crop_margin
        left, top = max(0, int(math.floor(box[0] - mx))), max(0, int(math.floor(box[1] - my)))
        right, bottom = min(w, int(math.ceil(box[2] + mx))), min(h, int(math.ceil(box[3] + my)))
        image = np.ascontiguousarray(image[top:bottom, left:right])
        mask = np.ascontiguousarray(mask[top:bottom, left:right])
        shift = np.array([[1.0, 0.0, -left], [0.0, 1.0, -top], [0.0, 0.0, 1.0]])
        return image, mask, (box[0] - left, box[1] - top, box[2] - left, box[3] - top), shift @ K
    # "square": vantage.imaging.crop_square, identical to serving
    left, top, side = square_crop_window(box, config.crop_margin)
    out = config.crop_size
    s = out / side
    cropped = crop_square(image, box, out, config.crop_margin)
    cmask = crop_square(mask.astype(np.uint8) * 255, box, out, config.crop_margin) >= 128
    affine = np.array([[s, 0.0, -s * left], [0.0, s, -s * top], [0.0, 0.0, 1.0]])
    new_box = mask_box(cmask)
    if new_box is None:  # sub-pixel object after downscaling: keep the mapped box
        new_box = (s * (box[0] - left), s * (box[1] - top), s * (box[2] - left), s * (box[3] - top))
    return cropped, cmask, new_box, affine @ K


# -- datasets ------------------------------------------------------------------------
def _image_name(index: int, config: RenderConfig) -> str:
    return f"images/{index:07d}.{config.image_format}"


def _encode(path: Path, image: np.ndarray, config: RenderConfig, rng: np.random.Generator) -> None:
    bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    if config.image_format == "jpg":
        q = int(rng.integers(config.jpeg_quality_range[0], config.jpeg_quality_range[1] + 1))
        ok = cv2.imwrite(str(path), bgr, [cv2.IMWRITE_JPEG_QUALITY, q])
    else:
        ok = cv2.imwrite(str(path), bgr, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise OSError(f"cannot write {path}")


def _init_worker() -> None:
    cv2.setNumThreads(1)


def stretch_mesh(mesh: trimesh.Trimesh, stretch: Sequence[float]) -> trimesh.Trimesh:
    """`mesh` scaled by `stretch` along the object axes x, y, z, then normalised again (POSE.md)."""
    scaled = mesh.copy()
    scaled.apply_transform(np.diag([*map(float, stretch), 1.0]))
    return normalise_mesh(scaled)


def shape_stretches(config: RenderConfig, seed: Sequence[int]) -> np.ndarray:
    """(shape_variants, 3) per-axis factors; row 0 is the mesh itself (all ones).

    Drawn from their own generator, so the views of a dataset without shape
    augmentation are those it had before the option existed.
    """
    rng = np.random.default_rng([*seed, 1])
    factors = np.exp(rng.uniform(-1.0, 1.0, (config.shape_variants, 3)) * math.log(config.shape_stretch))
    factors[0] = 1.0
    return factors


def _render_model(task: tuple[int, ModelSpec, RenderConfig, str, list[str]]) -> dict[str, Any]:
    """Render all views of one model (one BVH build); deterministic in (config.seed, model index)."""
    index, spec, config, out_dir, photos = task
    out = Path(out_dir)
    rng = np.random.default_rng([config.seed, index])
    stretches = shape_stretches(config, (config.seed, index))
    try:
        mesh = spec.load()
        renderer = MeshRenderer(mesh, photos)
        symmetry = detect_z_symmetry(mesh)
    except MeshError as exc:
        return {"index": index, "records": [], "error": f"{spec.model_id}: {exc}", "resampled": 0}
    views = sample_viewpoints(config.views_per_model, config, rng)
    records, resampled, shape = [], 0, 0
    for v in range(config.views_per_model):
        if v * config.shape_variants // config.views_per_model != shape:
            shape = v * config.shape_variants // config.views_per_model
            stretched = stretch_mesh(mesh, stretches[shape])
            renderer, symmetry = MeshRenderer(stretched, photos), detect_z_symmetry(stretched)
        a, e, t, d = views[v]
        view = None
        for attempt in range(config.max_resample):
            view = renderer.render(a, e, t, d, rng, config)
            if view is not None:
                break
            resampled += 1
            a, e, t, d = sample_viewpoints(1, config, rng)[0]
        if view is None:  # e.g. only degenerate triangles: report the model, keep the dataset going
            for rec in records:
                (out / rec["file"]).unlink(missing_ok=True)
                (out / rec["mask"]).unlink(missing_ok=True)
                if "coords" in rec:
                    (out / rec["coords"]).unlink(missing_ok=True)
            message = f"{spec.model_id}: object not visible in {config.max_resample} sampled views"
            return {"index": index, "records": [], "error": message, "resampled": resampled}
        n = index * config.views_per_model + v
        image_rel, mask_rel = _image_name(n, config), f"masks/{n:07d}.png"
        _encode(out / image_rel, view.image, config, rng)
        if not cv2.imwrite(str(out / mask_rel), view.mask.astype(np.uint8) * 255, [cv2.IMWRITE_PNG_COMPRESSION, 1]):
            raise OSError(f"cannot write {out / mask_rel}")
        extra = {}
        if view.coords is not None:
            extra["coords"] = f"coords/{n:07d}.png"
            write_coordinates(out / extra["coords"], view.coords)
        az, el, th, dist = view.viewpoint
        records.append(
            {
                "index": n,
                "file": image_rel,
                "mask": mask_rel,
                "model_id": spec.model_id,
                "category": spec.category,
                "model_index": index,
                "view_index": v,
                "azimuth": az,
                "elevation": el,
                "theta": th,
                "distance": dist,
                "rotation": [float(x) for x in view.rotation.reshape(-1)],
                "camera_position": [float(x) for x in camera_position(az, el)],
                "box": [float(x) for x in view.box],
                "K": [float(x) for x in view.K.reshape(-1)],
                "width": int(view.image.shape[1]),
                "height": int(view.image.shape[0]),
                "background": view.background,
                "crop": config.crop,
                "truncated": view.truncated,
                "ground": view.ground,
                "stretch": [float(x) for x in stretches[shape]],
                "z_symmetry": symmetry.to_dict(),
                **extra,
            }
        )
    return {"index": index, "records": records, "error": None, "resampled": resampled}


def render_dataset(
    specs: Sequence[ModelSpec],
    out_dir: str | Path,
    config: RenderConfig,
    workers: int = 2,
    progress: bool = True,
    start_method: str = "spawn",
) -> Path:
    """Render `config.views_per_model` views of every model into `out_dir`; returns the manifest path.

    One task per model (its BVH is built once), `workers` processes (≤ 1: in this
    process), a tqdm bar over views. Workers are started with `start_method`
    ("spawn" by default: safe beside threaded libraries such as torch in the parent;
    as with any spawn pool, a script calling this must guard its entry point with
    ``if __name__ == "__main__":``; "fork" starts faster and needs no guard).
    View n = model_index·views_per_model + view_index
    is written as ``images/<n:07d>.<jpg|png>`` and ``masks/<n:07d>.png`` (0/255).
    The same specs and config give the same labels and pixels, whatever `workers`.

    ``manifest.jsonl`` holds one JSON object per view, ordered by ``index``:

    - ``index`` (int), ``file`` / ``mask``: image and mask paths relative to out_dir
    - ``model_id``, ``category``, ``model_index`` (position in `specs`), ``view_index``
    - ``azimuth``, ``elevation``, ``theta`` (degrees, POSE.md), ``distance`` (object radii;
      possibly larger than sampled when `fit_in_frame` moved the camera back)
    - ``rotation``: 9 floats, row-major POSE.md R (object → OpenCV camera)
    - ``camera_position``: 3 floats, the unit vector C/d (POSE.md); C = distance·camera_position
    - ``box``: [x0, y0, x1, y1] tight around the mask in pixels of the saved image (exclusive max)
    - ``K``: 9 floats, row-major intrinsics of the saved image (crop included), pixel
      centres at +0.5 (module docstring)
    - ``width``, ``height`` of the saved image; ``background``: "plain" | "texture" | "photo";
      ``crop``: the config's crop; ``truncated``: object touched the uncropped image border;
      ``ground``: the view casts its shadow on a ground plane (`RenderConfig.ground_prob`)
    - ``stretch``: the shape variant's axis factors; ``z_symmetry``: {"angles", "continuous"},
      the drawn surface's turns about +z onto itself (`vantage.train.symmetry.ZSymmetry`)
    - ``coords`` (with `RenderConfig.coordinates` only): the view's object-coordinate map

    ``render.json``: {"format": MANIFEST_FORMAT, "config": asdict(config), "models", "models_failed" (list of
    messages for meshes that could not be loaded or never showed up in
    `max_resample` tries; they get no views), "views",
    "resampled", "workers", "elapsed_s", "views_per_second", "manifest"}.
    """
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "masks").mkdir(parents=True, exist_ok=True)
    if config.coordinates:
        (out / "coords").mkdir(parents=True, exist_ok=True)
    photos = list_photos(config.photo_dir)
    tasks = [(i, spec, config, str(out), photos) for i, spec in enumerate(specs)]
    results: list[dict[str, Any] | None] = [None] * len(tasks)
    start = time.perf_counter()
    from tqdm import tqdm

    bar = tqdm(total=len(tasks) * config.views_per_model, unit="view", disable=not progress, desc="render")
    try:
        if workers <= 1 or len(tasks) <= 1:
            _init_worker()
            for task in tasks:
                r = _render_model(task)
                results[r["index"]] = r
                bar.update(config.views_per_model)
        else:
            ctx = multiprocessing.get_context(start_method)
            with ctx.Pool(min(workers, len(tasks)), initializer=_init_worker) as pool:
                for r in pool.imap_unordered(_render_model, tasks):
                    results[r["index"]] = r
                    bar.update(config.views_per_model)
    finally:
        bar.close()
    elapsed = time.perf_counter() - start

    manifest = out / MANIFEST_NAME
    tmp = manifest.with_suffix(".jsonl.tmp")
    views = 0
    with open(tmp, "w", encoding="utf-8") as fh:
        for r in results:
            assert r is not None
            for rec in r["records"]:
                fh.write(json.dumps(rec) + "\n")
                views += 1
    os.replace(tmp, manifest)
    info = {
        "format": MANIFEST_FORMAT,
        "config": asdict(config),
        "models": len(tasks),
        "model_ids": [spec.model_id for spec in specs],
        "models_failed": [r["error"] for r in results if r and r["error"]],
        "views": views,
        "resampled": sum(r["resampled"] for r in results if r),
        "workers": workers,
        "elapsed_s": elapsed,
        "views_per_second": views / elapsed if elapsed > 0 else None,
        "manifest": MANIFEST_NAME,
    }
    (out / RENDER_INFO_NAME).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return manifest


def rendered_with(folder: str | Path, config: RenderConfig, specs: Sequence[ModelSpec]) -> bool:
    """Whether `folder` holds a finished render of `specs` under `config` in the current manifest format.

    `RenderConfig.from_dict` fills options added since with their defaults, so older
    renders stay reusable as long as their manifest records what readers now expect.
    The models must match too (a render.json without "model_ids" never does): reusing
    a training folder rendered for another held-out split would train on test meshes.
    """
    info = Path(folder) / RENDER_INFO_NAME
    if not info.is_file():
        return False
    saved = json.loads(info.read_text())
    return (saved.get("format", 1) == MANIFEST_FORMAT and RenderConfig.from_dict(saved["config"]) == config
            and saved.get("model_ids") == [spec.model_id for spec in specs])


def read_manifest(path: str | Path) -> list[dict[str, Any]]:
    """Records of a manifest.jsonl (or of the dataset folder holding one), in file order."""
    path = Path(path)
    if path.is_dir():
        path = path / MANIFEST_NAME
    records = []
    with open(path, encoding="utf-8") as fh:
        for line_no, line in enumerate(fh, 1):
            line = line.strip()
            if not line:
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{line_no}: not JSON: {exc}") from exc
    return records
