"""Pose geometry of POSE.md in numpy (batched over leading axes).

The torch twin used for training losses lives in `vantage.train.geometry_torch`
and is tested against these functions. Angles of viewpoints are in degrees,
rotations map object coordinates to OpenCV camera coordinates:
``R = diag(1, -1, -1) · Rz(θ) · Rx(e − π/2) · Rz(−a)``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

_FLIP = np.diag([1.0, -1.0, -1.0])
_SMALL = 1e-6


def rot_z(phi: np.ndarray) -> np.ndarray:
    """Rotation about +z by `phi` radians, shape (..., 3, 3)."""
    phi = np.asarray(phi, dtype=np.float64)
    c, s = np.cos(phi), np.sin(phi)
    z, o = np.zeros_like(phi), np.ones_like(phi)
    return np.stack([np.stack([c, -s, z], -1), np.stack([s, c, z], -1), np.stack([z, z, o], -1)], -2)


def rot_x(phi: np.ndarray) -> np.ndarray:
    """Rotation about +x by `phi` radians, shape (..., 3, 3)."""
    phi = np.asarray(phi, dtype=np.float64)
    c, s = np.cos(phi), np.sin(phi)
    z, o = np.zeros_like(phi), np.ones_like(phi)
    return np.stack([np.stack([o, z, z], -1), np.stack([z, c, -s], -1), np.stack([z, s, c], -1)], -2)


def viewpoint_to_rotation(azimuth: np.ndarray, elevation: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """Rotation (..., 3, 3) of a viewpoint in degrees (POSE.md, "Rotation")."""
    a, e, t = (np.deg2rad(np.asarray(x, dtype=np.float64)) for x in (azimuth, elevation, theta))
    return _FLIP @ rot_z(t) @ rot_x(e - np.pi / 2) @ rot_z(-a)


def rotation_to_viewpoint(rotation: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Inverse of `viewpoint_to_rotation`: (azimuth [0,360), elevation [-90,90], theta (-180,180]).

    At the poles (elevation ±90°) azimuth and theta are not separable; azimuth is
    then reported as 0 and the whole in-plane angle goes to theta.
    """
    m = _FLIP @ np.asarray(rotation, dtype=np.float64)  # = Rz(θ) Rx(e-π/2) Rz(-a)
    # With β = e − π/2, row 2 of Rz(θ)Rx(β)Rz(−a) is [−sinβ sin a, sinβ cos a, cosβ]
    # and column 2 is [sinθ sinβ, −cosθ sinβ, cosβ].
    cos_b = np.clip(m[..., 2, 2], -1.0, 1.0)
    beta = -np.arccos(cos_b)  # β ∈ [-π, 0] since e ∈ [-90, 90]
    sin_b = np.sin(beta)
    pole = np.abs(sin_b) < _SMALL
    safe = np.where(pole, 1.0, sin_b)
    az = np.arctan2(-m[..., 2, 0] / safe, m[..., 2, 1] / safe)
    th = np.arctan2(m[..., 0, 2] / safe, -m[..., 1, 2] / safe)
    # Poles: M = Rz(θ − a) (e = 90°) or Rz(θ + a)·diag(1, −1, −1) (e = −90°); with a = 0
    # both give θ = atan2(M10, M00).
    th_pole = np.arctan2(m[..., 1, 0], m[..., 0, 0])
    az = np.where(pole, 0.0, az)
    th = np.where(pole, th_pole, th)
    az_deg = np.mod(np.rad2deg(az), 360.0)
    az_deg = np.where(az_deg >= 360.0, 0.0, az_deg)
    el_deg = np.rad2deg(beta) + 90.0
    th_deg = np.rad2deg(th)
    th_deg = np.where(th_deg <= -180.0, th_deg + 360.0, th_deg)
    return az_deg, el_deg, th_deg


def camera_position(azimuth: np.ndarray, elevation: np.ndarray) -> np.ndarray:
    """Unit camera position C/d in object coordinates (POSE.md, "Viewpoint")."""
    a, e = np.deg2rad(np.asarray(azimuth, dtype=np.float64)), np.deg2rad(np.asarray(elevation, dtype=np.float64))
    return np.stack([np.cos(e) * np.sin(a), -np.cos(e) * np.cos(a), np.sin(e)], -1)


