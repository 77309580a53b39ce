"""Deep ensembles over one frozen backbone: semantics, refusal of foreign members, the exported graph (real ORT)."""

import copy
from dataclasses import replace

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from tests.export_fixtures import SIZE, joint_model
from vantage.bundle import load_metadata
from vantage.export.onnx_export import export_bundle
from vantage.export.scopes import in_backbone
from vantage.geometry import axis_angle_to_rotation, chordal_mean, geodesic_distance, rotation_to_axis_angle
from vantage.train.ensemble import PoseEnsemble
from vantage.train.model import JointPoseNet
from vantage.train.geometry_torch import mirror_axis_angle, voting_mean
from vantage.train.test_time import FlipAveraged


@pytest.fixture(scope="module")
def members():
    first = joint_model()
    second = copy.deepcopy(first)
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():  # another member: same frozen features, other trunk and heads
        for name, p in second.named_parameters():
            if not name.startswith("features."):
                p.add_(0.05 * torch.randn(p.shape, generator=gen))
    return first, second


def _cluster_and_outlier(seed: int) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """Three rotations within a few degrees of each other, their chordal mean, and a front/back outlier."""
    rng = np.random.default_rng(seed)
    base = axis_angle_to_rotation(rng.normal(size=(50, 3)))
    cluster = [base] + [base @ axis_angle_to_rotation(rng.normal(scale=np.radians(6), size=(50, 3))) for _ in range(2)]
    mean = np.stack([chordal_mean(np.stack([r[i] for r in cluster])) for i in range(50)])
    return cluster, mean, base @ axis_angle_to_rotation(np.tile([0.0, 0.0, np.radians(170)], (50, 1)))


def _vote(rotations: list[np.ndarray]) -> np.ndarray:
    return axis_angle_to_rotation(voting_mean([torch.from_numpy(rotation_to_axis_angle(r)) for r in rotations],
                                              np.radians(45)).numpy())


@pytest.mark.parametrize("outlier_at", [0, 2, 3])
def test_voting_mean_of_a_cluster_is_its_rotation_mean_wherever_the_outlier_is(outlier_at):
    cluster, mean, far = _cluster_and_outlier(4)
    got = _vote(cluster[:outlier_at] + [far] + cluster[outlier_at:])
    assert np.max(geodesic_distance(got, mean)) < 0.05  # degrees: quaternion vs chordal mean of a tight cluster


def test_voting_mean_breaks_a_tie_towards_the_earlier_group():
    cluster, _, far = _cluster_and_outlier(5)
    a, b = cluster[0], cluster[1]
    other = far @ axis_angle_to_rotation(np.tile([0.0, np.radians(5), 0.0], (50, 1)))
    pair = np.stack([chordal_mean(np.stack([a[i], b[i]])) for i in range(50)])
    far_pair = np.stack([chordal_mean(np.stack([far[i], other[i]])) for i in range(50)])
    assert np.max(geodesic_distance(_vote([a, far, b, other]), pair)) < 0.05
    assert np.max(geodesic_distance(_vote([far, a, other, b]), far_pair)) < 0.05


def test_ensemble_averages_its_members_and_equals_one_member_twice(members):
    first, second = members
    x = torch.randn(3, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0))
    hint = torch.zeros(3, 12)
    hint[2, 1] = 1
    with torch.no_grad():
        probs, y, rot, emb, _, _ = PoseEnsemble([first, second])(x, hint)
        p1, y1, r1, e1, _, _ = first(x, hint)
        p2, y2, _, _, _, _ = second(x, hint)
        same = PoseEnsemble([first, copy.deepcopy(first)])(x, hint)
    torch.testing.assert_close(probs, (p1 + p2) / 2)
    torch.testing.assert_close(y, voting_mean([y1, y2], np.radians(45)))
    torch.testing.assert_close(emb, e1)
    assert np.max(geodesic_distance(rot.double().numpy(), r1.double().numpy())) > 0.1, "members differ (degrees)"
    torch.testing.assert_close(same[2], r1, atol=1e-5, rtol=0)


