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


def _axis_angle_to_quaternion(v: torch.Tensor) -> torch.Tensor:
    """(w, x, y, z) of exp(v): w = cos(t/2), xyz = sin(t/2)/t · v (Taylor series near 0)."""
    t2 = (v * v).sum(-1, keepdim=True)
    small = t2 < 1e-6
    t = torch.sqrt(torch.where(small, torch.ones_like(t2), t2))
    s = torch.where(small, 0.5 - t2 / 48.0, torch.sin(t / 2.0) / t)
    return torch.cat([torch.cos(torch.where(small, torch.zeros_like(t), t) / 2.0), s * v], -1)


def _quaternion_product(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Hamilton product p ⊗ q of (w, x, y, z) quaternions: the rotation R_p · R_q."""
    pw, pv = p[..., :1], p[..., 1:]
    qw, qv = q[..., :1], q[..., 1:]
    return torch.cat([pw * qw - (pv * qv).sum(-1, keepdim=True), pw * qv + qw * pv + torch.linalg.cross(pv, qv)], -1)


def _quaternion_to_axis_angle(q: torch.Tensor) -> torch.Tensor:
    """log map through the quaternion: θ = 2·atan2(‖v‖, |w|) ∈ [0, π], axis v/‖v‖ (sign fixed by w ≥ 0).

    atan2 stays accurate near both 0 and π, where the trace formula of the rotation
    matrix loses the axis; every branch is a `torch.where`, so the graph exports.
    """
    sign = torch.where(q[..., :1] < 0, -torch.ones_like(q[..., :1]), torch.ones_like(q[..., :1]))
    w, v = q[..., :1] * sign, q[..., 1:] * sign
    n2 = (v * v).sum(-1, keepdim=True)
    small = n2 < 1e-12
    n = torch.sqrt(torch.where(small, torch.ones_like(n2), n2))
    angle = 2.0 * torch.atan2(torch.where(small, torch.zeros_like(n), n), w)
    scale = torch.where(small, 2.0 / w.clamp_min(1e-6), angle / n)
    return scale * v


def canonical_axis_angle(v: torch.Tensor) -> torch.Tensor:
    """The axis-angle vector with ‖y‖ ≤ π of the rotation exp(v), for any v ∈ R³.

    Additive Bin & Delta outputs z_l + δ (Bin & Delta paper, Eq. 4) can leave the
    ball of radius π; this maps them back to the one-to-one domain of POSE.md.
    """
    return _quaternion_to_axis_angle(_axis_angle_to_quaternion(v))


def compose_axis_angle(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """log(exp(a)·exp(b)) with ‖·‖ ≤ π: the Log-Euclidean combination g(z, δ) (Bin & Delta paper, §3.1, Eq. 7)."""
    return _quaternion_to_axis_angle(_quaternion_product(_axis_angle_to_quaternion(a), _axis_angle_to_quaternion(b)))


def mirror_axis_angle(v: torch.Tensor) -> torch.Tensor:
    """Axis-angle of F·exp(v)·F, F = diag(−1, 1, 1): (x, y, z) ↦ (x, −y, −z).

    F·[v]ₓ·F = det(F)·[F·v]ₓ = −[F·v]ₓ for the reflection F, so the pose of a
    horizontally mirrored crop of a left-right symmetric object (POSE.md) maps back
    without leaving axis-angle.
    """
    x, y, z = v.unbind(-1)
    return torch.stack([x, -y, -z], -1)


def voting_mean(poses: list[torch.Tensor], max_angle: float) -> torch.Tensor:
    """Axis-angle of the SO(3) mean of the largest group of poses that agree within `max_angle` radians.

    Each pose's support is the number of poses within `max_angle` of it (itself
    included); the anchor is the best-supported pose, the earliest on ties, and the
    mean is the normalised sum of the unit quaternions within `max_angle` of the
    anchor, on its hemisphere (for two agreeing poses exactly their geodesic
    midpoint). Poses far from the anchor (a front and a back view) are left out:
    their midpoint would match neither. Voting instead of anchoring on the first
    pose lets the others outvote one network or one crop that alone mistook front
    for back. |q_i·q_j| = cos(Δ/2) gives the agreement test without an acos, and the
    anchor is a comparison one-hot (no ArgMax), as elsewhere in the bundle graph.
    """
    q = torch.stack([_axis_angle_to_quaternion(v) for v in poses])  # (H, ..., 4)
    cos_half = math.cos(max_angle / 2.0)
    close = ((q.unsqueeze(1) * q.unsqueeze(0)).sum(-1).abs() >= cos_half).to(q.dtype)  # (H, H, ...)
    h = len(poses)
    earlier = torch.arange(h, 0, -1, dtype=q.dtype).reshape(h, *[1] * (q.dim() - 2)) / (h + 1)  # < 1: breaks ties only
    support = close.sum(1) + earlier
    anchor = (q * (support >= support.max(0, keepdim=True).values).to(q.dtype).unsqueeze(-1)).sum(0)
    dot = (q * anchor).sum(-1, keepdim=True)
    aligned = torch.where(dot < 0, -q, q) * (dot.abs() >= cos_half).to(q.dtype)
    total = aligned.sum(0)
    return _quaternion_to_axis_angle(total / total.norm(dim=-1, keepdim=True))


def pose_modes(answer: torch.Tensor, candidates: torch.Tensor, weights: torch.Tensor, count: int,
               max_angle: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The answer and `count` − 1 alternative poses, each with its share of the pose probability mass.

    `candidates` (N, M, 3) are every pose the model weighed (per answer of an
    ensemble member and crop: each bin's key pose + delta), `weights` (N, M) their
    probabilities (each answer's bins sum to 1 / answers). Hypothesis 0 is `answer`;
    its score is the mass within `max_angle` of it. Each next hypothesis is the
    unclaimed candidate with the most unclaimed mass within `max_angle` (ties: the
    earliest), placed at the weighted SO(3) mean of that mass, which it then claims.
    Scores therefore sum to at most 1; a 0 means no mass was left (the row is then
    a candidate already claimed: padding). Why: a front and a back view, or a symmetric
    object's turns, are modes of one bin distribution; the vote picks one, the
    others are what a client should try next, and hypothesis 0's score is a
    confidence that ranks views (overconfident on unseen meshes: the confidence
    bands of vantage.train.evaluate). Selection is
    a comparison one-hot (no ArgMax), as elsewhere in the bundle graph.
    Returns (axis-angle (N, count, 3), scores (N, count)).
    """
    cos_half = math.cos(max_angle / 2.0)
    w = weights / weights.sum(-1, keepdim=True)
    q = _axis_angle_to_quaternion(candidates)  # (N, M, 4)
    close = ((q @ q.transpose(-1, -2)).abs() >= cos_half).to(q.dtype)  # (N, M, M)
    m = candidates.shape[-2]
    earlier = torch.arange(m, 0, -1, dtype=q.dtype) * (1e-6 / m)  # breaks ties only
    near = ((q * _axis_angle_to_quaternion(answer).unsqueeze(-2)).sum(-1).abs() >= cos_half).to(q.dtype)
    free = 1.0 - near
    poses, scores = [answer], [(w * near).sum(-1)]
    for _ in range(count - 1):
        support = torch.where(free > 0, (close @ (w * free).unsqueeze(-1)).squeeze(-1), -torch.ones_like(w)) + earlier
        hot = (support >= support.max(-1, keepdim=True).values).to(q.dtype)
        anchor = (hot.unsqueeze(-1) * q).sum(-2)  # (N, 4)
        dot = (q * anchor.unsqueeze(-2)).sum(-1)
        claim = free * (dot.abs() >= cos_half).to(q.dtype)
        mass = w * claim
        total = (torch.where(dot.unsqueeze(-1) < 0, -q, q) * mass.unsqueeze(-1)).sum(-2)
        empty = total.norm(dim=-1, keepdim=True) < 1e-12
        mean = torch.where(empty, anchor, total)
        poses.append(_quaternion_to_axis_angle(mean / mean.norm(dim=-1, keepdim=True)))
        scores.append(mass.sum(-1))
        free = free - claim
    return torch.stack(poses, -2), torch.stack(scores, -1)
