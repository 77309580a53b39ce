"""Image decoding and crop pre-processing shared by training, export checks and serving.

One function turns an image and an object box into a network input everywhere, so
that training, ONNX parity checks and the server see identical pixels. Decision
(POSE.md "Images" and MEASURED.md): the box is made square around its centre,
enlarged by a context margin, regions outside the image are filled by replicating
edge pixels (pad, never stretch), then resized with area interpolation. When the
camera's intrinsics are known (a request's `camera`, `vantage eval --camera`), the
same crop is taken from the view turned to the box centre (`crop_rectified`).
"""

from __future__ import annotations

import math
import struct
from typing import Sequence

import cv2
import numpy as np

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
DEFAULT_MAX_PIXELS = 40_000_000


class ImageError(ValueError):
    """The request's image or box cannot be used; the message says why."""


def image_size_from_header(data: bytes) -> tuple[int, int] | None:
    """(width, height) read from a PNG or JPEG header without decoding, None if unknown.

    Lets callers refuse decompression bombs before any pixel buffer is allocated.
    """
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        w, h = struct.unpack(">II", data[16:24])
        return int(w), int(h)
    if data[:2] == b"\xff\xd8":
        i = 2
        while i + 9 < len(data):
            if data[i] != 0xFF:
                i += 1
                continue
            marker = data[i + 1]
            if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7 or marker == 0xFF:
                i += 1 if marker == 0xFF else 2
                continue
            seg_len = struct.unpack(">H", data[i + 2 : i + 4])[0]
            if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
                h, w = struct.unpack(">HH", data[i + 5 : i + 9])
                return int(w), int(h)
            i += 2 + seg_len
    return None


