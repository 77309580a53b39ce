"""`vantage bench`: a quick run against servers it starts, and its inputs."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import pytest

from serve_fixtures import make_test_image
from vantage.serve.bench import BenchSettings, Row, ratios, run_bench, summarise
from vantage.serve.bench_images import bench_inputs


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
    paired = (summarise("in-process", "-", 1, [0.004], 0, 1.0), summarise("unary-paired", "on", 1, [0.005], 0, 1.0))
    assert ratios([row, off], paired) == {"grpc_p50_over_in_process_c1": 1.25, "batching_throughput_speedup_c16": 2.0}
    assert ratios([row], None) == {"grpc_p50_over_in_process_c1": None, "batching_throughput_speedup_c16": None}


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
        assert len(list(csv.DictReader(fh))) == len(rows) + 2  # + the paired in-process and gRPC rows
    assert (out / "bench.png").stat().st_size > 10_000
    assert "serving model" in (out / "server-batching-on.log").read_text()
