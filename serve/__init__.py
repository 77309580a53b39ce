"""Serving: run a model bundle with ONNX Runtime, in process or behind the gRPC API `vantage.v1`.

Modules, one job each (none imports torch; an edge image carries no training stack):

* `engine`   – `Predictor`: bundle → ONNX Runtime session; images → `PoseResult`.
* `results`  – `PoseResult` and its conversions to the wire message and to JSON.
* `protocol` – service name, message-size limit, building `EstimateRequest`s.
* `server`   – `PoseEstimatorServicer`, `start_server`, the blocking `serve`.
* `client`   – `PoseClient`, a synchronous client of a running server.
* `predict`  – `predict_files`: image files → JSON dicts, locally or through a server.

Nothing is imported here, so `import vantage.serve.client` does not load ONNX Runtime.
"""
