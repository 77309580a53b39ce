"""Pose heads of the two Mahendran et al. papers, their category fusion and decoding to a rotation.

Head types (ModelConfig.head), all on the same pooled pose feature:
- "regression_g" / "regression_e": one 3-layer FC network → axis-angle, trained with
  the geodesic loss R_G or the Euclidean loss R_E (Bin & Delta paper, Eq. 2 / Eq. 1;
  joint-pose paper, Fig. 3b).
- "classification": a bin network over K-means key poses, y = z_l (baseline C, Eq. 3).
- "bd_s", "bd_g", "bd_le", "bd_p": Bin & Delta (Eq. 4): a bin network and a delta
  network, y = z_l + δ (Simple Eq. 5, Geodesic Eq. 6, Probabilistic Eq. 10) or
  y = log(exp(z_l)·exp(δ)) (Log-Euclidean, Eq. 7–8). With `per_bin_delta` the delta
  network has one output per bin, δ^l (the "+" models, Eq. 11–14). The paper's
  separate delta network per bin is realised as a per-bin output layer on a shared
  hidden trunk, which keeps 12 categories × K bins affordable on a CPU.

Category dependence (joint-pose paper, §4.3): one head per category, or one shared
head whose first hidden layer is widened to the same parameter count (the paper's
1024-12000-500-3 against 12 × 1024-1000-500-3).

Fusion (joint-pose paper, Eq. 1–2, applied to every head type): with category weights
w (probabilities, their top-1 one-hot, or the caller's hint) regression outputs are
averaged, y = Σ wᵢ yᵢ; bin heads average their bin probabilities and their deltas
per category, p = Σ wᵢ pᵢ and δ = Σ wᵢ δᵢ, before the bin is chosen. Bins are
chosen by a comparison one-hot (no ArgMax in the graph).
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import torch
from torch import nn

from vantage.train.geometry_torch import (
    axis_angle_to_rotation,
    bound_axis_angle,
    canonical_axis_angle,
    compose_axis_angle,
)

HEAD_TYPES = ("regression_g", "regression_e", "classification", "bd_s", "bd_g", "bd_le", "bd_p")
REGRESSION_HEADS = ("regression_g", "regression_e")
DELTA_HEADS = ("bd_s", "bd_g", "bd_le", "bd_p")


class HeadOutput(NamedTuple):
    """Raw head outputs with a category axis: (N, C, 3) / (N, C, B) / (N, C, 3) or (N, C, B, 3).

    After `fuse` the category axis is gone and `bins` holds probabilities, not logits.
    Fields a head type does not produce are None.
    """

    axis_angle: torch.Tensor | None = None
    bins: torch.Tensor | None = None
    delta: torch.Tensor | None = None


def mlp(in_dim: int, hidden: Sequence[int], out_dim: int) -> nn.Sequential:
    """FC d-h1-h2-out with BN + ReLU between layers (joint-pose paper, Fig. 3b)."""
    h1, h2 = hidden
    return nn.Sequential(
        nn.Linear(in_dim, h1), nn.BatchNorm1d(h1), nn.ReLU(),
        nn.Linear(h1, h2), nn.BatchNorm1d(h2), nn.ReLU(),
        nn.Linear(h2, out_dim),
    )


def mlp_parameters(in_dim: int, hidden: Sequence[int], out_dim: int) -> int:
    """Parameter count of `mlp` (weights, biases, BN affine)."""
    h1, h2 = hidden
    return in_dim * h1 + 3 * h1 + h1 * h2 + 3 * h2 + h2 * out_dim + out_dim


def matched_width(in_dim: int, hidden: Sequence[int], out_dim: int, copies: int) -> int:
    """First hidden width of one network with as many parameters as `copies` networks of `hidden`."""
    h1, h2 = hidden
    fixed = 3 * h2 + h2 * out_dim + out_dim
    return max(h1, round((copies * mlp_parameters(in_dim, hidden, out_dim) - fixed) / (in_dim + 3 + h2)))


class PoseHead(nn.Module):
    """One pose network: `net` gives the axis-angle (regression) or the bin logits; `delta` the residuals."""

    def __init__(self, in_dim: int, hidden: Sequence[int], head: str, num_bins: int, per_bin_delta: bool,
                 copies: int = 1) -> None:
        super().__init__()
        if head not in HEAD_TYPES:
            raise ValueError(f"head must be one of {HEAD_TYPES}, got {head!r}")
        self.head = head
        self.num_bins = num_bins
        self.delta_outputs = num_bins if per_bin_delta else 1
        main_out = 3 if head in REGRESSION_HEADS else num_bins
        self.net = mlp(in_dim, self._widen(in_dim, hidden, main_out, copies), main_out)
        self.delta = None
        if head in DELTA_HEADS:
            out = 3 * self.delta_outputs
            self.delta = mlp(in_dim, self._widen(in_dim, hidden, out, copies), out)

    @staticmethod
    def _widen(in_dim: int, hidden: Sequence[int], out_dim: int, copies: int) -> tuple[int, int]:
        return (matched_width(in_dim, hidden, out_dim, copies), hidden[1]) if copies > 1 else tuple(hidden)

    def forward(self, x: torch.Tensor) -> HeadOutput:
        main = self.net(x)
        if self.head in REGRESSION_HEADS:
            return HeadOutput(axis_angle=bound_axis_angle(main))
        if self.delta is None:
            return HeadOutput(bins=main)
        delta = bound_axis_angle(self.delta(x).reshape(-1, self.delta_outputs, 3))
        return HeadOutput(bins=main, delta=delta if self.delta_outputs > 1 else delta[:, 0])


def stack_heads(outputs: Sequence[HeadOutput], categories: int) -> HeadOutput:
    """Per-category outputs → one HeadOutput with a category axis; a shared head is repeated."""
    def stack(name: str) -> torch.Tensor | None:
        parts = [getattr(o, name) for o in outputs]
        if parts[0] is None:
            return None
        t = torch.stack(parts, 1)
        return t.expand(-1, categories, *t.shape[2:]) if len(parts) == 1 else t

    return HeadOutput(*(stack(n) for n in HeadOutput._fields))


def fuse(out: HeadOutput, weights: torch.Tensor) -> HeadOutput:
    """Category fusion with weights (N, C): Eq. 1 of the joint-pose paper on every output."""
    def mix(t: torch.Tensor | None) -> torch.Tensor | None:
        if t is None:
            return None
        w = weights.reshape(*weights.shape, *([1] * (t.dim() - 2)))
        return (t * w).sum(1)

    bins = None if out.bins is None else torch.softmax(out.bins, -1)
    return HeadOutput(mix(out.axis_angle), mix(bins), mix(out.delta))


def per_category(out: HeadOutput) -> HeadOutput:
    """Each category's own head output in fused form (bin probabilities), category axis kept."""
    return out._replace(bins=None if out.bins is None else torch.softmax(out.bins, -1))


