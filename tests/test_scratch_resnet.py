"""The image-graphics paper's from-scratch CNN and the ResNet-50 feature network split of the joint-pose paper."""

import numpy as np
import pytest
import torch

from vantage.train.model import JointPoseNet, ModelConfig
from vantage.train.resnet import load_resnet50
from vantage.train.scratch_cnn import ScratchCNN, camera_loss


def test_scratch_cnn_regresses_unit_camera_positions():
    torch.manual_seed(0)
    net = ScratchCNN(input_size=32, dropout=0.0)
    x = torch.randn(8, 3, 32, 32)
    target = torch.nn.functional.normalize(torch.randn(8, 3), dim=1)
    out = net(x)
    assert out.shape == (8, 3) and torch.allclose(out.norm(dim=1), torch.ones(8), atol=1e-5)
    assert [m.out_channels for m in net.conv if isinstance(m, torch.nn.Conv2d)] == [20, 50, 100, 150]
    opt = torch.optim.Adam(net.parameters(), 3e-3)
    first = float(camera_loss(net(x), target))
    for _ in range(60):
        opt.zero_grad()
        camera_loss(net(x), target).backward()
        opt.step()
    assert float(camera_loss(net(x), target)) < first / 2, "it can fit a small batch"


@pytest.mark.slow
def test_resnet50_split_after_stage4_loads_local_weights(tmp_path):
    net = load_resnet50()
    assert sum(p.numel() for p in net.parameters()) == 23_508_032  # ResNet-50 without its classifier
    weights = tmp_path / "r50.pt"
    torch.save({**net.state_dict(), "fc.weight": torch.zeros(1000, 2048)}, weights)  # torchvision layout
    cfg = ModelConfig(categories=["car", "chair"], input_size=64, head_hidden=(32, 16), backbone="resnet50", tap=4,
                      backbone_weights=str(weights), head="bd_g", num_bins=4)
    model = JointPoseNet(cfg).eval()
    assert torch.equal(model.features.stages[0][0].weight, net.conv1.weight)
    assert model.features.out_channels == 1024 and model.features(torch.zeros(1, 3, 64, 64)).shape[1] == 1024
    assert len(model.trunk) == 1 and model.trunk[0] is not None  # stage 5 is the fine-tuned trunk
    with torch.no_grad():
        probs, y, rot, emb, _, _ = model(torch.zeros(2, 3, 64, 64), torch.zeros(2, 2))
    assert np.allclose(probs.sum(1).numpy(), 1.0, atol=1e-5) and rot.shape == (2, 3, 3) and emb.shape[0] == 2
