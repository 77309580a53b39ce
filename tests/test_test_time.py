"""Flip test-time averaging: SO(3) helpers, mirror equivariance, and the exported graph (real ORT)."""

import numpy as np
import onnx
import pytest
import torch

from tests.export_fixtures import SIZE, joint_model
from vantage.bundle import INPUT_HINT_NAME, INPUT_NAME, load_metadata
from vantage.export.onnx_export import export_bundle, ort_session
from vantage.export.scopes import in_backbone
from vantage.geometry import axis_angle_to_rotation, geodesic_distance, rotation_to_axis_angle
from vantage.train.geometry_torch import voting_mean, mirror_axis_angle
from vantage.train.test_time import FlipAveraged
from vantage.train.trainer import mirror_rotation


def random_axis_angles(n: int, seed: int, max_angle: float = np.pi) -> np.ndarray:
    rng = np.random.default_rng(seed)
    axis = rng.normal(size=(n, 3))
    axis /= np.linalg.norm(axis, axis=1, keepdims=True)
    return axis * rng.uniform(0, max_angle, size=(n, 1))


def test_mirror_axis_angle_is_the_conjugation_by_the_mirror():
    v = random_axis_angles(200, 0)
    got = axis_angle_to_rotation(mirror_axis_angle(torch.from_numpy(v)).numpy())
    np.testing.assert_allclose(got, mirror_rotation(axis_angle_to_rotation(v)), atol=1e-12)


def test_voting_mean_halves_close_pairs_and_keeps_the_first_of_far_ones():
    a = random_axis_angles(300, 1)
    r_a = axis_angle_to_rotation(a)
    offset = axis_angle_to_rotation(random_axis_angles(300, 2, max_angle=np.radians(80)))
    r_b = r_a @ offset
    b = torch.from_numpy(rotation_to_axis_angle(r_b))
    mid = voting_mean([torch.from_numpy(a), b], np.radians(45)).numpy()
    r_m = axis_angle_to_rotation(mid)
    d_ab = geodesic_distance(r_a, r_b)
    close = d_ab < 45
    assert 50 < close.sum() < 250, "both branches are exercised"
    np.testing.assert_allclose(geodesic_distance(r_m[close], r_a[close]), d_ab[close] / 2, atol=1e-5)
    np.testing.assert_allclose(geodesic_distance(r_m[close], r_b[close]), d_ab[close] / 2, atol=1e-5)
    np.testing.assert_allclose(r_m[~close], r_a[~close], atol=1e-9)
    assert np.all(np.linalg.norm(mid, axis=1) <= np.pi + 1e-6)


@pytest.fixture(scope="module")
def net():
    return joint_model()


def test_flip_averaged_matches_two_separate_passes(net):
    x = torch.randn(3, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0))
    hint = torch.zeros(3, 12)
    hint[1, 5] = 1
    with torch.no_grad():
        probs, y, rot, emb, _, _ = FlipAveraged(net, agree_deg=180.0)(x, hint)
        p1, y1, _, e1, _, _ = net(x, hint)
        p2, y2, _, _, _, _ = net(x.flip(-1), hint)
    torch.testing.assert_close(probs, (p1 + p2) / 2)
    torch.testing.assert_close(emb, e1)
    torch.testing.assert_close(y, voting_mean([y1, mirror_axis_angle(y2)], np.pi))
    np.testing.assert_allclose(rot.numpy(), axis_angle_to_rotation(y.double().numpy()), atol=1e-5)


def test_flip_averaged_model_is_mirror_equivariant(net):
    """Averaging with the mirror makes the answer for a mirrored crop exactly the mirrored answer."""
    x = torch.randn(4, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))
    hint = torch.zeros(4, 12)
    model = FlipAveraged(net, agree_deg=180.0)
    with torch.no_grad():
        rot, rot_m, plain = (m(t, hint)[2] for m, t in ((model, x), (model, x.flip(-1)), (net, x.flip(-1))))
    r, r_m = rot.double().numpy(), rot_m.double().numpy()
    # degrees: two float32 rotations equal to rounding still measure ~0.03° apart (arccos near 1: √(2·1e-7) rad)
    assert np.max(geodesic_distance(mirror_rotation(r), r_m)) < 0.1
    assert np.max(geodesic_distance(mirror_rotation(r), plain.double().numpy())) > 1.0, "the plain net is not (degrees)"


def test_flip_averaged_bundle_exports_with_parity_and_says_so(net, tmp_path):
    bundle = export_bundle(FlipAveraged(net), tmp_path / "b")
    meta = load_metadata(bundle)
    assert meta.test_time == "flip" and meta.embedding_dim == net.embedding_dim
    assert meta.training["export_parity_max_abs_diff"]["rotation"] < 1e-4
    proto = onnx.load(str(bundle / "model.onnx"))
    assert any(in_backbone(n.name) for n in proto.graph.node), "reduced-precision variants find the backbone"
    sess = ort_session(bundle / "model.onnx")
    for n in (1, 3):
        outs = sess.run(None, {INPUT_NAME: np.zeros((n, 3, SIZE, SIZE), np.float32),
                               INPUT_HINT_NAME: np.zeros((n, 12), np.float32)})
        assert [o.shape[0] for o in outs] == [n] * 6
    assert load_metadata(export_bundle(net, tmp_path / "plain")).test_time == "none"
