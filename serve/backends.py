"""Inference backends: run a bundle's graph on ONNX Runtime (CPU, or TensorRT/CUDA providers) or TensorRT.

    backend = create_backend("auto", bundle_dir, metadata, intra_op_threads=2)
    probs, axis_angle, rotation, embedding = backend.run(OUTPUT_NAMES, feeds)

Every backend describes its graph's tensors (`inputs`, `outputs`: name → TensorSpec)
so that `Predictor` checks the bundle contract the same way whatever runs it, and
names itself (`name`, e.g. "onnxruntime/CPUExecutionProvider"), which responses carry.

Kinds (`BACKENDS`):

* `onnxruntime-cpu` – ORT's CPU provider.
* `onnxruntime-gpu` – ORT with the TensorRT provider first (its engine cache in
  `<bundle>/trt_cache/`, one optimisation profile from batch 1 to the server's
  maximum batch), the CUDA provider second. ORT silently falls back to the CPU when
  their libraries or the GPU are missing (MEASURED.md), so the providers of the
  session are checked after it is created: asking for this kind explicitly and not
  getting a GPU provider is an error.
* `tensorrt` – a serialized TensorRT engine in the bundle (`vantage.serve.tensorrt_backend`,
  imported only for this kind).
* `auto` – the first of tensorrt (when the bundle has a plan and TensorRT imports),
  onnxruntime-gpu (when ORT offers a GPU provider and the session gets it), and
  onnxruntime-cpu that works; each skipped kind is logged with its reason.

Never imports torch.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, Sequence

import numpy as np
import onnxruntime as ort

from vantage.bundle import BundleError, BundleMetadata
from vantage.serve.config import BACKENDS

log = logging.getLogger(__name__)

GPU_PROVIDERS: tuple[str, ...] = ("TensorrtExecutionProvider", "CUDAExecutionProvider")
TRT_CACHE_DIR = "trt_cache"
DEFAULT_PLAN_FILE = "model.plan"

# ORT's element type names → numpy dtype names (the ones bundle graphs can hold).
_ORT_TYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(double)": "float64",
              "tensor(int64)": "int64", "tensor(int32)": "int32", "tensor(uint8)": "uint8"}


class BackendUnavailable(RuntimeError):
    """The requested backend cannot run here (missing library, GPU or engine file); the message says why."""


@dataclass(frozen=True)
class TensorSpec:
    """A graph input or output: numpy dtype name and shape (None or a name for dynamic axes)."""

    dtype: str
    shape: tuple[int | str | None, ...]


class Backend(Protocol):
    """What `Predictor` needs from an inference engine (thread-safe `run`)."""

    name: str
    inputs: dict[str, TensorSpec]
    outputs: dict[str, TensorSpec]

    def run(self, output_names: Sequence[str], feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """Run one batch; returns the named outputs in order."""
        ...


class OrtBackend:
    """An ONNX Runtime session; `name` is "onnxruntime/<first active provider>"."""

    def __init__(
        self, model_path: Path, providers: Sequence[str | tuple[str, dict]], intra_op_threads: int = 0
    ) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(intra_op_threads)
        # Spinning threads steal the CPU from everything else in the process (MEASURED.md).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.add_session_config_entry("session.inter_op.allow_spinning", "0")
        try:
            self.session = ort.InferenceSession(str(model_path), sess_options=options, providers=list(providers))
        except Exception as exc:  # ORT raises its own exception types for bad files
            raise BundleError(f"ONNX Runtime cannot load {str(model_path)!r}: {exc}") from exc
        self.providers: list[str] = list(self.session.get_providers())
        self.name = f"onnxruntime/{self.providers[0]}"
        self.inputs = {a.name: _ort_spec(a) for a in self.session.get_inputs()}
        self.outputs = {a.name: _ort_spec(a) for a in self.session.get_outputs()}

    def run(self, output_names: Sequence[str], feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        return self.session.run(list(output_names), feeds)


def _ort_spec(arg: ort.NodeArg) -> TensorSpec:
    return TensorSpec(_ORT_TYPES.get(arg.type, arg.type), tuple(arg.shape or ()))


def _gpu_providers(bundle_dir: Path, metadata: BundleMetadata, max_batch_size: int) -> list[str | tuple[str, dict]]:
    """TensorRT then CUDA then CPU providers, those this ORT build offers; engine cache in the bundle."""
    available = set(ort.get_available_providers())
    s, k = int(metadata.input_size), len(metadata.categories)

    def shapes(n: int) -> str:
        return f"{metadata.input_name}:{n}x3x{s}x{s},{metadata.hint_name}:{n}x{k}"

    trt_options = {
        "trt_engine_cache_enable": True,
        "trt_engine_cache_path": str(bundle_dir / TRT_CACHE_DIR),
        "trt_profile_min_shapes": shapes(1),
        "trt_profile_opt_shapes": shapes(max_batch_size),
        "trt_profile_max_shapes": shapes(max_batch_size),
    }
    wanted: list[str | tuple[str, dict]] = [("TensorrtExecutionProvider", trt_options), "CUDAExecutionProvider"]
    chosen = [p for p in wanted if (p if isinstance(p, str) else p[0]) in available]
    if not chosen:
        raise BackendUnavailable(
            f"this ONNX Runtime ({ort.__version__}) offers no GPU provider (it has {sorted(available)}); install onnxruntime-gpu"
        )
    if "TensorrtExecutionProvider" in available:
        try:
            (bundle_dir / TRT_CACHE_DIR).mkdir(exist_ok=True)
        except OSError as exc:
            raise BackendUnavailable(f"cannot create the TensorRT engine cache in the bundle: {exc}") from exc
    return [*chosen, "CPUExecutionProvider"]


def tensorrt_plan_path(bundle_dir: Path, metadata: BundleMetadata) -> Path:
    """The bundle's TensorRT engine: the first (by name: fp16, fp32, int8) `variants` entry with
    runtime "tensorrt" (`vantage.export.tensorrt_engine` writes them), else model.plan."""
    for name in sorted(metadata.variants or {}):
        variant = metadata.variants[name]
        if isinstance(variant, dict) and variant.get("runtime") == "tensorrt" and variant.get("file"):
            return bundle_dir / str(variant["file"])
    return bundle_dir / DEFAULT_PLAN_FILE


def _tensorrt(bundle_dir: Path, metadata: BundleMetadata) -> Backend:
    plan = tensorrt_plan_path(bundle_dir, metadata)
    if not plan.is_file():
        raise BackendUnavailable(f"model bundle {str(bundle_dir)!r} has no TensorRT engine ({plan.name})")
    try:
        from vantage.serve.tensorrt_backend import TensorRTBackend  # noqa: PLC0415 (optional dependency)
    except ImportError as exc:
        raise BackendUnavailable(f"TensorRT cannot be imported: {exc}") from exc
    try:
        return TensorRTBackend(plan)
    except (BundleError, RuntimeError) as exc:  # e.g. a plan built for another GPU
        raise BackendUnavailable(f"the TensorRT engine {plan.name} cannot run here: {exc}") from exc


def _onnxruntime_gpu(bundle_dir: Path, metadata: BundleMetadata, intra_op_threads: int, max_batch_size: int) -> Backend:
    providers = _gpu_providers(bundle_dir, metadata, max_batch_size)
    backend = OrtBackend(bundle_dir / metadata.onnx_file, providers, intra_op_threads)
    if not set(backend.providers) & set(GPU_PROVIDERS):
        raise BackendUnavailable(
            f"ONNX Runtime fell back to {backend.providers}: no usable GPU or CUDA/TensorRT libraries"
        )
    return backend


def create_backend(
    kind: str,
    bundle_dir: str | Path,
    metadata: BundleMetadata,
    intra_op_threads: int = 0,
    max_batch_size: int = 8,
) -> Backend:
    """The backend of `kind` (one of BACKENDS) for a bundle; BackendUnavailable when it cannot run here."""
    bundle_dir = Path(bundle_dir)
    if kind not in BACKENDS:
        raise ValueError(f"unknown backend {kind!r}; expected one of {', '.join(BACKENDS)}")
    cpu = lambda: OrtBackend(bundle_dir / metadata.onnx_file, ["CPUExecutionProvider"], intra_op_threads)  # noqa: E731
    makers = {
        "tensorrt": lambda: _tensorrt(bundle_dir, metadata),
        "onnxruntime-gpu": lambda: _onnxruntime_gpu(bundle_dir, metadata, intra_op_threads, max_batch_size),
        "onnxruntime-cpu": cpu,
    }
    if kind != "auto":
        return makers[kind]()
    for name in ("tensorrt", "onnxruntime-gpu"):
        try:
            return makers[name]()
        except BackendUnavailable as exc:
            log.info("backend %s skipped: %s", name, exc)
    return cpu()
