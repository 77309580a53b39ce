"""Frames for the camera demo: a camera, a video file, or a synthetic trajectory with ground truth.

The synthetic source renders a built-in procedural model moving along a known
trajectory (it imports the training side's renderer lazily), so the demo can be
tested end to end without a camera and its pose error measured.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator

import cv2
import numpy as np

BOX_MODES = ("source", "given", "center", "foreground")


@dataclass
class Frame:
    """One RGB frame; `rotation`, `box` and `camera` (fx, fy, cx, cy) are known only for synthetic frames."""

    index: int
    image: np.ndarray
    rotation: np.ndarray | None = None
    box: tuple[float, float, float, float] | None = None
    camera: tuple[float, float, float, float] | None = None

    @property
    def gravity(self) -> tuple[float, float, float] | None:
        """Gravity in the camera's axes where the pose is known: the synthetic object stands upright, so
        down is its −z axis (POSE.md), −R[:, 2], what an accelerometer beside the camera would read."""
        return None if self.rotation is None else tuple(float(v) for v in -np.asarray(self.rotation)[:, 2])


def is_camera(source: str) -> bool:
    """A live camera is named by its integer index ("0"); anything else is a file (or "synthetic")."""
    return source.isdigit()


def video_frames(source: str, max_frames: int | None = None) -> Iterator[Frame]:
    """Frames of a camera (an integer index such as "0") or a video file, as RGB."""
    cap = cv2.VideoCapture(int(source) if is_camera(source) else source)
    if not cap.isOpened():
        raise FileNotFoundError(f"cannot open video source {source!r} (camera index or video file)")
    try:
        i = 0
        while max_frames is None or i < max_frames:
            ok, bgr = cap.read()
            if not ok:
                return
            yield Frame(i, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
            i += 1
    finally:
        cap.release()


def trajectory(i: int, n: int) -> tuple[float, float, float]:
    """(azimuth, elevation, theta) in degrees of frame i of n: one turn around the object,
    elevation swinging between 5° and 35°, a small camera roll."""
    t = i / max(n, 1)
    return (360.0 * t) % 360.0, 20.0 + 15.0 * math.sin(2 * math.pi * t), 6.0 * math.sin(4 * math.pi * t)


def synthetic_frames(
    category: str = "car", seed: int = 10_001, frames: int = 48, size: int = 256, distance: float = 3.2,
    off_axis_deg: float = 0.0,
) -> Iterator[Frame]:
    """A built-in model of `category` (a seed unseen in training) on a fixed textured background.

    With `off_axis_deg`, the camera is turned so that the object's centre lies that far off the
    optical axis, circling the image centre along the trajectory (vantage.train.off_axis: the
    homography of a turn about the camera centre, labels exact), on a canvas wide enough to hold
    it: what a camera sees of an object away from the middle of its frame. Each frame carries its
    camera, which the demo sends with it (EstimateRequest.camera).
    """
    from vantage.train.backgrounds import make_background
    from vantage.train.meshes import ModelSpec
    from vantage.train.off_axis import off_axis_view, turn
    from vantage.train.render import MeshRenderer, RenderConfig, mask_box

    renderer = MeshRenderer(ModelSpec(f"builtin/{category}/{seed:04d}", category, seed=seed).load())
    cfg = RenderConfig(image_size=size, center_jitter=0.0, background_weights={"plain": 1.0}, specular_prob=0.0)
    canvas = size if off_axis_deg <= 0 else int(2 * math.ceil(cfg.focal * math.tan(math.radians(off_axis_deg)) + size))
    background = make_background("texture", canvas, np.random.default_rng(seed))
    for i in range(frames):
        a, e, t = trajectory(i, frames)
        view = renderer.render(a, e, t, distance, np.random.default_rng(seed), cfg)  # same colour and light every frame
        if view is None:
            continue
        image, mask, k, rotation = view.image, view.mask, view.K, view.rotation
        if off_axis_deg > 0:
            image, mask, k, rotation = off_axis_view(image, mask, k, rotation, turn(off_axis_deg, 360.0 * i / frames),
                                                     canvas)
        box = mask_box(mask)
        if box is None:
            continue
        alpha = cv2.GaussianBlur(mask.astype(np.float32), (3, 3), 0)[..., None]
        image = (image * alpha + background * (1 - alpha)).astype(np.uint8)
        camera = (float(k[0, 0]), float(k[1, 1]), float(k[0, 2]), float(k[1, 2]))
        yield Frame(i, image, rotation, tuple(float(v) for v in box), camera)


def foreground_box(image: np.ndarray) -> tuple[float, float, float, float] | None:
    """A simple foreground box: pixels far from the median border colour (Otsu threshold),
    largest connected region. Works for an object on a fairly uniform background."""
    h, w = image.shape[:2]
    border = np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]]).astype(np.float32)
    dist = np.linalg.norm(image.astype(np.float32) - np.median(border, 0), axis=2)
    dist = cv2.normalize(dist, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    _, fg = cv2.threshold(dist, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    fg = cv2.morphologyEx(fg, cv2.MORPH_CLOSE, np.ones((7, 7), np.uint8))
    contours, _ = cv2.findContours(fg, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return None
    x, y, bw, bh = cv2.boundingRect(max(contours, key=cv2.contourArea))
    if bw * bh < 0.01 * w * h:
        return None
    return float(x), float(y), float(x + bw), float(y + bh)


def center_box(image: np.ndarray, fraction: float = 0.6) -> tuple[float, float, float, float]:
    """The centred square covering `fraction` of the shorter side."""
    h, w = image.shape[:2]
    side = fraction * min(h, w)
    return (w - side) / 2, (h - side) / 2, (w + side) / 2, (h + side) / 2


def choose_box(frame: Frame, mode: str, given: tuple[float, float, float, float] | None) -> tuple[float, float, float, float]:
    """The object box of a frame under a box mode (see BOX_MODES); falls back to the centre box."""
    if mode == "given" and given is not None:
        return given
    if mode == "source" and frame.box is not None:
        return frame.box
    if mode == "foreground":
        box = foreground_box(frame.image)
        if box is not None:
            return box
    return center_box(frame.image)
