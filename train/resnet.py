"""ResNet-50 (He et al.), our own implementation, split where the joint-pose paper splits it.

The joint-pose paper (Sec. 3.1, 4.2) uses ResNet-50 up to stage 4 as the feature
network and stage 5 as the category network's trunk; its Table 3 also tries
features after stage 3 and stage 5. Stages follow the paper's numbering:
stage 1 = conv1 + pool, stages 2–5 = torchvision's layer1–layer4. Parameter names
match torchvision's `resnet50`, so a state dict the user saved from it (a local
file; nothing is downloaded) loads with `load_resnet50(weights=PATH)`.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

STAGE_CHANNELS = {3: 512, 4: 1024, 5: 2048}


class Bottleneck(nn.Module):
    """1×1 → 3×3 (stride) → 1×1 ×4 bottleneck with a projection shortcut where the shape changes."""

    expansion = 4

    def __init__(self, in_ch: int, width: int, stride: int = 1) -> None:
        super().__init__()
        out = width * self.expansion
        self.conv1, self.bn1 = nn.Conv2d(in_ch, width, 1, bias=False), nn.BatchNorm2d(width)
        self.conv2, self.bn2 = nn.Conv2d(width, width, 3, stride, 1, bias=False), nn.BatchNorm2d(width)
        self.conv3, self.bn3 = nn.Conv2d(width, out, 1, bias=False), nn.BatchNorm2d(out)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or in_ch != out:
            self.downsample = nn.Sequential(nn.Conv2d(in_ch, out, 1, stride, bias=False), nn.BatchNorm2d(out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return self.relu(y + (x if self.downsample is None else self.downsample(x)))


class ResNet50(nn.Module):
    """conv1/bn1/maxpool + layer1..layer4 (3, 4, 6, 3 bottlenecks); no classifier."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        in_ch, layers = 64, []
        for width, blocks, stride in ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)):
            layer = [Bottleneck(in_ch, width, stride)] + [Bottleneck(width * 4, width) for _ in range(blocks - 1)]
            layers.append(nn.Sequential(*layer))
            in_ch = width * 4
        self.layer1, self.layer2, self.layer3, self.layer4 = layers

    def stages(self) -> list[nn.Module]:
        """Stages 1..5 of the paper as modules."""
        return [nn.Sequential(self.conv1, self.bn1, self.relu, self.maxpool), self.layer1, self.layer2, self.layer3,
                self.layer4]


def load_resnet50(weights: str | Path | None = None) -> ResNet50:
    """Random init, or a local torchvision-layout state dict (its `fc.*` entries are ignored)."""
    net = ResNet50()
    if weights:
        state = torch.load(weights, map_location="cpu", weights_only=True)
        state = {k: v for k, v in state.items() if not k.startswith("fc.")}
        net.load_state_dict(state)
    return net


class ResNetFeatures(nn.Module):
    """Stages 1..`split` of ResNet-50: the frozen feature network (split 4 in the joint-pose paper)."""

    def __init__(self, net: ResNet50, split: int) -> None:
        super().__init__()
        if split not in STAGE_CHANNELS:
            raise ValueError(f"ResNet-50 split after stage {split} not supported; choose one of {sorted(STAGE_CHANNELS)}")
        self.stages = nn.Sequential(*net.stages()[:split])
        self.out_channels = STAGE_CHANNELS[split]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(x)
