"""Training losses of the joint-pose and Bin & Delta papers, on category-fused head outputs.

Pose losses per head type (Bin & Delta paper): R_E Eq. 1, R_G Eq. 2, C Eq. 3,
M_S Eq. 5 / 11, M_G Eq. 6 / 12, M_LE Eq. 8 / 13, M_P Eq. 9–10 / 14 (the "+"
forms differ only in which delta is used, see `select_delta`). The joint loss
adds λ·cross-entropy of the category network (joint-pose paper, Sec. 3.2).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import torch
import torch.nn.functional as F

from vantage.train.geometry_torch import axis_angle_to_rotation, geodesic_distance
from vantage.train.heads import HeadOutput, decode, fuse, select_delta
from vantage.train.model import fusion_weights

if TYPE_CHECKING:
    from vantage.train.model import JointPoseNet

_TINY = 1e-8


class Targets(NamedTuple):
    """One batch of pose targets (see `vantage.train.keyposes.pose_targets`)."""

    rotation: torch.Tensor  # (N, 3, 3)
    axis_angle: torch.Tensor  # (N, 3)
    label: torch.Tensor | None = None  # (N,) nearest key pose
    soft: torch.Tensor | None = None  # (N, K) Eq. 9
    delta_simple: torch.Tensor | None = None  # (N, 3) Eq. 5
    delta_log: torch.Tensor | None = None  # (N, 3) Eq. 8


def _bin_nll(probs: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    """Cross-entropy L_c on (fused) bin probabilities."""
    return F.nll_loss(torch.log(probs.clamp_min(_TINY)), label)


def _delta_sq(fused: HeadOutput, label: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """‖δ* − δ^{l*}‖² with the delta of the ground-truth bin (Eq. 5, 8, 11, 13)."""
    onehot = F.one_hot(label, fused.bins.shape[-1]).to(fused.bins.dtype)
    return ((select_delta(fused.delta, onehot) - target) ** 2).sum(-1).mean()


def _probabilistic(fused: HeadOutput, key_poses: torch.Tensor, t: Targets, alpha: float) -> torch.Tensor:
    """M_P / M_P+ (Eq. 10 / 14): KL(p*‖p) + α Σ_k p_k L_p(y*, z_k + δ^k)."""
    p = fused.bins
    kl = (t.soft * (torch.log(t.soft.clamp_min(_TINY)) - torch.log(p.clamp_min(_TINY)))).sum(-1).mean()
    delta = fused.delta if fused.delta.dim() == 3 else fused.delta.unsqueeze(1)
    rot = axis_angle_to_rotation(key_poses + delta)  # (N, K, 3, 3)
    geo = geodesic_distance(rot, t.rotation.unsqueeze(1))
    return kl + alpha * (p * geo).sum(-1).mean()


def pose_loss(
    fused: HeadOutput, head: str, key_poses: torch.Tensor | None, t: Targets, alpha: float, simple: bool = False
) -> torch.Tensor:
    """The pose loss of `head` on fused outputs; `simple` swaps M_G for M_S (the paper's warm-up, §3.3)."""
    if head == "regression_g":
        return geodesic_distance(axis_angle_to_rotation(fused.axis_angle), t.rotation).mean()
    if head == "regression_e":
        return ((fused.axis_angle - t.axis_angle) ** 2).sum(-1).mean()
    if head == "bd_p":
        return _probabilistic(fused, key_poses, t, alpha)
    nll = _bin_nll(fused.bins, t.label)
    if head == "classification":
        return nll
    if head == "bd_s" or (head == "bd_g" and simple):
        return nll + alpha * _delta_sq(fused, t.label, t.delta_simple)
    if head == "bd_le":
        return nll + alpha * _delta_sq(fused, t.label, t.delta_log)
    if head == "bd_g":
        _, rot = decode(fused, head, key_poses)
        return nll + alpha * geodesic_distance(rot, t.rotation).mean()
    raise ValueError(f"no pose loss for head {head!r}")


def joint_loss(
    model: "JointPoseNet",
    logits: torch.Tensor,
    out: HeadOutput,
    t: Targets,
    category: torch.Tensor,
    oracle: bool,
    alpha: float,
    simple: bool = False,
    smoothing: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(pose loss, category CE, mean geodesic error of the decoded pose) of one batch.

    The pose loss is taken on the fused output, L_p(y*, y_wgt) or L_p(y*, y_top1)
    (joint-pose paper, Sec. 3.2), or with the oracle category network p = δ(c*)
    (Fig. 4, pose-first training). The caller weighs them, L = L_pose + λ·L_category.
    `smoothing` ε takes the category CE against (1 − ε)·δ(c*) + ε/C (label smoothing).
    """
    hint = F.one_hot(category, logits.shape[1]).to(logits.dtype)
    weights = hint if oracle else fusion_weights(torch.softmax(logits, 1), torch.zeros_like(hint), model.config.fusion)
    fused = fuse(out, weights)
    loss = pose_loss(fused, model.config.head, model.key_poses, t, alpha, simple)
    with torch.no_grad():
        err = geodesic_distance(model.decode(fused)[1], t.rotation).mean()
    return loss, F.cross_entropy(logits, category, label_smoothing=smoothing), err


def coordinate_loss(pred: torch.Tensor, target: torch.Tensor, min_cover: float = 0.25) -> torch.Tensor:
    """Object-coordinate auxiliary loss (vantage.train.coordinates) on the trunk's grid.

    `pred` (N, 4, g, g): x, y, z (through tanh: the frame is the unit ball) and a cover logit;
    `target` the same, with each cell's mean object point and the share of it the object covers
    (negative for views rendered without a map, which are left out). Smooth L1 on the points of
    cells at least `min_cover` covered, binary cross-entropy on the cover of every cell.
    """
    cover = target[:, 3:]
    valid = (cover >= 0).to(pred.dtype)
    bce = F.binary_cross_entropy_with_logits(pred[:, 3:], cover.clamp(0, 1), weight=valid, reduction="sum")
    on = (cover >= min_cover).to(pred.dtype)
    err = F.smooth_l1_loss(torch.tanh(pred[:, :3]), target[:, :3], beta=0.1, reduction="none")
    return bce / valid.sum().clamp_min(1) + (err * on).sum() / (3 * on.sum()).clamp_min(1)
