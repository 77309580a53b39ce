"""Exponential moving average of the trained weights (Polyak & Juditsky 1992; as in Tan & Le 2019).

The pose heads learn a category's three or so training meshes far better than unseen ones (training
error ~7° against ~15°), and the last optimisation steps wander between solutions that fit those meshes
equally well. The average of the weights over the last epochs sits between them, which often generalises
better than any one of them (Izmailov et al. 2018). The average's time constant is given in epochs, so
that it means the same for any dataset or batch size; the frozen feature network never changes and is
not averaged, and integer buffers (batch-norm step counts) follow the model.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def decay_per_step(epochs: float, steps_per_epoch: int) -> float:
    """The per-step decay whose average forgets a weight by 1/e after `epochs` epochs."""
    if epochs <= 0 or steps_per_epoch < 1:
        raise ValueError(f"an average needs epochs > 0 and steps_per_epoch >= 1, got {epochs}, {steps_per_epoch}")
    return math.exp(-1.0 / (epochs * steps_per_epoch))


class WeightAverage:
    """Moving average of every floating-point tensor of a model's state outside `frozen` prefixes."""

    def __init__(self, model: nn.Module, decay: float, frozen: tuple[str, ...] = ("features.",)) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"decay must be in (0, 1), got {decay}")
        self.decay = decay
        self.shadow = {k: v.detach().clone() for k, v in model.state_dict().items()
                       if v.is_floating_point() and not k.startswith(frozen)}

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Move the average towards the model's current weights (after each optimiser step)."""
        state = model.state_dict()
        for k, v in self.shadow.items():
            v.lerp_(state[k], 1.0 - self.decay)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.shadow

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        if state.keys() != self.shadow.keys():
            raise ValueError(f"averaged weights do not fit the model: {sorted(state.keys() ^ self.shadow.keys())[:5]}")
        for k, v in state.items():
            self.shadow[k].copy_(v)
