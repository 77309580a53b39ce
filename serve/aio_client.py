"""Asyncio client of a Vantage gRPC server (grpc.aio), with retries, deadlines, TLS and tokens.

    async with AsyncPoseClient("127.0.0.1:50051", token="...", tls_ca="ca.pem") as client:
        await client.wait_ready(timeout=30)
        result = await client.estimate_result(jpeg_bytes, box=(10, 20, 200, 150))
        async for response in client.stream(frames()):       # EstimateStream, never retried
            ...
        views = (await client.retrieve(jpeg_bytes, top_k=5)).retrieval   # needs a server with a view index

Why a second client: asyncio programs (apps, load generators, the camera demo's
reader) run many calls concurrently on one thread without a thread per call.

Decisions:
* `timeout` is the deadline of the whole call, retries and backoff included: each
  attempt gets what is left of it, and a backoff that would overrun it is not slept.
* Unary calls are retried with exponential backoff and jitter only on UNAVAILABLE
  (server starting, restarting or unreachable) and RESOURCE_EXHAUSTED (the server's
  queue is full: it refused at once, nothing ran); every other status is final, above
  all INVALID_ARGUMENT (the request is bad and stays bad). Estimate, GetModelInfo and
  Retrieve have no side effects, so a retry cannot do anything twice.
* EstimateStream is not retried: resending would answer frames twice, out of order.
  Its `timeout` bounds the whole stream (None = none: camera streams are long).
* Responses convert with `vantage.serve.results.response_to_result`, so JSON printed
  from this client equals the synchronous client's and the in-process path's.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass
from typing import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Sequence, TypeVar, Unpack

import grpc
from grpc_health.v1 import health_pb2

from vantage.serve.client import ClientBase
from vantage.serve.protocol import DEFAULT_MAX_MESSAGE_BYTES, SERVICE_NAME, make_request, make_retrieve_request
from vantage.serve.results import PoseResult, response_to_result
from vantage.serve.security import ClientSecurity
from vantage.v1 import vantage_pb2

T = TypeVar("T")

RETRYABLE_CODES: frozenset[grpc.StatusCode] = frozenset(
    {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED}
)


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff: attempt n (from 1) waits `initial_backoff_s * multiplier**(n-1)`, at most
    `max_backoff_s`, scaled by a random factor in [1 - jitter, 1] so that many clients do not retry in step."""

    max_attempts: int = 5
    initial_backoff_s: float = 0.05
    max_backoff_s: float = 2.0
    multiplier: float = 2.0
    jitter: float = 0.2
    codes: frozenset[grpc.StatusCode] = RETRYABLE_CODES

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {self.max_attempts}")
        if self.initial_backoff_s < 0 or self.max_backoff_s < 0 or self.multiplier < 1 or not 0 <= self.jitter <= 1:
            raise ValueError("backoffs must be >= 0, multiplier >= 1 and jitter in [0, 1]")
        if grpc.StatusCode.INVALID_ARGUMENT in self.codes:
            raise ValueError("INVALID_ARGUMENT is never retried: the same request fails the same way")

    def backoff(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based)."""
        base = min(self.max_backoff_s, self.initial_backoff_s * self.multiplier ** (attempt - 1))
        return base * (1.0 - self.jitter * random.random())


NO_RETRY = RetryPolicy(max_attempts=1)


class AsyncPoseClient(ClientBase):
    """Calls `vantage.v1.PoseEstimator` at `target` ("host:port") from asyncio code.

    Failed calls raise `grpc.aio.AioRpcError` (`.code()`, `.details()`) after the retries
    of `retry`. `timeout` is the default deadline of a unary call in seconds, retries
    included. The keyword options are `ClientSecurity`'s, as for PoseClient: `token` (sent
    on every call but health checks), `tls`, `tls_ca`, `tls_cert` + `tls_key` (mTLS) and
    `tls_server_name`. Create it inside the event loop that uses it.
    """

    grpc_channels = grpc.aio

    def __init__(
        self,
        target: str,
        timeout: float | None = 30.0,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        *,
        retry: RetryPolicy = RetryPolicy(),
        **security: Unpack[ClientSecurity],
    ) -> None:
        super().__init__(target, timeout, max_message_bytes, **security)
        self.retry = retry
        self.attempts = 0  # RPC attempts made by unary calls, retries included (tests, metrics)

    async def close(self) -> None:
        await self.channel.close()

    async def __aenter__(self) -> "AsyncPoseClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _call(self, attempt: Callable[[float | None], Awaitable[T]], timeout: float | None) -> T:
        """Run `attempt(remaining_seconds)` until it succeeds, fails for good, or the deadline passes."""
        timeout = self.timeout if timeout is None else timeout
        deadline = None if timeout is None else time.monotonic() + timeout
        number = 0
        while True:
            number += 1
            self.attempts += 1
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                return await attempt(remaining)
            except grpc.aio.AioRpcError as exc:
                pause = self.retry.backoff(number)
                out_of_time = deadline is not None and time.monotonic() + pause >= deadline
                if exc.code() not in self.retry.codes or number >= self.retry.max_attempts or out_of_time:
                    raise
            await asyncio.sleep(pause)

    # -- health -------------------------------------------------------------------

    async def health(self, service: str = SERVICE_NAME, timeout: float | None = None) -> str:
        """The health status name of `service` ("SERVING", "NOT_SERVING", ...), no retries."""
        response = await self.health_stub.Check(
            health_pb2.HealthCheckRequest(service=service), timeout=self.timeout if timeout is None else timeout
        )
        return health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)

    async def wait_ready(self, timeout: float = 30.0, service: str = SERVICE_NAME, poll_s: float = 0.05) -> None:
        """Return once the server is reachable and reports SERVING (model warmed up); TimeoutError otherwise."""
        deadline = time.monotonic() + timeout
        request = health_pb2.HealthCheckRequest(service=service)
        last = "no answer"
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                response = await self.health_stub.Check(request, timeout=remaining, wait_for_ready=True)
            except grpc.aio.AioRpcError as exc:
                if exc.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                    raise
                last = f"{exc.code().name}: {exc.details()}"
            else:
                if response.status == health_pb2.HealthCheckResponse.SERVING:
                    return
                last = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
            await asyncio.sleep(min(poll_s, max(0.0, deadline - time.monotonic())))
        raise TimeoutError(f"server {self.target} not SERVING after {timeout:g} s (last: {last})")

    # -- calls --------------------------------------------------------------------

    async def estimate(
        self,
        image: bytes,
        box: Sequence[float] | None = None,
        category: str | None = None,
        request_id: str = "",
        frame_id: int = 0,
        top_k: int = 0,
        timeout: float | None = None,
        alternatives: int = 0,
        camera: Sequence[float] | None = None,
        gravity: Sequence[float] | None = None,
        upright: bool = False,
    ) -> vantage_pb2.EstimateResponse:
        """One Estimate call (retried on UNAVAILABLE / RESOURCE_EXHAUSTED): encoded image bytes, an optional
        (x_min, y_min, x_max, y_max) pixel box, a known category, `top_k` > 0 for retrieved views too,
        `alternatives` > 0 for that many alternative poses, `camera` (fx, fy, cx, cy) to turn the pose to
        the camera's optical axis (EstimateRequest.camera); `gravity` (x, y, z in the camera's axes) levels
        the crop and `upright` stands the object against it (EstimateRequest.gravity, .upright)."""
        request = make_request(image, box, category, request_id, frame_id, alternatives=alternatives, camera=camera,
                               gravity=gravity, upright=upright)
        request.top_k = top_k
        return await self._call(
            lambda remaining: self.stub.Estimate(request, timeout=remaining, metadata=self.metadata), timeout
        )

    async def estimate_result(
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
        return response_to_result(await self.estimate(image, box, category, request_id, timeout=timeout,
                                                      alternatives=alternatives, camera=camera, gravity=gravity,
                                                      upright=upright))

    async def stream(
        self,
        requests: AsyncIterable[vantage_pb2.EstimateRequest] | Iterable[vantage_pb2.EstimateRequest],
        timeout: float | None = None,
    ) -> AsyncIterator[vantage_pb2.EstimateResponse]:
        """EstimateStream: one response per request, in order (see the .proto for dropped and error frames).

        Not retried. Leaving the `async for` early cancels the stream on the server.
        """
        call = self.stub.EstimateStream(requests, timeout=timeout, metadata=self.metadata)
        try:
            async for response in call:
                yield response
        finally:
            call.cancel()

    async def model_info(self, timeout: float | None = None) -> vantage_pb2.ModelInfo:
        """The served model's ModelInfo (retried like `estimate`)."""
        request = vantage_pb2.GetModelInfoRequest()
        return await self._call(
            lambda remaining: self.stub.GetModelInfo(request, timeout=remaining, metadata=self.metadata), timeout
        )

    async def retrieve(
        self,
        image: bytes,
        box: Sequence[float] | None = None,
        category: str | None = None,
        top_k: int = 0,
        request_id: str = "",
        timeout: float | None = None,
    ) -> vantage_pb2.RetrieveResponse:
        """Image-graphics search (retried like `estimate`): nearest rendered views, their 3D models and the
        pose from them (top_k 0 = the server's default); `category` restricts the search to one category."""
        request = make_retrieve_request(image, box, category, top_k, request_id)
        return await self._call(
            lambda remaining: self.stub.Retrieve(request, timeout=remaining, metadata=self.metadata), timeout
        )
