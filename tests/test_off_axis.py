"""Objects off the optical axis: the crop-to-camera turn, re-imaged renders and their labels, `eval --camera`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from vantage.geometry import geodesic_distance, ray_rotation, viewpoint_to_rotation
from vantage.train.data import read_samples
from vantage.train.meshes import builtin_spec
from vantage.train.off_axis import OffAxisConfig, make_off_axis, roll, turn

from test_render import iou, project_mask, read_mask

K = np.array([[400.0, 0.0, 310.0], [0.0, 420.0, 250.0], [0.0, 0.0, 1.0]])
K_CENTRED = np.array([[150.0, 0.0, 60.0], [0.0, 150.0, 45.0], [0.0, 0.0, 1.0]])  # principal point (60, 45)


def test_the_ray_rotation_is_the_smallest_turn_of_the_axis_onto_the_ray() -> None:
    points = np.array([[310.0, 250.0], [710.0, 250.0], [0.0, 0.0], [500.0, 90.0]])
    q = ray_rotation(K, points)
    ray = np.linalg.solve(K, np.c_[points, np.ones(4)].T).T
    np.testing.assert_allclose(q[..., 2], ray / np.linalg.norm(ray, axis=1, keepdims=True), atol=1e-12)
    np.testing.assert_allclose(q @ np.swapaxes(q, 1, 2), np.broadcast_to(np.eye(3), q.shape), atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(q), 1.0)
    np.testing.assert_allclose(q[0], np.eye(3), atol=1e-12)  # at the principal point: no turn
    np.testing.assert_allclose(geodesic_distance(q[1], np.eye(3)), 45.0)  # 400 px right at f = 400
    # smallest: the turn's axis lies in the image plane, so nothing rolls about the ray
    axis = np.stack([q[:, 2, 1] - q[:, 1, 2], q[:, 0, 2] - q[:, 2, 0], q[:, 1, 0] - q[:, 0, 1]], 1)
    np.testing.assert_allclose(axis[:, 2], 0.0, atol=1e-12)


def test_a_crop_rotation_becomes_the_camera_rotation_of_a_turned_camera() -> None:
    crop = viewpoint_to_rotation(40.0, 15.0, 5.0)
    q = turn(25.0, 120.0)
    centre = (K @ q[:, 2])[:2] / (K @ q[:, 2])[2]  # where the turned camera sees the object's centre
    np.testing.assert_allclose(ray_rotation(K, centre) @ crop, q @ crop, atol=1e-12)
    assert geodesic_distance(q, np.eye(3)) == pytest.approx(25.0)
    assert np.degrees(np.arctan2(q[1, 2], q[0, 2])) == pytest.approx(120.0)  # towards lower left in the image


def test_re_imaged_views_keep_labels_that_reproduce_their_silhouettes(car_chair_renders: Path) -> None:
    make_off_axis(car_chair_renders / "views", car_chair_renders / "turned", OffAxisConfig(max_angle=40.0, seed=1), progress=False)
    source = [json.loads(line) for line in (car_chair_renders / "views" / "manifest.jsonl").open()]
    turned = [json.loads(line) for line in (car_chair_renders / "turned" / "manifest.jsonl").open()]
    assert len(turned) == len(source) == 6
    assert max(r["off_axis_deg"] for r in turned) > 10.0
    with pytest.raises(ValueError, match="would replace the views it re-images"):
        make_off_axis(car_chair_renders / "views", car_chair_renders, OffAxisConfig(), progress=False)
    assert (car_chair_renders / "views" / "manifest.jsonl").is_file()
    for before, after in zip(source, turned):
        rotation, k = (np.asarray(after[key]).reshape(3, 3) for key in ("rotation", "K"))
        centre = after["distance"] * np.asarray(after["camera_position"])  # the camera did not move, it turned
        seen = -rotation @ centre  # the object's centre in the turned camera
        angle = np.degrees(np.arccos(seen[2] / np.linalg.norm(seen)))
        assert angle == pytest.approx(after["off_axis_deg"], abs=1e-6)
        assert geodesic_distance(rotation, np.asarray(before["rotation"]).reshape(3, 3)) == pytest.approx(angle)
        mask = read_mask(car_chair_renders / "turned" / after["mask"])
        mesh = builtin_spec(after["model_id"]).load()
        assert iou(project_mask(mesh, rotation, centre, k, after["width"], after["height"]), mask) > 0.9
        ys, xs = np.nonzero(mask)
        assert after["box"] == [float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)]


def test_eval_camera_turns_a_perfect_crop_reading_back_to_each_views_label(car_chair_renders: Path) -> None:
    from vantage.train.evaluate import with_turns

    make_off_axis(car_chair_renders / "views", car_chair_renders / "far", OffAxisConfig(max_angle=45.0, seed=2), progress=False)
    categories = ["car", "chair"]
    source, turned = (read_samples(car_chair_renders / name, categories) for name in ("views", "far"))
    crop_truth = np.stack([s.rotation for s in source])  # what a network reading the crop perfectly answers

    def perfect(hints: np.ndarray) -> dict[str, np.ndarray]:
        return {"rotation": crop_truth}

    labels = np.stack([s.rotation for s in turned])
    plain = geodesic_distance(crop_truth, labels)
    corrected = geodesic_distance(with_turns(turned, perfect, camera=True)(np.zeros((6, 2), np.float32))["rotation"], labels)
    assert plain.max() > 15.0 and corrected.max() < 5.0  # left: the box centre is not quite the object's


def test_a_rolled_camera_turns_the_picture_and_the_label_by_the_roll(car_chair_renders: Path) -> None:
    make_off_axis(car_chair_renders / "views", car_chair_renders / "rolled", OffAxisConfig(max_angle=0.0, max_roll=60.0, seed=2),
                  progress=False)
    source = [json.loads(line) for line in (car_chair_renders / "views" / "manifest.jsonl").open()]
    rolled = [json.loads(line) for line in (car_chair_renders / "rolled" / "manifest.jsonl").open()]
    assert len(rolled) == 6 and max(abs(r["roll_deg"]) for r in rolled) > 20.0
    assert all(r["off_axis_deg"] == 0.0 for r in rolled)
    for before, after in zip(source, rolled):
        rotation, k = (np.asarray(after[key]).reshape(3, 3) for key in ("rotation", "K"))
        np.testing.assert_allclose(rotation, roll(after["roll_deg"]) @ np.asarray(before["rotation"]).reshape(3, 3),
                                   atol=1e-9)
        # POSE.md's theta turns the other way: the picture turns clockwise, theta by -roll
        assert after["theta"] == pytest.approx((before["theta"] - after["roll_deg"] + 180.0) % 360.0 - 180.0, abs=1e-6)
        centre = after["distance"] * np.asarray(after["camera_position"])
        mask = read_mask(car_chair_renders / "rolled" / after["mask"])
        mesh = builtin_spec(after["model_id"]).load()
        assert iou(project_mask(mesh, rotation, centre, k, after["width"], after["height"]), mask) > 0.9


@pytest.fixture(scope="module")
def checkpoint(car_chair_renders: Path) -> Path:
    from vantage.train.trainer import TrainConfig, train

    cfg = TrainConfig(data=[str(car_chair_renders / "views")], out=str(car_chair_renders / "run"), epochs=1, batch_size=6,
                      augmented_copies=0, progress=False)
    cfg.model.categories, cfg.model.input_size, cfg.model.head = ["car", "chair"], 64, "regression_g"
    return train(cfg)


def test_eval_camera_on_the_command_line_and_without_intrinsics(car_chair_renders: Path, checkpoint: Path,
                                                                 tmp_path: Path) -> None:
    from vantage.train.evaluate import with_turns

    make_off_axis(car_chair_renders / "views", tmp_path / "turned", OffAxisConfig(max_angle=30.0), progress=False)
    res = subprocess.run([sys.executable, "-m", "vantage", "eval", "--model", str(checkpoint), "--data",
                          str(tmp_path / "turned"), "--out", str(tmp_path / "eval"), "--camera"],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert json.loads((tmp_path / "eval" / "report.json").read_text())["camera"] is True

    samples = read_samples(tmp_path / "turned", ["car", "chair"])
    samples[2].intrinsics = None  # as in a manifest written before intrinsics were recorded
    with pytest.raises(ValueError, match="1 views have no intrinsics"):
        with_turns(samples, lambda hints: {}, camera=True)


def test_the_bench_measures_each_turn_with_and_without_the_camera(car_chair_renders: Path, checkpoint: Path,
                                                                   tmp_path: Path, capsys) -> None:
    from vantage.train.off_axis_bench import main

    main(["--model", str(checkpoint), "--data", str(car_chair_renders / "views"), "--out", str(tmp_path), "--angles", "0", "30"])
    result = json.loads((tmp_path / "off_axis.json").read_text())
    assert [(r["max_angle"], r["camera"]) for r in result["rows"]] == [(0, False), (0, True), (30, False), (30, True)]
    assert all(r["views"] == 6 and 0 <= r["med_err"] <= 180 for r in result["rows"])
    assert sum(b["views"] for b in result["bands"]) == 6 and all(b["to"] <= 30 for b in result["bands"])
    assert (tmp_path / "off_axis.png").read_bytes()[:4] == b"\x89PNG"
    printed = capsys.readouterr().out
    assert "| 0-30° | 6 |" in printed and "without camera" in printed


def test_the_roll_bench_measures_each_roll_plain_with_gravity_and_upright(car_chair_renders: Path, checkpoint: Path,
                                                                         tmp_path: Path, capsys) -> None:
    from vantage.train.off_axis_bench import main

    main(["--model", str(checkpoint), "--data", str(car_chair_renders / "views"), "--out", str(tmp_path), "--bench", "roll",
          "--angles", "0", "40"])
    result = json.loads((tmp_path / "roll.json").read_text())
    assert [(r["max_angle"], r["mode"]) for r in result["rows"]] == [
        (0, "plain"), (0, "gravity"), (0, "upright"), (40, "plain"), (40, "gravity"), (40, "upright")]
    assert [r.get("gravity", False) for r in result["rows"][:3]] == [False, True, True]
    assert all(r["views"] == 6 and not r["camera"] for r in result["rows"])
    assert sum(b["views"] for b in result["bands"]) == 6
    assert all({"med_err", "med_err_gravity", "med_err_upright"} <= set(b) for b in result["bands"])
    assert (tmp_path / "roll.png").read_bytes()[:4] == b"\x89PNG"
    printed = capsys.readouterr().out
    assert "| ±40° | 6 |" in printed and "with gravity, upright" in printed


def test_a_rectified_crop_of_a_turned_view_is_the_crop_of_the_view_on_the_axis() -> None:
    from vantage.imaging import ImageError, crop_rectified, crop_square
    from vantage.train.off_axis import off_axis_view

    rng = np.random.default_rng(0)
    texture = cv2.GaussianBlur(rng.integers(0, 255, (200, 200, 3), dtype=np.uint8), (0, 0), 3)
    smooth = cv2.resize(cv2.resize(texture, (20, 20), interpolation=cv2.INTER_AREA), (200, 200),
                        interpolation=cv2.INTER_CUBIC)  # no detail finer than resampling keeps
    k = np.array([[300.0, 0.0, 100.0], [0.0, 300.0, 100.0], [0.0, 0.0, 1.0]])
    on_axis = crop_square(smooth, (60.0, 60.0, 140.0, 140.0), 64).astype(float)  # a box centred on the axis
    for angle, bound in ((4.0, 0.2), (20.0, 0.8)):
        q = turn(angle, 30.0)
        image, _, k_new, _ = off_axis_view(smooth, np.ones((200, 200), bool), k, np.eye(3), q, 1000)
        to_new = k_new @ q @ np.linalg.inv(k)
        # the box around where the turned camera sees the old axis, as wide as the old box's edges there
        ends = np.array([[100.0, 100.0, 1.0], [60.0, 100.0, 1.0], [140.0, 100.0, 1.0], [100.0, 60.0, 1.0],
                         [100.0, 140.0, 1.0]]) @ to_new.T
        ends = ends[:, :2] / ends[:, 2:]
        centre, half = ends[0], max(np.linalg.norm(ends[2] - ends[1]), np.linalg.norm(ends[4] - ends[3])) / 2
        box = (*(centre - half), *(centre + half))
        rectified = np.abs(crop_rectified(image, box, k_new, 64).astype(float) - on_axis).mean()
        plain = np.abs(crop_square(image, box, 64).astype(float) - on_axis).mean()
        assert rectified < bound * plain, f"{angle}°: rectified {rectified:.2f} vs square {plain:.2f}"
    # on the axis it is the square crop
    image = cv2.GaussianBlur(rng.integers(0, 255, (90, 120, 3), dtype=np.uint8), (0, 0), 2)
    np.testing.assert_array_equal(crop_rectified(image, (40, 25, 80, 65), K_CENTRED, 32),
                                  crop_square(image, (40, 25, 80, 65), 32))
    with pytest.raises(ImageError, match="needs a 48x48 crop, more than the limit of 1000 pixels"):
        crop_rectified(image, (40, 25, 80, 65), K_CENTRED, 32, max_pixels=1000)  # a client's huge box allocates nothing
