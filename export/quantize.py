"""ONNX Runtime variants of a bundle for CPUs and Jetson CPUs: static int8 (QDQ) and float16.

Only the backbone (vantage.export.scopes) changes precision; the heads, the fusion
and Rodrigues stay float32. int8 is static QDQ, u8 activations and s8 per-channel weights,
calibrated on renders after `quant_pre_process`; dynamic quantisation of
convolutions is 10-20x slower here and is not offered. The stem convolution (it sees
the raw normalised pixels) and the fine-tuned trunk stay float32 in the int8 graph
(`INT8_FLOAT_SCOPE`): on the quickstart model that halved the MedErr increase
(+1.6° → +0.65°, median rotation change 4.9° → 4.2°) for about 5 % of the int8 speed-up;
MinMax, percentile, entropy and moving-average calibration all gave the same +1.6°.

Each variant's MedErr and cat-acc on held-out renders and its latency are measured
against the float32 graph on the same inputs; a variant whose MedErr rises by more
than the user's threshold is refused (its file removed, the reason in report.json).
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process

from vantage.bundle import INPUT_HINT_NAME, INPUT_NAME, load_metadata
from vantage.export.fp16 import convert_to_fp16
from vantage.export.measure import accuracy, agreement, latency_by_batch, ort_runner, run_batched
from vantage.export.renders import RenderSet
from vantage.export.scopes import BACKBONE_SCOPE, in_backbone
from vantage.export.variants import record_variant

PRECISIONS: tuple[str, ...] = ("int8", "fp16")
DEFAULT_MAX_MEDERR_INCREASE = 1.0
CALIBRATION_BATCH = 8


# Backbone parts int8 leaves float32: every feature network's stem and every trunk, in a plain network, under the
# flip wrapper (`/net`) and in ensembles (`/members.<i>`, `/more_features.<j>`), as vantage.export.scopes names them.
INT8_FLOAT_SCOPE = re.compile(r"^(/net)?(/members\.\d+)?/((more_)?features(\.\d+)?/stem/|trunk)")


def variant_file(precision: str) -> str:
    return f"model.{precision}.onnx"


def is_backbone(node: onnx.NodeProto) -> bool:
    return in_backbone(node.name)


class _Calibration(CalibrationDataReader):
    """Batches of normalised render crops with an unknown-category hint."""

    def __init__(self, images: np.ndarray, k: int) -> None:
        batches = (images[i : i + CALIBRATION_BATCH] for i in range(0, len(images), CALIBRATION_BATCH))
        self._batches: Iterator[dict[str, np.ndarray]] = iter(
            {INPUT_NAME: b, INPUT_HINT_NAME: np.zeros((len(b), k), np.float32)} for b in batches
        )

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._batches, None)


def quantize_int8(src: str | Path, dst: str | Path, calibration: np.ndarray) -> None:
    """Static QDQ int8 of the backbone nodes only, calibrated on `calibration` crops (N,3,S,S)."""
    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(str(src), str(pre))
        graph = onnx.load(str(pre)).graph
        keep_float = [n.name for n in graph.node if not is_backbone(n) or INT8_FLOAT_SCOPE.match(n.name)]
        if len(keep_float) == len(graph.node):
            raise ValueError(f"{src}: no backbone nodes matching {BACKBONE_SCOPE.pattern}; nothing to quantise")
        k = next(i for i in graph.input if i.name == INPUT_HINT_NAME).type.tensor_type.shape.dim[1].dim_value
        quantize_static(
            str(pre),
            str(dst),
            _Calibration(calibration.astype(np.float32), k),
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            per_channel=True,
            nodes_to_exclude=keep_float,
        )


def convert_fp16(src: str | Path, dst: str | Path) -> None:
    """Backbone in float16, heads/fusion/Rodrigues and the graph's inputs/outputs float32."""
    onnx.save(convert_to_fp16(onnx.load(str(src)), is_backbone), str(dst))


def build_variants(
    bundle_dir: str | Path,
    precisions: Sequence[str],
    evaluation: RenderSet,
    calibration: RenderSet | None = None,
    max_mederr_increase: float = DEFAULT_MAX_MEDERR_INCREASE,
    repeats: int = 50,
) -> dict[str, dict[str, Any]]:
    """Write, measure and accept or refuse each variant; returns name → entry (refused ones have "refused").

    int8 needs `calibration`; `evaluation` must hold labelled views the model was not trained on.
    """
    bundle = Path(bundle_dir)
    meta = load_metadata(bundle)
    unknown = [p for p in precisions if p not in PRECISIONS]
    if unknown:
        raise ValueError(f"unknown precision {unknown}; choose from {PRECISIONS}")
    if "int8" in precisions and calibration is None:
        raise ValueError("int8 quantisation needs calibration renders (a folder written by `vantage render`)")
    images, hints = evaluation.images, evaluation.unknown_hints()
    reference = ort_runner(bundle / meta.onnx_file)
    ref_out = run_batched(reference, images, hints)
    ref = {
        "file": meta.onnx_file,
        **accuracy(ref_out, evaluation),
        "latency_ms": latency_by_batch(reference, images, hints, repeats=repeats),
    }
    context = {
        "reference": ref,
        "evaluation": {"renders": evaluation.source, "images": len(evaluation), "category_hint": "unknown"},
        "max_mederr_increase_deg": max_mederr_increase,
    }
    if calibration is not None:
        context["calibration"] = {"renders": calibration.source, "images": len(calibration)}
    results = {}
    for precision in precisions:
        path = bundle / variant_file(precision)
        if precision == "int8":
            quantize_int8(bundle / meta.onnx_file, path, calibration.images)
            method = "static QDQ, u8 activations, s8 per-channel weights, backbone without stem and trunk"
        else:
            convert_fp16(bundle / meta.onnx_file, path)
            method = "float16 backbone, float32 heads/fusion/Rodrigues and inputs/outputs"
        runner = ort_runner(path)
        out = run_batched(runner, images, hints)
        acc = accuracy(out, evaluation)
        lat = latency_by_batch(runner, images, hints, repeats=repeats)
        entry = {
            "file": path.name,
            "runtime": "onnxruntime",
            "precision": precision,
            "method": method,
            **acc,
            "mederr_increase_deg": acc["med_err"] - ref["med_err"],
            "cat_acc_change": acc["cat_acc"] - ref["cat_acc"],
            "agreement_with_fp32": agreement(out, ref_out),
            "latency_ms": lat,
            "speedup_vs_fp32": {b: ref["latency_ms"][b]["median_ms"] / lat[b]["median_ms"] for b in lat},
        }
        accepted = entry["mederr_increase_deg"] <= max_mederr_increase
        if not accepted:
            entry["refused"] = (
                f"{precision} variant refused: MedErr rose by {entry['mederr_increase_deg']:.2f}° "
                f"({ref['med_err']:.2f}° → {acc['med_err']:.2f}°), more than the allowed {max_mederr_increase:.2f}° "
                f"(--max-mederr-increase)"
            )
            path.unlink()
        record_variant(bundle, precision, entry, accepted, context)
        results[precision] = entry
    return results
