"""Symmetries of a mesh about its up axis and the symmetry-reduced pose error (train/symmetry.py)."""

import numpy as np
import pytest
import trimesh

from vantage.geometry import geodesic_distance, rotation_to_viewpoint, viewpoint_to_rotation
from vantage.train.meshes import normalise_mesh
from vantage.train.symmetry import (
    ZSymmetry,
    canonical_rotations,
    detect_z_symmetry,
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


def test_a_body_of_revolution_is_continuous_and_a_table_is_not():
    cylinder = detect_z_symmetry(normalise_mesh(trimesh.creation.cylinder(radius=0.3, height=1.0, sections=64)))
    table = detect_z_symmetry(normalise_mesh(trimesh.creation.box(extents=(1.2, 0.5, 0.35))))
    assert cylinder.continuous and not table.continuous and table.angles == (180.0,)
    assert ZSymmetry.from_dict(table.to_dict()) == table


_AZIMUTHS = np.array([10.0, 100.0, 170.0, 200.0, 275.0, 350.0])
_VIEWS = viewpoint_to_rotation(_AZIMUTHS, np.array([20.0, -10.0, 30.0, 5.0, 40.0, 55.0]),
                               np.array([3.0, -5.0, 0.0, 1.0, 2.0, -8.0]))


@pytest.mark.parametrize(
    "symmetry,azimuths",
    [
        (ZSymmetry(), _AZIMUTHS),
        (ZSymmetry((180.0,)), [10.0, 280.0, 350.0, 20.0, 275.0, 350.0]),
        (ZSymmetry((90.0, 180.0, 270.0)), [10.0, 10.0, 350.0, 20.0, 5.0, 350.0]),
        (ZSymmetry(tuple(np.arange(30.0, 331.0, 10.0)), continuous=True), np.zeros(6)),
    ],
)
def test_canonical_pose_is_the_equivalent_one_nearest_the_front(symmetry, azimuths):
    canonical = canonical_rotations(_VIEWS, symmetry)
    azimuth, elevation, theta = rotation_to_viewpoint(canonical)
    np.testing.assert_allclose((azimuth - np.asarray(azimuths) + 180) % 360 - 180, 0.0, atol=1e-9)
    _, elevation0, theta0 = rotation_to_viewpoint(_VIEWS)
    np.testing.assert_allclose(elevation, elevation0, atol=1e-9)  # a turn about the up axis moves only azimuth
    np.testing.assert_allclose(theta, theta0, atol=1e-9)


def test_indistinguishable_labels_become_one_and_mirroring_keeps_them_canonical():
    half_turn = ZSymmetry((180.0,))
    canonical = canonical_rotations(_VIEWS, half_turn)
    turned = canonical_rotations(_VIEWS @ rotation_about_z(180.0), half_turn)  # the same images, other labels
    np.testing.assert_allclose(turned, canonical, atol=1e-12)
    np.testing.assert_allclose(canonical_rotations(canonical, half_turn), canonical, atol=1e-12)
    mirror = np.diag([-1.0, 1.0, 1.0])  # the trainer's flip: R ↦ F·R·F negates azimuth
    np.testing.assert_allclose(canonical_rotations(mirror @ _VIEWS @ mirror, half_turn),
                               mirror @ canonical @ mirror, atol=1e-12)
