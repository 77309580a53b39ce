"""Instance-adversarial pose features: gradient reversal, its ramp, the instance labels and the masked loss
(training with it: test_train.py)."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vantage.train.instance_adversary import instance_labels, instance_loss, reversal_scale, reverse_gradient


def test_reversal_is_the_identity_forward_and_turns_the_gradient_backward():
    x = torch.randn(4, 3, requires_grad=True)
    y = reverse_gradient(x, 0.5)
    assert torch.equal(y, x)
    (y * torch.arange(3.0)).sum().backward()
    assert torch.allclose(x.grad, -0.5 * torch.arange(3.0).expand(4, 3))


def test_the_reversal_ramps_from_nothing_to_nearly_one():
    assert reversal_scale(0.0) == 0.0
    assert 0.4 < reversal_scale(0.1) < 0.5 < 0.99 < reversal_scale(1.0) < 1.0
    assert all(reversal_scale(a) < reversal_scale(b) for a, b in [(0.05, 0.1), (0.1, 0.3), (0.3, 0.9)])


def test_instances_are_category_and_id_pairs():
    instance, category = instance_labels(["01", "02", "01", "01", "x"], np.array([3, 3, 0, 3, 0]))
    # the same id in two categories is two instances; numbered in sorted (category, id) order
    assert instance.tolist() == [2, 3, 0, 2, 1]
    assert category.tolist() == [0, 0, 3, 3]


def test_the_loss_chooses_among_the_view_s_category_s_instances_only():
    logits = torch.tensor([[2.0, 0.5, 9.0], [1.0, 3.0, -4.0], [0.3, 0.1, 5.0]])
    instance_category = torch.tensor([0, 0, 1])  # instances 0 and 1 are of category 0, instance 2 alone in 1
    categories, instance = torch.tensor([0, 0, 1]), torch.tensor([0, 1, 2])
    loss = instance_loss(logits, instance, categories, instance_category)
    # instance 2's logit (category 1) does not count for the category-0 views; the lone instance costs nothing
    expected = (F.cross_entropy(logits[:2, :2], instance[:2], reduction="sum") + 0.0) / 3
    assert loss.item() == pytest.approx(expected.item())
    assert math.isfinite(loss.item())
    logits.requires_grad_(True)
    instance_loss(logits, instance, categories, instance_category).backward()
    assert logits.grad[0, 2] == 0 and logits.grad[2].abs().sum() == 0 and logits.grad[0, 0] < 0


def test_the_model_reverses_the_instance_head_s_gradient_into_the_pose_features_only():
    from vantage.train.model import JointPoseNet, ModelConfig

    torch.manual_seed(0)
    model = JointPoseNet(ModelConfig(categories=["car", "chair"], input_size=64, instance_classes=3, pretrained=False))
    with torch.no_grad():
        feats = model.features(torch.randn(4, 3, 64, 64))

    def grads(scale: float) -> tuple[torch.Tensor, torch.Tensor]:
        model.zero_grad()
        logits, heads, coords, instances = model.forward_features(feats, reversal=scale)
        assert coords is None and instances.shape == (4, 3)
        (instances * torch.arange(3.0)).sum().backward()
        return model.pose_reduce[0].weight.grad.clone(), model.instance_head[-1].weight.grad.clone()

    reduce, head = grads(1.0)
    unreversed, same_head = grads(-1.0)
    assert reduce.abs().sum() > 0 and torch.allclose(reduce, -unreversed)
    assert torch.allclose(head, same_head)
    assert torch.allclose(grads(0.5)[0], 0.5 * reduce, atol=1e-7)
    assert len(model.forward_features(feats)) == 2, "without a reversal the training extras are not computed"
    with pytest.raises(ValueError, match="no instance head"):
        JointPoseNet(ModelConfig(categories=["car"], input_size=64, pretrained=False)).forward_features(feats, reversal=1.0)