def rotation_to_camera_position(rotation: np.ndarray) -> np.ndarray:
    """Unit camera position from a rotation: the camera looks along +z_cam, so C/d = −Rᵀ e_z."""
    return -np.swapaxes(np.asarray(rotation, dtype=np.float64), -1, -2)[..., :, 2]


def hat(v: np.ndarray) -> np.ndarray:
    """Skew-symmetric matrix [v]_x, shape (..., 3, 3)."""
    v = np.asarray(v, dtype=np.float64)
    x, y, z = v[..., 0], v[..., 1], v[..., 2]
    o = np.zeros_like(x)
    return np.stack([np.stack([o, -z, y], -1), np.stack([z, o, -x], -1), np.stack([-y, x, o], -1)], -2)


def axis_angle_to_rotation(v: np.ndarray) -> np.ndarray:
    """exp map (Rodrigues), with Taylor coefficients near 0 so it is exact there."""
    v = np.asarray(v, dtype=np.float64)
    angle = np.linalg.norm(v, axis=-1)
    small = angle < 1e-4
    a = np.where(small, 1.0, angle)
    k1 = np.where(small, 1.0 - angle**2 / 6.0, np.sin(a) / a)
    k2 = np.where(small, 0.5 - angle**2 / 24.0, (1.0 - np.cos(a)) / a**2)
    k = hat(v)
    eye = np.broadcast_to(np.eye(3), k.shape)
    return eye + k1[..., None, None] * k + k2[..., None, None] * (k @ k)


def rotation_to_axis_angle(rotation: np.ndarray) -> np.ndarray:
    """log map, ‖y‖ ∈ [0, π]; stable near 0 (Taylor) and near π (from R + I)."""
    r = np.asarray(rotation, dtype=np.float64)
    cos = np.clip((np.trace(r, axis1=-2, axis2=-1) - 1.0) / 2.0, -1.0, 1.0)
    angle = np.arccos(cos)
    w = np.stack([r[..., 2, 1] - r[..., 1, 2], r[..., 0, 2] - r[..., 2, 0], r[..., 1, 0] - r[..., 0, 1]], -1)
    sin = np.sin(angle)
    small = angle < 1e-4
    factor = np.where(small, 0.5 + angle**2 / 12.0, angle / (2.0 * np.where(small, 1.0, sin)))
    out = factor[..., None] * w
    near_pi = angle > np.pi - 1e-3
    if np.any(near_pi):
        # (R + Rᵀ)/2 − cos·I = (1 − cos)·uuᵀ exactly (Rodrigues' symmetric part): its largest column
        # is the axis up to scale and sign, and the sign comes from w. (R + I)/2 ≈ uuᵀ would keep
        # the skew part sin·[u]×/2, an axis error of ~(π − angle)/2 rad (0.06° at π − 1e-3).
        b = (r + np.swapaxes(r, -1, -2)) / 2.0 - cos[..., None, None] * np.eye(3)
        diag = np.diagonal(b, axis1=-2, axis2=-1)
        idx = np.argmax(diag, axis=-1)
        col = np.take_along_axis(b, idx[..., None, None].repeat(3, -1), axis=-1)[..., 0]
        u = col / np.sqrt(np.maximum(np.take_along_axis(diag, idx[..., None], -1), 1e-12))
        u = u / np.maximum(np.linalg.norm(u, axis=-1, keepdims=True), 1e-12)  # 0 only where not near π
        sign = np.where(np.sum(u * w, axis=-1, keepdims=True) < 0, -1.0, 1.0)
        out = np.where(near_pi[..., None], sign * u * angle[..., None], out)
    return out


def rotation_to_quaternion(rotation: np.ndarray) -> np.ndarray:
    """Unit quaternion (w, x, y, z) with w ≥ 0 (POSE.md)."""
    v = rotation_to_axis_angle(rotation)
    angle = np.linalg.norm(v, axis=-1, keepdims=True)
    axis = np.where(angle > 1e-12, v / np.where(angle > 1e-12, angle, 1.0), 0.0)
    q = np.concatenate([np.cos(angle / 2.0), np.sin(angle / 2.0) * axis], -1)
    return np.where(q[..., :1] < 0, -q, q)


