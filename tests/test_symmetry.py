"""Symmetries of a mesh about its up axis and the symmetry-reduced pose error (train/symmetry.py)."""

import numpy as np
import pytest
import trimesh

from vantage.geometry import geodesic_distance, viewpoint_to_rotation
from vantage.train.meshes import normalise_mesh
from vantage.train.symmetry import (
    rotation_about_z,
    symmetry_group,
    symmetry_reduced_errors,
    z_symmetry_angles,
)


def test_rotation_about_z_turns_x_towards_y():
    np.testing.assert_allclose(rotation_about_z(90.0) @ [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(rotation_about_z(180.0), np.diag([-1.0, -1.0, 1.0]), atol=1e-12)


@pytest.mark.parametrize(
    "mesh,expected",
    [
        (trimesh.creation.box(extents=(1.2, 0.5, 0.35)), [180.0]),  # a table top: front and back alike
        (trimesh.creation.box(extents=(0.8, 0.8, 0.35)), [90.0, 180.0, 270.0]),  # a square one
        (trimesh.creation.cylinder(radius=0.3, height=1.0, sections=64), list(np.arange(30.0, 331.0, 10.0))),
    ],
)
def test_detects_the_rotations_that_map_the_surface_onto_itself(mesh, expected):
    assert z_symmetry_angles(normalise_mesh(mesh)) == pytest.approx(expected)


def test_an_asymmetric_mesh_has_none():
    body = trimesh.creation.box(extents=(1.2, 0.5, 0.35))
    cab = trimesh.creation.box(extents=(0.3, 0.5, 0.4))
    cab.apply_translation((0.45, 0.0, 0.35))  # a cab at one end only: front and back differ
    assert z_symmetry_angles(normalise_mesh(trimesh.util.concatenate([body, cab]))) == []


def test_reduced_error_forgives_only_the_group():
    true = viewpoint_to_rotation(np.array([30.0, 200.0]), np.array([10.0, 20.0]), np.array([0.0, 5.0]))
    # predictions: the view from the opposite side (azimuth + 180°), and one 20° off in azimuth
    pred = viewpoint_to_rotation(np.array([210.0, 220.0]), np.array([10.0, 20.0]), np.array([0.0, 5.0]))
    plain = geodesic_distance(pred, true)
    half_turn = symmetry_group([180.0])
    reduced = symmetry_reduced_errors(pred, true, [half_turn, half_turn])
    assert plain[0] > 170 and reduced[0] == pytest.approx(0.0, abs=1e-6)
    assert reduced[1] == pytest.approx(plain[1])  # 20° off is not explained by a half turn
    np.testing.assert_allclose(symmetry_reduced_errors(pred, true, [symmetry_group([])] * 2), plain)
