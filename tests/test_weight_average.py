"""The moving average of trained weights: its arithmetic and its refusals (a run with it: test_train.py)."""

import math

import pytest
import torch
from torch import nn

from vantage.train.weight_average import WeightAverage, decay_per_step


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))


def test_the_average_follows_the_closed_form_and_skips_frozen_and_integer_tensors():
    net = _net()
    start = {k: v.clone() for k, v in net.state_dict().items()}
    avg = WeightAverage(net, decay=0.9, frozen=("0.bias",))
    assert "0.bias" not in avg.state_dict() and "1.num_batches_tracked" not in avg.state_dict()
    with torch.no_grad():
        for _ in range(3):
            net[0].weight.add_(1.0)
            avg.update(net)
    # after steps to w0+1, w0+2, w0+3: w0 + 0.1·(0.81·1 + 0.9·2 + 3) = w0 + 0.561
    assert torch.allclose(avg.state_dict()["0.weight"], start["0.weight"] + 0.561, atol=1e-6)
    assert torch.equal(avg.state_dict()["1.weight"], start["1.weight"])  # unchanged weights average to themselves


def test_decay_forgets_by_one_over_e_after_the_given_epochs_and_bad_settings_are_refused():
    assert decay_per_step(2.0, 50) ** 100 == pytest.approx(math.exp(-1))
    with pytest.raises(ValueError, match="epochs > 0"):
        decay_per_step(0.0, 10)
    with pytest.raises(ValueError, match="decay must be in"):
        WeightAverage(_net(), decay=1.0)
    with pytest.raises(ValueError, match="do not fit"):
        WeightAverage(_net(), 0.5).load_state_dict({"0.weight": torch.zeros(4, 3)})
