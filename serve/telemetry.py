"""One interceptor around every RPC: request id, status counts, latency, in-flight gauge, access log.

It also parses unary requests itself, so that bytes that are not a valid request
message answer INVALID_ARGUMENT (the client's fault) instead of gRPC's INTERNAL
"Exception deserializing request!". Streaming requests keep gRPC's own parsing.

The request id of a call is the "x-request-id" metadata when the client sends one,
else the request's `request_id` field (unary calls), else a fresh random id; it is in
`vantage.serve.logs.request_id` while the call runs, so every log line carries it.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from typing import Any, Callable, Iterator

import grpc
from google.protobuf.message import DecodeError

from vantage.serve import logs
from vantage.serve.metrics import ServerMetrics

log = logging.getLogger(__name__)

REQUEST_ID_METADATA_KEY = "x-request-id"


def _split(full_method: str) -> tuple[str, str]:
    """"/pkg.Service/Method" → ("pkg.Service", "Method")."""
    service, _, method = full_method.lstrip("/").rpartition("/")
    return service, method


class TelemetryInterceptor(grpc.ServerInterceptor):
    """Observes every call into `metrics` and the log; put it first so it also sees refused calls."""

    def __init__(self, metrics: ServerMetrics) -> None:
        self.metrics = metrics

    @contextlib.contextmanager
    def _observe(self, service: str, method: str, request_id: str, context: grpc.ServicerContext) -> Iterator[None]:
        """Count, time and log one call; `request_id` (or a random one) is the log's id meanwhile."""
        token = logs.request_id.set(request_id or uuid.uuid4().hex[:16])
        self.metrics.in_flight.inc()
        t0 = time.perf_counter()
        code = None
        try:
            yield
        except GeneratorExit:  # a stream abandoned by gRPC: the client went away
            code = grpc.StatusCode.CANCELLED
            raise
        except BaseException:
            code = context.code() or grpc.StatusCode.UNKNOWN
            raise
        finally:
            code = code or context.code() or grpc.StatusCode.OK
            seconds = time.perf_counter() - t0
            self.metrics.in_flight.dec()
            self.metrics.requests.labels(service, method, code.name).inc()
            self.metrics.request_seconds.labels(service, method).observe(seconds)
            log.debug(
                "%s/%s %s %.2f ms", service, method, code.name, seconds * 1e3,
                extra={"grpc_method": f"{service}/{method}", "grpc_code": code.name, "duration_ms": seconds * 1e3},
            )
            with contextlib.suppress(ValueError):  # a stream finalised by the GC runs in another context
                logs.request_id.reset(token)

    def intercept_service(self, continuation, handler_call_details: grpc.HandlerCallDetails):
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        service, method = _split(handler_call_details.method)
        given_id = str(dict(handler_call_details.invocation_metadata or ()).get(REQUEST_ID_METADATA_KEY, ""))
        observe = lambda context: self._observe(service, method, given_id, context)  # noqa: E731
        if handler.request_streaming:
            return _stream_request_handler(handler, observe)
        return _unary_request_handler(handler, observe, f"{service}/{method}", adopt_request_id=not given_id)


def _unary_request_handler(
    handler: grpc.RpcMethodHandler, observe: Callable, name: str, adopt_request_id: bool
) -> grpc.RpcMethodHandler:
    inner = handler.unary_stream if handler.response_streaming else handler.unary_unary
    parse = handler.request_deserializer

    def parsed(raw: bytes, context: grpc.ServicerContext) -> Any:
        try:
            request = parse(raw) if parse else raw
        except (DecodeError, ValueError, TypeError) as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"the request is not a valid {name} request: {exc}")
        rid = getattr(request, "request_id", "")
        if adopt_request_id and rid and isinstance(rid, str):
            logs.request_id.set(rid)  # undone with the call's own id when `observe` ends
        return request

    if handler.response_streaming:

        def unary_stream(raw: bytes, context: grpc.ServicerContext):
            with observe(context):
                yield from inner(parsed(raw, context), context)

        return grpc.unary_stream_rpc_method_handler(unary_stream, None, handler.response_serializer)

    def unary_unary(raw: bytes, context: grpc.ServicerContext):
        with observe(context):
            return inner(parsed(raw, context), context)

    return grpc.unary_unary_rpc_method_handler(unary_unary, None, handler.response_serializer)


def _stream_request_handler(handler: grpc.RpcMethodHandler, observe: Callable) -> grpc.RpcMethodHandler:
    if handler.response_streaming:

        def stream_stream(requests, context: grpc.ServicerContext):
            with observe(context):
                yield from handler.stream_stream(requests, context)

        return grpc.stream_stream_rpc_method_handler(
            stream_stream, handler.request_deserializer, handler.response_serializer
        )

    def stream_unary(requests, context: grpc.ServicerContext):
        with observe(context):
            return handler.stream_unary(requests, context)

    return grpc.stream_unary_rpc_method_handler(stream_unary, handler.request_deserializer, handler.response_serializer)
