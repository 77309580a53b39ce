"""Cross-instance mixing of cached features at matched poses (`TrainConfig.instance_mix`).

Why: a category has only a few training meshes (two to seven real ones), and the pose heads learn
each by heart (training error ~7° against ~15° on unseen meshes). Mixup (Zhang et al. 2018) fills
the space between training examples with interpolated ones; here the pair is two different
instances of one category seen from nearly the same pose, so the blend of their frozen
features is a plausible in-between instance, and its label is the matching point between the two
poses on the geodesic (slerp), exact as the poses meet. Pairs farther apart than a radius are
not mixed, and the partner's weight stays below one half, so the view stays mostly itself.
"""

from __future__ import annotations

import numpy as np
import torch

from vantage.geometry import axis_angle_to_rotation, rotation_to_axis_angle


def pose_partners(rotations: np.ndarray, categories: np.ndarray, instances: np.ndarray,
                  radius_deg: float) -> np.ndarray:
    """For each (copy, sample): the sample of the same copy, category and another instance whose pose
    is nearest, or -1 when none lies within `radius_deg` (geodesic).

    rotations (copies, N, 3, 3) are the labels as trained (mirrored crops mirrored), categories (N,)
    and instances (N,) any comparable ids. The same copy keeps the partner's augmentation draw apart
    from the sample's own.
    """
    copies, n = rotations.shape[:2]
    partners = np.full((copies, n), -1, np.int64)
    cos_radius = np.cos(np.radians(radius_deg))
    for c in np.unique(categories):
        members = np.flatnonzero(categories == c)
        other = instances[members][:, None] != instances[members][None, :]
        for k in range(copies):
            r = rotations[k, members].reshape(len(members), 9)
            cos = (r @ r.T - 1.0) / 2.0  # cos of the geodesic angle: (tr(RaᵀRb) − 1) / 2
            cos = np.where(other, cos, -np.inf)
            best = cos.argmax(1)
            near = cos[np.arange(len(members)), best] >= cos_radius
            partners[k, members[near]] = members[best[near]]
    return partners


def slerp(a: np.ndarray, b: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Rotations `weight` of the way from a to b along the geodesic: a·exp(w·log(aᵀb)); (N, 3, 3)."""
    step = rotation_to_axis_angle(np.swapaxes(a, -1, -2) @ b) * np.asarray(weight)[:, None]
    return a @ axis_angle_to_rotation(step)


def mix(x: torch.Tensor, partner_x: torch.Tensor, rotation: np.ndarray, partner_rotation: np.ndarray,
        weight: np.ndarray) -> tuple[torch.Tensor, np.ndarray]:
    """(features (1 − w)·x + w·x', rotations slerp(R, R', w)) of a batch; w (N,) per sample, 0 = unmixed."""
    w = torch.as_tensor(weight, dtype=x.dtype).view(-1, *([1] * (x.dim() - 1)))
    return (1 - w) * x + w * partner_x, slerp(rotation, partner_rotation, weight)