def top1(probs: torch.Tensor) -> torch.Tensor:
    """One-hot of the largest entry along the last axis from a comparison (no ArgMax); ties share."""
    hot = (probs >= probs.max(-1, keepdim=True).values).to(probs.dtype)
    return hot / hot.sum(-1, keepdim=True)


def select_delta(delta: torch.Tensor, bins_onehot: torch.Tensor) -> torch.Tensor:
    """δ of the chosen bin: per-bin deltas (..., B, 3) weighted by a one-hot (..., B); a single δ as is."""
    if delta.dim() == bins_onehot.dim() + 1:
        return (delta * bins_onehot.unsqueeze(-1)).sum(-2)
    return delta


def decode(fused: HeadOutput, head: str, key_poses: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Fused outputs → (axis-angle (..., 3) with ‖y‖ ≤ π, rotation (..., 3, 3)).

    Bin heads take the most probable key pose z_l (Eq. 3) and add its delta:
    z_l + δ (Eq. 5, 6, 10) or, Log-Euclidean, log(exp(z_l)·exp(δ)) (Eq. 7).
    """
    if head in REGRESSION_HEADS:
        y = fused.axis_angle
        return y, axis_angle_to_rotation(y)
    hot = top1(fused.bins)
    z = hot @ key_poses
    if head == "classification":
        y = z
    elif head == "bd_le":
        y = compose_axis_angle(z, select_delta(fused.delta, hot))
    else:
        y = canonical_axis_angle(z + select_delta(fused.delta, hot))
    return y, axis_angle_to_rotation(y)


def candidates(fused: HeadOutput, head: str, key_poses: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Every pose a fused head weighs, with its probability: ((N, B, 3) axis-angle, (N, B)).

    A bin head's candidates are its B key poses, each with its own delta (one shared
    delta without `per_bin_delta`), weighted by the bin probabilities; a regression
    head has one candidate, its answer, of weight 1. `decode` answers with the most
    probable candidate; `vantage.train.geometry_torch.pose_modes` groups them into
    alternative hypotheses.
    """
    if head in REGRESSION_HEADS:
        return fused.axis_angle.unsqueeze(-2), torch.ones_like(fused.axis_angle[..., :1])
    z = key_poses.expand(*fused.bins.shape, 3)
    if head == "classification":
        return z, fused.bins
    delta = fused.delta if fused.delta.dim() == z.dim() else fused.delta.unsqueeze(-2).expand_as(z)
    y = compose_axis_angle(z, delta) if head == "bd_le" else canonical_axis_angle(z + delta)
    return y, fused.bins
