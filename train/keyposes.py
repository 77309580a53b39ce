"""The K-means key-pose dictionary of the Bin & Delta paper and the per-sample targets it defines.

§2 ("Classification baseline") of the Bin & Delta paper: K-means on the
ground-truth axis-angle vectors gives key poses z_k and a pose label l*_n per
image. From them: the Simple delta δ*_n = y*_n − z_{l*} (Eq. 5), the
Log-Euclidean delta log(R̃_{l*}ᵀ R*_n) (Eq. 8, precomputed as the paper
suggests) and the soft assignment p*_nk (Eq. 9). Numpy only and deterministic
from a seed, so that a checkpoint's dictionary can be recomputed and tested.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vantage.geometry import axis_angle_to_rotation, rotation_to_axis_angle


def kmeans(points: np.ndarray, k: int, seed: int = 0, iters: int = 50) -> np.ndarray:
    """Lloyd's K-means with k-means++ seeding; (N, D) → (k, D) centres.

    Empty clusters are re-seeded at the point farthest from its centre, so the
    dictionary always has k distinct key poses when there are ≥ k distinct points.
    """
    x = np.asarray(points, np.float64)
    if len(x) < k:
        raise ValueError(f"K-means needs at least k={k} points, got {len(x)}")
    rng = np.random.default_rng(seed)
    centres = [x[rng.integers(len(x))]]
    d2 = ((x - centres[0]) ** 2).sum(1)
    for _ in range(1, k):
        total = d2.sum()
        idx = rng.choice(len(x), p=d2 / total) if total > 0 else rng.integers(len(x))
        centres.append(x[idx])
        d2 = np.minimum(d2, ((x - x[idx]) ** 2).sum(1))
    c = np.stack(centres)
    for _ in range(iters):
        labels, dist = assign(x, c)
        new = c.copy()
        for j in range(k):
            members = labels == j
            if members.any():
                new[j] = x[members].mean(0)
            else:
                far = int(np.argmax(dist))
                new[j], dist[far] = x[far], 0.0
        if np.allclose(new, c):
            break
        c = new
    return c


def assign(points: np.ndarray, centres: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nearest key pose (Euclidean in axis-angle space, as K-means) and its squared distance."""
    d2 = ((np.asarray(points)[:, None, :] - centres[None]) ** 2).sum(-1)
    labels = d2.argmin(1)
    return labels, d2[np.arange(len(labels)), labels]


def soft_assignment(points: np.ndarray, centres: np.ndarray, gamma: float) -> np.ndarray:
    """p*_nk ∝ exp(−γ‖y*_n − z_k‖²) (Bin & Delta paper, Eq. 9), computed stably."""
    d2 = ((np.asarray(points)[:, None, :] - centres[None]) ** 2).sum(-1)
    logits = -gamma * (d2 - d2.min(1, keepdims=True))
    p = np.exp(logits)
    return p / p.sum(1, keepdims=True)


@dataclass
class PoseTargets:
    """Per-sample regression and bin targets for every head type (float32 / int64 arrays)."""

    axis_angle: np.ndarray  # (N, 3) y* = log R*
    label: np.ndarray  # (N,) l*
    soft: np.ndarray  # (N, K) p* (Eq. 9)
    delta_simple: np.ndarray  # (N, 3) y* − z_{l*} (Eq. 5)
    delta_log: np.ndarray  # (N, 3) log(R̃_{l*}ᵀ R*) (Eq. 8)


def pose_targets(rotations: np.ndarray, centres: np.ndarray, gamma: float) -> PoseTargets:
    """All Bin & Delta targets of rotations (N, 3, 3) for the dictionary `centres` (K, 3)."""
    y = rotation_to_axis_angle(np.asarray(rotations, np.float64))
    labels, _ = assign(y, centres)
    key = axis_angle_to_rotation(centres[labels])
    return PoseTargets(
        axis_angle=y.astype(np.float32),
        label=labels.astype(np.int64),
        soft=soft_assignment(y, centres, gamma).astype(np.float32),
        delta_simple=(y - centres[labels]).astype(np.float32),
        delta_log=rotation_to_axis_angle(np.swapaxes(key, -1, -2) @ rotations).astype(np.float32),
    )
