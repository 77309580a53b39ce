"""Benchmark every runtime of a bundle on the same inputs in one run: a table and JSON.

Rows: PyTorch eager (when the checkpoint is given), ONNX Runtime float32 and each
ONNX Runtime variant of vantage.json (int8, fp16), and the TensorRT plans when
TensorRT and a GPU are present. Columns: latency at batch 1 and 8 (median, p90),
agreement with the first row (rotation geodesic difference, top category), and,
given labelled held-out renders, MedErr and cat-acc. ONNX Runtime's spinning is
off so that PyTorch is not slowed beside it (MEASURED.md).

Run it as `vantage bench-export --model BUNDLE [--checkpoint CKPT ...] [--data DIR]` (an ensemble bundle's
member checkpoints, in order).
"""

from __future__ import annotations

import platform
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vantage.bundle import load_metadata
from vantage.export.measure import (
    Runner, accuracy, agreement, inputs_for, latency_by_batch, ort_runner, run_batched, torch_runner,
)
from vantage.export.renders import load_renders

# The targets: (what is measured, bound, True when the figure must reach at least the bound).
TARGETS: dict[str, tuple[str, float, bool]] = {
    "ort_fp32_vs_eager_batch1": ("speedup", 2.0, True),
    "ort_int8_vs_fp32_batch1": ("speedup", 1.5, True),
    "int8_mederr_increase_deg": ("increase", 1.0, False),
}


def _cpu_name() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _runners(bundle: Path, checkpoint: Sequence[str | Path] | None) -> list[tuple[str, Runner]]:
    """(row name, runner) for every runtime available for this bundle here."""
    meta = load_metadata(bundle)
    rows: list[tuple[str, Runner]] = []
    if checkpoint is not None:
        from vantage.train.ensemble import exported_model

        eager, _ = exported_model(checkpoint, meta.test_time)  # the same computation as the graph
        rows.append(("pytorch eager fp32", torch_runner(eager)))
    rows.append(("onnxruntime fp32", ort_runner(bundle / meta.onnx_file)))
    tensorrt = [e for e in meta.variants.values() if e["runtime"] == "tensorrt"]
    for entry in meta.variants.values():
        if entry["runtime"] == "onnxruntime":
            rows.append((f"onnxruntime {entry['precision']}", ort_runner(bundle / entry["file"])))
    if tensorrt:
        from vantage.export.tensorrt_engine import missing, plan_runner

        if missing() is None:
            rows += [(f"tensorrt {e['precision']}", plan_runner(bundle / e["file"])) for e in tensorrt]
    return rows


def run_bench(
    bundle_dir: str | Path,
    checkpoint: Sequence[str | Path] | None = None,
    data: str | Path | None = None,
    repeats: int = 50,
    limit: int = 500,
) -> dict[str, Any]:
    """Measure every runtime on the same inputs; the first row is the reference for agreement."""
    bundle = Path(bundle_dir)
    meta = load_metadata(bundle)
    renders = load_renders(data, meta, limit=limit) if data is not None else None
    images, hints, source = inputs_for(meta, renders)
    rows, reference = [], None
    for name, runner in _runners(bundle, checkpoint):
        outputs = run_batched(runner, images, hints, batch=8)
        reference = reference if reference is not None else outputs
        row = {"runtime": name, "latency_ms": latency_by_batch(runner, images, hints, repeats=repeats)}
        row["agreement"] = agreement(outputs, reference)
        if renders is not None:
            row.update(accuracy(outputs, renders))
        rows.append(row)
    return {
        "bundle": str(bundle),
        "cpu": _cpu_name(),
        "inputs": {"images": len(images), "source": source, "input_size": meta.input_size, "category_hint": "unknown"},
        "repeats": repeats,
        "rows": rows,
        "targets": check_targets(rows),
    }


def check_targets(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The issue's targets, each with the measured figure and whether it is met (absent rows are skipped)."""
    by = {r["runtime"]: r for r in rows}

    def b1(name: str) -> float:
        return by[name]["latency_ms"]["batch1"]["median_ms"]

    figures = {}
    if "pytorch eager fp32" in by:
        figures["ort_fp32_vs_eager_batch1"] = b1("pytorch eager fp32") / b1("onnxruntime fp32")
    if "onnxruntime int8" in by:
        figures["ort_int8_vs_fp32_batch1"] = b1("onnxruntime fp32") / b1("onnxruntime int8")
        if "med_err" in by["onnxruntime int8"]:
            figures["int8_mederr_increase_deg"] = by["onnxruntime int8"]["med_err"] - by["onnxruntime fp32"]["med_err"]
    out = {}
    for name, value in figures.items():
        what, bound, at_least = TARGETS[name]
        out[name] = {what: value, "bound": bound, "met": value >= bound if at_least else value <= bound}
    return out


def format_table(result: dict[str, Any]) -> str:
    """Plain-text table of a run_bench result."""
    head = (f"{'runtime':<20} {'b1 med':>7} {'b1 p90':>7} {'b8 med':>7} {'b8 p90':>7} "
            f"{'Δrot med°':>9} {'Δrot max°':>9} {'cat agr':>7} {'MedErr°':>8} {'cat-acc':>7}")
    inputs = result["inputs"]
    lines = [f"{result['cpu']}; {inputs['images']} inputs from {inputs['source']}; ms", head, "-" * len(head)]
    for r in result["rows"]:
        lat, agr = r["latency_ms"], r["agreement"]
        lines.append(
            f"{r['runtime']:<20} {lat['batch1']['median_ms']:>7.2f} {lat['batch1']['p90_ms']:>7.2f} "
            f"{lat['batch8']['median_ms']:>7.2f} {lat['batch8']['p90_ms']:>7.2f} "
            f"{agr['rotation_median_deg']:>9.3f} {agr['rotation_max_deg']:>9.3f} {agr['category_agreement']:>7.3f} "
            f"{r.get('med_err', float('nan')):>8.2f} {r.get('cat_acc', float('nan')):>7.3f}"
        )
    for name, t in result["targets"].items():
        what, bound, at_least = TARGETS[name]
        need = f"{'≥' if at_least else '≤'} {bound}"
        lines.append(f"target {name}: {what} {t[what]:.2f} (needs {need}): {'met' if t['met'] else 'NOT met'}")
    return "\n".join(lines)


if __name__ == "__main__":
    import sys

    from vantage.cli import main

    sys.exit(main(["bench-export", *sys.argv[1:]]))
