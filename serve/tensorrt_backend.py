"""A native TensorRT engine from the bundle, written to NVIDIA's documented `tensorrt` Python API (TensorRT 10).

Imported only when the `tensorrt` backend is chosen (`vantage.serve.backends`): it needs
the `tensorrt` package and CUDA's runtime bindings (`cuda-python`), which this
project cannot install on its CPU machines (MEASURED.md), so its tests skip there.

The engine is NVIDIA's serialized plan, built on the target GPU from the bundle's
ONNX graph with a dynamic batch axis and one optimisation profile, e.g.

    trtexec --onnx=model.onnx --saveEngine=model.plan \\
        --minShapes=image:1x3xSxS,category_hint:1xK --optShapes=image:8x3xSxS,category_hint:8xK \\
        --maxShapes=image:8x3xSxS,category_hint:8xK

A plan only runs on the GPU model and TensorRT version that built it; a plan that
cannot be deserialized is a BundleError. Tensors are bound by name; device buffers
are allocated once for profile 0's largest batch; larger batches run in chunks.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import tensorrt as trt

try:  # cuda-python ≥ 12.6 moved the runtime bindings
    from cuda.bindings import runtime as cudart
except ImportError:  # pragma: no cover - older cuda-python
    from cuda import cudart

from vantage.bundle import BundleError
from vantage.serve.backends import TensorSpec

PROFILE = 0


def _cuda(result: tuple) -> Any:
    """Unpack a cuda-python call's (error, value...) tuple; RuntimeError on a CUDA error."""
    err, *values = result
    if err != cudart.cudaError_t.cudaSuccess:
        raise RuntimeError(f"CUDA runtime error: {cudart.cudaGetErrorString(err)[1].decode()}")
    return values[0] if len(values) == 1 else values


class TensorRTBackend:
    """One deserialized engine and one execution context (batches run one at a time)."""

    def __init__(self, plan_path: Path) -> None:
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        self.engine = self._runtime.deserialize_cuda_engine(Path(plan_path).read_bytes())
        if self.engine is None:
            raise BundleError(
                f"TensorRT {trt.__version__} cannot deserialize {str(plan_path)!r} "
                "(built for another GPU or TensorRT version?)"
            )
        self.context = self.engine.create_execution_context()
        self.name = f"tensorrt/{trt.__version__}"
        engine = self.engine
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        is_input = {n: engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT for n in names}
        self._dtypes = {n: np.dtype(trt.nptype(engine.get_tensor_dtype(n))) for n in names}

        def spec(name: str) -> TensorSpec:
            dims = tuple(None if d < 0 else int(d) for d in engine.get_tensor_shape(name))
            return TensorSpec(self._dtypes[name].name, dims)

        self.inputs = {n: spec(n) for n in names if is_input[n]}
        self.outputs = {n: spec(n) for n in names if not is_input[n]}
        self._lock = threading.Lock()
        self._stream = _cuda(cudart.cudaStreamCreate())
        self.context.set_optimization_profile_async(PROFILE, int(self._stream))
        # Largest shapes of the profile: inputs from the profile, outputs as TensorRT infers them.
        max_shapes = {n: tuple(engine.get_tensor_profile_shape(n, PROFILE)[2]) for n in self.inputs}
        self.max_batch = min(shape[0] for shape in max_shapes.values())
        for name, shape in max_shapes.items():
            self.context.set_input_shape(name, shape)
        for name in self.outputs:
            max_shapes[name] = tuple(self.context.get_tensor_shape(name))
        self._device: dict[str, int] = {}
        for name in names:
            nbytes = int(np.prod(max_shapes[name])) * self._dtypes[name].itemsize
            self._device[name] = int(_cuda(cudart.cudaMalloc(nbytes)))
            self.context.set_tensor_address(name, self._device[name])

    def run(self, output_names: Sequence[str], feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        n = len(next(iter(feeds.values())))
        chunks = [
            self._run_chunk(output_names, {k: v[i : i + self.max_batch] for k, v in feeds.items()})
            for i in range(0, n, self.max_batch)
        ]
        return [np.concatenate([c[j] for c in chunks]) for j in range(len(output_names))]

    def _run_chunk(self, output_names: Sequence[str], feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        to_device = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
        to_host = cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        stream = self._stream
        with self._lock:
            keep = []  # host arrays must outlive the asynchronous copies
            for name in self.inputs:
                host = np.ascontiguousarray(feeds[name], dtype=self._dtypes[name])
                keep.append(host)
                self.context.set_input_shape(name, host.shape)
                _cuda(cudart.cudaMemcpyAsync(self._device[name], host.ctypes.data, host.nbytes, to_device, stream))
            if not self.context.execute_async_v3(int(stream)):
                raise RuntimeError("TensorRT execute_async_v3 failed (see the TensorRT log)")
            results = {}
            for name in output_names:
                host = np.empty(tuple(self.context.get_tensor_shape(name)), self._dtypes[name])
                _cuda(cudart.cudaMemcpyAsync(host.ctypes.data, self._device[name], host.nbytes, to_host, stream))
                results[name] = host
            _cuda(cudart.cudaStreamSynchronize(stream))
        return [results[name] for name in output_names]

    def __del__(self) -> None:
        for ptr in getattr(self, "_device", {}).values():
            cudart.cudaFree(ptr)
        if getattr(self, "_stream", None) is not None:
            cudart.cudaStreamDestroy(self._stream)
