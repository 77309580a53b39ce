"""Pose hypotheses: the answer and its alternatives, each with its share of the pose probability mass."""

import math
import warnings

import numpy as np
import pytest
import torch

from tests.export_fixtures import SIZE
from vantage.bundle import load_metadata
from vantage.export.onnx_export import export_bundle, ort_session
from vantage.geometry import axis_angle_to_rotation, geodesic_distance, viewpoint_to_rotation, rotation_to_axis_angle
from vantage.train.ensemble import PoseEnsemble
from vantage.train.geometry_torch import mirror_axis_angle, pose_modes
from vantage.train.heads import HeadOutput, candidates
from vantage.train.model import JointPoseNet, ModelConfig
from vantage.train.test_time import FlipAveraged

AGREE = math.radians(45)


def _pose(azimuth: float, elevation: float = 20.0) -> np.ndarray:
    return rotation_to_axis_angle(viewpoint_to_rotation(np.array([azimuth]), np.array([elevation]), np.zeros(1)))[0]


def _deg(a, b) -> float:
    return float(geodesic_distance(axis_angle_to_rotation(np.asarray(a, np.float64)),
                                   axis_angle_to_rotation(np.asarray(b, np.float64))))


def test_front_and_back_modes_are_ranked_with_their_mass():
    """0.6 of the mass near azimuth 30°, 0.3 near the half turn 210°, 0.1 at 120°: three hypotheses, in that order."""
    poses = [_pose(25), _pose(35), _pose(205), _pose(215), _pose(120)]
    weights = [0.3, 0.3, 0.2, 0.1, 0.1]
    cands = torch.tensor(np.stack(poses), dtype=torch.float32)[None]
    answer = torch.tensor(_pose(30), dtype=torch.float32)[None]
    hyps, scores = pose_modes(answer, cands, torch.tensor([weights]), 4, AGREE)
    assert hyps.shape == (1, 4, 3) and scores.shape == (1, 4)
    assert torch.equal(hyps[0, 0], answer[0])
    np.testing.assert_allclose(scores[0].numpy(), [0.6, 0.3, 0.1, 0.0], atol=1e-5)
    assert _deg(hyps[0, 1], _pose(208.3)) < 1.0, "the back mode sits at its weighted mean (2:1 between 205° and 215°)"
    assert _deg(hyps[0, 2], _pose(120)) < 1e-3
    assert torch.isfinite(hyps).all(), "a padding row is a real pose, not NaN"


def test_weights_are_normalised_and_ties_take_the_earliest():
    same = torch.tensor(np.stack([_pose(10), _pose(190)]), dtype=torch.float32)[None]
    hyps, scores = pose_modes(torch.tensor(_pose(100), dtype=torch.float32)[None], same, torch.tensor([[2.0, 2.0]]), 3,
                              AGREE)
    np.testing.assert_allclose(scores[0].numpy(), [0.0, 0.5, 0.5], atol=1e-6)
    assert _deg(hyps[0, 1], _pose(10)) < 1e-3 and _deg(hyps[0, 2], _pose(190)) < 1e-3


def test_bin_head_candidates_are_key_poses_plus_their_deltas():
    keys = torch.tensor(np.stack([_pose(0), _pose(90), _pose(180)]), dtype=torch.float32)
    delta = torch.full((2, 3, 3), 0.01)
    bins = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
    poses, w = candidates(HeadOutput(bins=bins, delta=delta), "bd_p", keys)
    assert poses.shape == (2, 3, 3) and torch.equal(w, bins)
    assert _deg(poses[1, 2], keys[2] + 0.01) < 1e-3 and float(poses.norm(dim=-1).max()) <= math.pi + 1e-5
    shared, _ = candidates(HeadOutput(bins=bins, delta=delta[:, 0]), "bd_s", keys)
    torch.testing.assert_close(shared, poses)
    answer, one = candidates(HeadOutput(axis_angle=keys[:2]), "regression_g", None)
    assert answer.shape == (2, 1, 3) and torch.equal(one, torch.ones(2, 1))


@pytest.fixture(scope="module")
def bin_members():
    torch.manual_seed(0)
    cfg = ModelConfig(input_size=SIZE, head_hidden=(32, 16), pretrained=False, head="bd_p", num_bins=8,
                      per_bin_delta=True)
    nets = [JointPoseNet(cfg).eval() for _ in range(2)]
    nets[1].features.load_state_dict(nets[0].features.state_dict())
    keys = torch.tensor(np.stack([_pose(a, e) for a in range(0, 360, 90) for e in (0, 40)]), dtype=torch.float32)
    for net in nets:
        net.set_key_poses(keys.numpy())
    return nets


def test_flip_averaged_ensemble_weighs_every_look(bin_members):
    """The hypotheses pool all four looks (2 members × plain / mirrored crop), each look's bins worth 1/4."""
    x = torch.randn(3, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(4))
    hint = torch.zeros(3, 12)
    model = FlipAveraged(PoseEnsemble(bin_members))
    with torch.no_grad():
        _, y, _, _, hyps, scores = model(x, hint)
        plain = [net.looks_at(x, hint) for net in bin_members]
        mirrored = [net.looks_at(x.flip(-1), hint) for net in bin_members]
    cands = torch.cat([lk.candidates[0] for lk in plain] + [mirror_axis_angle(lk.candidates[0]) for lk in mirrored], 1)
    weights = torch.cat([lk.weights[0] for lk in plain + mirrored], 1)
    want, want_scores = pose_modes(y, cands, weights, hyps.shape[1], AGREE)
    torch.testing.assert_close(hyps, want)
    torch.testing.assert_close(scores, want_scores)
    assert torch.equal(hyps[:, 0], y) and float(scores.sum(1).max()) <= 1 + 1e-5


def test_bundle_graph_carries_the_hypotheses(bin_members, tmp_path):
    model = FlipAveraged(PoseEnsemble(bin_members))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bundle = export_bundle(model, tmp_path / "b")
    meta = load_metadata(bundle)
    assert meta.pose_hypotheses == 4 and meta.output_names[-2:] == ["pose_hypotheses", "hypothesis_scores"]
    assert meta.tensor_shapes()["pose_hypotheses"] == [4, 3]
    x = np.random.default_rng(5).normal(size=(6, 3, SIZE, SIZE)).astype(np.float32)
    hint = np.zeros((6, 12), np.float32)
    got = ort_session(bundle / "model.onnx").run(["pose_hypotheses", "hypothesis_scores", "axis_angle"],
                                                 {"image": x, "category_hint": hint})
    with torch.no_grad():
        ref = model(torch.from_numpy(x), torch.from_numpy(hint))
    np.testing.assert_allclose(got[1], ref[5].numpy(), atol=1e-4)
    assert np.max(geodesic_distance(axis_angle_to_rotation(got[0]), axis_angle_to_rotation(ref[4].double().numpy()))) < 0.01
    np.testing.assert_array_equal(got[0][:, 0], got[2])
