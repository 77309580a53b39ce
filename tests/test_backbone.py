"""The shipped ImageNet weights are really loaded: a cat photo is recognised as a cat."""

import pytest
import torch
from skimage import data

from vantage.imaging import IMAGENET_MEAN, IMAGENET_STD, crop_square, normalise
from vantage.train.backbone import DEFAULT_TAPS, EFFICIENTNETS, FeatureNetwork, build_backbone, load_efficientnet

CAT_CLASSES = set(range(281, 286))  # tabby, tiger cat, Persian, Siamese, Egyptian cat


@pytest.mark.parametrize("name", EFFICIENTNETS)
def test_chelsea_is_a_cat_in_top5(name):
    net = load_efficientnet(name).eval()
    x = torch.from_numpy(normalise(crop_square(data.chelsea(), None, 224, 0.0)[None], IMAGENET_MEAN, IMAGENET_STD))
    with torch.no_grad():
        top5 = set(net(x).topk(5).indices[0].tolist())
    assert top5 & CAT_CLASSES, f"top-5 {top5} has no cat class: the weight mapping is broken"


def test_feature_network_tap_shapes_and_matches_full_network():
    net = load_efficientnet("efficientnet_lite0").eval()
    feat = FeatureNetwork(tap=14).eval()
    x = torch.randn(2, 3, 128, 128)
    with torch.no_grad():
        f = feat(x)
        ref = net._swish(net._bn0(net._conv_stem(x)))
        for block in net._blocks[:15]:
            ref = block(ref)
    assert f.shape == (2, feat.out_channels, 4, 4) and feat.out_channels == 192
    assert torch.allclose(f, ref, atol=1e-5)


def test_unknown_tap_is_refused_naming_the_choices():
    with pytest.raises(ValueError, match=r"tap block 3 not supported by efficientnet_lite0; choose one of \[4, 7, 10, 14, 15\]"):
        FeatureNetwork(tap=3, pretrained=False)
    with pytest.raises(ValueError, match=r"tap block 15 not supported by efficientnet_lite2; choose one of \[6, 10, 14, 19, 20\]"):
        FeatureNetwork(tap=15, pretrained=False, name="efficientnet_lite2")


@pytest.mark.parametrize("name", EFFICIENTNETS)
def test_default_split_freezes_all_but_the_last_block(name):
    """The default tap leaves one MBConv block to fine-tune, whatever the Lite variant's depth."""
    from vantage.train.model import ModelConfig

    tap = ModelConfig(backbone=name).tap
    assert tap == DEFAULT_TAPS[name]
    features, trunk, channels = build_backbone(name, tap, pretrained=False)
    assert len(trunk) == 1 and channels == trunk[0]._block_args.output_filters
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert trunk[0](features.eval()(x)).shape == (1, channels, 2, 2)
