"""The gRPC server of `vantage.v1.PoseEstimator`, with health checking, reflection, metrics and hot reload.

    running = start_server(Predictor("bundle/"), ServerConfig(port=0))   # tests, embedding
    running.stop(grace=1.0)
    serve(load_config("server.yaml"))                                      # blocking entry point

A request is decoded and pre-processed on its gRPC handler thread, then queued for
the dynamic batcher (`batching`), whose inference threads run it with others on the
model version it was prepared for (`reload`). Bad requests (empty or undecodable
image, too many pixels, bad box, unknown category) answer INVALID_ARGUMENT with the
reason and the server keeps serving; a full queue answers RESOURCE_EXHAUSTED, a
deadline that passes in the queue DEADLINE_EXCEEDED; in EstimateStream those answer
the frame with `error`/`error_code` and the stream goes on (`streaming`). Unexpected
failures answer INTERNAL and are logged with the request id.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
import time
from concurrent import futures
from dataclasses import asdict, dataclass
from pathlib import Path
from wsgiref.simple_server import WSGIServer

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

import vantage
from vantage.geometry import CameraError, GravityError
from vantage.imaging import ImageError
from vantage.serve.batching import DeadlineExceededError, DynamicBatcher, QueueFullError, ShuttingDownError
from vantage.serve.config import ServerConfig
from vantage.serve.engine import Predictor, UnknownCategoryError
from vantage.serve.logs import configure_logging
from vantage.serve.metrics import ServerMetrics, start_metrics_http
from vantage.serve.protocol import (SERVICE_NAME, channel_options, request_box, request_camera,
                                    request_gravity)
from vantage.serve.reload import ModelStore, ReloadError, Served, UnknownVersionError
from vantage.serve.results import result_to_response
from vantage.serve.retrieval_api import (
    RETRIEVAL_STATUS,
    Retrievers,
    estimate_request_of,
    require,
    retrieve_response,
)
from vantage.serve.security import TokenInterceptor, read_token, server_credentials
from vantage.serve.streaming import answer_stream
from vantage.serve.telemetry import TelemetryInterceptor
from vantage.v1 import vantage_pb2, vantage_pb2_grpc

log = logging.getLogger(__name__)

HEALTH_SERVICES: tuple[str, ...] = ("", SERVICE_NAME)
# Failures caused by the request or by load, and their status; anything else is INTERNAL.
STATUS_OF_ERROR: tuple[tuple[type[BaseException], grpc.StatusCode], ...] = (
    (ImageError, grpc.StatusCode.INVALID_ARGUMENT),
    (UnknownCategoryError, grpc.StatusCode.INVALID_ARGUMENT),
    (CameraError, grpc.StatusCode.INVALID_ARGUMENT),
    (GravityError, grpc.StatusCode.INVALID_ARGUMENT),
    (QueueFullError, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (DeadlineExceededError, grpc.StatusCode.DEADLINE_EXCEEDED),
    (ShuttingDownError, grpc.StatusCode.UNAVAILABLE),
    (futures.CancelledError, grpc.StatusCode.CANCELLED),
) + RETRIEVAL_STATUS
_NO_DEADLINE_S = 1e8  # grpc reports a far-future time_remaining for calls without a deadline


def _deadline(context: grpc.ServicerContext) -> float | None:
    """The call's deadline on the time.monotonic() clock, None when it has none."""
    remaining = context.time_remaining()
    return None if remaining is None or remaining > _NO_DEADLINE_S else time.monotonic() + remaining


def model_info(served: Served, server_version: str = vantage.__version__) -> vantage_pb2.ModelInfo:
    """The ModelInfo message of what is served."""
    predictor = served.predictor
    meta = predictor.metadata
    return vantage_pb2.ModelInfo(
        name=meta.name,
        model_version=str(meta.model_version),
        categories=list(predictor.categories),
        input_size=int(meta.input_size),
        fusion=meta.fusion,
        backend=predictor.backend,
        metadata_json=json.dumps(asdict(meta), indent=2, sort_keys=True),
        server_version=server_version,
        bundle_version=served.version,
        pose_hypotheses=int(meta.pose_hypotheses),
        confidence_within_deg=predictor.calibration.within_deg if predictor.calibration else 0.0,
    )


