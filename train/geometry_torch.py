"""Batched, differentiable torch twin of `vantage.geometry` for losses and the exported graph.

Only what training and export need: the exp map (Rodrigues) and the geodesic
distance. Both are written with operations that ONNX export and TensorRT handle
(no ArgMax, no data-dependent control flow) and with finite gradients at 0.
"""

from __future__ import annotations

import math

import torch

_EPS = 1e-6


def hat(v: torch.Tensor) -> torch.Tensor:
    """Skew-symmetric matrices [v]_x, (..., 3) → (..., 3, 3)."""
    x, y, z = v.unbind(-1)
    o = torch.zeros_like(x)
    return torch.stack(
        [torch.stack([o, -z, y], -1), torch.stack([z, o, -x], -1), torch.stack([-y, x, o], -1)], -2
    )


def axis_angle_to_rotation(v: torch.Tensor) -> torch.Tensor:
    """exp map R = I + a[v] + b[v]², a = sin t / t, b = (1 − cos t)/t².

    The coefficients switch to their Taylor series below t = 1e-2 through
    `torch.where` on a clamped angle, so values and gradients stay finite at 0.
    """
    t2 = (v * v).sum(-1, keepdim=True)
    small = t2 < 1e-4
    t2_safe = torch.where(small, torch.ones_like(t2), t2)
    t = torch.sqrt(t2_safe)
    a = torch.where(small, 1.0 - t2 / 6.0, torch.sin(t) / t)
    b = torch.where(small, 0.5 - t2 / 24.0, (1.0 - torch.cos(t)) / t2_safe)
    k = hat(v)
    eye = torch.eye(3, dtype=v.dtype, device=v.device).expand(k.shape)
    return eye + a.unsqueeze(-1) * k + b.unsqueeze(-1) * (k @ k)


def geodesic_distance(r1: torch.Tensor, r2: torch.Tensor) -> torch.Tensor:
    """Δ(R1, R2) in radians (joint-pose paper Eq. 3), with acos clamped away from ±1.

    The clamp keeps the gradient of acos finite when the prediction is exact.
    """
    cos = ((r1 * r2).sum((-2, -1)) - 1.0) / 2.0
    return torch.acos(cos.clamp(-1.0 + _EPS, 1.0 - _EPS))


def bound_axis_angle(raw: torch.Tensor) -> torch.Tensor:
    """Radially squash an unbounded 3-vector r into the open ball ‖y‖ < π.

    y = π·tanh(‖r‖)·r/‖r‖ keeps the direction, so the one-to-one axis-angle domain
    of the joint-pose paper (θ ∈ [0, π), Sec. 3.1) holds and weighted fusion (Eq. 1)
    stays a convex combination inside it. tanh(n)/n uses its Taylor series near 0.
    """
    n2 = (raw * raw).sum(-1, keepdim=True)
    small = n2 < 1e-6
    n = torch.sqrt(torch.where(small, torch.ones_like(n2), n2))
    ratio = torch.where(small, 1.0 - n2 / 3.0, torch.tanh(n) / n)
    return math.pi * ratio * raw
