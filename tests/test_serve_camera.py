"""Camera intrinsics in a request turn the pose to the optical axis: real server, in-process path, CLI."""

from __future__ import annotations

import json
import subprocess
import sys

import grpc
import numpy as np
import pytest

from test_serve_hypotheses import bin_bundle, images, served  # noqa: F401 (module fixtures: one bundle, one server)
from vantage.geometry import (CameraError, axis_angle_to_rotation, camera_matrix, quaternion_to_rotation, ray_rotation,
                              viewpoint_to_rotation)
from vantage.imaging import crop_rectified, decode_image, normalise
from vantage.serve.engine import PreparedInput, Predictor
from vantage.serve.results import PoseResult
from vantage.serve.predict import predict_files
from vantage.serve.protocol import make_request

CAMERA = (120.0, 110.0, 40.0, 30.0)  # fx, fy, cx, cy of the 96×80 test images
K = np.array([[120.0, 0.0, 40.0], [0.0, 110.0, 30.0], [0.0, 0.0, 1.0]])


def _rotation(values) -> np.ndarray:
    return np.asarray(values, np.float64).reshape(3, 3)


def _unturned(predictor: Predictor, image: bytes, box, camera) -> PoseResult:
    """The bundle's answer on the crop of the view turned to the box centre, not turned back."""
    meta = predictor.metadata
    crop = crop_rectified(decode_image(image), box, camera_matrix(camera), predictor.input_size, meta.crop_margin)
    tensor = normalise(crop[None], meta.mean, meta.std)[0]
    return predictor.run([PreparedInput(tensor, predictor.category_hint(None), None)])[0]


def test_the_answer_and_its_alternatives_are_turned_from_the_box_ray_to_the_axis(served, bin_bundle,  # noqa: F811
                                                                                  images):  # noqa: F811
    box = (50.0, 40.0, 90.0, 76.0)  # centre (70, 58): 14° right of and 14° below the principal point
    turn = ray_rotation(K, np.array([70.0, 58.0]))
    local = Predictor(bin_bundle)
    for image in images[:2]:
        seen = _unturned(local, image, box, CAMERA)  # what the network answers on the rectified crop
        turned = served.estimate(image, box=box, alternatives=3, camera=CAMERA)
        rotation = _rotation(turned.rotation)
        np.testing.assert_allclose(rotation, turn @ np.array(seen.rotation), atol=2e-5)
        # every form of the answer is of the turned rotation
        np.testing.assert_allclose(axis_angle_to_rotation(np.array(turned.axis_angle)), rotation, atol=2e-6)
        q = turned.quaternion
        np.testing.assert_allclose(quaternion_to_rotation(np.array([q.w, q.x, q.y, q.z])), rotation, atol=2e-6)
        v = turned.viewpoint
        np.testing.assert_allclose(viewpoint_to_rotation(v.azimuth, v.elevation, v.theta), rotation, atol=2e-5)
        assert len(turned.alternatives) == len(seen.alternatives) > 0
        for before, after in zip(seen.alternatives, turned.alternatives):
            np.testing.assert_allclose(_rotation(after.rotation), turn @ np.array(before.rotation), atol=2e-5)
            assert after.score == pytest.approx(before.score, abs=1e-6)
        # how sure it is of what it saw does not change with the turn
        assert turned.pose_confidence == pytest.approx(seen.pose_confidence, abs=1e-6)
        assert turned.category == seen.category


def test_an_object_on_the_axis_keeps_its_pose_and_no_box_means_the_image_centre(served, bin_bundle,  # noqa: F811
                                                                                 images):  # noqa: F811
    image = images[0]
    # a box centred on the principal point: the rectified crop is the square crop, nothing turns
    centred = served.estimate(image, box=(20.0, 10.0, 60.0, 50.0), camera=CAMERA)
    plain = served.estimate(image, box=(20.0, 10.0, 60.0, 50.0))
    np.testing.assert_allclose(_rotation(centred.rotation), _rotation(plain.rotation), atol=2e-6)
    whole = served.estimate(image, camera=CAMERA)  # the whole 96×80 image: its centre (48, 40)
    seen = _unturned(Predictor(bin_bundle), image, None, CAMERA)
    expected = ray_rotation(K, np.array([48.0, 40.0])) @ np.array(seen.rotation)
    np.testing.assert_allclose(_rotation(whole.rotation), expected, atol=2e-5)


@pytest.mark.parametrize("camera", [(0.0, 110.0, 40.0, 30.0), (120.0, -1.0, 40.0, 30.0), (120.0, 110.0, np.nan, 30.0)])
def test_impossible_intrinsics_are_invalid_and_the_server_keeps_serving(served, images, camera):  # noqa: F811
    with pytest.raises(grpc.RpcError) as err:
        served.estimate(images[0], camera=camera)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "camera must be 4 finite numbers (fx, fy, cx, cy) with fx, fy > 0" in err.value.details()
    assert served.estimate(images[0]).category


def test_both_predict_paths_and_the_command_line_turn_alike(bin_bundle, served, images, tmp_path):  # noqa: F811
    path = tmp_path / "a.jpg"
    path.write_bytes(images[1])
    box = (10.0, 12.0, 50.0, 70.0)
    (local,) = predict_files([path], model=bin_bundle, box=box, camera=CAMERA, alternatives=1)
    (remote,) = predict_files([path], server=served.target, box=box, camera=CAMERA, alternatives=1)
    assert local["rotation"] == remote["rotation"] and local["alternatives"] == remote["alternatives"]
    (plain,) = predict_files([path], model=bin_bundle, box=box)
    assert not np.allclose(local["rotation"], plain["rotation"], atol=1e-3)
    res = subprocess.run([sys.executable, "-m", "vantage", "predict", str(path), "--model", str(bin_bundle), "--box",
                          *map(str, box), "--camera", *map(str, CAMERA), "--json"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    assert json.loads(res.stdout)["rotation"] == local["rotation"]

    with pytest.raises(CameraError, match="got \\[120.0, 110.0, 40.0\\]"):
        predict_files([tmp_path / "never-read.jpg"], model=bin_bundle, camera=CAMERA[:3])
    with pytest.raises(ValueError, match="camera must have 4 numbers"):
        make_request(images[0], camera=(1.0, 2.0))