class PoseEstimatorServicer(vantage_pb2_grpc.PoseEstimatorServicer):
    """Answers PoseEstimator calls with the store's current predictor through the batcher."""

    def __init__(
        self, store: ModelStore, batcher: DynamicBatcher, metrics: ServerMetrics, reload_enabled: bool = False
    ) -> None:
        self.store = store
        self.batcher = batcher
        self.metrics = metrics
        self.reload_enabled = reload_enabled
        self.retrievers = Retrievers()  # image-graphics search over each served bundle's BUNDLE/index

    def estimate(
        self, request: vantage_pb2.EstimateRequest, deadline: float | None, context: grpc.ServicerContext | None = None
    ) -> vantage_pb2.EstimateResponse:
        """One request → response; raises the errors of STATUS_OF_ERROR (or any other on a failure).

        With `context`, the queued request is cancelled when the call ends early.
        """
        t0 = time.perf_counter()
        predictor = self.store.current.predictor
        retriever = require(self.retrievers.get(predictor)) if request.top_k else None
        with self.batcher.announce() as submit:
            prepared = predictor.prepare_bytes(request.image, request_box(request), request.category or None,
                                               request_camera(request), request_gravity(request), request.upright)
            self.metrics.preprocess_seconds.observe((prepared.decode_ms + prepared.preprocess_ms) / 1e3)
            future = submit(predictor, prepared, deadline)
        if context is not None:
            context.add_callback(future.cancel)
        try:
            result = future.result(timeout=None if deadline is None else max(0.0, deadline - time.monotonic()))
        except futures.TimeoutError:
            future.cancel()
            raise DeadlineExceededError("the deadline passed before the model could run") from None
        retrieval = (retriever.retrieve(result, request.top_k, request.category, request.wireframe_models)
                     if retriever else None)
        result.timings["total_ms"] = (time.perf_counter() - t0) * 1e3
        response = result_to_response(result, request.request_id, request.frame_id, request.alternatives)
        if retrieval is not None:
            response.retrieval.CopyFrom(retrieval)
        return response

    def _failure(self, method: str, request: vantage_pb2.EstimateRequest, exc: BaseException) -> tuple[grpc.StatusCode, str]:
        where = f"{method} request_id={request.request_id!r} frame_id={request.frame_id}"
        for kind, code in STATUS_OF_ERROR:
            if isinstance(exc, kind):
                log.info("%s answered %s: %s", where, code.name, exc)
                return code, str(exc) or code.name.lower()
        log.error("%s failed", where, exc_info=exc)
        return (
            grpc.StatusCode.INTERNAL,
            f"internal error while estimating request_id={request.request_id!r}: {type(exc).__name__}: {exc}",
        )

    def Estimate(self, request: vantage_pb2.EstimateRequest, context: grpc.ServicerContext):
        try:
            return self.estimate(request, _deadline(context), context)
        except Exception as exc:  # noqa: BLE001 - every failure becomes a status
            code, message = self._failure("Estimate", request, exc)
        context.abort(code, message)

    def EstimateStream(self, request_iterator, context: grpc.ServicerContext):
        deadline = _deadline(context)

        def answer(frame: vantage_pb2.EstimateRequest) -> vantage_pb2.EstimateResponse:
            try:
                return self.estimate(frame, deadline)
            except Exception as exc:  # noqa: BLE001 - a bad frame must not end the stream
                code, message = self._failure("EstimateStream", frame, exc)
                return vantage_pb2.EstimateResponse(
                    request_id=frame.request_id, frame_id=frame.frame_id, error=message, error_code=code.value[0]
                )

        return answer_stream(request_iterator, context, answer, self.metrics)

    def GetModelInfo(self, request: vantage_pb2.GetModelInfoRequest, context: grpc.ServicerContext):
        served = self.store.current
        info = model_info(served)
        retriever = self.retrievers.get(served.predictor)
        if retriever is not None:
            info.view_index.CopyFrom(retriever.info)
        return info

    def Retrieve(self, request: vantage_pb2.RetrieveRequest, context: grpc.ServicerContext):
        as_estimate = estimate_request_of(request)
        try:
            return retrieve_response(self.estimate(as_estimate, _deadline(context), context))
        except Exception as exc:  # noqa: BLE001 - every failure becomes a status
            code, message = self._failure("Retrieve", as_estimate, exc)
        context.abort(code, message)

    def Reload(self, request: vantage_pb2.ReloadRequest, context: grpc.ServicerContext):
        if not self.reload_enabled:
            context.abort(
                grpc.StatusCode.PERMISSION_DENIED,
                "Reload is disabled: the server was started without an auth token (auth_token_file)",
            )
        try:
            changed = self.store.reload(request.version)
        except UnknownVersionError as exc:
            code, message = grpc.StatusCode.INVALID_ARGUMENT, str(exc)
        except ReloadError as exc:
            code, message = grpc.StatusCode.FAILED_PRECONDITION, str(exc)
        else:
            return vantage_pb2.ReloadResponse(model=model_info(self.store.current), changed=changed)
        context.abort(code, message)


