"""`vantage bench`: a quick run against servers it starts, and its inputs."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import pytest

from serve_fixtures import make_test_image
from test_serve_security import pki  # noqa: F401 (fixture: throwaway CA, certificates, token file)
from vantage.cli import build_parser
from vantage.serve import bench
from vantage.serve.bench import BenchSettings, Row, ratios, run_bench, settings_from_args, summarise
from vantage.serve.bench_images import BenchInput, bench_inputs
from vantage.serve.config import ServerConfig
from vantage.serve.engine import Predictor
from vantage.serve.server import start_server


def test_inputs_from_a_folder_and_synthetic_without_the_training_side(tmp_path: Path, monkeypatch) -> None:
    for i in range(3):
        (tmp_path / f"{i}.png").write_bytes(make_test_image(seed=i))
    (tmp_path / "notes.txt").write_text("skipped")
    inputs, source = bench_inputs(tmp_path, count=2)
    assert source == "folder" and len(inputs) == 2 and inputs[0].box is None
    monkeypatch.setitem(sys.modules, "vantage.train.render", None)  # as on a serving-only install
    inputs, source = bench_inputs(None, count=3)
    assert source == "synthetic" and len(inputs) == 3 and inputs[0].image[:2] == b"\xff\xd8"
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no .jpg"):
        bench_inputs(tmp_path / "empty", count=1)


def test_summary_and_ratios() -> None:
    row = summarise("unary", "on", 16, [0.010, 0.020, 0.030, 0.040], errors=1, seconds=2.0)
    assert (row.requests, row.errors, row.throughput_rps, row.p50_ms) == (4, 1, 2.0, 25.0)
    off = Row("unary", "off", 16, 2, 0, 2.0, 1.0, 50.0, 50.0, 50.0, 50.0)
    paired = (summarise("in-process", "-", 1, [0.004], 0, 1.0), summarise("unary-paired", "on", 1, [0.005], 0, 1.0),
              summarise("noop-rpc", "on", 1, [0.0006], 0, 1.0))
    assert ratios([row, off], paired) == {"grpc_p50_over_in_process_c1": 1.25, "grpc_overhead_ms_c1": 1.0,
                                          "noop_rpc_p50_ms": 0.6, "batching_throughput_speedup_c16": 2.0}
    assert set(ratios([row], None).values()) == {None}


@pytest.mark.slow
def test_quick_bench_writes_json_csv_and_plot(tiny_bundle: Path, tmp_path: Path) -> None:
    images = tmp_path / "images"
    images.mkdir()
    for i in range(4):
        (images / f"{i}.jpg").write_bytes(make_test_image(seed=i, ext=".jpg"))
    out = tmp_path / "bench"
    settings = BenchSettings(model=str(tiny_bundle), images=str(images), count=4, concurrency=(1, 16), seconds=0.4,
                             backend="onnxruntime-cpu", out=str(out))
    report = run_bench(settings)
    rows = report["rows"]
    assert {(r["mode"], r["batching"], r["concurrency"]) for r in rows} == {
        (m, b, c) for m in ("unary", "stream") for b in ("on", "off") for c in (1, 16)
    }
    assert all(r["requests"] > 0 and r["errors"] == 0 and r["p50_ms"] <= r["p99_ms"] for r in rows)
    assert report["backends"] == {"on": "onnxruntime/CPUExecutionProvider", "off": "onnxruntime/CPUExecutionProvider"}
    assert all(v is not None and v > 0 for v in report["ratios"].values())
    assert json.loads((out / "bench.json").read_text())["ratios"] == report["ratios"]
    with open(out / "bench.csv") as fh:
        assert len(list(csv.DictReader(fh))) == len(rows) + 3  # + the paired in-process, gRPC and no-op rows
    paired = {r["mode"]: r for r in report["paired_c1"]}
    assert paired["noop-rpc"]["p50_ms"] < paired["unary-paired"]["p50_ms"]  # an estimate costs more than no work
    assert (out / "bench.png").stat().st_size > 10_000
    assert "serving model" in (out / "server-batching-on.log").read_text()


def test_bench_reaches_a_running_token_and_mutual_tls_server(
    tiny_bundle: Path, pki: dict[str, str], tmp_path: Path  # noqa: F811
) -> None:
    config = ServerConfig(port=0, workers=4, tls_cert=pki["server_cert"], tls_key=pki["server_key"],
                          tls_client_ca=pki["ca"], auth_token_file=pki["token"])
    running = start_server(Predictor(tiny_bundle, intra_op_threads=1), config)
    args = build_parser().parse_args([
        "bench", "--server", f"localhost:{running.port}", "--token-file", pki["token"], "--tls-ca", pki["ca"],
        "--tls-cert", pki["client_cert"], "--tls-key", pki["client_key"], "--concurrency", "2", "--seconds", "0.3",
        "--count", "2", "--out", str(tmp_path),
    ])
    try:
        report = run_bench(settings_from_args(args))
    finally:
        running.stop(0)
    assert {(r["mode"], r["batching"], r["concurrency"]) for r in report["rows"]} == {("unary", "server", 2),
                                                                                     ("stream", "server", 2)}
    assert all(r["requests"] > 0 and r["errors"] == 0 for r in report["rows"])
    assert report["settings"]["tls_cert"] == pki["client_cert"]


def test_streams_beyond_the_server_workers_fail_with_a_reason(tiny_bundle: Path, monkeypatch) -> None:
    monkeypatch.setattr(bench, "WARMUP_TIMEOUT_S", 1.0)
    running = start_server(Predictor(tiny_bundle, intra_op_threads=1), ServerConfig(port=0, workers=2))
    try:
        with pytest.raises(RuntimeError, match="above its --workers"):
            bench.run_level(f"127.0.0.1:{running.port}", {}, [BenchInput(make_test_image(), None)], "stream", 3, 0.2)
    finally:
        running.stop(0)
