"""Prometheus metrics of one server, in a registry of its own, exported over HTTP at /metrics.

A registry per server (not prometheus_client's global one) lets several servers live in
one process (tests, the benchmark) without clashing names. Names follow Prometheus
conventions (seconds, `_total` counters). The retrieval histogram is registered here for
the retrieval feature to observe into.
"""

from __future__ import annotations

from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, start_http_server

# Latency buckets from 0.5 ms to 10 s: a 64² model on a CPU takes milliseconds, a queue seconds.
LATENCY_BUCKETS: tuple[float, ...] = (
    0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.0, 2.5, 5.0, 10.0,
)
BATCH_BUCKETS: tuple[float, ...] = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 128)


class ServerMetrics:
    """The metrics a server records; `registry` is what the HTTP exporter serves."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "vantage_requests", "RPCs answered, by service, method and gRPC status code",
            ["service", "method", "code"], registry=r,
        )
        self.request_seconds = Histogram(
            "vantage_request_seconds", "Server-side duration of RPCs (streams: the whole stream)",
            ["service", "method"], buckets=LATENCY_BUCKETS, registry=r,
        )
        self.in_flight = Gauge("vantage_in_flight_requests", "RPCs being served now", registry=r)
        self.queue_seconds = Histogram(
            "vantage_queue_seconds", "Wait from entering the inference queue to the start of its batch",
            buckets=LATENCY_BUCKETS, registry=r,
        )
        self.preprocess_seconds = Histogram(
            "vantage_preprocess_seconds", "Decoding, cropping and normalising one image",
            buckets=LATENCY_BUCKETS, registry=r,
        )
        self.inference_seconds = Histogram(
            "vantage_inference_seconds", "One batched inference call", buckets=LATENCY_BUCKETS, registry=r,
        )
        self.retrieval_seconds = Histogram(
            "vantage_retrieval_seconds", "One nearest-view retrieval search", buckets=LATENCY_BUCKETS, registry=r,
        )
        self.batch_size = Histogram(
            "vantage_batch_size", "Requests per inference batch", buckets=BATCH_BUCKETS, registry=r,
        )
        self.frames_dropped = Counter(
            "vantage_stream_frames_dropped", "EstimateStream frames dropped as stale", registry=r,
        )
        self.reloads = Counter("vantage_model_reloads", "Model reloads, by result", ["result"], registry=r)
        self.model = Info("vantage_model", "The model being served", registry=r)

    def set_model(self, name: str, version: str, bundle_version: str, backend: str) -> None:
        """Record the served model (after start and every reload)."""
        self.model.info({"name": name, "version": version, "bundle_version": bundle_version, "backend": backend})


def start_metrics_http(metrics: ServerMetrics, host: str, port: int) -> WSGIServer:
    """Serve /metrics on host:port (0 = a free port: read `server.server_port`); stop with `shutdown()`."""
    server, _thread = start_http_server(port, addr=host, registry=metrics.registry)
    return server
