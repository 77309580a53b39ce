"""Off-axis test views: a rendered folder re-imaged by a camera turned away from the object.

Why: renders put the object's centre on the optical axis (vantage.train.render); in a photo it
can lie anywhere in the frame, and POSE.md's R is relative to the optical axis, while a crop
shows the object as seen along the ray through it (vantage.geometry.ray_rotation). Turning a
camera about its own centre by Q maps its image through the homography H = K'·Q·K⁻¹, exact at
every depth, so a rendered view can be re-imaged off axis without rendering again: the label
becomes Q·R, the mask and the box follow H. `vantage eval --camera` then measures what a client
that sends its camera intrinsics gets (EstimateRequest.camera).

The new image keeps the render's focal length (the object keeps its size in pixels) on a square
canvas wide enough for the turn, principal point at its centre; pixels the render did not cover
repeat its border, as the crops of objects at an image's edge do.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from vantage.geometry import ray_rotation, rot_z, rotation_to_viewpoint
from vantage.train.derived_views import close_derived, open_derived
from vantage.train.render import mask_box


@dataclass
class OffAxisConfig:
    """How far the camera turns: the angle between its optical axis and the ray to the object's
    centre is uniform in [0, max_angle] degrees, towards a uniform direction in the image; before
    that it rolls about its optical axis by a uniform angle in [-max_roll, max_roll] degrees (a
    phone held askew: the whole picture turns, the label by the same roll)."""

    max_angle: float = 30.0
    seed: int = 0
    max_roll: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.max_angle < 60.0:
            raise ValueError(f"max_angle must be in [0, 60) degrees, got {self.max_angle}")
        if not 0.0 <= self.max_roll <= 180.0:
            raise ValueError(f"max_roll must be in [0, 180] degrees, got {self.max_roll}")


def turn(angle: float, direction: float) -> np.ndarray:
    """The smallest camera turn Q after which the old optical axis (the object's centre) is seen
    `angle` degrees off the new axis, towards image direction `direction` (0 = right, 90 = down)."""
    a, d = math.radians(angle), math.radians(direction)
    return ray_rotation(np.eye(3), np.array([math.tan(a) * math.cos(d), math.tan(a) * math.sin(d)]))


def roll(angle: float) -> np.ndarray:
    """The camera's roll about its optical axis by `angle` degrees: image content turns by it about
    the principal point (clockwise on screen, x right and y down) and R becomes roll·R."""
    return rot_z(math.radians(angle))


def off_axis_view(image: np.ndarray, mask: np.ndarray, intrinsics: np.ndarray, rotation: np.ndarray, q: np.ndarray,
                  size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(image, mask, K', Q·R) of a rendered view seen by its camera turned by `q`, on a size² canvas."""
    focal = float(intrinsics[0, 0])
    k_new = np.array([[focal, 0.0, size / 2.0], [0.0, focal, size / 2.0], [0.0, 0.0, 1.0]])
    # continuous pixel coordinates (box and K convention) → OpenCV's integer-centred ones and back
    shift = np.array([[1.0, 0.0, -0.5], [0.0, 1.0, -0.5], [0.0, 0.0, 1.0]])
    h = shift @ k_new @ q @ np.linalg.inv(intrinsics) @ np.linalg.inv(shift)
    warped = cv2.warpPerspective(image, h, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    warped_mask = cv2.warpPerspective(mask.astype(np.uint8) * 255, h, (size, size), flags=cv2.INTER_NEAREST,
                                      borderMode=cv2.BORDER_CONSTANT, borderValue=0) > 127
    return warped, warped_mask, k_new, q @ rotation


def make_off_axis(data: str | Path, out: str | Path, config: OffAxisConfig, progress: bool = True) -> Path:
    """Re-image every view of rendered folder `data` off axis into `out` (same layout, manifest
    records updated: file, mask, rotation, K, box, size, viewpoint; plus `off_axis_deg`); returns
    the manifest path. Views whose object leaves the canvas are left out (none within 60°)."""
    src, dst, records = open_derived(data, out, "re-images")
    rng = np.random.default_rng(config.seed)
    written = []
    for rec in tqdm(records, desc="off-axis views", unit="view", disable=not progress):
        image = cv2.imread(str(src / rec["file"]), cv2.IMREAD_COLOR)
        mask = cv2.imread(str(src / rec["mask"]), cv2.IMREAD_GRAYSCALE)
        if image is None or mask is None:
            raise FileNotFoundError(f"cannot read view {rec['index']} of {src} ({rec['file']}, {rec['mask']})")
        k = np.asarray(rec["K"], np.float64).reshape(3, 3)
        angle, direction = rng.uniform(0.0, config.max_angle), rng.uniform(0.0, 360.0)
        rolled = rng.uniform(-config.max_roll, config.max_roll) if config.max_roll else 0.0  # same draws without
        reach = k[0, 0] * math.tan(math.radians(config.max_angle)) + max(image.shape[:2])
        size = int(2 * math.ceil(reach))
        rotation = np.asarray(rec["rotation"], np.float64).reshape(3, 3)
        warped, warped_mask, k_new, rot_new = off_axis_view(image, mask > 127, k, rotation,
                                                            turn(angle, direction) @ roll(rolled), size)
        box = mask_box(warped_mask)
        if box is None:
            continue
        az, el, th = (float(v) for v in rotation_to_viewpoint(rot_new))
        name = Path(rec["file"]).name
        cv2.imwrite(str(dst / "images" / name), warped)
        cv2.imwrite(str(dst / "masks" / Path(rec["mask"]).name), warped_mask.astype(np.uint8) * 255)
        written.append({**rec, "file": f"images/{name}", "mask": f"masks/{Path(rec['mask']).name}",
                        "rotation": [float(v) for v in rot_new.reshape(-1)], "K": [float(v) for v in k_new.reshape(-1)],
                        "box": list(box), "width": size, "height": size, "azimuth": az, "elevation": el,
                        "theta": th, "off_axis_deg": float(angle), "roll_deg": float(rolled)})
    return close_derived(dst, written, "off_axis.json", {"source": str(src), "config": asdict(config), "views": len(written),
                                                         "left_out": len(records) - len(written)})
