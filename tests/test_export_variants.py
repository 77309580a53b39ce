"""ONNX Runtime int8 (QDQ) and fp16 variants: backbone only, measured, recorded, refused past the threshold."""

import json
import shutil

import numpy as np
import onnx
import pytest
from onnx import TensorProto

from vantage.bundle import load_metadata
from vantage.cli import main
from vantage.export.measure import ort_runner, run_batched
from vantage.export.ops import violations
from vantage.export.quantize import build_variants
from vantage.export.renders import load_renders
from vantage.export.scopes import in_backbone


def _consumers(graph: onnx.GraphProto) -> dict[str, list[onnx.NodeProto]]:
    out: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            out.setdefault(name, []).append(node)
    return out


def test_int8_quantises_the_backbone_only(quantised_bundle):
    graph = onnx.load(str(quantised_bundle / "model.int8.onnx")).graph
    producer = {o: n for n in graph.node for o in n.output}
    quantised = [n.input[0] for n in graph.node if n.op_type == "QuantizeLinear"]
    assert len(quantised) > 20, "the backbone's activations are quantised"
    for name in quantised:  # only the image and backbone activations are rounded to int8
        assert name == "image" or in_backbone(producer[name].name), f"{producer[name].name}'s output is quantised"
    inits = {i.name for i in graph.initializer}
    heads = [n for n in graph.node if n.op_type == "Gemm"]
    assert heads and all(n.input[1] in inits for n in heads), "head weights stay float initializers"


def test_fp16_keeps_heads_rodrigues_and_io_in_float32(quantised_bundle):
    model = onnx.load(str(quantised_bundle / "model.fp16.onnx"))
    g = model.graph
    inits = {i.name: i.data_type for i in g.initializer}
    users = _consumers(g)
    conv_weights = [n.input[1] for n in g.node if n.op_type == "Conv" and in_backbone(n.name)]
    assert conv_weights and all(inits[w] == TensorProto.FLOAT16 for w in conv_weights)
    gemm_weights = [n.input[1] for n in g.node if n.op_type == "Gemm"]
    assert gemm_weights and all(inits[w] == TensorProto.FLOAT for w in gemm_weights)
    assert all(v.type.tensor_type.elem_type == TensorProto.FLOAT for v in (*g.input, *g.output))
    casts = [n for n in g.node if n.op_type == "Cast" and n.name.endswith(("__to_fp16", "__to_fp32"))]  # the boundary
    assert 2 <= len(casts) <= 4 and all(users.get(c.output[0]) for c in casts)
    assert violations(model) == [], "the fp16 graph stays TensorRT-parsable"


def test_variants_answer_like_fp32_and_keep_rotations_orthonormal(quantised_bundle, small_renders):
    meta = load_metadata(quantised_bundle)
    renders = load_renders(small_renders, meta)
    ref = run_batched(ort_runner(quantised_bundle / "model.onnx"), renders.images, renders.unknown_hints())
    for name, prob_tol, min_cosine in (("fp16", 2e-3, 0.9999), ("int8", 0.04, 0.98)):
        out = run_batched(ort_runner(quantised_bundle / f"model.{name}.onnx"), renders.images, renders.unknown_hints())
        rot = out["rotation"]
        assert np.abs(rot @ rot.transpose(0, 2, 1) - np.eye(3)).max() < 1e-5, name
        assert np.abs(out["category_probs"] - ref["category_probs"]).mean() < prob_tol, name
        assert np.median((out["embedding"] * ref["embedding"]).sum(1)) > min_cosine, name  # MEASURED.md: 0.986


def test_variants_are_recorded_with_accuracy_and_latency(quantised_bundle):
    meta = load_metadata(quantised_bundle)
    assert set(meta.variants) == {"int8", "fp16"}
    report = json.loads((quantised_bundle / "report.json").read_text())
    assert report["reference"]["count"] == 24 and report["max_mederr_increase_deg"] == 180.0
    for name, entry in meta.variants.items():
        assert entry["file"] == f"model.{name}.onnx" and entry["runtime"] == "onnxruntime"
        assert entry["mederr_increase_deg"] == pytest.approx(entry["med_err"] - report["reference"]["med_err"])
        assert set(entry["latency_ms"]) == {"batch1", "batch8"} and entry["latency_ms"]["batch8"]["p90_ms"] > 0
        assert report["variants"][name]["accepted"] is True


def test_variant_past_the_threshold_is_refused_and_removed(quantised_bundle, small_renders, tmp_path):
    bundle = tmp_path / "b"
    shutil.copytree(quantised_bundle, bundle)
    renders = load_renders(small_renders, load_metadata(bundle))
    result = build_variants(bundle, ["fp16"], renders, max_mederr_increase=-90.0, repeats=1)
    assert "--max-mederr-increase" in result["fp16"]["refused"]
    assert not (bundle / "model.fp16.onnx").exists()
    assert set(load_metadata(bundle).variants) == {"int8"}
    assert json.loads((bundle / "report.json").read_text())["variants"]["fp16"]["accepted"] is False


@pytest.mark.parametrize(
    "flags, message",
    [(["--quantize", "int8"], "int8 needs --calibration"), (["--quantize", "fp16"], "--quantize needs --eval-data")],
)
def test_cli_export_says_which_renders_are_missing(flags, message, tmp_path, capsys):
    assert main(["export", "--checkpoint", str(tmp_path / "none.pt"), "--out", str(tmp_path / "b"), *flags]) == 2
    assert message in capsys.readouterr().err