def test_flip_averaged_ensemble_votes_over_every_member_and_crop(members):
    """Member 1 and both mirrored answers can outvote member 0's plain answer (a nested mean never lets them)."""
    first, second = members
    x = torch.randn(5, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(2))
    hint = torch.zeros(5, 12)
    with torch.no_grad():
        probs, y, _, emb, _, _ = FlipAveraged(PoseEnsemble([first, second]))(x, hint)
        plain = [net(x, hint) for net in members]
        mirrored = [net(x.flip(-1), hint) for net in members]
    poses = [o[1] for o in plain] + [mirror_axis_angle(o[1]) for o in mirrored]
    torch.testing.assert_close(y, voting_mean(poses, np.radians(45)))
    torch.testing.assert_close(probs, torch.stack([o[0] for o in plain + mirrored]).mean(0))
    torch.testing.assert_close(emb, plain[0][3])


def _on_another_backbone(net: JointPoseNet) -> JointPoseNet:
    """`net`'s trunk and heads on a Lite1 feature network (random weights: only the layout matters here)."""
    torch.manual_seed(5)
    other = JointPoseNet(replace(net.config, backbone="efficientnet_lite1", tap=None, pretrained=False))
    other.load_state_dict({k: v for k, v in net.state_dict().items() if not k.startswith("features.")}, strict=False)
    return other.eval()


def test_members_on_another_feature_network_look_through_it(members):
    first, _ = members
    perturbed = copy.deepcopy(first)
    with torch.no_grad():
        next(perturbed.features.parameters()).add_(1.0)
    lite1 = _on_another_backbone(first)
    ensemble = PoseEnsemble([first, perturbed, lite1, copy.deepcopy(first)])
    assert ensemble.feature_index == (0, 1, 2, 0) and len(ensemble.more_features) == 2, "equal networks are shared"
    x = torch.randn(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(6))
    hint = torch.zeros(2, 12)
    with torch.no_grad():
        looks = ensemble.looks_at(x, hint)
        own = [net.looks(net.features(x), hint) for net in (first, perturbed, lite1)]
        assert not torch.allclose(first.features(x), perturbed.features(x)), "another network, other features"
    torch.testing.assert_close(looks.probs, torch.stack([own[0].probs, own[1].probs, own[2].probs, own[0].probs]).mean(0))
    for got, want in zip(looks.answers, [own[0], own[1], own[2], own[0]], strict=True):
        torch.testing.assert_close(got, want.answers[0])


def test_ensemble_refuses_too_few_members_or_another_input_size(members):
    first, _ = members
    with pytest.raises(ValueError, match="at least 2 members"):
        PoseEnsemble([first])
    other = JointPoseNet(replace(first.config, input_size=2 * SIZE, pretrained=False))
    with pytest.raises(ValueError, match="member 1 has other categories or input size"):
        PoseEnsemble([first, other])


def test_ensemble_on_two_feature_networks_runs_each_once_and_keeps_parity(members, tmp_path):
    first, second = members
    lite1 = _on_another_backbone(second)
    bundle = export_bundle(FlipAveraged(PoseEnsemble([first, lite1])), tmp_path / "two")
    assert load_metadata(bundle).training["export_parity_max_abs_diff"]["rotation"] < 1e-4
    graph = onnx.load(str(bundle / "model.onnx"))

    def convs(scope):
        return sum(n.op_type == "Conv" and scope in n.name for n in graph.graph.node)

    assert convs("/features/") == sum(isinstance(m, nn.Conv2d) for m in first.features.modules())
    assert convs("/more_features.0/") == sum(isinstance(m, nn.Conv2d) for m in lite1.features.modules())
    assert any(in_backbone(n.name) and "/more_features.0/" in n.name for n in graph.graph.node)


