"""The gRPC server of `vantage.v1.PoseEstimator`, with health checking and reflection.

    server, port = start_server(Predictor("bundle/"), port=0)   # tests, embedding
    serve("bundle/", host="0.0.0.0", port=50051)                # blocking entry point

Bad requests (empty or undecodable image, bad box, unknown category) answer
INVALID_ARGUMENT with the reason and the server keeps serving; in EstimateStream
they answer that frame with `error`/`error_code` and the stream goes on.
Unexpected failures answer INTERNAL and are logged with the request id.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
import time
import weakref
from concurrent import futures
from dataclasses import asdict
from pathlib import Path
from typing import Iterator, Sequence

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

import vantage
from vantage.imaging import ImageError
from vantage.serve.engine import Predictor, UnknownCategoryError
from vantage.serve.protocol import (
    DEFAULT_MAX_MESSAGE_BYTES,
    DEFAULT_PORT,
    SERVICE_NAME,
    channel_options,
    request_box,
)
from vantage.serve.results import result_to_response
from vantage.v1 import vantage_pb2, vantage_pb2_grpc

log = logging.getLogger(__name__)

# Errors caused by the request itself (→ INVALID_ARGUMENT); anything else is INTERNAL.
BAD_REQUEST_ERRORS: tuple[type[Exception], ...] = (ImageError, UnknownCategoryError)
HEALTH_SERVICES: tuple[str, ...] = ("", SERVICE_NAME)

_health_of: "weakref.WeakKeyDictionary[grpc.Server, health.HealthServicer]" = weakref.WeakKeyDictionary()


class PoseEstimatorServicer(vantage_pb2_grpc.PoseEstimatorServicer):
    """Answers PoseEstimator calls with a `Predictor` (thread-safe, shared by all workers)."""

    def __init__(self, predictor: Predictor) -> None:
        self.predictor = predictor
        meta = predictor.metadata
        self.model_info = vantage_pb2.ModelInfo(
            name=meta.name,
            model_version=str(meta.model_version),
            categories=list(predictor.categories),
            input_size=int(meta.input_size),
            fusion=meta.fusion,
            backend=predictor.backend,
            metadata_json=json.dumps(asdict(meta), indent=2, sort_keys=True),
            server_version=vantage.__version__,
        )

    def estimate(self, request: vantage_pb2.EstimateRequest) -> vantage_pb2.EstimateResponse:
        """One request → response; raises BAD_REQUEST_ERRORS for bad input."""
        t0 = time.perf_counter()
        prepared = self.predictor.prepare_bytes(request.image, request_box(request), request.category or None)
        result = self.predictor.run([prepared])[0]
        result.timings["total_ms"] = (time.perf_counter() - t0) * 1e3
        return result_to_response(result, request.request_id, request.frame_id)

    def _failure(self, method: str, request: vantage_pb2.EstimateRequest, exc: Exception) -> tuple[grpc.StatusCode, str]:
        if isinstance(exc, BAD_REQUEST_ERRORS):
            log.info("%s request_id=%r frame_id=%d rejected: %s", method, request.request_id, request.frame_id, exc)
            return grpc.StatusCode.INVALID_ARGUMENT, str(exc)
        log.error(
            "%s request_id=%r frame_id=%d failed", method, request.request_id, request.frame_id, exc_info=exc
        )
        return (
            grpc.StatusCode.INTERNAL,
            f"internal error while estimating request_id={request.request_id!r}: {type(exc).__name__}: {exc}",
        )

    def Estimate(self, request: vantage_pb2.EstimateRequest, context: grpc.ServicerContext):
        try:
            return self.estimate(request)
        except Exception as exc:  # noqa: BLE001 - every failure becomes a status
            code, message = self._failure("Estimate", request, exc)
        context.abort(code, message)

    def EstimateStream(
        self, request_iterator: Iterator[vantage_pb2.EstimateRequest], context: grpc.ServicerContext
    ) -> Iterator[vantage_pb2.EstimateResponse]:
        for request in request_iterator:
            try:
                response = self.estimate(request)
            except Exception as exc:  # noqa: BLE001 - a bad frame must not end the stream
                code, message = self._failure("EstimateStream", request, exc)
                response = vantage_pb2.EstimateResponse(
                    request_id=request.request_id,
                    frame_id=request.frame_id,
                    error=message,
                    error_code=code.value[0],
                )
            yield response

    def GetModelInfo(self, request: vantage_pb2.GetModelInfoRequest, context: grpc.ServicerContext):
        return self.model_info


def _address(host: str, port: int) -> str:
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # IPv6 literal
    return f"{host}:{int(port)}"


def start_server(
    predictor: Predictor,
    host: str = "127.0.0.1",
    port: int = 0,
    max_workers: int = 8,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    wait_for_warmup: bool = True,
) -> tuple[grpc.Server, int]:
    """Start a server on host:port (port 0 = a free port) and return it with its bound port.

    Health reports NOT_SERVING for "" and "vantage.v1.PoseEstimator" until one dummy
    inference has run, SERVING afterwards. With `wait_for_warmup` (default) that
    happens before this returns; otherwise in a background thread (health probes can
    watch it; a failed warm-up is logged and leaves NOT_SERVING). Stop it with
    `stop_server` (health turns NOT_SERVING first) or `server.stop(grace)`.
    """
    options = channel_options(max_message_bytes) + [("grpc.so_reuseport", 0)]  # never share a port silently
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="vantage-grpc"), options=options
    )
    vantage_pb2_grpc.add_PoseEstimatorServicer_to_server(PoseEstimatorServicer(predictor), server)
    health_servicer = health.HealthServicer(
        experimental_non_blocking=True,
        experimental_thread_pool=futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="vantage-health"),
    )
    for name in HEALTH_SERVICES:
        health_servicer.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection((SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
    address = _address(host, port)
    try:
        bound = server.add_insecure_port(address)
    except RuntimeError as exc:
        raise OSError(f"cannot listen on {address}: {exc}") from exc
    if not bound:
        raise OSError(f"cannot listen on {address}")
    _health_of[server] = health_servicer
    server.start()

    def warm_up() -> None:
        t0 = time.perf_counter()
        predictor.warmup()
        for name in HEALTH_SERVICES:
            health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
        log.info("model warmed up in %.0f ms; health SERVING", (time.perf_counter() - t0) * 1e3)

    if wait_for_warmup:
        try:
            warm_up()
        except BaseException:
            server.stop(None)
            raise
    else:

        def warm_up_logged() -> None:
            try:
                warm_up()
            except Exception:  # noqa: BLE001
                log.exception("warm-up inference failed; health stays NOT_SERVING")

        threading.Thread(target=warm_up_logged, name="vantage-warmup", daemon=True).start()
    return server, bound


def stop_server(server: grpc.Server, grace: float | None = 5.0) -> None:
    """Graceful stop: health turns NOT_SERVING, then in-flight calls get `grace` seconds."""
    health_servicer = _health_of.get(server)
    if health_servicer is not None:
        health_servicer.enter_graceful_shutdown()
    server.stop(grace).wait()


def serve(
    bundle_dir: str | Path,
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    max_workers: int = 8,
    grace: float = 5.0,
    providers: Sequence[str] | None = None,
    intra_op_threads: int = 0,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
) -> None:
    """Load the bundle and serve until SIGTERM or SIGINT, then stop gracefully (`grace` seconds).

    The default host is loopback; give "0.0.0.0" (or "[::]") to accept other machines.
    A second signal during the grace period stops at once.
    """
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    predictor = Predictor(bundle_dir, providers=providers, intra_op_threads=intra_op_threads)
    server, bound = start_server(
        predictor, host, port, max_workers=max_workers, max_message_bytes=max_message_bytes, wait_for_warmup=False
    )
    meta = predictor.metadata
    log.info(
        "vantage %s serving model %r version %s (%d categories, %s) on %s",
        vantage.__version__, meta.name, meta.model_version, len(predictor.categories), predictor.backend,
        _address(host, bound),
    )
    signals: list[int] = []

    def on_signal(signum: int, _frame) -> None:
        signals.append(signum)
        if len(signals) == 1:
            log.info("%s received: stopping (grace %.1f s)", signal.Signals(signum).name, grace)
        else:
            log.info("%s received again: stopping now", signal.Signals(signum).name)
            threading.Thread(target=server.stop, args=(0,), daemon=True).start()

    previous = {}
    try:
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, on_signal)
    except ValueError:  # not the main thread: no signal handling, serve until the server stops
        log.warning("serve() is not running in the main thread; SIGTERM/SIGINT are not handled")
    try:
        while not signals:
            # grpc returns True when the *timeout* passed, False once the server has terminated.
            if not server.wait_for_termination(timeout=0.5):
                log.info("server terminated")
                return
        stop_server(server, grace)
        log.info("server stopped")
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
