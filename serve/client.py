"""Synchronous client of a Vantage gRPC server (needs grpcio and protobuf, not ONNX Runtime).

    with PoseClient("127.0.0.1:50051") as client:      # or PoseClient(target, token=..., tls_ca="ca.pem")
        client.wait_ready(timeout=30)
        result = client.estimate_result(open("car.jpg", "rb").read(), box=(10, 20, 200, 150))
        print(result_to_json(result))   # the same JSON as the in-process Predictor gives
"""

from __future__ import annotations

import time
from types import ModuleType
from typing import Iterable, Iterator, Sequence, Unpack

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from vantage.serve.protocol import DEFAULT_MAX_MESSAGE_BYTES, SERVICE_NAME, make_request, make_retrieve_request
from vantage.serve.results import PoseResult, response_to_result
from vantage.serve.security import ClientSecurity, bearer_metadata, client_channel
from vantage.v1 import vantage_pb2, vantage_pb2_grpc


class ClientBase:
    """What the synchronous and the asyncio client share: the target, the default deadline, the token
    metadata, the channel and the stubs. `grpc_channels` is `grpc` here and `grpc.aio` in AsyncPoseClient."""

    grpc_channels: ModuleType = grpc

    def __init__(
        self,
        target: str,
        timeout: float | None = 30.0,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        **security: Unpack[ClientSecurity],
    ) -> None:
        self.target = target
        self.timeout = timeout
        self.metadata = bearer_metadata(security.get("token"))
        self.channel = client_channel(self.grpc_channels, target, max_message_bytes, security)
        self.stub = vantage_pb2_grpc.PoseEstimatorStub(self.channel)
        self.health_stub = health_pb2_grpc.HealthStub(self.channel)


class PoseClient(ClientBase):
    """Calls `vantage.v1.PoseEstimator` at `target` ("host:port"); `timeout` is the per-call deadline in seconds.

    Failed calls raise `grpc.RpcError` (`.code()`, `.details()`), e.g. INVALID_ARGUMENT
    for a bad image, box or category. The keyword options are `ClientSecurity`'s: `token`
    (a bearer token sent on every call but health checks), `tls`, `tls_ca`, `tls_cert` +
    `tls_key` (mTLS) and `tls_server_name`.
    """

    # -- lifecycle ----------------------------------------------------------------

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> "PoseClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _timeout(self, timeout: float | None) -> float | None:
        return self.timeout if timeout is None else timeout

    # -- health -------------------------------------------------------------------

    def health(self, service: str = SERVICE_NAME, timeout: float | None = None) -> str:
        """The health status name of `service` ("SERVING", "NOT_SERVING", ...)."""
        response = self.health_stub.Check(
            health_pb2.HealthCheckRequest(service=service), timeout=self._timeout(timeout)
        )
        return health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)

    def wait_ready(self, timeout: float = 30.0, service: str = SERVICE_NAME, poll_s: float = 0.05) -> None:
        """Wait until the server is reachable and reports SERVING; TimeoutError otherwise."""
        deadline = time.monotonic() + timeout
        last = "no answer"
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"server {self.target} not SERVING after {timeout:g} s (last: {last})")
            try:
                response = self.health_stub.Check(
                    health_pb2.HealthCheckRequest(service=service), timeout=remaining, wait_for_ready=True
                )
                if response.status == health_pb2.HealthCheckResponse.SERVING:
                    return
                last = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
            except grpc.RpcError as exc:
                if exc.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                    raise
                last = f"{exc.code().name}: {exc.details()}"
            time.sleep(min(poll_s, max(0.0, deadline - time.monotonic())))

    # -- calls --------------------------------------------------------------------

    def estimate(
        self,
        image: bytes,
        box: Sequence[float] | None = None,
        category: str | None = None,
        request_id: str = "",
        frame_id: int = 0,
        timeout: float | None = None,
        alternatives: int = 0,
        camera: Sequence[float] | None = None,
        gravity: Sequence[float] | None = None,
        upright: bool = False,
    ) -> vantage_pb2.EstimateResponse:
        """One Estimate call with encoded image bytes, an optional pixel box and known category;
        `alternatives` > 0 asks for that many alternative poses too; `camera` (fx, fy, cx, cy) turns
        the pose to the camera's optical axis (EstimateRequest.camera); `gravity` (x, y, z in the camera's
        axes) levels the crop and `upright` stands the object against it (EstimateRequest.gravity, .upright)."""
        request = make_request(image, box, category, request_id, frame_id, alternatives=alternatives, camera=camera,
                               gravity=gravity, upright=upright)
        return self.stub.Estimate(request, timeout=self._timeout(timeout), metadata=self.metadata)

    def estimate_result(
        self,
        image: bytes,
        box: Sequence[float] | None = None,
        category: str | None = None,
        request_id: str = "",
        timeout: float | None = None,
        alternatives: int = 0,
        camera: Sequence[float] | None = None,
        gravity: Sequence[float] | None = None,
        upright: bool = False,
    ) -> PoseResult:
        """Like `estimate`, converted to the PoseResult of the in-process path."""
        return response_to_result(self.estimate(image, box, category, request_id, timeout=timeout,
                                                alternatives=alternatives, camera=camera, gravity=gravity,
                                                upright=upright))

    def stream(
        self, requests: Iterable[vantage_pb2.EstimateRequest], timeout: float | None = None
    ) -> Iterator[vantage_pb2.EstimateResponse]:
        """EstimateStream: one response per request, in order. A bad frame's response has
        `error`/`error_code` set instead of raising. `timeout` bounds the whole stream
        (None = no deadline, unlike unary calls: camera streams are long). Frames the server
        dropped as stale come back with `dropped` set (see the .proto)."""
        return self.stub.EstimateStream(iter(requests), timeout=timeout, metadata=self.metadata)

    def model_info(self, timeout: float | None = None) -> vantage_pb2.ModelInfo:
        return self.stub.GetModelInfo(
            vantage_pb2.GetModelInfoRequest(), timeout=self._timeout(timeout), metadata=self.metadata
        )

    def reload(self, version: str = "", timeout: float | None = None) -> vantage_pb2.ReloadResponse:
        """Ask the server to load `version` (default: the newest) and swap it in; needs the server's token."""
        return self.stub.Reload(
            vantage_pb2.ReloadRequest(version=version), timeout=self._timeout(timeout), metadata=self.metadata
        )

    def retrieve(
        self,
        image: bytes,
        box: Sequence[float] | None = None,
        category: str | None = None,
        top_k: int = 0,
        request_id: str = "",
        timeout: float | None = None,
    ) -> vantage_pb2.RetrieveResponse:
        """Image-graphics search: nearest rendered views, their 3D models and the pose from them
        (top_k 0 = the server's default); `category` restricts the search to one category."""
        request = make_retrieve_request(image, box, category, top_k, request_id)
        return self.stub.Retrieve(request, timeout=self._timeout(timeout), metadata=self.metadata)
