"""Gravity in a request levels the crop and, for upright objects, fixes elevation and roll: geometry,
real server, in-process path, CLI, evaluation."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import grpc
import numpy as np
import pytest

from test_serve_hypotheses import bin_bundle, images, served  # noqa: F401 (module fixtures: one bundle, one server)
from vantage.geometry import (GravityError, camera_matrix, checked_gravity, geodesic_distance, level_turn,
                              ray_rotation, rotation_between, stand_upright, viewpoint_to_rotation)
from vantage.imaging import crop_rectified, decode_image, normalise
from vantage.serve.engine import PreparedInput, Predictor
from vantage.serve.predict import predict_files
from vantage.serve.protocol import make_request

CAMERA = (120.0, 110.0, 40.0, 30.0)  # fx, fy, cx, cy of the 96×80 test images
K = camera_matrix(CAMERA)
TILTED = (0.5, 1.0, 0.3)  # gravity of a camera rolled by about 27° and pitched down


def _rotation(values) -> np.ndarray:
    return np.asarray(values, np.float64).reshape(3, 3)


def test_levelling_turns_gravity_straight_down_in_the_crop():
    for point in ([40.0, 30.0], [80.0, 70.0], [5.0, 10.0]):
        turn = ray_rotation(K, np.array(point))
        level = level_turn(turn, TILTED)
        g = level.T @ checked_gravity(TILTED)
        assert abs(g[0]) < 1e-12 and g[1] > 0.5  # down in the crop, still the same ray:
        np.testing.assert_allclose(level[:, 2], turn[:, 2], atol=1e-12)
    along = ray_rotation(K, np.array([80.0, 70.0]))
    np.testing.assert_allclose(level_turn(along, along[:, 2] + 0.01 * along[:, 0]), along)  # no direction to level


def test_standing_upright_is_the_nearest_pose_with_its_top_against_gravity():
    r = viewpoint_to_rotation(np.array([30.0, 200.0]), np.array([10.0, -40.0]), np.array([25.0, -170.0]))
    stood = stand_upright(r, TILTED)
    up = -checked_gravity(TILTED)
    np.testing.assert_allclose(stood[:, :, 2], np.stack([up, up]), atol=1e-12)
    # nearest: turned by no more than the angle between its top and `up` (which any upright pose needs)
    need = np.degrees(np.arccos(r[:, :, 2] @ up))
    np.testing.assert_allclose(geodesic_distance(stood, r), need, atol=1e-6)
    upright = viewpoint_to_rotation(70.0, 20.0, 0.0)  # a level camera: gravity is the object's -z in its axes
    np.testing.assert_allclose(stand_upright(upright, -upright[:, 2]), upright, atol=1e-12)
    flipped = rotation_between([0.0, 0.0, 1.0], [0.0, 0.0, -1.0])  # opposite directions: a half turn
    np.testing.assert_allclose(flipped @ [0.0, 0.0, 1.0], [0.0, 0.0, -1.0], atol=1e-12)
    assert geodesic_distance(flipped, np.eye(3)) == pytest.approx(180.0)


@pytest.mark.parametrize("gravity", [(0.0, 0.0, 0.0), (1.0, np.nan, 0.0), (1.0, 2.0)])
def test_bad_gravity_and_upright_without_it_are_refused(gravity):
    with pytest.raises(GravityError, match="gravity must be 3 finite numbers"):
        checked_gravity(gravity)
    with pytest.raises(GravityError, match="upright needs gravity"):
        checked_gravity(None, upright=True)
    assert checked_gravity(None) is None


def _levelled(predictor: Predictor, image: bytes, box, camera, gravity):
    """The bundle's answer on the levelled crop, not turned back, and the turn."""
    meta = predictor.metadata
    turn = level_turn(ray_rotation(camera_matrix(camera), np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2])),
                      gravity)
    crop = crop_rectified(decode_image(image), box, camera_matrix(camera), predictor.input_size, meta.crop_margin,
                          turn=turn)
    tensor = normalise(crop[None], meta.mean, meta.std)[0]
    return predictor.run([PreparedInput(tensor, predictor.category_hint(None), None)])[0], turn


