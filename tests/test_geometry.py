"""POSE.md pinned: worked examples, round trips, numpy/torch agreement, gradients at 0."""

import numpy as np
import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st

from vantage import geometry as g
from vantage.train import geometry_torch as gt

WORKED = [
    ((0, 0, 0), [[1, 0, 0], [0, 0, -1], [0, 1, 0]]),
    ((90, 0, 0), [[0, 1, 0], [0, 0, -1], [-1, 0, 0]]),
    ((0, 90, 0), [[1, 0, 0], [0, -1, 0], [0, 0, -1]]),
    ((0, 0, 30), [[0.866, 0, -0.5], [-0.5, 0, -0.866], [0, 1, 0]]),
]


@pytest.mark.parametrize("view,expected", WORKED)
def test_pose_md_worked_examples(view, expected):
    np.testing.assert_allclose(g.viewpoint_to_rotation(*view), expected, atol=1e-3)


def test_object_up_maps_to_image_up_at_front_view():
    r = g.viewpoint_to_rotation(0, 0, 0)
    assert np.allclose(r @ [0, 0, 1], [0, -1, 0])  # +z → camera −y (up in the image)
    # the camera sits at −y and looks along +y: object point (0,−1,0) is nearer than (0,1,0)
    c = 3 * g.camera_position(0, 0)
    assert (r @ (np.array([0, -1, 0]) - c))[2] < (r @ (np.array([0, 1, 0]) - c))[2]


def test_camera_position_matches_rotation():
    rng = np.random.default_rng(1)
    a, e, t = rng.uniform(0, 360, 200), rng.uniform(-90, 90, 200), rng.uniform(-180, 180, 200)
    r = g.viewpoint_to_rotation(a, e, t)
    np.testing.assert_allclose(g.rotation_to_camera_position(r), g.camera_position(a, e), atol=1e-12)
    # the camera centre maps to the camera origin: X_cam = R (C − C) = 0 and the object centre is in front
    c = 2.5 * g.camera_position(a, e)
    assert np.all(np.einsum("nij,nj->ni", r, -c)[:, 2] > 0)


@settings(max_examples=200, deadline=None)
@given(
    st.floats(0, 359.999), st.floats(-89.9, 89.9), st.floats(-179.9, 180.0),
)
def test_viewpoint_round_trip(a, e, t):
    r = g.viewpoint_to_rotation(a, e, t)
    a2, e2, t2 = g.rotation_to_viewpoint(r)
    np.testing.assert_allclose(g.viewpoint_to_rotation(a2, e2, t2), r, atol=1e-9)
    assert 0 <= a2 < 360 and -90 <= e2 <= 90 and -180 < t2 <= 180
    assert abs(e2 - e) < 1e-6


@pytest.mark.parametrize("e", [90.0, -90.0])
def test_viewpoint_at_poles(e):
    r = g.viewpoint_to_rotation(40, e, 20)
    a2, e2, t2 = g.rotation_to_viewpoint(r)
    assert a2 == 0 and abs(e2 - e) < 1e-9
    np.testing.assert_allclose(g.viewpoint_to_rotation(a2, e2, t2), r, atol=1e-9)


vec3 = st.tuples(*[st.floats(-1, 1)] * 3).map(np.array)


@settings(max_examples=200, deadline=None)
@given(vec3, st.floats(0, np.pi - 1e-9))
@example(np.array([0.0, 1.0, 1.0]), 3.140625)  # the near-π axis error the (R + I)/2 shortcut had
def test_axis_angle_round_trip_including_near_pi(axis, angle):
    n = np.linalg.norm(axis)
    if n < 1e-3:
        return
    v = axis / n * angle
    r = g.axis_angle_to_rotation(v)
    np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(r) == pytest.approx(1.0)
    back = g.rotation_to_axis_angle(r)
    assert g.geodesic_distance(g.axis_angle_to_rotation(back), r) < 1e-5
    np.testing.assert_allclose(back, v, atol=1e-7)  # below π the log is unique, near π included


