"""Serving: run a model bundle in process or behind the gRPC API `vantage.v1`.

Modules, one job each (none imports torch; an edge image carries no training stack):

* `engine`       – `Predictor`: bundle → backend; images → `PoseResult`.
* `backends`     – ONNX Runtime CPU / GPU providers and the automatic choice of backend.
* `tensorrt_backend` – a native TensorRT engine (imported only when chosen).
* `results`      – `PoseResult` and its conversions to the wire message and to JSON.
* `protocol`     – service name, message-size limit, building `EstimateRequest`s and `RetrieveRequest`s.
* `config`       – `ServerConfig`, the one source of flags, YAML settings and docs.
* `batching`     – the dynamic batcher: bounded queue, deadlines, inference threads.
* `streaming`    – EstimateStream's in-order answers with stale-frame dropping.
* `reload`       – the served model, folders of versions, atomic hot reload.
* `security`     – TLS credentials, the bearer-token interceptor, model-folder confinement;
                   the clients' channel, token and TLS options and their flags.
* `telemetry`    – the per-call interceptor: request ids, counts, latency, access log.
* `metrics`      – the Prometheus metrics and their HTTP exporter.
* `logs`         – text or JSON log lines carrying request ids.
* `server`       – `PoseEstimatorServicer`, `start_server`, the blocking `serve`.
* `client`       – `PoseClient`, a synchronous client of a running server (token, TLS).
* `aio_client`   – `AsyncPoseClient`, the asyncio client (retries, deadlines), used by predict and bench.
* `predict`      – `predict_files`: image files → JSON dicts, locally or through a server (concurrent calls).
* `bench`, `bench_images` – `vantage bench`, the perf_analyzer-like benchmark, and its inputs.

Nothing is imported here, so `import vantage.serve.client` does not load ONNX Runtime.
"""
