"""A ground plane under the rendered object that catches its shadow (a "shadow catcher").

Why: photographed objects stand on something and cast a shadow on it; renders of a
floating mesh over a random picture have neither, one more difference between
renders and photos (the drift of the image-graphics paper). With
`RenderConfig.ground_prob` a view gets the horizontal plane through the mesh's lowest
point (z = min z in object coordinates, POSE.md's up axis) and the object's shadow
on that plane under the view's own light: the background picture is darkened where
the plane is in shadow, softened into a penumbra, as AR compositing does. The plane
itself stays the background picture, so no textured floor has to be invented, and
only shadows that the camera can see are drawn: a camera below the plane (negative
elevation) sees none. The object's pixels, mask, box and pose labels are unchanged.
"""

from __future__ import annotations

import cv2
import numpy as np

# Shadow rays start this far above the plane (object radii) so that they do not hit the
# mesh's own bottom faces at t = 0; ground points farther than RADIUS from the object's
# up axis are skipped: with the light above the plane, no shadow reaches that far.
EPSILON = 1e-3
RADIUS = 4.0


def ground_points(centre: np.ndarray, dirs: np.ndarray, height: float) -> tuple[np.ndarray, np.ndarray]:
    """Where the rays from `centre` along `dirs` (N, 3) meet the plane z = `height`.

    Returns (points (N, 3), valid (N,)): a ray is valid when it goes down to the plane from a camera
    above it and lands within RADIUS of the up axis.
    """
    dz = dirs[:, 2]
    above = centre[2] > height
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(dz < 0, (height - centre[2]) / dz, -1.0)
    points = centre[None, :] + t[:, None] * dirs
    valid = above & (t > 0) & (np.hypot(points[:, 0], points[:, 1]) < RADIUS)
    return points, valid


def upward_light(light: np.ndarray, min_height: float = 0.3) -> np.ndarray:
    """The light direction (towards the light, object frame) moved above the plane: a shadow on the
    ground needs a light over it. Its z is mirrored and raised to at least `min_height`."""
    light = np.asarray(light, np.float64).copy()
    light[2] = max(abs(light[2]), min_height)
    return light / np.linalg.norm(light)


def shadow_darkening(shadow: np.ndarray, strength: float, softness_px: float) -> np.ndarray:
    """(H, W) float32 factor to multiply the background by: 1 − strength inside the shadow, a
    Gaussian penumbra of `softness_px` around it."""
    soft = shadow.astype(np.float32)
    if softness_px > 0:
        soft = cv2.GaussianBlur(soft, (0, 0), softness_px)
    return 1.0 - strength * soft
