"""Sharpness-aware minimisation (SAM; Foret et al., ICLR 2021, Eq. 2-3), a lever against over-fitting.

The pose heads fit a category's three training meshes to ~7° while unseen meshes stay at ~15°.
SAM takes each step with the gradient at the worst nearby weights, w + ρ·g/‖g‖ (the first-order
solution of max over ‖ε‖ ≤ ρ of the loss), which prefers flat minima: those generalise better in
the paper, most where data are few. One step costs two forward and backward passes.

`perturbed` moves the trainable weights to that point for the second pass and back afterwards; the
second pass leaves batch-norm running statistics alone, so that they keep following the real weights
(the first pass updates them as usual).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import nn


@contextmanager
def perturbed(params: Sequence[nn.Parameter], rho: float, model: nn.Module) -> Iterator[None]:
    """Weights at w + ρ·g/‖g‖ (g: the gradients they hold, ‖·‖ over all of them) inside the block, w after it.

    Parameters without a gradient stay where they are; `model`'s batch norms do not update their
    running statistics inside the block.
    """
    if rho <= 0:
        raise ValueError(f"rho must be > 0, got {rho}")
    with torch.no_grad():
        grads = [(p, p.grad) for p in params if p.grad is not None]
        norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for _, g in grads])) if grads else 0.0
        saved = [(p, p.detach().clone()) for p, _ in grads]  # restored exactly, not by subtracting
        for p, g in grads:
            p.add_(g, alpha=float(rho / (norm + 1e-12)))
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.momentum = 0.0  # running = (1 - 0)·running + 0·batch: unchanged
    try:
        yield
    finally:
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
        with torch.no_grad():
            for p, w in saved:
                p.copy_(w)
