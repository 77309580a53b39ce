"""Sharpness-aware minimisation: where it moves the weights, what it leaves alone (a run with it: test_train.py)."""

import pytest
import torch
from torch import nn

from vantage.train.sharpness import perturbed


def _net_with_gradients() -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 1))
    net[2].weight.requires_grad_(False)  # a frozen weight holds no gradient
    net(torch.randn(8, 3)).pow(2).mean().backward()
    return net


def test_the_weights_move_rho_along_the_gradient_and_come_back_exactly():
    net = _net_with_gradients()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    params = list(net.parameters())
    grads = {name: p.grad.clone() for name, p in net.named_parameters() if p.grad is not None}
    norm = torch.sqrt(sum(g.pow(2).sum() for g in grads.values()))
    with perturbed(params, 0.05, net):
        moved = {name: p.detach() - before[name] for name, p in net.named_parameters()}
        total = torch.sqrt(sum(m.pow(2).sum() for m in moved.values()))
        assert total == pytest.approx(0.05, rel=1e-5)
        for name, g in grads.items():
            assert torch.allclose(moved[name], 0.05 * g / norm, atol=1e-7)
        assert torch.equal(moved["2.weight"], torch.zeros_like(moved["2.weight"]))
        net(torch.randn(8, 3) * 5 + 3)  # a batch far from the first: running statistics would move
        assert torch.equal(net[1].running_mean, before["1.running_mean"])
        assert torch.equal(net[1].running_var, before["1.running_var"])
    assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items() if "num_batches" not in k)
    assert net[1].momentum == 0.1
    net(torch.randn(8, 3) * 5 + 3)  # outside the block they do
    assert not torch.equal(net[1].running_mean, before["1.running_mean"])


def test_a_radius_of_zero_or_less_is_refused():
    net = _net_with_gradients()
    with pytest.raises(ValueError, match="rho must be > 0"):
        with perturbed(list(net.parameters()), 0.0, net):
            pass
