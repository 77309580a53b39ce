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

Canonical labels (`canonical_rotations`, used in training when
`TrainConfig.canonical_symmetric_poses` is on): a half-turn-symmetric table rendered
from azimuth a and from a + 180° gives the same image with two labels 180° apart, so
a network trained on both learns to hedge between them (and a probability-weighted
fusion of the two lands between both). Every renderer records each mesh's
`ZSymmetry` in its manifest; the trainer then replaces a label R by the equivalent
pose R·S (S in the mesh's turns) whose camera is nearest the object's front
(azimuth closest to 0), and by azimuth 0 exactly for a body of revolution. The
network then answers one consistent member of each set of indistinguishable poses.
Measured (TrainConfig.canonical_symmetric_poses): no gain on the held-out CAD
meshes, plain or symmetry-reduced; an unseen mesh that is nearly but not exactly
symmetric (a bottle with a handle, a train whose two cabs differ) is not answered
canonically, and the training meshes of its category no longer teach its front.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import trimesh
from scipy.spatial import cKDTree

from vantage.geometry import geodesic_distance, rot_z, rotation_to_viewpoint


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


@dataclass(frozen=True)
class ZSymmetry:
    """A mesh's turns about +z that map it onto itself; `continuous` when every tested angle is one
    (a body of revolution: any turn is)."""

    angles: tuple[float, ...] = ()
    continuous: bool = False

    def to_dict(self) -> dict:
        return {"angles": list(self.angles), "continuous": self.continuous}

    @classmethod
    def from_dict(cls, d: dict) -> "ZSymmetry":
        return cls(tuple(float(a) for a in d["angles"]), bool(d["continuous"]))


def z_symmetry_angles(mesh: trimesh.Trimesh, config: SymmetryConfig = SymmetryConfig()) -> list[float]:
    """Angles (degrees, in (0, 360)) of the rotations about +z that map the surface onto itself."""
    p = np.asarray(trimesh.sample.sample_surface(mesh, config.points, seed=config.seed)[0])
    q = np.asarray(trimesh.sample.sample_surface(mesh, config.points, seed=config.seed + 1)[0])
    tree_p, tree_q = cKDTree(p), cKDTree(q)

    def chamfer(turn: np.ndarray) -> float:  # p against q turned by `turn`; d(Tq, p) = d(q, Tᵀp)
        return float((tree_p.query(q @ turn.T)[0].mean() + tree_q.query(p @ turn)[0].mean()) / 2)

    noise = chamfer(np.eye(3))
    return [float(a) for a in _tested_angles(config) if chamfer(rotation_about_z(a)) <= config.tolerance * noise]


def _tested_angles(config: SymmetryConfig) -> np.ndarray:
    return np.arange(config.min_angle_deg, 360.0 - config.min_angle_deg + 1e-9, config.step_deg)


def detect_z_symmetry(mesh: trimesh.Trimesh, config: SymmetryConfig = SymmetryConfig()) -> ZSymmetry:
    """`z_symmetry_angles` plus whether they are every angle tested (then the symmetry is continuous)."""
    angles = z_symmetry_angles(mesh, config)
    return ZSymmetry(tuple(angles), len(angles) == len(_tested_angles(config)))


def canonical_rotations(rotations: np.ndarray, symmetry: ZSymmetry) -> np.ndarray:
    """(N, 3, 3): each R replaced by the equivalent R·Rz(φ) whose azimuth is nearest 0 (module docstring).

    R·Rz(φ) is the view from azimuth a − φ (POSE.md: R = F·Rz(θ)·Rx(e − π/2)·Rz(−a)),
    so φ is picked among 0 and the symmetry's angles to bring a − φ nearest 0, or
    φ = a for a continuous symmetry.
    """
    rotations = np.asarray(rotations, np.float64)
    if not symmetry.angles:
        return rotations.copy()
    azimuth = rotation_to_viewpoint(rotations)[0]
    if symmetry.continuous:
        turn = azimuth
    else:
        turns = np.array((0.0,) + symmetry.angles)
        offset = np.abs((azimuth[:, None] - turns[None] + 180.0) % 360.0 - 180.0)
        turn = turns[offset.argmin(1)]
    return rotations @ rot_z(np.deg2rad(turn))


def symmetry_group(angles: list[float]) -> np.ndarray:
    """(M, 3, 3) rotations: the identity followed by the rotations about +z by `angles`."""
    return np.stack([np.eye(3)] + [rotation_about_z(a) for a in angles])


def symmetry_reduced_errors(pred: np.ndarray, true: np.ndarray, groups: list[np.ndarray]) -> np.ndarray:
    """Per-image min over S in its group of Δ(R̂, R·S) in degrees; `groups[i]` is image i's (M, 3, 3)."""
    return np.array([geodesic_distance(p[None], t[None] @ g).min() for p, t, g in zip(pred, true, groups)])