def test_ensemble_graph_runs_the_backbone_once_and_keeps_parity(members, tmp_path):
    first, second = members
    single = onnx.load(str(export_bundle(first, tmp_path / "one") / "model.onnx"))
    bundle = export_bundle(FlipAveraged(PoseEnsemble([first, second])), tmp_path / "two")
    meta = load_metadata(bundle)
    assert meta.ensemble_size == 2 and meta.test_time == "flip"
    assert meta.training["export_parity_max_abs_diff"]["rotation"] < 1e-4
    graph = onnx.load(str(bundle / "model.onnx"))

    def convs(proto, scope):
        return sum(n.op_type == "Conv" and scope in n.name for n in proto.graph.node)

    assert convs(graph, "/features/") == convs(single, "/features/") > 0, "one backbone pass"
    assert convs(graph, "/members.1/trunk") == convs(single, "/trunk") > 0
    assert any(in_backbone(n.name) and "/members.1/" in n.name for n in graph.graph.node)


def test_int8_variant_of_a_flip_averaged_ensemble_quantises_only_the_shared_backbone(small_renders, tmp_path):
    """The reference recipe's bundle shape (ensemble + flip) still gets a backbone-only int8 variant."""
    from vantage.export.quantize import build_variants
    from vantage.export.renders import load_renders

    first = joint_model(pretrained=True)
    second = copy.deepcopy(first)
    with torch.no_grad():
        for name, p in second.named_parameters():
            if not name.startswith("features."):
                p.mul_(1.1)
    bundle = export_bundle(FlipAveraged(PoseEnsemble([first, second])), tmp_path / "b")
    renders = load_renders(small_renders, load_metadata(bundle))
    result = build_variants(bundle, ["int8"], renders, renders, max_mederr_increase=180.0, repeats=1)
    assert "refused" not in result["int8"]
    graph = onnx.load(str(bundle / "model.int8.onnx")).graph
    producer = {o: n for n in graph.node for o in n.output}
    quantised = [n.input[0] for n in graph.node if n.op_type == "QuantizeLinear"]
    for q in quantised:  # the image batch (plain + mirrored crops, concatenated) and backbone activations only
        assert q == "image" or in_backbone(producer[q].name) or "image" in producer[q].input, producer[q].name

    def int8_convs(scope: str) -> tuple[int, int]:
        """(convolutions under `scope`, those of them with int8 weights: a DequantizeLinear gives their weight)."""
        convs = [n for n in graph.node if n.op_type == "Conv" and n.name.startswith(scope)]
        return len(convs), sum(n.input[1] in producer and producer[n.input[1]].op_type == "DequantizeLinear"
                               for n in convs)

    blocks, blocks_int8 = int8_convs("/features/blocks")
    assert blocks_int8 == blocks > 0, "the frozen blocks run in int8"
    for scope in ("/features/stem/", "/members.0/trunk", "/members.1/trunk"):  # as in a plain network
        convs, in_int8 = int8_convs(scope)
        assert convs > 0 and in_int8 == 0, f"{scope} stays float32"


@pytest.mark.slow
def test_members_on_two_backbones_train_on_their_own_caches_and_export_as_one(small_renders, tmp_path):
    from vantage.train.ensemble import exported_model, member_configs, train_members
    from vantage.train.trainer import TrainConfig, load_model

    cfg = TrainConfig(data=[str(small_renders)], out=str(tmp_path / "run"), epochs=1, batch_size=8,
                      augmented_copies=0, progress=False)
    cfg.model.input_size, cfg.model.head_hidden = SIZE, (32, 16)
    backbones = ("efficientnet_lite0", "efficientnet_lite1")
    checkpoints = train_members(cfg, 2, backbones)
    assert len(list((tmp_path / "run").glob("features-*.pt"))) == 2, "one feature cache per network, in one folder"
    trained = [load_model(c)[0].config for c in checkpoints]
    assert [(m.backbone, m.tap) for m in trained] == [("efficientnet_lite0", 14), ("efficientnet_lite1", 19)]
    model, _ = exported_model(checkpoints, "flip")
    assert model.net.feature_index == (0, 1) and len(model.net.more_features) == 1
    bundle = export_bundle(model, tmp_path / "bundle")
    assert load_metadata(bundle).ensemble_size == 2
    with pytest.raises(ValueError, match="2 backbones for 3 members"):
        member_configs(cfg, 3, backbones)
