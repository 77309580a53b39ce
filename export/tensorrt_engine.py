"""TensorRT engines for a bundle, written to NVIDIA's documented `tensorrt` Python API (TensorRT 10).

`export_engine` parses the bundle's `model.onnx`, builds a serialised plan for
batch 1..max_batch (one optimisation profile over `image` and `category_hint`),
reusing and updating a timing cache file, in fp32 (TF32 off), fp16 or int8
(entropy calibration on rendered views of the training meshes). As in the ONNX
Runtime variants, only the backbone (vantage.export.scopes) may drop precision:
the other layers are constrained to float32. The plan is run on the GPU and
compared with ONNX Runtime float32 on the same inputs (rotation geodesic
difference, category agreement); only then is it written to
`BUNDLE/model.<precision>.plan` and listed in vantage.json with the TensorRT
version and GPU it was built for (a plan runs only there).

Plans are run through the server's own TensorRT backend
(vantage.serve.tensorrt_backend, CUDA via NVIDIA's cuda-python), so the check runs
the code that will serve them. TensorRT cannot be installed on the machines Vantage
is developed on (MEASURED.md), so this module has not been run there; `missing()`
says what is absent and the CLI stops with that message.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vantage.bundle import INPUT_HINT_NAME, INPUT_NAME, OUTPUT_NAMES, load_metadata
from vantage.export.measure import Runner, agreement, inputs_for, latency_by_batch, ort_runner, run_batched
from vantage.export.renders import RenderSet
from vantage.export.scopes import in_backbone
from vantage.export.variants import record_variant

PRECISIONS: tuple[str, ...] = ("fp32", "fp16", "int8")
CALIBRATION_BATCH = 8
WORKSPACE_BYTES = 1 << 30


@dataclass(frozen=True)
class Tolerance:
    """How close to ONNX Runtime float32 a plan must be before it is accepted."""

    rotation_median_deg: float
    category_agreement: float


TOLERANCES: dict[str, Tolerance] = {
    "fp32": Tolerance(0.1, 0.99),
    "fp16": Tolerance(1.0, 0.97),
    "int8": Tolerance(3.0, 0.90),
}


class EngineError(RuntimeError):
    """TensorRT refused the graph, failed to build, or its plan disagrees with ONNX Runtime."""


def plan_file(precision: str) -> str:
    return f"model.{precision}.plan"


def _tensorrt() -> Any:
    import tensorrt

    return tensorrt


def _cudart() -> Any:
    try:  # cuda-python >= 12.6 moved the runtime bindings
        from cuda.bindings import runtime
    except ImportError:
        from cuda import cudart as runtime
    return runtime


def _cuda(result: tuple) -> Any:
    """The value of a cuda-python call's (error, value...) tuple; RuntimeError on a CUDA error."""
    err, *values = result
    if int(err) != 0:
        raise RuntimeError(f"CUDA error: {_cudart().cudaGetErrorString(err)[1].decode()}")
    return values[0] if values else None


def gpu() -> dict[str, str]:
    """Name and compute capability of GPU 0 (a plan runs only on the GPU model it was built for)."""
    props = _cuda(_cudart().cudaGetDeviceProperties(0))
    name = props.name.decode() if isinstance(props.name, bytes) else str(props.name)
    return {"gpu": name.rstrip("\x00"), "compute_capability": f"{props.major}.{props.minor}"}


def missing() -> str | None:
    """What stops a TensorRT build on this machine, in words; None when nothing does."""
    try:
        trt = _tensorrt()
    except ImportError as exc:
        return (f"the `tensorrt` Python package is not installed ({exc}); install TensorRT 10 "
                "(NVIDIA's `tensorrt` wheels, or JetPack on a Jetson) on a machine with an NVIDIA GPU")
    if int(str(trt.__version__).split(".")[0]) < 10:
        return f"TensorRT {trt.__version__} is installed; Vantage's engine builder needs TensorRT 10"
    try:
        runtime = _cudart()
    except ImportError as exc:
        return f"NVIDIA's `cuda-python` package is not installed ({exc})"
    err, count = runtime.cudaGetDeviceCount()
    if int(err) != 0 or count == 0:
        return f"no NVIDIA GPU is visible ({runtime.cudaGetErrorString(err)[1].decode()}, {count} devices)"
    return None


