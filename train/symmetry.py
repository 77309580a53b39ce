"""Rotational symmetries of a mesh about its up axis, and pose errors that forgive them.

POSE.md's metric is the plain geodesic distance Δ(R̂, R), and it stays the headline
figure. But a round bottle, a rectangular table or a train with a cab at both ends
looks the same from azimuth a and a + 180°: no image can tell those poses apart,
so part of the plain error on such a mesh measures the mesh, not the model. To say
how much, `vantage eval --models DIR` also reports the *symmetry-reduced* error
min over S of Δ(R̂, R·S), where S runs over the rotations about the object's +z
axis (POSE.md's up) that map the mesh's surface onto itself.

Detection (decision, documented here): the surface is sampled twice with
independent seeds; the distance between those two samplings is the sampling noise.
A rotation by θ about +z is a symmetry when the rotated surface lies within
`tolerance` × that noise of the unrotated one (symmetric chamfer distance, mean of
nearest-neighbour distances). θ runs over a `step_deg` grid from `min_angle_deg`
to 360 − `min_angle_deg`: small angles are left out because a smooth surface turned
by 10° is always close to itself. On the 53 PASCAL3D+ CAD meshes (ratio at
θ = 180°): bottles and dining tables 1.0–1.2, train 01 / 04 1.24 / 1.85, bus 1.4–2.1,
cars 2.3–3.0, chairs 2.3–20; the left-right mirror of every mesh is 1.0–1.2 (2.4
for bicycles), which is what `tolerance` = 2 sits above.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import trimesh
from scipy.spatial import cKDTree

from vantage.geometry import geodesic_distance


@dataclass(frozen=True)
class SymmetryConfig:
    """Detection settings (see the module docstring)."""

    points: int = 6000
    step_deg: float = 10.0
    min_angle_deg: float = 30.0
    tolerance: float = 2.0
    seed: int = 0


def rotation_about_z(angle_deg: float) -> np.ndarray:
    """Object-frame rotation by `angle_deg` about +z (counter-clockwise seen from above)."""
    a = np.radians(angle_deg)
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _chamfer(p: np.ndarray, q: np.ndarray) -> float:
    return float((cKDTree(p).query(q)[0].mean() + cKDTree(q).query(p)[0].mean()) / 2)


def z_symmetry_angles(mesh: trimesh.Trimesh, config: SymmetryConfig = SymmetryConfig()) -> list[float]:
    """Angles (degrees, in (0, 360)) of the rotations about +z that map the surface onto itself."""
    p = np.asarray(trimesh.sample.sample_surface(mesh, config.points, seed=config.seed)[0])
    q = np.asarray(trimesh.sample.sample_surface(mesh, config.points, seed=config.seed + 1)[0])
    noise = _chamfer(p, q)
    angles = np.arange(config.min_angle_deg, 360.0 - config.min_angle_deg + 1e-9, config.step_deg)
    return [float(a) for a in angles if _chamfer(p, q @ rotation_about_z(a).T) <= config.tolerance * noise]


def symmetry_group(angles: list[float]) -> np.ndarray:
    """(M, 3, 3) rotations: the identity followed by the rotations about +z by `angles`."""
    return np.stack([np.eye(3)] + [rotation_about_z(a) for a in angles])


def symmetry_reduced_errors(pred: np.ndarray, true: np.ndarray, groups: list[np.ndarray]) -> np.ndarray:
    """Per-image min over S in its group of Δ(R̂, R·S) in degrees; `groups[i]` is image i's (M, 3, 3)."""
    return np.array([geodesic_distance(p[None], t[None] @ g).min() for p, t, g in zip(pred, true, groups)])