def test_the_server_levels_the_crop_and_turns_the_answer_back(served, bin_bundle, images):  # noqa: F811
    box = (30.0, 20.0, 80.0, 70.0)
    local = Predictor(bin_bundle)
    for image in images[:2]:
        seen, turn = _levelled(local, image, box, CAMERA, TILTED)
        answer = served.estimate(image, box=box, alternatives=3, camera=CAMERA, gravity=TILTED)
        np.testing.assert_allclose(_rotation(answer.rotation), turn @ np.array(seen.rotation), atol=2e-5)
        for before, after in zip(seen.alternatives, answer.alternatives):
            np.testing.assert_allclose(_rotation(after.rotation), turn @ np.array(before.rotation), atol=2e-5)
        assert geodesic_distance(turn, ray_rotation(K, np.array([55.0, 45.0]))) > 20.0  # the crop was rolled
        stood = served.estimate(image, box=box, alternatives=3, camera=CAMERA, gravity=TILTED, upright=True)
        up = -checked_gravity(TILTED)
        for rotation in [stood.rotation] + [alt.rotation for alt in stood.alternatives]:
            np.testing.assert_allclose(_rotation(rotation)[:, 2], up, atol=2e-6)
        np.testing.assert_allclose(_rotation(stood.rotation), stand_upright(_rotation(answer.rotation), TILTED),
                                   atol=2e-5)
    # without a camera the box centre stands for the principal point: only the roll is turned
    seen, turn = _levelled(local, images[0], box, (1.0, 1.0, 55.0, 45.0), TILTED)
    plain = served.estimate(images[0], box=box, gravity=TILTED)
    np.testing.assert_allclose(_rotation(plain.rotation), turn @ np.array(seen.rotation), atol=2e-5)
    np.testing.assert_allclose(turn[:, 2], [0.0, 0.0, 1.0], atol=1e-12)


@pytest.mark.parametrize("gravity, upright, message", [((0.0, 0.0, 0.0), False, "gravity must be 3 finite numbers"),
                                                       ((np.inf, 1.0, 0.0), True, "gravity must be 3 finite numbers"),
                                                       (None, True, "upright needs gravity")])
def test_bad_gravity_is_invalid_and_the_server_keeps_serving(served, images, gravity, upright,  # noqa: F811
                                                             message):
    with pytest.raises(grpc.RpcError) as err:
        served.estimate(images[0], gravity=gravity, upright=upright)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and message in err.value.details()
    assert served.estimate(images[0]).category


def test_both_predict_paths_and_the_command_line_level_alike(bin_bundle, served, images, tmp_path):  # noqa: F811
    path = tmp_path / "a.jpg"
    path.write_bytes(images[1])
    box = (10.0, 12.0, 50.0, 70.0)
    sensors = {"camera": CAMERA, "gravity": TILTED, "upright": True}
    (local,) = predict_files([path], model=bin_bundle, box=box, alternatives=1, **sensors)
    (remote,) = predict_files([path], server=served.target, box=box, alternatives=1, **sensors)
    assert local["rotation"] == remote["rotation"] and local["alternatives"] == remote["alternatives"]
    np.testing.assert_allclose(np.array(local["rotation"])[:, 2], -checked_gravity(TILTED), atol=2e-6)
    res = subprocess.run([sys.executable, "-m", "vantage", "predict", str(path), "--model", str(bin_bundle), "--box",
                          *map(str, box), "--camera", *map(str, CAMERA), "--gravity", *map(str, TILTED), "--upright",
                          "--json"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    assert json.loads(res.stdout)["rotation"] == local["rotation"]
    with pytest.raises(GravityError, match="upright needs gravity"):
        predict_files([tmp_path / "never-read.jpg"], model=bin_bundle, upright=True)
    with pytest.raises(ValueError, match="gravity must have 3 numbers"):
        make_request(images[0], gravity=(1.0, 2.0))


def test_eval_with_gravity_reads_a_perfect_levelled_crop_back_to_each_label(tmp_path: Path) -> None:
    """Rolled views: a network that reads the levelled crop perfectly is exact once turned back, and
    stays so stood upright; the plain crops' truth is off by the roll."""
    from vantage.train.data import read_samples, view_turns
    from vantage.train.evaluate import with_turns
    from vantage.train.meshes import builtin_specs
    from vantage.train.off_axis import OffAxisConfig, make_off_axis
    from vantage.train.render import RenderConfig, render_dataset

    render_dataset(builtin_specs(1, ["car"]), tmp_path / "views", RenderConfig(image_size=96, views_per_model=4),
                   workers=1, progress=False)
    make_off_axis(tmp_path / "views", tmp_path / "rolled", OffAxisConfig(max_angle=20.0, max_roll=60.0, seed=3),
                  progress=False)
    samples = read_samples(tmp_path / "rolled", ["car"])
    labels = np.stack([s.rotation for s in samples])
    for camera in (False, True):
        turns = np.stack([turn for _, turn in view_turns(samples, camera=camera, gravity=True)])
        levelled = turns.transpose(0, 2, 1) @ labels  # what the levelled crops show

        def perfect(hints: np.ndarray) -> dict[str, np.ndarray]:
            return {"rotation": levelled}

        for upright in (False, True):
            back = with_turns(samples, perfect, camera=camera, gravity=True, upright=upright)(np.zeros((4, 1)))
            assert geodesic_distance(back["rotation"], labels).max() < 1e-3
        assert geodesic_distance(levelled, labels).max() > 20.0
    res = subprocess.run([sys.executable, "-m", "vantage", "eval", "--model", "unused", "--data", str(tmp_path / "rolled"),
                          "--upright"], capture_output=True, text=True, timeout=120)
    assert res.returncode != 0 and "upright needs gravity" in res.stderr