def decode_image(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode JPEG/PNG bytes to an RGB uint8 array (H, W, 3).

    Raises ImageError for empty data, data that is not an image, or an image with
    more than `max_pixels` pixels (checked from the header before decoding).
    """
    if not data:
        raise ImageError("image is empty (0 bytes)")
    size = image_size_from_header(data)
    if size is not None and size[0] * size[1] > max_pixels:
        raise ImageError(f"image is {size[0]}x{size[1]} pixels, more than the limit of {max_pixels}")
    buf = np.frombuffer(data, dtype=np.uint8)
    img = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    if img is None or img.size == 0:
        raise ImageError(f"image bytes ({len(data)} bytes) could not be decoded as JPEG or PNG")
    if img.shape[0] * img.shape[1] > max_pixels:
        raise ImageError(f"image is {img.shape[1]}x{img.shape[0]} pixels, more than the limit of {max_pixels}")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def validate_box(box: Sequence[float] | None, width: int, height: int) -> tuple[float, float, float, float]:
    """Check a box (x_min, y_min, x_max, y_max) in pixels; None means the whole image."""
    if box is None:
        return 0.0, 0.0, float(width), float(height)
    if len(box) != 4:
        raise ImageError(f"box must have 4 numbers (x_min, y_min, x_max, y_max), got {len(box)}")
    x0, y0, x1, y1 = (float(v) for v in box)
    if not all(math.isfinite(v) for v in (x0, y0, x1, y1)):
        raise ImageError(f"box has a non-finite coordinate: {[x0, y0, x1, y1]}")
    if x1 <= x0 or y1 <= y0:
        raise ImageError(f"box has zero or negative area: {[x0, y0, x1, y1]}")
    if x1 <= 0 or y1 <= 0 or x0 >= width or y0 >= height:
        raise ImageError(f"box {[x0, y0, x1, y1]} lies outside the {width}x{height} image")
    return x0, y0, x1, y1


def crop_square(
    image: np.ndarray,
    box: Sequence[float] | None,
    out_size: int,
    margin: float = 0.1,
    max_pixels: int | None = None,
) -> np.ndarray:
    """Square crop around `box` enlarged by `margin` per side, edge-padded, resized to out_size².

    The padded square is allocated before resizing, so a huge box (from a client) would
    allocate without bound: with `max_pixels` a square of more pixels is an ImageError.
    """
    h, w = image.shape[:2]
    x0, y0, x1, y1 = validate_box(box, w, h)
    side = _square_side((x0, y0, x1, y1), max(x1 - x0, y1 - y0), margin, max_pixels)
    cx, cy = (x0 + x1) / 2.0, (y0 + y1) / 2.0
    side_px = max(1, int(round(side)))
    left = int(math.floor(cx - side_px / 2.0))
    top = int(math.floor(cy - side_px / 2.0))
    right, bottom = left + side_px, top + side_px
    inner = image[max(top, 0) : min(bottom, h), max(left, 0) : min(right, w)]
    pads = (max(0, -top), max(0, bottom - h), max(0, -left), max(0, right - w))
    if any(pads):
        inner = cv2.copyMakeBorder(inner, *pads, borderType=cv2.BORDER_REPLICATE)
    return _resized(inner, out_size)


def _square_side(box: tuple[float, float, float, float], extent: float, margin: float, max_pixels: int | None) -> float:
    """The crop's side: the box's larger extent enlarged by `margin` per side; ImageError past `max_pixels`."""
    side = extent * (1.0 + 2.0 * margin)
    if max_pixels is not None and side * side > max_pixels:
        raise ImageError(f"box {list(box)} needs a {side:.0f}x{side:.0f} crop, more than the limit of {max_pixels} pixels")
    return side


def _resized(square: np.ndarray, out_size: int) -> np.ndarray:
    interp = cv2.INTER_AREA if square.shape[0] > out_size else cv2.INTER_LINEAR
    return cv2.resize(square, (out_size, out_size), interpolation=interp)


def crop_rectified(
    image: np.ndarray,
    box: Sequence[float] | None,
    intrinsics: np.ndarray,
    out_size: int,
    margin: float = 0.1,
    max_pixels: int | None = None,
    turn: np.ndarray | None = None,
) -> np.ndarray:
    """`crop_square` of the image the camera (intrinsics K) would take turned to look at the box centre.

    Why: away from the optical axis a pinhole image stretches an object radially (by up to
    1/cos² of its angle off the axis), while the networks learned on renders whose object sits
    on the axis. Turning a camera about its centre is a homography, exact at every depth
    (vantage.geometry.ray_rotation gives the turn), so the crop is taken from the turned view:
    the box centre lands on its principal point, the object is seen undistorted, and the turn
    times the network's answer is the pose relative to the real camera. For a box centred on
    the principal point it is `crop_square` (up to resampling). Same margin, edge replication,
    area interpolation and `max_pixels` refusal as `crop_square`. `turn` (default: the ray rotation to
    the box centre) may add a roll about that ray (vantage.geometry.level_turn).
    """
    from vantage.geometry import ray_rotation

    h, w = image.shape[:2]
    x0, y0, x1, y1 = validate_box(box, w, h)
    k = np.asarray(intrinsics, np.float64)
    if turn is None:
        turn = ray_rotation(k, np.array([(x0 + x1) / 2.0, (y0 + y1) / 2.0]))
    to_turned = k @ turn.T @ np.linalg.inv(k)  # original → turned image (continuous pixel coordinates)
    # the box's extent in the turned view, between its edges' midpoints (its corners would overstate it:
    # the object touches each edge of a tight box once, not at the corners)
    mx, my = (x0 + x1) / 2.0, (y0 + y1) / 2.0
    edges = np.array([[x0, my, 1.0], [x1, my, 1.0], [mx, y0, 1.0], [mx, y1, 1.0]]) @ to_turned.T
    edges = edges[:, :2] / edges[:, 2:3]
    extent = max(float(np.linalg.norm(edges[1] - edges[0])), float(np.linalg.norm(edges[3] - edges[2])))
    side = _square_side((x0, y0, x1, y1), extent, margin, max_pixels)
    side_px = max(1, int(round(side)))
    # crop pixel (u, v) ↔ turned-image point principal point + (u, v) − side/2; both continuous, then cv2's centres
    to_crop = np.array([[1.0, 0.0, side_px / 2.0 - k[0, 2]], [0.0, 1.0, side_px / 2.0 - k[1, 2]], [0.0, 0.0, 1.0]])
    shift = np.array([[1.0, 0.0, -0.5], [0.0, 1.0, -0.5], [0.0, 0.0, 1.0]])
    warp = shift @ to_crop @ to_turned @ np.linalg.inv(shift)
    crop = cv2.warpPerspective(image, warp, (side_px, side_px), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return _resized(crop, out_size)


def normalise(crops: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """uint8 (N, S, S, 3) RGB → float32 (N, 3, S, S) with (x/255 − mean)/std."""
    x = crops.astype(np.float32) / 255.0
    x = (x - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))
