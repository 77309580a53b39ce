"""The camera demo end to end on the synthetic source: frames stream through a real server, with the
retrieved model's wireframe when the bundle has a view index."""

import itertools
import json
import shutil
import socket
import subprocess
import sys
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest

from serve_fixtures import slow_server
from vantage.demo import DemoConfig, Estimate, _encode, annotate, estimate_local, estimate_remote, run_demo, wireframe_problem
from vantage.frame_sources import Frame, center_box, choose_box, foreground_box, synthetic_frames, trajectory
from vantage.geometry import camera_matrix, geodesic_distance, ray_rotation, viewpoint_to_rotation
from vantage.overlay import draw_axes, draw_wireframe, fit_to_box, perspective_axes, perspective_to_box
from vantage.v1 import vantage_pb2

CHANCE_MEDIAN_DEG = 126.0  # median geodesic distance between uniformly random rotations


def indexed_copy(bundle: Path, dest: Path, categories: tuple[str, ...] = ("car",)) -> Path:
    """A copy of `bundle` with a tiny view index: 12 views and the wireframe of one built-in model per category."""
    from vantage.serve.retrieval import INDEX_DIR_NAME
    from vantage.train.indexing import IndexConfig, build_index
    from vantage.train.meshes import builtin_specs

    shutil.copytree(bundle, dest)
    cfg = IndexConfig(subdivisions=0, backgrounds=1, pca_dim=0, thumbnail_size=0)
    build_index(dest, builtin_specs(1, categories=categories), dest / INDEX_DIR_NAME, cfg, workers=0, progress=False)
    return dest


def cube_edges() -> np.ndarray:
    """The 12 edges (12, 2, 3) of the cube [-0.5, 0.5]³."""
    corners = np.array(list(itertools.product((-0.5, 0.5), repeat=3)))
    pairs = [(i, j) for i, j in itertools.combinations(range(8), 2) if np.sum(corners[i] != corners[j]) == 1]
    return corners[np.array(pairs)]


def test_synthetic_source_follows_its_trajectory():
    frames = list(synthetic_frames("car", frames=4, size=96))
    assert [f.index for f in frames] == [0, 1, 2, 3]
    from vantage.geometry import viewpoint_to_rotation

    for f in frames:
        assert f.image.shape == (96, 96, 3) and f.box is not None
        np.testing.assert_allclose(f.rotation, viewpoint_to_rotation(*trajectory(f.index, 4)), atol=1e-9)


def box_centre(box) -> np.ndarray:
    return np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2])


def test_off_axis_synthetic_frames_carry_their_camera_and_exact_labels():
    """The object circles 30° off the optical axis; its label is POSE.md's (relative to the axis), and
    turned to the ray through the box centre it is the trajectory's pose, as a crop there shows it."""
    on_axis = next(synthetic_frames("car", frames=4, size=96))
    assert on_axis.camera[2:] == (48.0, 48.0)
    frames = list(synthetic_frames("car", frames=4, size=96, off_axis_deg=30.0))
    assert [f.index for f in frames] == [0, 1, 2, 3]
    centres = []
    for f in frames:
        k = camera_matrix(f.camera)
        q = ray_rotation(k, box_centre(f.box))
        truth = viewpoint_to_rotation(*trajectory(f.index, 4))
        assert 27.0 < np.degrees(np.arccos(q[2, 2])) < 34.0
        assert geodesic_distance(q.T @ f.rotation, truth) < 4.0 < 25.0 < geodesic_distance(f.rotation, truth)
        x0, y0, x1, y1 = f.box
        assert 0 <= x0 < x1 <= f.image.shape[1] and 0 <= y0 < y1 <= f.image.shape[0]
        centres.append(box_centre(f.box) - k[:2, 2])
    angles = np.degrees(np.arctan2(*np.array(centres)[:, ::-1].T)) % 360  # circling: right, down, left, up
    np.testing.assert_allclose(angles, [0, 90, 180, 270], atol=8.0)


def cube_projection(rotation: np.ndarray, camera: tuple, pixel: tuple[float, float], distance: float) -> np.ndarray:
    """Where a pinhole camera sees the cube's corners (8, 2), its centre `distance` away on the ray
    through `pixel`."""
    k = camera_matrix(camera)
    ray = np.linalg.solve(k, [*pixel, 1.0])
    corners = np.array(list(itertools.product((-0.5, 0.5), repeat=3))) @ rotation.T + distance * ray / np.linalg.norm(ray)
    uv = corners @ k.T
    return uv[:, :2] / uv[:, 2:]


