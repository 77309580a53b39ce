"""Latency, accuracy and agreement of one graph against another, on the same inputs.

Every runtime (PyTorch eager, ONNX Runtime at any precision, TensorRT) is wrapped
as a `Runner`: (images, hints) → the bundle's named outputs, so quantisation,
engine checks and the benchmark compare them with one set of functions.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from vantage.bundle import INPUT_HINT_NAME, INPUT_NAME, OUTPUT_NAMES, BundleMetadata
from vantage.export.renders import RenderSet
from vantage.geometry import geodesic_distance
from vantage.train.metrics import pose_report

Runner = Callable[[np.ndarray, np.ndarray], dict[str, np.ndarray]]


def ort_runner(path: str | Path) -> Runner:
    """ONNX Runtime on CPU, spinning off (MEASURED.md: spinning slows PyTorch beside it)."""
    from vantage.export.onnx_export import ort_session

    sess = ort_session(path)
    have = {o.name for o in sess.get_outputs()}
    names = [n for n in OUTPUT_NAMES if n in have]  # bundles exported before pose hypotheses lack them

    def run(images: np.ndarray, hints: np.ndarray) -> dict[str, np.ndarray]:
        return dict(zip(names, sess.run(names, {INPUT_NAME: images, INPUT_HINT_NAME: hints})))

    return run


def torch_runner(model: object) -> Runner:
    """PyTorch eager inference of a model with the bundle graph contract."""
    import torch

    model.eval()

    def run(images: np.ndarray, hints: np.ndarray) -> dict[str, np.ndarray]:
        with torch.inference_mode():
            outs = model(torch.from_numpy(images), torch.from_numpy(hints))
        return {name: t.numpy() for name, t in zip(OUTPUT_NAMES, outs)}

    return run


def inputs_for(meta: BundleMetadata, renders: RenderSet | None, count: int = 16) -> tuple[np.ndarray, np.ndarray, str]:
    """(images, unknown-category hints, where they come from): the renders, else `count` seeded random crops."""
    if renders is not None:
        return renders.images, renders.unknown_hints(), renders.source
    s = int(meta.input_size)
    images = np.random.default_rng(0).normal(size=(count, 3, s, s)).astype(np.float32)
    return images, np.zeros((count, len(meta.categories)), np.float32), "seeded random crops"


def run_batched(runner: Runner, images: np.ndarray, hints: np.ndarray, batch: int = 16) -> dict[str, np.ndarray]:
    """Outputs for all images, in batches of at most `batch`."""
    parts = [runner(images[i : i + batch], hints[i : i + batch]) for i in range(0, len(images), batch)]
    return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}


def latency(runner: Runner, images: np.ndarray, hints: np.ndarray, repeats: int = 50, warmup: int = 5) -> dict[str, float]:
    """Median and 90th-percentile wall time of one call, in milliseconds."""
    for _ in range(warmup):
        runner(images, hints)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        runner(images, hints)
        times.append((time.perf_counter() - t0) * 1e3)
    return {"median_ms": float(np.median(times)), "p90_ms": float(np.percentile(times, 90))}


def latency_by_batch(
    runner: Runner, images: np.ndarray, hints: np.ndarray, batches: tuple[int, ...] = (1, 8), repeats: int = 50
) -> dict[str, dict[str, float]]:
    """`latency` at each batch size ("batch1", "batch8", ...), images repeated when there are too few."""
    out = {}
    for b in batches:
        idx = np.arange(b) % len(images)
        out[f"batch{b}"] = latency(runner, images[idx], hints[idx], repeats=repeats)
    return out


def accuracy(outputs: dict[str, np.ndarray], renders: RenderSet) -> dict[str, float]:
    """MedErr (degrees) and cat-acc over all images (vantage.train.metrics)."""
    names = np.asarray(renders.names)
    report = pose_report(
        outputs["rotation"].astype(np.float64),
        renders.rotations,
        names[outputs["category_probs"].argmax(1)],
        names[renders.categories],
        renders.names,
    )
    overall = report["overall"]
    return {"med_err": overall["med_err"], "cat_acc": overall["cat_acc"], "count": overall["count"]}


def agreement(outputs: dict[str, np.ndarray], reference: dict[str, np.ndarray]) -> dict[str, float]:
    """How far one runtime's answers are from another's: rotation geodesic (°) and top category."""
    geo = geodesic_distance(outputs["rotation"], reference["rotation"])
    same = outputs["category_probs"].argmax(1) == reference["category_probs"].argmax(1)
    return {
        "rotation_median_deg": float(np.median(geo)),
        "rotation_max_deg": float(geo.max()),
        "category_agreement": float(same.mean()),
    }