def _keep_heads_float32(trt: Any, network: Any) -> None:
    """Constrain every float layer outside the backbone to float32 (the builder may lower only the backbone)."""
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        outputs = [layer.get_output(j) for j in range(layer.num_outputs)]
        if in_backbone(layer.name) or not outputs or any(t.dtype != trt.float32 for t in outputs):
            continue
        layer.precision = trt.float32
        for j in range(layer.num_outputs):
            layer.set_output_type(j, trt.float32)


def _calibrator(trt: Any, images: np.ndarray, k: int) -> Any:
    """An IInt8EntropyCalibrator2 feeding normalised render crops (category unknown) in full batches.

    No calibration cache is kept: a cache left by another model would silently be reused.
    """
    if not hasattr(trt, "IInt8EntropyCalibrator2"):
        raise EngineError(f"TensorRT {trt.__version__} has no IInt8EntropyCalibrator2 (implicit int8 was removed)")
    batches = [np.ascontiguousarray(images[i : i + CALIBRATION_BATCH], np.float32)
               for i in range(0, len(images) - CALIBRATION_BATCH + 1, CALIBRATION_BATCH)]
    if not batches:
        raise EngineError(f"int8 calibration needs at least {CALIBRATION_BATCH} rendered views, got {len(images)}")
    cudart = _cudart()
    to_device = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
    hints = np.zeros((CALIBRATION_BATCH, k), np.float32)

    class EntropyCalibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self) -> None:
            trt.IInt8EntropyCalibrator2.__init__(self)
            self.index = 0
            self.image_ptr = int(_cuda(cudart.cudaMalloc(batches[0].nbytes)))
            self.hint_ptr = int(_cuda(cudart.cudaMalloc(hints.nbytes)))
            _cuda(cudart.cudaMemcpy(self.hint_ptr, hints.ctypes.data, hints.nbytes, to_device))

        def get_batch_size(self) -> int:
            return CALIBRATION_BATCH

        def get_batch(self, names: list[str]) -> list[int] | None:
            if self.index == len(batches):
                return None
            batch = batches[self.index]
            _cuda(cudart.cudaMemcpy(self.image_ptr, batch.ctypes.data, batch.nbytes, to_device))
            self.index += 1
            return [self.image_ptr if name == INPUT_NAME else self.hint_ptr for name in names]

        def read_calibration_cache(self) -> None:
            return None

        def write_calibration_cache(self, data: Any) -> None:
            return None

        def __del__(self) -> None:
            cudart.cudaFree(self.image_ptr)
            cudart.cudaFree(self.hint_ptr)

    return EntropyCalibrator()


