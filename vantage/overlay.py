"""Pictures of poses: object axes and model wireframes drawn on images, and contact sheets of crops.

Framework-free (numpy + OpenCV) so the quickstart, the evaluation report and the
camera demo draw poses the same way.
"""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

from vantage.geometry import camera_matrix, ray_rotation

# Object x, y, z axes in RGB: red, green, blue (the usual convention).
AXIS_COLOURS = ((230, 40, 40), (40, 200, 40), (50, 90, 255))
WIREFRAME_COLOUR = (0, 230, 255)  # cyan: apart from the axes and from the demo's yellow box
_PLACEMENT_STEPS = 8  # perspective_to_box: refinements of distance and ray (exact for objects 4+ radii away)


def draw_axes(
    image: np.ndarray,
    rotation: np.ndarray,
    thickness: int = 2,
    length: float = 0.35,
    dashed: bool = False,
    origin: tuple[float, float] | None = None,
    scale_px: float | None = None,
    camera: Sequence[float] | None = None,
) -> np.ndarray:
    """Draw the object's axes as seen by the camera, from `origin` (default: the image centre).

    Column i of R is object axis i in OpenCV camera coordinates (x right, y down),
    so its first two components are its direction on screen (orthographic view);
    axes pointing away from the camera are drawn first so nearer ones stay on top.
    With the camera's intrinsics (fx, fy, cx, cy), R is relative to the optical axis
    (POSE.md) and the axes are drawn in perspective at `origin` (`perspective_axes`),
    which is what an object away from the image centre looks like.
    """
    out = image.copy()
    h, w = out.shape[:2]
    c = np.array(origin if origin is not None else (w / 2.0, h / 2.0), np.float64)
    r = np.asarray(rotation, np.float64).reshape(3, 3)
    scale = scale_px if scale_px is not None else length * min(h, w)
    ends = c + scale * r[:2].T if camera is None else perspective_axes(r, c, scale, camera)
    for i in np.argsort(-r[2, :]):
        end = ends[i]
        p0, p1 = tuple(int(round(v)) for v in c), tuple(int(round(v)) for v in end)
        if dashed:
            for t in np.linspace(0.0, 1.0, 8, endpoint=False)[::2]:
                a = c + (end - c) * t
                b = c + (end - c) * (t + 1.0 / 8)
                cv2.line(out, tuple(int(v) for v in a), tuple(int(v) for v in b), AXIS_COLOURS[i], thickness, cv2.LINE_AA)
        else:
            cv2.arrowedLine(out, p0, p1, AXIS_COLOURS[i], thickness, cv2.LINE_AA, tipLength=0.15)
    return out


def fit_to_box(points: np.ndarray, rotation: np.ndarray, box: Sequence[float]) -> np.ndarray:
    """Image positions (..., 2) of object points (..., 3) seen with `rotation`, in weak perspective.

    The points are rotated into camera axes (x right, y down) and projected
    orthographically; their 2D bounding box is then scaled (aspect kept) and centred
    to fit `box` = (x_min, y_min, x_max, y_max). The API returns no camera distance, and
    for objects that are far compared with their size the foreshortening this ignores
    is small.
    """
    xy = np.asarray(points, np.float64) @ np.asarray(rotation, np.float64).reshape(3, 3)[:2].T
    return _fitted(xy, box)


def _fitted(xy: np.ndarray, box: Sequence[float]) -> np.ndarray:
    """Image points (..., 2) scaled (aspect kept) and moved so that their bounding box is centred in
    and fills `box` = (x_min, y_min, x_max, y_max)."""
    flat = xy.reshape(-1, 2)
    lo, hi = flat.min(0), flat.max(0)
    x0, y0, x1, y1 = (float(v) for v in box)
    scale = min((x1 - x0) / max(hi[0] - lo[0], 1e-9), (y1 - y0) / max(hi[1] - lo[1], 1e-9))
    return (xy - (lo + hi) / 2) * scale + ((x0 + x1) / 2, (y0 + y1) / 2)


