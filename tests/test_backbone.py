"""The shipped ImageNet weights are really loaded: a cat photo is recognised as a cat."""

import numpy as np
import torch
from skimage import data

from vantage.imaging import IMAGENET_MEAN, IMAGENET_STD, crop_square, normalise
from vantage.train.backbone import TAP_CHANNELS, FeatureNetwork, load_efficientnet_lite0

CAT_CLASSES = set(range(281, 286))  # tabby, tiger cat, Persian, Siamese, Egyptian cat


def test_chelsea_is_a_cat_in_top5():
    net = load_efficientnet_lite0().eval()
    x = torch.from_numpy(normalise(crop_square(data.chelsea(), None, 224, 0.0)[None], IMAGENET_MEAN, IMAGENET_STD))
    with torch.no_grad():
        top5 = set(net(x).topk(5).indices[0].tolist())
    assert top5 & CAT_CLASSES, f"top-5 {top5} has no cat class: the weight mapping is broken"


def test_feature_network_tap_shapes_and_matches_full_network():
    net = load_efficientnet_lite0().eval()
    feat = FeatureNetwork(tap=14).eval()
    x = torch.randn(2, 3, 128, 128)
    with torch.no_grad():
        f = feat(x)
        ref = net._swish(net._bn0(net._conv_stem(x)))
        for block in net._blocks[:15]:
            ref = block(ref)
    assert f.shape == (2, TAP_CHANNELS[14], 4, 4)
    assert torch.allclose(f, ref, atol=1e-5)


def test_unknown_tap_is_refused():
    try:
        FeatureNetwork(tap=3, pretrained=False)
    except ValueError as exc:
        assert "tap block 3" in str(exc)
    else:
        raise AssertionError("tap 3 accepted")