def quaternion_to_rotation(q: np.ndarray) -> np.ndarray:
    """Rotation of a (w, x, y, z) quaternion (normalised first)."""
    q = np.asarray(q, dtype=np.float64)
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    w, x, y, z = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    return np.stack(
        [
            np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
            np.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
            np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1),
        ],
        -2,
    )


def geodesic_distance(r1: np.ndarray, r2: np.ndarray) -> np.ndarray:
    """Δ(R1, R2) = arccos((tr(R1ᵀR2) − 1)/2) in degrees (POSE.md, "Errors and metrics")."""
    r1, r2 = np.asarray(r1, dtype=np.float64), np.asarray(r2, dtype=np.float64)
    tr = np.einsum("...ij,...ij->...", r1, r2)
    return np.rad2deg(np.arccos(np.clip((tr - 1.0) / 2.0, -1.0, 1.0)))


def vector_angle(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Angle in degrees between vectors (camera-position error of the image-graphics paper)."""
    u, v = np.asarray(u, dtype=np.float64), np.asarray(v, dtype=np.float64)
    cos = np.sum(u * v, -1) / np.maximum(np.linalg.norm(u, axis=-1) * np.linalg.norm(v, axis=-1), 1e-12)
    return np.rad2deg(np.arccos(np.clip(cos, -1.0, 1.0)))


def chordal_mean(rotations: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Weighted chordal L2 mean of rotations (N, 3, 3): the rotation closest to Σ wᵢRᵢ in Frobenius norm.

    Averaging matrices and projecting back onto SO(3) by SVD (det fixed to +1) is the
    closed-form rotation average; unlike averaging camera positions it keeps the roll
    and stays a rotation. Meaningful for rotations that roughly agree (< 90° apart).
    """
    r = np.asarray(rotations, dtype=np.float64).reshape(-1, 3, 3)
    w = np.ones(len(r)) if weights is None else np.asarray(weights, dtype=np.float64).reshape(-1)
    if len(w) != len(r) or len(r) == 0 or not np.all(w >= 0) or w.sum() <= 0:
        raise ValueError(f"chordal_mean needs N ≥ 1 rotations and N non-negative weights with a positive sum, "
                         f"got {len(r)} rotations and weights {w.tolist()}")
    m = np.einsum("n,nij->ij", w / w.sum(), r)
    u, _, vt = np.linalg.svd(m)
    d = np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt)) or 1.0])
    return u @ d @ vt


class CameraError(ValueError):
    """Intrinsics that cannot be a pinhole camera's; the message names the numbers."""


def camera_matrix(camera: Sequence[float]) -> np.ndarray:
    """K (3×3) of pinhole intrinsics (fx, fy, cx, cy) in pixels; CameraError unless they are 4 finite
    numbers with fx, fy > 0."""
    values = [float(v) for v in camera]
    if len(values) != 4 or not all(np.isfinite(values)) or values[0] <= 0 or values[1] <= 0:
        raise CameraError(f"camera must be 4 finite numbers (fx, fy, cx, cy) with fx, fy > 0, got {values}")
    fx, fy, cx, cy = values
    return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])