def _project(points_cam: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Pinhole projection (..., 2) of camera-frame points (..., 3) in front of the camera."""
    p = points_cam @ k.T
    return p[..., :2] / p[..., 2:3]


def perspective_to_box(points: np.ndarray, rotation: np.ndarray, box: Sequence[float],
                       camera: Sequence[float]) -> np.ndarray:
    """Image positions (..., 2) of object points (..., 3) seen with `rotation` (relative to the optical
    axis, POSE.md) by a pinhole camera (fx, fy, cx, cy), in full perspective.

    The object is put on the ray through the box centre (where the server's rectified crop looked),
    then moved along and across it until its projection's bounding box is the box (the depth a
    box of that size implies; no distance is estimated otherwise), and the projection fitted to
    the box exactly (`fit_to_box`'s last step). Unlike weak perspective this draws an object away
    from the image centre the way the camera saw it: stretched outwards and turned by the angle of
    its ray, and its near parts larger than its far ones.
    """
    k = camera_matrix(camera)
    x0, y0, x1, y1 = (float(v) for v in box)
    target, size = np.array([(x0 + x1) / 2, (y0 + y1) / 2]), np.array([x1 - x0, y1 - y0])
    obj = np.asarray(points, np.float64) @ np.asarray(rotation, np.float64).reshape(3, 3).T  # camera axes
    flat = obj.reshape(-1, 3)
    radius = float(np.linalg.norm(flat, axis=1).max())
    nearest = 2.0 * radius  # every point in front of the camera
    centre = target
    distance = max((k[0, 0] + k[1, 1]) / 2 * nearest / max(float(size.max()), 1e-9), nearest)
    for _ in range(_PLACEMENT_STEPS):  # fixed point: the projection's box centred on and as large as `box`
        uv = _project(flat + distance * ray_rotation(k, centre)[:, 2], k)
        lo, hi = uv.min(0), uv.max(0)
        centre = centre + target - (lo + hi) / 2
        distance = max(distance * float(np.max((hi - lo) / np.maximum(size, 1e-9))), nearest)
    return _fitted(_project(obj + distance * ray_rotation(k, centre)[:, 2], k), box)


def perspective_axes(rotation: np.ndarray, origin: Sequence[float], scale_px: float,
                     camera: Sequence[float]) -> np.ndarray:
    """End points (3, 2) of the object's unit axes drawn from `origin` in perspective: the object's
    centre on the ray through `origin` at the distance where a unit length across that ray spans
    `scale_px`. An axis along the ray shrinks to a point, as the camera sees it."""
    k = camera_matrix(camera)
    q = ray_rotation(k, np.asarray(origin, np.float64))
    focal = (k[0, 0] + k[1, 1]) / 2
    centre = max(focal / max(scale_px, 1e-9), 2.0) * q[:, 2]  # at least 2 units away: every tip in front
    return _project(centre + np.asarray(rotation, np.float64).reshape(3, 3).T, k)


def draw_wireframe(
    image: np.ndarray,
    segments: np.ndarray,
    rotation: np.ndarray,
    box: Sequence[float],
    colour: tuple[int, int, int] = WIREFRAME_COLOUR,
    thickness: int = 1,
    camera: Sequence[float] | None = None,
) -> np.ndarray:
    """Draw line segments (S, 2, 3) of a model's wireframe (object frame) with `rotation`, fitted to
    `box` (see `fit_to_box`; in perspective with the camera's intrinsics: `perspective_to_box`);
    sub-pixel endpoints (fixed point, 4 fractional bits)."""
    out = image.copy()
    if len(segments):
        placed = fit_to_box(segments, rotation, box) if camera is None else perspective_to_box(segments, rotation,
                                                                                               box, camera)
        ends = np.round(placed * 16).astype(np.int32)
        cv2.polylines(out, list(ends), False, colour, thickness, cv2.LINE_AA, shift=4)
    return out


def label(image: np.ndarray, text: str, colour: tuple[int, int, int] = (255, 255, 255)) -> np.ndarray:
    """Caption at the bottom of a crop on a dark band."""
    out = image.copy()
    h = out.shape[0]
    cv2.rectangle(out, (0, h - 14), (out.shape[1], h), (0, 0, 0), -1)
    cv2.putText(out, text, (2, h - 3), cv2.FONT_HERSHEY_SIMPLEX, 0.33, colour, 1, cv2.LINE_AA)
    return out


def contact_sheet(tiles: Sequence[np.ndarray], columns: int = 8, pad: int = 2) -> np.ndarray:
    """Grid of equally sized RGB tiles on a grey background."""
    if not tiles:
        raise ValueError("contact sheet needs at least one tile")
    th, tw = tiles[0].shape[:2]
    rows = (len(tiles) + columns - 1) // columns
    sheet = np.full((rows * (th + pad) + pad, columns * (tw + pad) + pad, 3), 90, np.uint8)
    for i, tile in enumerate(tiles):
        y, x = pad + (i // columns) * (th + pad), pad + (i % columns) * (tw + pad)
        sheet[y : y + th, x : x + tw] = tile
    return sheet