@pytest.mark.parametrize("pixel", [(320.0, 240.0), (560.0, 260.0), (90.0, 420.0), (600.0, 30.0)])
def test_perspective_placement_reproduces_what_the_camera_saw(pixel):
    """From the rotation, the box and the intrinsics alone, the cube lands where the camera saw it, a
    few radii away, anywhere in the frame; weak perspective misses the off-axis ones by far."""
    camera, rotation = (500.0, 500.0, 320.0, 240.0), viewpoint_to_rotation(130.0, -10.0, 15.0)
    corners = np.array(list(itertools.product((-0.5, 0.5), repeat=3)))
    for distance in (4.0, 10.0):
        seen = cube_projection(rotation, camera, pixel, distance)
        box = (*seen.min(0), *seen.max(0))
        side = max(box[2] - box[0], box[3] - box[1])
        assert np.abs(perspective_to_box(corners, rotation, box, camera) - seen).max() < 0.01 * side
        if pixel != (320.0, 240.0):
            assert np.abs(fit_to_box(corners, rotation, box) - seen).max() > 0.1 * side


def test_perspective_axes_shrink_along_the_ray_and_match_orthographic_ones_at_the_centre():
    camera, scale = (500.0, 500.0, 320.0, 240.0), 40.0
    rotation = viewpoint_to_rotation(30.0, 20.0, 5.0)
    centre = perspective_axes(rotation, (320.0, 240.0), scale, camera)
    orthographic = np.array([320.0, 240.0]) + scale * rotation[:2].T
    assert np.abs(centre - orthographic).max() < 0.25 * scale  # foreshortening only
    origin = (600.0, 420.0)
    q = ray_rotation(camera_matrix(camera), np.array(origin))
    along = q @ viewpoint_to_rotation(0.0, 90.0, 0.0)  # seen from above: the object's z axis lies on the ray
    assert abs(along[:, 2] @ q[:, 2]) > 1 - 1e-9
    ends = perspective_axes(along, origin, scale, camera)
    assert np.linalg.norm(ends[2] - origin) < 1e-6 < 0.5 * scale < np.linalg.norm(ends[0] - origin)
    drawn = draw_axes(np.zeros((480, 640, 3), np.uint8), along, origin=origin, scale_px=scale, camera=camera)
    assert not np.array_equal(drawn, draw_axes(np.zeros((480, 640, 3), np.uint8), along, origin=origin,
                                               scale_px=scale))


@pytest.mark.parametrize("gravity", [False, True])
def test_demo_sends_each_frames_camera_and_gravity_on_both_paths(tiny_bundle, gravity):
    """In process and through a server, a frame's camera (the user's, else a synthetic frame's own)
    goes with it, and with `synthetic_gravity` its gravity and `upright`: the answers are the
    predictor's with them, and differ from those without."""
    from vantage.serve.engine import Predictor
    from vantage.serve.server import start_server
    from vantage.serve.config import ServerConfig

    frames = list(synthetic_frames("car", frames=3, off_axis_deg=30.0))
    options = {"synthetic_gravity": True, "upright": True} if gravity else {}
    predictor = Predictor(tiny_bundle, intra_op_threads=1)

    def answers(images, with_options: bool) -> list[np.ndarray]:
        return [predictor.predict([image], [f.box], [None], [f.camera], [f.gravity if with_options else None],
                                  with_options)[0].rotation for image, f in zip(images, frames)]

    sent = [cv2.imdecode(np.frombuffer(_encode(f.image), np.uint8), cv2.IMREAD_COLOR)[:, :, ::-1] for f in frames]
    expected = answers([f.image for f in frames], gravity)
    expected_remote = answers(sent, gravity)  # the stream sends JPEG
    without = ([predictor.predict([f.image], [f.box])[0].rotation for f in frames] if not gravity
               else answers([f.image for f in frames], False))
    local = list(estimate_local(DemoConfig(model=str(tiny_bundle), **options), frames))
    running = start_server(predictor, ServerConfig(port=0))
    try:
        remote = list(estimate_remote(DemoConfig(server=f"127.0.0.1:{running.port}", **options), frames))
    finally:
        running.stop(0)
    for est_local, est_remote, want, want_remote, other, f in zip(local, remote, expected, expected_remote, without,
                                                                  frames):
        assert est_local.camera == est_remote.camera == f.camera
        assert geodesic_distance(est_local.rotation, want) < 0.1 and geodesic_distance(est_remote.rotation,
                                                                                       want_remote) < 0.1
        assert geodesic_distance(want, other) > 5.0
        if gravity:  # stood upright: the object's +z axis against the frame's gravity
            np.testing.assert_allclose(est_local.rotation[:, 2], -np.array(f.gravity), atol=1e-4)
    given = (900.0, 900.0, 400.0, 400.0)
    assert next(estimate_local(DemoConfig(model=str(tiny_bundle), camera=given), frames)).camera == given


