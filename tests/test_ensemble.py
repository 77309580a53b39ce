"""Deep ensembles over one frozen backbone: semantics, refusal of foreign members, the exported graph (real ORT)."""

import copy

import numpy as np
import onnx
import pytest
import torch

from tests.export_fixtures import SIZE, joint_model
from vantage.bundle import load_metadata
from vantage.export.onnx_export import export_bundle
from vantage.export.scopes import in_backbone
from vantage.geometry import axis_angle_to_rotation, chordal_mean, geodesic_distance, rotation_to_axis_angle
from vantage.train.ensemble import PoseEnsemble
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


def test_ensemble_refuses_members_with_another_backbone(members):
    first, _ = members
    other = copy.deepcopy(first)
    with torch.no_grad():
        next(other.features.parameters()).add_(1.0)
    with pytest.raises(ValueError, match="member 1 has another feature network"):
        PoseEnsemble([first, other])
    with pytest.raises(ValueError, match="at least 2 members"):
        PoseEnsemble([first])


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