def test_axis_angle_near_zero_and_exactly_pi():
    tiny = np.array([1e-9, -2e-9, 3e-9])
    np.testing.assert_allclose(g.rotation_to_axis_angle(g.axis_angle_to_rotation(tiny)), tiny, atol=1e-15)
    r = np.diag([1.0, -1.0, -1.0])  # rotation by π about x
    v = g.rotation_to_axis_angle(r)
    assert np.linalg.norm(v) == pytest.approx(np.pi)
    assert abs(abs(v[0]) - np.pi) < 1e-9



@pytest.mark.filterwarnings("error")
def test_axis_angle_batch_mixing_identity_and_pi_is_exact_and_quiet():
    v = np.array([[0.0, 0.0, 0.0], [0.0, 0.0, np.pi], [0.0, np.pi - 1e-4, 0.0], [1e-3, 0.0, 0.0]])
    np.testing.assert_allclose(g.rotation_to_axis_angle(g.axis_angle_to_rotation(v)), v, atol=1e-12)

@settings(max_examples=100, deadline=None)
@given(vec3.map(lambda v: v * 3.0))
def test_quaternion_round_trip_and_sign(v):
    r = g.axis_angle_to_rotation(v)
    q = g.rotation_to_quaternion(r)
    assert q[0] >= 0 and np.linalg.norm(q) == pytest.approx(1.0)
    assert g.geodesic_distance(g.quaternion_to_rotation(q), r) < 1e-5


def test_geodesic_distance_and_vector_angle():
    r1 = g.viewpoint_to_rotation(10, 20, 0)
    assert g.geodesic_distance(r1, r1) == pytest.approx(0.0, abs=1e-5)
    assert g.geodesic_distance(r1, g.viewpoint_to_rotation(10, 20, 30)) == pytest.approx(30.0)
    assert g.vector_angle([1, 0, 0], [0, 1, 0]) == pytest.approx(90.0)
    # equals ‖log(R1 R2ᵀ)‖ (POSE.md)
    r2 = g.viewpoint_to_rotation(70, -10, 45)
    ang = np.degrees(np.linalg.norm(g.rotation_to_axis_angle(r1 @ r2.T)))
    assert g.geodesic_distance(r1, r2) == pytest.approx(ang, abs=1e-6)


def test_torch_twin_agrees_with_numpy():
    rng = np.random.default_rng(3)
    v = rng.normal(size=(500, 3)) * 1.5
    v[:5] *= 1e-7  # near zero
    r_np = g.axis_angle_to_rotation(v)
    r_t = gt.axis_angle_to_rotation(torch.tensor(v)).numpy()
    np.testing.assert_allclose(r_t, r_np, atol=1e-12)
    r2 = g.axis_angle_to_rotation(rng.normal(size=(500, 3)))
    d_t = torch.rad2deg(gt.geodesic_distance(torch.tensor(r_np), torch.tensor(r2))).numpy()
    np.testing.assert_allclose(d_t, g.geodesic_distance(r_np, r2), atol=1e-3)


def test_torch_gradients_finite_at_zero():
    v = torch.zeros(4, 3, dtype=torch.float64, requires_grad=True)
    target = torch.tensor(g.axis_angle_to_rotation(np.array([[0.1, 0.2, 0.3]] * 4)))
    loss = gt.geodesic_distance(gt.axis_angle_to_rotation(v), target).sum()
    loss.backward()
    assert torch.isfinite(v.grad).all() and v.grad.abs().sum() > 0
    # and at the exact answer (acos at 1)
    w = torch.zeros(2, 3, dtype=torch.float64, requires_grad=True)
    gt.geodesic_distance(gt.axis_angle_to_rotation(w), torch.eye(3, dtype=torch.float64).expand(2, 3, 3)).sum().backward()
    assert torch.isfinite(w.grad).all()
    raw = torch.zeros(3, 3, requires_grad=True)
    gt.bound_axis_angle(raw).sum().backward()
    assert torch.isfinite(raw.grad).all()


def test_bound_axis_angle_stays_inside_pi_ball():
    raw = torch.randn(1000, 3) * 100
    y = gt.bound_axis_angle(raw)
    assert (y.norm(dim=1) < np.pi + 1e-6).all()
    small = torch.tensor([[1e-4, 0.0, 0.0]])
    assert torch.allclose(gt.bound_axis_angle(small), np.pi * small, rtol=1e-6)