def test_synthetic_frames_know_their_gravity_and_the_demo_refuses_contradictory_gravity(capsys):
    """An upright object seen from above: down is mostly down the image and a little away from the camera."""
    from vantage.cli import main

    for f in synthetic_frames("car", frames=4, size=96):
        g = np.array(f.gravity)
        assert abs(np.linalg.norm(g) - 1) < 1e-9 and g[1] > 0.8 and g[2] > 0.05
        np.testing.assert_allclose(g, -f.rotation[:, 2])
    assert Frame(0, np.zeros((4, 4, 3), np.uint8)).gravity is None
    for bad, message in (({"gravity": (0.0, 1.0, 0.0), "synthetic_gravity": True}, "give one gravity"),
                         ({"source": "clip.mp4", "synthetic_gravity": True}, "only synthetic frames"),
                         ({"upright": True}, "upright needs gravity"),
                         ({"gravity": (0.0, 0.0, 0.0)}, "non-zero length")):
        with pytest.raises(ValueError, match=message):
            DemoConfig(model="bundle", **bad)
    assert main(["demo", "--model", "bundle", "--upright", "--headless"]) == 2
    assert "vantage demo: upright needs gravity" in capsys.readouterr().err


@pytest.mark.parametrize("flags, gravity", [(["--synthetic-gravity", "--upright"], "synthetic"),
                                            (["--gravity", "0", "1", "0"], "given")])
def test_demo_cli_sends_gravity(tiny_bundle, tmp_path, flags, gravity):
    from vantage.cli import main

    out = tmp_path / "demo.mp4"
    assert main(["demo", "--model", str(tiny_bundle), "--headless", "--frames", "2", "--out", str(out), *flags]) == 0
    summary = json.loads(out.with_suffix(".json").read_text())
    assert summary["frames"] == 2 and summary["gravity"] == gravity and summary["upright"] == ("--upright" in flags)

def test_box_modes():
    img = np.full((100, 120, 3), 30, np.uint8)
    img[20:60, 50:100] = (220, 40, 40)
    box = foreground_box(img)
    assert box is not None and abs(box[0] - 50) <= 2 and abs(box[3] - 60) <= 2
    assert center_box(img) == (30.0, 20.0, 90.0, 80.0)
    frame = Frame(0, img)
    assert choose_box(frame, "given", (1, 2, 3, 4)) == (1, 2, 3, 4)
    assert choose_box(frame, "source", None) == center_box(img)  # no source box → centre


def test_the_wireframe_is_fitted_to_the_box_in_the_estimated_rotation():
    front = viewpoint_to_rotation(0.0, 0.0, 0.0)  # the cube's front face, a square, fills the box
    img = draw_wireframe(np.zeros((200, 200, 3), np.uint8), cube_edges(), front, (40, 60, 120, 140))
    lit = img.max(axis=2) > 100
    assert lit[60:141, 40].all() and lit[60:141, 120].all() and lit[60, 40:121].all() and lit[140, 40:121].all()
    assert not lit[70:131, 50:111].any()  # inside the square
    lit[58:143, 38:123] = False
    assert not lit.any()  # nothing outside the box


def test_annotate_draws_the_wireframe_only_where_it_lies():
    frame = Frame(0, np.full((200, 200, 3), 90, np.uint8))
    rotation = viewpoint_to_rotation(30.0, 20.0, 0.0)
    args = (frame, (50.0, 50.0, 150.0, 150.0), "car", 0.9, rotation, 5.0)
    drawn = annotate(Estimate(*args, "builtin/car/0001", cube_edges().astype(np.float32)), 10.0, "source")
    plain = annotate(Estimate(*args, note="no view index: axes only"), 10.0, "source")
    changed = np.any(drawn != plain, axis=2)
    changed[-14:] = False  # the bottom caption names the model or says why there is none
    assert changed[50:151, 50:151].sum() > 200
    changed[48:153, 48:153] = False
    assert not changed.any()


