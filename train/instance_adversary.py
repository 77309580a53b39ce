"""Instance-adversarial pose features (`TrainConfig.instance_adversary`).

Why: a category has only a few training meshes (two to seven real ones), and the pose heads learn
each by heart (training error ~7° against ~15° on unseen meshes). Treating every training mesh
as a domain of its own, domain-adversarial training (Ganin & Lempitsky 2015, "Unsupervised domain
adaptation by backpropagation"; for domain generalisation, Li et al. 2018) trains a small
classifier to tell a view's instance among its category's instances from the pose heads' input,
and reverses its gradient into the trunk: the pose features are pushed to carry the pose without
the instance's identity, so the heads cannot map pose per memorised instance. The classifier
chooses only within the view's category, so the category stays in the features.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F


class _ReverseGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return -ctx.scale * grad, None


def reverse_gradient(x: torch.Tensor, scale: float) -> torch.Tensor:
    """The identity forward; backward, the gradient times −`scale` (Ganin & Lempitsky 2015, Eq. 12)."""
    return _ReverseGradient.apply(x, scale)


def reversal_scale(progress: float) -> float:
    """Ganin & Lempitsky's ramp 2 / (1 + exp(−10 p)) − 1 over training progress p in [0, 1]: the adversary's
    push starts at 0, while its classifier and the pose heads are still untrained, and nears 1 by a third in."""
    return 2.0 / (1.0 + math.exp(-10.0 * progress)) - 1.0


def instance_labels(model_ids: Sequence[str], categories: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(each view's instance index (N,), each instance's category (I,)): an instance is a (category, model id)
    pair, numbered in sorted order."""
    keys = list(zip(np.asarray(categories).tolist(), model_ids))
    ordered = sorted(set(keys))
    index = {k: i for i, k in enumerate(ordered)}
    return np.array([index[k] for k in keys], np.int64), np.array([c for c, _ in ordered], np.int64)


def instance_loss(logits: torch.Tensor, instance: torch.Tensor, categories: torch.Tensor,
                  instance_category: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of each view's instance among its own category's instances only (the other
    categories' logits masked out), so that fooling it never asks the features to drop the category;
    a category with one training instance costs nothing."""
    same = instance_category[None, :] == categories[:, None]
    return F.cross_entropy(logits.masked_fill(~same, float("-inf")), instance)
