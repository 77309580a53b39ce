"""Inference backends: automatic choice, explicit requests, GPU and TensorRT where they exist."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from serve_fixtures import make_test_image
from vantage.bundle import load_metadata
from vantage.serve.backends import BackendUnavailable, create_backend, tensorrt_plan_path
from vantage.serve.engine import Predictor

IMAGE = make_test_image(seed=9)
HAS_CUDA_PROVIDER = "CUDAExecutionProvider" in ort.get_available_providers()
HAS_TENSORRT = importlib.util.find_spec("tensorrt") is not None
NO_TENSORRT = "TensorRT cannot be installed on these machines (MEASURED.md): `import tensorrt` fails"


def test_auto_picks_what_works_here_and_names_it(tiny_bundle: Path) -> None:
    auto = Predictor(tiny_bundle, backend="auto", intra_op_threads=1)
    cpu = Predictor(tiny_bundle, backend="onnxruntime-cpu", intra_op_threads=1)
    assert auto.backend.startswith("onnxruntime/")
    if not HAS_CUDA_PROVIDER:
        assert auto.backend == "onnxruntime/CPUExecutionProvider"
    a, c = auto.predict_bytes(IMAGE), cpu.predict_bytes(IMAGE)
    assert a.backend == auto.backend
    np.testing.assert_allclose(a.rotation, c.rotation, atol=1e-3)


def test_unknown_backend(tiny_bundle: Path) -> None:
    with pytest.raises(ValueError, match="unknown backend 'cuda'"):
        Predictor(tiny_bundle, backend="cuda")


@pytest.mark.skipif(HAS_CUDA_PROVIDER, reason="this ONNX Runtime has GPU providers: see test_onnxruntime_gpu")
def test_asking_for_a_gpu_without_one_is_an_error(tiny_bundle: Path) -> None:
    with pytest.raises(BackendUnavailable, match="no GPU provider"):
        Predictor(tiny_bundle, backend="onnxruntime-gpu")


def test_tensorrt_without_an_engine_is_an_error(tiny_bundle: Path) -> None:
    with pytest.raises(BackendUnavailable, match="has no TensorRT engine"):
        Predictor(tiny_bundle, backend="tensorrt")


def test_tensorrt_plan_is_found_in_the_variants(tiny_bundle: Path, tmp_path: Path) -> None:
    bundle = tmp_path / "b"
    shutil.copytree(tiny_bundle, bundle)
    assert tensorrt_plan_path(bundle, load_metadata(bundle)) == bundle / "model.plan"
    meta = json.loads((bundle / "vantage.json").read_text())
    meta["variants"] = {
        "onnx-int8": {"file": "model.int8.onnx", "runtime": "onnxruntime"},
        "tensorrt-fp32": {"file": "model.fp32.plan", "runtime": "tensorrt"},
        "tensorrt-fp16": {"file": "model.fp16.plan", "runtime": "tensorrt"},
    }
    (bundle / "vantage.json").write_text(json.dumps(meta))
    assert tensorrt_plan_path(bundle, load_metadata(bundle)) == bundle / "model.fp16.plan"
    (bundle / "model.fp16.plan").write_bytes(b"not a plan")
    with pytest.raises(BackendUnavailable, match="TensorRT cannot be imported" if not HAS_TENSORRT else "cannot run"):
        create_backend("tensorrt", bundle, load_metadata(bundle))
    assert Predictor(bundle, backend="auto").backend.startswith("onnxruntime/")  # auto falls back


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_CUDA_PROVIDER, reason="needs onnxruntime-gpu and an NVIDIA GPU")
def test_onnxruntime_gpu(tiny_bundle: Path, tmp_path: Path) -> None:
    bundle = tmp_path / "gpu"
    shutil.copytree(tiny_bundle, bundle)
    try:
        gpu = Predictor(bundle, backend="onnxruntime-gpu", max_batch_size=4)
    except BackendUnavailable as exc:
        pytest.skip(f"no usable GPU: {exc}")
    assert gpu.backend in ("onnxruntime/TensorrtExecutionProvider", "onnxruntime/CUDAExecutionProvider")
    cpu = Predictor(bundle)
    np.testing.assert_allclose(gpu.predict_bytes(IMAGE).rotation, cpu.predict_bytes(IMAGE).rotation, atol=1e-2)


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_TENSORRT, reason=NO_TENSORRT)
def test_native_tensorrt_engine(tiny_bundle: Path, tmp_path: Path) -> None:
    from vantage.export.tensorrt_engine import export_engine

    bundle = tmp_path / "trt"
    shutil.copytree(tiny_bundle, bundle)
    export_engine(bundle, "fp32", max_batch=4)
    trt = Predictor(bundle, backend="tensorrt")
    assert trt.backend.startswith("tensorrt/")
    cpu = Predictor(bundle)
    images = [make_test_image(seed=s) for s in range(6)]  # more than the profile's batch: run in chunks
    got = trt.run([trt.prepare_bytes(i) for i in images])
    want = cpu.run([cpu.prepare_bytes(i) for i in images])
    for g, w in zip(got, want):
        np.testing.assert_allclose(g.rotation, w.rotation, atol=1e-2)