def test_the_caption_shows_the_pose_confidence_when_the_bundle_has_one():
    frame = Frame(0, np.full((120, 200, 3), 90, np.uint8))
    args = (frame, (50.0, 30.0, 150.0, 100.0), "car", 0.9, viewpoint_to_rotation(30.0, 20.0, 0.0), 5.0)
    without = annotate(Estimate(*args, note="n"), 10.0, "source")
    confident = annotate(Estimate(*args, note="n", pose_confidence=0.93), 10.0, "source")
    changed = np.any(without != confident, axis=2)
    assert changed[:16].any() and not changed[16:].any(), "only the top caption differs"


def test_the_demo_says_why_it_draws_no_wireframe():
    index = vantage_pb2.ViewIndexInfo(views=12, models=1, categories=["car"], wireframes=1)
    assert wireframe_problem(index, None) == wireframe_problem(index, "car") == ""
    assert "no view index" in wireframe_problem(None, "car")
    assert "no chair models" in wireframe_problem(index, "chair")
    index.wireframes = 0
    assert "has no wireframes" in wireframe_problem(index, None)


def test_demo_in_process_draws_the_retrieved_wireframe_with_an_index(tiny_bundle, tmp_path, caplog):
    bare = run_demo(DemoConfig(model=str(tiny_bundle), headless=True, max_frames=2))
    assert bare["frames"] == 2 and bare["wireframe_frames"] == 0 and bare["wireframe_models"] == []
    assert "no view index" in bare["wireframe_notes"][0] and "no view index" in caplog.text
    indexed = indexed_copy(tiny_bundle, tmp_path / "bundle")
    out = tmp_path / "demo.mp4"
    summary = run_demo(DemoConfig(model=str(indexed), headless=True, max_frames=2, out=str(out)))
    assert summary["wireframe_frames"] == 2 and summary["wireframe_models"] == ["builtin/car/0000"]
    assert summary["wireframe_notes"] == [] and json.loads(out.with_suffix(".json").read_text()) == summary


@pytest.mark.slow
def test_demo_streams_through_server_and_measures_pose_error(trained_bundle, tmp_path):
    indexed = indexed_copy(trained_bundle, tmp_path / "bundle", ("car", "chair"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "vantage", "serve", "--model", str(indexed), "--port", str(port)])
    try:
        out = tmp_path / "demo.mp4"
        res = subprocess.run(
            [sys.executable, "-m", "vantage", "demo", "--source", "synthetic", "--server", f"127.0.0.1:{port}",
             "--headless", "--out", str(out), "--frames", "24", "--synthetic-off-axis", "20"],
            capture_output=True, text=True, timeout=300,
        )
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert res.returncode == 0, res.stderr[-2000:]
    summary = json.loads(out.with_suffix(".json").read_text())
    assert summary["frames"] == 24 and len(summary["pose_errors_deg"]) == 24 and summary["camera"] == "synthetic"
    assert summary["median_pose_error_deg"] < 0.7 * CHANCE_MEDIAN_DEG, summary["median_pose_error_deg"]
    assert summary["wireframe_frames"] == 24, summary["wireframe_notes"]  # through the stream's top_k
    assert set(summary["wireframe_models"]) <= {"builtin/car/0000", "builtin/chair/0000"}
    cap = cv2.VideoCapture(str(out))
    n = 0
    while cap.read()[0]:
        n += 1
    assert n == 24
    assert "median pose error" in res.stdout


@pytest.mark.parametrize("source, drops", [("0", True), ("synthetic", False)])
def test_remote_demo_skips_stale_frames_of_a_live_camera_only(tiny_bundle, source, drops):
    """A camera's stale frames come back `dropped` and are skipped (and counted), not drawn; a file or
    the synthetic source asks for every frame. Frames are rendered faster than the server answers."""
    running, _ = slow_server(tiny_bundle, 0.15)
    frames = list(synthetic_frames("car", frames=8))
    skipped: Counter = Counter()
    try:
        cfg = DemoConfig(source=source, server=f"127.0.0.1:{running.port}", headless=True)
        shown = [est.frame.index for est in estimate_remote(cfg, frames, skipped)]
    finally:
        running.stop(0)
    assert shown == sorted(shown) and len(shown) + skipped["dropped"] == 8 and not skipped["refused"]
    assert (skipped["dropped"] > 0) == drops, skipped