def _address(host: str, port: int) -> str:
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # IPv6 literal
    return f"{host}:{int(port)}"


def _is_loopback(host: str) -> bool:
    return host in ("localhost", "::1", "[::1]") or host.startswith("127.")


@dataclass
class RunningServer:
    """A started server and its parts; `stop` shuts it down gracefully."""

    server: grpc.Server
    port: int
    store: ModelStore
    batcher: DynamicBatcher
    metrics: ServerMetrics
    health: health.HealthServicer
    metrics_http: WSGIServer | None = None

    @property
    def metrics_port(self) -> int | None:
        return None if self.metrics_http is None else int(self.metrics_http.server_port)

    def set_health(self, status: int) -> None:
        for name in HEALTH_SERVICES:
            self.health.set(name, status)

    def stop(self, grace: float | None = 5.0) -> None:
        """Health NOT_SERVING, no new calls, in-flight calls get `grace` seconds, then the rest stops."""
        self.health.enter_graceful_shutdown()
        self.store.stop_polling()
        self.server.stop(grace).wait()
        self.batcher.close(timeout=grace)
        if self.metrics_http is not None:
            self.metrics_http.shutdown()
            self.metrics_http.server_close()


def start_server(
    model: Predictor | ModelStore, config: ServerConfig = ServerConfig(), *, wait_for_warmup: bool = True
) -> RunningServer:
    """Start a server for `model` with `config` (port 0 = a free port: see `.port`).

    Health reports NOT_SERVING for "" and "vantage.v1.PoseEstimator" until one dummy
    inference has run, SERVING afterwards. With `wait_for_warmup` (default) that
    happens before this returns; otherwise in a background thread (health probes can
    watch it; a failed warm-up is logged and leaves NOT_SERVING). A ready `Predictor`
    keeps its own backend and pixel limit; a `ModelStore` can be reloaded.
    """
    store = model if isinstance(model, ModelStore) else ModelStore.fixed(model)
    metrics = ServerMetrics()
    token = read_token(config.auth_token_file) if config.auth_token_file else None
    interceptors: list[grpc.ServerInterceptor] = [TelemetryInterceptor(metrics)]
    if token:
        interceptors.append(TokenInterceptor(token))
    batcher = DynamicBatcher(
        config.max_batch_size, config.batch_delay_ms / 1e3, config.queue_size, config.inference_workers, metrics
    )
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=config.workers, thread_name_prefix="vantage-grpc"),
        interceptors=interceptors,
        options=channel_options(config.max_message_bytes) + [("grpc.so_reuseport", 0)],  # never share a port
        maximum_concurrent_rpcs=config.workers + config.queue_size,
    )
    servicer = PoseEstimatorServicer(store, batcher, metrics, reload_enabled=bool(token))
    vantage_pb2_grpc.add_PoseEstimatorServicer_to_server(servicer, server)
    health_servicer = health.HealthServicer(
        experimental_non_blocking=True,
        experimental_thread_pool=futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="vantage-health"),
    )
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection((SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
    running = RunningServer(server, 0, store, batcher, metrics, health_servicer)
    running.set_health(health_pb2.HealthCheckResponse.NOT_SERVING)
    try:
        servicer.retrievers.get(store.current.predictor)  # load BUNDLE/index now: refuse another bundle's index
        running.port = _bind(server, config, token)
        if config.metrics_port >= 0:
            running.metrics_http = start_metrics_http(metrics, config.metrics_host, config.metrics_port)
    except BaseException:
        batcher.close()
        raise

    def show_model(served: Served) -> None:
        info = model_info(served)
        metrics.set_model(info.name, info.model_version, info.bundle_version, info.backend)

    def on_reload(result: str, served: Served) -> None:
        metrics.reloads.labels(result).inc()
        show_model(served)

    show_model(store.current)
    store.on_reload(on_reload)
    server.start()

    def warm_up() -> None:
        t0 = time.perf_counter()
        store.current.predictor.warmup()
        running.set_health(health_pb2.HealthCheckResponse.SERVING)
        log.info("model warmed up in %.0f ms; health SERVING", (time.perf_counter() - t0) * 1e3)
        store.start_polling(config.reload_poll_s)

    if wait_for_warmup:
        try:
            warm_up()
        except BaseException:
            running.stop(None)
            raise
    else:

        def warm_up_logged() -> None:
            try:
                warm_up()
            except Exception:  # noqa: BLE001
                log.exception("warm-up inference failed; health stays NOT_SERVING")

        threading.Thread(target=warm_up_logged, name="vantage-warmup", daemon=True).start()
    return running


def _bind(server: grpc.Server, config: ServerConfig, token: str | None) -> int:
    """Listen on the configured address (TLS when configured); the bound port."""
    address = _address(config.host, config.port)
    if token and not config.tls_cert and not _is_loopback(config.host):
        log.warning("a bearer token is required but TLS is off: tokens cross the network in clear text")
    try:
        if config.tls_cert:
            bound = server.add_secure_port(
                address, server_credentials(config.tls_cert, config.tls_key, config.tls_client_ca)
            )
        else:
            bound = server.add_insecure_port(address)
    except RuntimeError as exc:
        raise OSError(f"cannot listen on {address}: {exc}") from exc
    if not bound:
        raise OSError(f"cannot listen on {address}")
    return bound


def _loader(config: ServerConfig):
    def load(path: Path) -> Predictor:
        return Predictor(
            path, config.backend, config.intra_op_threads, config.max_image_pixels, config.max_batch_size
        )

    return load


def serve(config: ServerConfig) -> None:
    """Load the model and serve until SIGTERM or SIGINT, then stop gracefully (`config.grace_s`).

    The default host is loopback; give "0.0.0.0" (or "[::]") to accept other machines.
    A second signal during the grace period stops at once.
    """
    configure_logging(config.log_format, config.log_level)
    if not config.model:
        raise ValueError("no model: give --model (a bundle folder or a folder of versions)")
    store = ModelStore.open(config.model, _loader(config), root=config.model_root)
    running = start_server(store, config, wait_for_warmup=False)
    served = store.current
    meta = served.predictor.metadata
    log.info(
        "vantage %s serving model %r version %s (%d categories, %s) on %s%s",
        vantage.__version__, meta.name, meta.model_version, len(served.predictor.categories),
        served.predictor.backend, _address(config.host, running.port), " with TLS" if config.tls_cert else "",
    )
    if running.metrics_port is not None:
        log.info("Prometheus metrics on http://%s/metrics", _address(config.metrics_host, running.metrics_port))
    signals: list[int] = []

    def on_signal(signum: int, _frame) -> None:
        signals.append(signum)
        if len(signals) == 1:
            log.info("%s received: stopping (grace %.1f s)", signal.Signals(signum).name, config.grace_s)
        else:
            log.info("%s received again: stopping now", signal.Signals(signum).name)
            threading.Thread(target=running.server.stop, args=(0,), daemon=True).start()

    previous = {}
    try:
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, on_signal)
    except ValueError:  # not the main thread: no signal handling, serve until the server stops
        log.warning("serve() is not running in the main thread; SIGTERM/SIGINT are not handled")
    try:
        while not signals:
            # grpc returns True when the *timeout* passed, False once the server has terminated.
            if not running.server.wait_for_termination(timeout=0.5):
                log.info("server terminated")
                return
        running.stop(config.grace_s)
        log.info("server stopped")
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
