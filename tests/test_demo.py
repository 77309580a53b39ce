"""The camera demo end to end on the synthetic source: frames stream through a real server."""

import json
import socket
import subprocess
import sys

import cv2
import numpy as np
import pytest

from vantage.frame_sources import center_box, choose_box, foreground_box, synthetic_frames, trajectory

CHANCE_MEDIAN_DEG = 126.0  # median geodesic distance between uniformly random rotations


def test_synthetic_source_follows_its_trajectory():
    frames = list(synthetic_frames("car", frames=4, size=96))
    assert [f.index for f in frames] == [0, 1, 2, 3]
    from vantage.geometry import viewpoint_to_rotation

    for f in frames:
        assert f.image.shape == (96, 96, 3) and f.box is not None
        np.testing.assert_allclose(f.rotation, viewpoint_to_rotation(*trajectory(f.index, 4)), atol=1e-9)


def test_box_modes():
    img = np.full((100, 120, 3), 30, np.uint8)
    img[20:60, 50:100] = (220, 40, 40)
    box = foreground_box(img)
    assert box is not None and abs(box[0] - 50) <= 2 and abs(box[3] - 60) <= 2
    assert center_box(img) == (30.0, 20.0, 90.0, 80.0)
    from vantage.frame_sources import Frame

    frame = Frame(0, img)
    assert choose_box(frame, "given", (1, 2, 3, 4)) == (1, 2, 3, 4)
    assert choose_box(frame, "source", None) == center_box(img)  # no source box → centre


@pytest.mark.slow
def test_demo_streams_through_server_and_measures_pose_error(trained_bundle, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "vantage", "serve", "--model", str(trained_bundle), "--port", str(port)])
    try:
        out = tmp_path / "demo.mp4"
        res = subprocess.run(
            [sys.executable, "-m", "vantage", "demo", "--source", "synthetic", "--server", f"127.0.0.1:{port}",
             "--headless", "--out", str(out), "--frames", "24"],
            capture_output=True, text=True, timeout=300,
        )
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert res.returncode == 0, res.stderr[-2000:]
    summary = json.loads(out.with_suffix(".json").read_text())
    assert summary["frames"] == 24 and len(summary["pose_errors_deg"]) == 24
    assert summary["median_pose_error_deg"] < 0.7 * CHANCE_MEDIAN_DEG, summary["median_pose_error_deg"]
    cap = cv2.VideoCapture(str(out))
    n = 0
    while cap.read()[0]:
        n += 1
    assert n == 24
    assert "median pose error" in res.stdout
