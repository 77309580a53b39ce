"""The export benchmark: every runtime of a bundle on the same inputs, a table and JSON, the issue's targets."""

import json

from vantage.cli import main
from vantage.export.bench import check_targets


def test_bench_export_measures_every_variant_on_the_same_inputs(quantised_bundle, small_renders, tmp_path, capsys):
    out = tmp_path / "bench.json"
    args = ["bench-export", "--model", str(quantised_bundle), "--data", str(small_renders), "--repeats", "2"]
    assert main([*args, "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    rows = {r["runtime"]: r for r in result["rows"]}
    assert list(rows) == ["onnxruntime fp32", "onnxruntime fp16", "onnxruntime int8"]
    assert rows["onnxruntime fp32"]["agreement"]["rotation_max_deg"] < 0.1, "the reference agrees with itself"
    assert rows["onnxruntime fp16"]["agreement"]["category_agreement"] > 0.9
    assert all(r["count"] == 24 and set(r["latency_ms"]) == {"batch1", "batch8"} for r in rows.values())
    assert set(result["targets"]) == {"ort_int8_vs_fp32_batch1", "int8_mederr_increase_deg"}
    table = capsys.readouterr().out
    assert "onnxruntime int8" in table and "target ort_int8_vs_fp32_batch1" in table


def _row(name, b1, med_err):
    return {"runtime": name, "latency_ms": {"batch1": {"median_ms": b1}}, "med_err": med_err}


def test_targets_compare_eager_fp32_and_int8():
    rows = [_row("pytorch eager fp32", 30.0, 20.0), _row("onnxruntime fp32", 10.0, 20.0),
            _row("onnxruntime int8", 8.0, 21.5)]
    targets = check_targets(rows)
    assert targets["ort_fp32_vs_eager_batch1"] == {"speedup": 3.0, "bound": 2.0, "met": True}
    assert targets["ort_int8_vs_fp32_batch1"]["met"] is False  # 1.25x < 1.5x
    assert targets["int8_mederr_increase_deg"]["met"] is False  # +1.5° > +1°
