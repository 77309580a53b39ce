"""The `vantage` command line end to end, as a user runs it (subprocesses)."""

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from serve_fixtures import make_test_image
from test_serve_security import pki  # noqa: F401 (fixture: throwaway CA, certificates, token file)


def vantage(*args: str, cwd: Path | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vantage", *args], capture_output=True, text=True, cwd=cwd, timeout=timeout)


def test_predict_json_in_process(tiny_bundle, tmp_path):
    good = tmp_path / "a.png"
    good.write_bytes(make_test_image(120, 90, seed=3))
    bad = tmp_path / "b.jpg"
    bad.write_bytes(b"not an image")
    res = vantage("predict", str(good), str(bad), "--model", str(tiny_bundle), "--json")
    lines = [json.loads(line) for line in res.stdout.splitlines()]
    assert res.returncode == 1, "a failed image makes the exit status non-zero"
    first = lines[0]
    assert {"file", "category", "category_scores", "rotation", "viewpoint", "quaternion"} <= set(first)
    r = np.array(first["rotation"])
    assert r.shape == (3, 3) and np.allclose(r @ r.T, np.eye(3), atol=1e-5)
    assert set(first["viewpoint"]) == {"azimuth", "elevation", "theta"}
    assert lines[1]["file"].endswith("b.jpg") and "could not be decoded" in lines[1]["error"]


def test_predict_needs_exactly_one_target(tmp_path):
    res = vantage("predict", "x.png")
    assert res.returncode == 2 and "exactly one of --server" in res.stderr


def test_predict_through_a_token_and_mutual_tls_server(tiny_bundle, pki, tmp_path):  # noqa: F811
    from vantage.serve.config import ServerConfig
    from vantage.serve.engine import Predictor
    from vantage.serve.server import start_server

    image = tmp_path / "a.png"
    image.write_bytes(make_test_image(120, 90, seed=3))
    config = ServerConfig(port=0, workers=2, tls_cert=pki["server_cert"], tls_key=pki["server_key"],
                          tls_client_ca=pki["ca"], auth_token_file=pki["token"])
    running = start_server(Predictor(tiny_bundle, intra_op_threads=1), config)
    server = ["--server", f"localhost:{running.port}"]
    mtls = ["--tls-ca", pki["ca"], "--tls-cert", pki["client_cert"], "--tls-key", pki["client_key"]]
    try:
        good = vantage("predict", str(image), str(image), *server, "--token-file", pki["token"], *mtls, "--json")
        no_token = vantage("predict", str(image), *server, *mtls)
        half_certificate = vantage("predict", str(image), *server, "--tls-cert", pki["client_cert"])
    finally:
        running.stop(0)
    assert good.returncode == 0, good.stderr
    rows = [json.loads(line) for line in good.stdout.splitlines()]
    assert [r["file"] for r in rows] == [str(image)] * 2 and np.array(rows[0]["rotation"]).shape == (3, 3)
    assert no_token.returncode == 1 and "UNAUTHENTICATED: missing bearer token" in no_token.stderr
    assert half_certificate.returncode == 2 and "tls_cert and tls_key go together" in half_certificate.stderr


@pytest.mark.slow
def test_quickstart_small_form(tmp_path):
    """The main job in a small form: render → train → export → serve → predict through gRPC."""
    out = tmp_path / "qs"
    res = vantage(
        "quickstart", "--out", str(out), "--instances", "1", "--views", "6", "--epochs", "2",
        "--test-instances", "1", "--test-views", "2", "--workers", "2",
    )
    assert res.returncode == 0, res.stderr[-3000:]
    summary = json.loads((out / "quickstart.json").read_text())
    assert summary["test_images"] == 24
    assert 0 <= summary["overall"]["med_err"] <= 180 and 0 <= summary["overall"]["cat_acc"] <= 1
    assert summary["latency_ms"]["p50"] > 0
    assert "MedErr" in res.stdout and "all images" in res.stdout
    sheet = cv2.imread(str(out / "contact_sheet.png"))
    assert sheet is not None and sheet.shape[0] > 100
    assert (out / "bundle" / "model.onnx").is_file() and (out / "bundle" / "vantage.json").is_file()
    # the exported bundle serves the CLI's in-process path too
    img = sorted((out / "data" / "test" / "images").iterdir())[0]
    res = vantage("predict", str(img), "--model", str(out / "bundle"), "--json")
    assert res.returncode == 0 and json.loads(res.stdout.splitlines()[0])["category"]


@pytest.mark.slow
def test_render_train_export_commands(tmp_path):
    data, run, bundle = tmp_path / "data", tmp_path / "run", tmp_path / "bundle"
    res = vantage("render", "--out", str(data), "--builtin", "1", "--views", "3", "--workers", "1", "--ground-prob", "0.5",
                  "--coordinates")
    assert res.returncode == 0, res.stderr[-2000:]
    records = [json.loads(line) for line in (data / "manifest.jsonl").read_text().splitlines()]
    assert len(records) == 36 and 0 < sum(r["ground"] for r in records) < 36
    assert all((data / r["coords"]).is_file() for r in records)
    res = vantage("train", "--data", str(data), "--out", str(run), "--epochs", "1", "--set", "model.epochs=2")
    assert res.returncode == 2 and "vantage train: --set model.epochs: ModelConfig has no setting 'epochs'" in res.stderr
    res = vantage("train", "--data", str(data), "--out", str(run), "--epochs", "1", "--set", "model.head_hidden=[32, 16]")
    assert res.returncode == 0, res.stderr[-2000:]
    assert json.loads((run / "config.json").read_text())["model"]["head_hidden"] == [32, 16]
    res = vantage("export", "--checkpoint", str(run / "checkpoint.pt"), "--out", str(bundle))
    assert res.returncode == 0, res.stderr[-2000:]
    meta = json.loads((bundle / "vantage.json").read_text())
    assert meta["training"]["epochs"] == 1 and meta["training"]["export_parity_max_abs_diff"]["rotation"] < 1e-4
    assert meta["test_time"] == "none"
    ckpt = str(run / "checkpoint.pt")
    res = vantage("export", "--checkpoint", ckpt, ckpt, "--out", str(tmp_path / "ens"), "--test-time", "flip")
    assert res.returncode == 0, res.stderr[-2000:]
    meta = json.loads((tmp_path / "ens" / "vantage.json").read_text())
    assert meta["test_time"] == "flip" and meta["ensemble_size"] == 2 and meta["training"]["checkpoint"] == [ckpt] * 2