def build_plan(
    onnx_path: str | Path,
    precision: str,
    max_batch: int = 8,
    opt_batch: int = 1,
    timing_cache: Path | None = None,
    calibration: np.ndarray | None = None,
) -> bytes:
    """Serialised engine for batch 1..max_batch (optimised for `opt_batch`); updates `timing_cache`."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    trt = _tensorrt()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # explicit batch: the only mode in TensorRT 10
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "\n  ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise EngineError(f"TensorRT's ONNX parser refused {onnx_path}:\n  {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, WORKSPACE_BYTES)
    config.clear_flag(trt.BuilderFlag.TF32)
    inputs = [network.get_input(i) for i in range(network.num_inputs)]
    profile = builder.create_optimization_profile()
    for tensor in inputs:
        rest = tuple(tensor.shape)[1:]
        profile.set_shape(tensor.name, (1, *rest), (opt_batch, *rest), (max_batch, *rest))
    config.add_optimization_profile(profile)
    cached = timing_cache.read_bytes() if timing_cache is not None and timing_cache.is_file() else b""
    if not config.set_timing_cache(config.create_timing_cache(cached), ignore_mismatch=False):
        config.set_timing_cache(config.create_timing_cache(b""), ignore_mismatch=False)  # other GPU or version
    if precision != "fp32":
        config.set_flag(trt.BuilderFlag.FP16)
        config.set_flag(trt.BuilderFlag.PREFER_PRECISION_CONSTRAINTS)
        _keep_heads_float32(trt, network)
    if precision == "int8":
        if calibration is None:
            raise EngineError("an int8 engine needs calibration renders (a folder written by `vantage render`)")
        config.set_flag(trt.BuilderFlag.INT8)
        k = tuple(next(t for t in inputs if t.name == INPUT_HINT_NAME).shape)[1]
        config.int8_calibrator = _calibrator(trt, calibration, k)
        fixed = builder.create_optimization_profile()
        for tensor in inputs:
            shape = (CALIBRATION_BATCH, *tuple(tensor.shape)[1:])
            fixed.set_shape(tensor.name, shape, shape, shape)
        config.set_calibration_profile(fixed)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise EngineError(f"TensorRT could not build a {precision} engine from {onnx_path} (see its log above)")
    if timing_cache is not None:
        timing_cache.write_bytes(bytes(memoryview(config.get_timing_cache().serialize())))
    return bytes(memoryview(plan))


def plan_runner(plan_path: str | Path) -> Runner:
    """A plan on the GPU through the server's TensorRT backend, as a vantage.export.measure Runner."""
    from vantage.serve.tensorrt_backend import TensorRTBackend

    backend = TensorRTBackend(Path(plan_path))
    names = [n for n in OUTPUT_NAMES if n in backend.outputs]  # plans of bundles from before pose hypotheses

    def run(images: np.ndarray, hints: np.ndarray) -> dict[str, np.ndarray]:
        outs = backend.run(names, {INPUT_NAME: images, INPUT_HINT_NAME: hints})
        return {name: out.astype(np.float32, copy=False) for name, out in zip(names, outs)}

    return run


def export_engine(
    bundle_dir: str | Path,
    precision: str,
    max_batch: int = 8,
    calibration: RenderSet | None = None,
    comparison: RenderSet | None = None,
    timing_cache: str | Path | None = None,
    repeats: int = 50,
) -> dict[str, Any]:
    """Build, check against ONNX Runtime and store `model.<precision>.plan`; returns its vantage.json entry.

    EngineError (nothing written to vantage.json, the figures in report.json) when the
    plan's answers are further from ONNX Runtime's than TOLERANCES allows.
    """
    bundle = Path(bundle_dir)
    meta = load_metadata(bundle)
    trt = _tensorrt()
    onnx_path = bundle / meta.onnx_file
    cache = Path(timing_cache) if timing_cache else bundle / "tensorrt.timing.cache"
    plan_path = bundle / plan_file(precision)
    plan_path.write_bytes(build_plan(onnx_path, precision, max_batch=max_batch, timing_cache=cache,
                                     calibration=None if calibration is None else calibration.images))
    runner = plan_runner(plan_path)
    images, hints, source = inputs_for(meta, comparison if comparison is not None else calibration, count=32)
    got = run_batched(runner, images, hints, batch=max_batch)
    ref = run_batched(ort_runner(onnx_path), images, hints, batch=max_batch)
    agree = agreement(got, ref)
    tol = TOLERANCES[precision]
    entry = {
        "file": plan_file(precision),
        "runtime": "tensorrt",
        "precision": precision,
        "tensorrt": str(trt.__version__),
        **gpu(),
        "max_batch": max_batch,
        "agreement_with_onnxruntime": agree,
        "compared_on": source,
        "tolerance": {"rotation_median_deg": tol.rotation_median_deg, "category_agreement": tol.category_agreement},
        "latency_ms": latency_by_batch(runner, images, hints, batches=(1, min(8, max_batch)), repeats=repeats),
    }
    ok = agree["rotation_median_deg"] <= tol.rotation_median_deg and agree["category_agreement"] >= tol.category_agreement
    if not ok:
        entry["refused"] = (
            f"TensorRT {precision} plan disagrees with ONNX Runtime: median rotation difference "
            f"{agree['rotation_median_deg']:.2f}° (allowed {tol.rotation_median_deg}°), category agreement "
            f"{agree['category_agreement']:.3f} (required {tol.category_agreement})"
        )
        plan_path.unlink()
    record_variant(bundle, f"tensorrt-{precision}", entry, ok)
    if not ok:
        raise EngineError(entry["refused"])
    return entry