def ray_rotation(intrinsics: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(..., 3, 3): the smallest rotation taking the optical axis (0, 0, 1) to the ray through the
    image points (..., 2) of a pinhole camera with intrinsics K (3×3, or one per point).

    Why: a network sees a crop, and a crop looks the same wherever the object lies in the image,
    so it answers the rotation relative to the ray through the crop centre, as if the camera had
    been turned to look at the object. POSE.md's R is relative to the optical axis, and the two
    differ by this rotation: R = ray_rotation(K, crop centre) · R_crop. The
    turn is the angle between the axis and the ray, up to half the field of view at an image's
    edge; renders put the object's centre on the axis (vantage.train.render), where it is the
    identity. Points are in continuous pixel coordinates, like boxes: K⁻¹·(x, y, 1) is their ray.
    """
    k = np.asarray(intrinsics, dtype=np.float64)
    p = np.asarray(points, dtype=np.float64)
    homogeneous = np.concatenate([p, np.ones(p.shape[:-1] + (1,))], -1)
    ray = np.einsum("...ij,...j->...i", np.linalg.inv(k), homogeneous)
    return rotation_between(np.broadcast_to([0.0, 0.0, 1.0], ray.shape), ray)


def rotation_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(..., 3, 3): the smallest rotation taking direction a to direction b (any lengths > 0); for
    opposite directions, the half turn about an axis perpendicular to a."""
    a = np.asarray(a, dtype=np.float64)
    a = a / np.linalg.norm(a, axis=-1, keepdims=True)
    b = np.asarray(b, dtype=np.float64)
    b = b / np.linalg.norm(b, axis=-1, keepdims=True)
    axis = np.cross(a, b)
    sin = np.linalg.norm(axis, axis=-1)
    angle = np.arctan2(sin, np.sum(a * b, -1))
    # opposite (or equal) directions: any axis perpendicular to a (the one nearest x, else y)
    fallback = np.cross(a, np.where(np.abs(a[..., :1]) < 0.9, [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]))
    axis = np.where((sin > _SMALL)[..., None], axis, fallback)
    unit = axis / np.linalg.norm(axis, axis=-1, keepdims=True)
    return axis_angle_to_rotation(unit * angle[..., None])


class GravityError(ValueError):
    """A gravity direction that is not 3 finite numbers of non-zero length; the message names them."""


def gravity_direction(gravity: Sequence[float]) -> np.ndarray:
    """Unit gravity (3,) in camera axes (x right, y down, z forward); GravityError for anything else."""
    values = np.array([float(v) for v in gravity])
    if values.shape != (3,) or not np.all(np.isfinite(values)) or np.linalg.norm(values) < _SMALL:
        raise GravityError(f"gravity must be 3 finite numbers (x, y, z in the camera's axes) of non-zero length, "
                           f"got {values.tolist()}")
    return values / np.linalg.norm(values)


def checked_gravity(gravity: Sequence[float] | None, upright: bool = False) -> np.ndarray | None:
    """Unit gravity or None; GravityError for a bad one, or for `upright` (the object stands against
    gravity) without one."""
    if gravity is None:
        if upright:
            raise GravityError("upright needs gravity: the direction the object stands against")
        return None
    return gravity_direction(gravity)


LEVEL_MIN_SIN = 0.1  # gravity within ~6° of the ray (looking straight down or up): no roll to undo


def level_turn(turn: np.ndarray, gravity: np.ndarray) -> np.ndarray:
    """turn · R_z(ρ): `turn` (from the camera to a crop's axes, e.g. `ray_rotation`) followed by the roll
    about the crop's axis after which gravity points straight down in the crop.

    Why: the networks learned from cameras held level (renders roll by a few degrees only,
    vantage.train.render), and a phone held askew costs accuracy (the reference bundle's held-out
    views rolled by up to ±30°: MedErr 15.3° → 23.6°); a crop taken from the levelled view sees what
    training saw, and the answer turns back exactly. Gravity nearly along the crop's axis has no direction in the crop:
    then the turn is returned as it is.
    """
    g = np.asarray(turn, np.float64).T @ gravity_direction(gravity)
    across = float(np.hypot(g[0], g[1]))
    if across < LEVEL_MIN_SIN:
        return np.asarray(turn, np.float64)
    return turn @ rot_z(np.arctan2(-g[0], g[1]))


def crop_view(centre: np.ndarray, intrinsics: np.ndarray | None = None,
              gravity: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(K, turn) of the crop taken around image point `centre` (vantage.imaging.crop_rectified): the
    intrinsics, or without them a camera whose principal point is `centre`; the turn from the crop's
    axes to the camera's, to the ray through `centre` and, with gravity, levelled (`level_turn`)."""
    centre = np.asarray(centre, np.float64)
    k = np.asarray(intrinsics, np.float64) if intrinsics is not None else camera_matrix((1.0, 1.0, *centre))
    turn = ray_rotation(k, centre)
    return k, turn if gravity is None else level_turn(turn, gravity)


def stand_upright(rotation: np.ndarray, gravity: np.ndarray) -> np.ndarray:
    """(..., 3, 3): the rotations nearest `rotation` under which the object stands upright, its +z axis
    (POSE.md) against gravity: the smallest turn taking its z axis there, so elevation and roll follow
    from gravity and only the azimuth from the image."""
    r = np.asarray(rotation, np.float64)
    return rotation_between(r[..., :, 2], -gravity_direction(gravity)) @ r
