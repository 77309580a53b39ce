"""The asyncio client: real calls to a loopback server, and its retry rules against a scripted server."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import AsyncIterator

import grpc
import pytest

from serve_fixtures import make_test_image
from test_serve_security import TOKEN, pki  # noqa: F401 (fixture: throwaway CA, certificates, token file)
from vantage.serve.aio_client import NO_RETRY, AsyncPoseClient, RetryPolicy
from vantage.serve.client import PoseClient
from vantage.serve.config import ServerConfig
from vantage.serve.engine import Predictor
from vantage.serve.protocol import make_request
from vantage.serve.results import result_to_json
from vantage.serve.server import start_server
from vantage.v1 import vantage_pb2, vantage_pb2_grpc

IMAGE = make_test_image(160, 120, seed=3)
BOX = (20.0, 10.0, 120.5, 90.0)
FAST = RetryPolicy(max_attempts=4, initial_backoff_s=0.01, jitter=0.0)


@pytest.fixture(scope="module")
def predictor(tiny_bundle: Path) -> Predictor:
    return Predictor(tiny_bundle, intra_op_threads=1)


@pytest.fixture(scope="module")
def target(predictor: Predictor):
    running = start_server(predictor, ServerConfig(port=0, workers=4))
    yield f"127.0.0.1:{running.port}"
    running.stop(grace=1.0)


def without_timings(result) -> dict:
    return {k: v for k, v in result_to_json(result).items() if k != "timings"}


def test_estimate_equals_the_sync_client(target: str) -> None:
    async def main():
        async with AsyncPoseClient(target, timeout=10) as client:
            await client.wait_ready(10)
            return await client.estimate_result(IMAGE, BOX, "car", request_id="a"), client.attempts

    result, attempts = asyncio.run(main())
    with PoseClient(target, timeout=10) as sync:
        expected = sync.estimate_result(IMAGE, BOX, "car")
    assert without_timings(result) == without_timings(expected)
    assert result.category == "car" and result.category_given and attempts == 1


def test_stream_answers_in_order_and_a_bad_frame_does_not_end_it(target: str) -> None:
    async def frames() -> AsyncIterator[vantage_pb2.EstimateRequest]:
        for i in range(4):
            image = b"not an image" if i == 1 else IMAGE
            yield make_request(image, BOX, frame_id=i, keep_frame=True)
            await asyncio.sleep(0)

    async def main():
        async with AsyncPoseClient(target, timeout=10) as client:
            answers = [r async for r in client.stream(frames(), timeout=30)]
            first_only = []
            async for response in client.stream(frames(), timeout=30):  # leaving early cancels the stream
                first_only.append(response)
                break
            return answers, first_only, await client.model_info()

    answers, first_only, info = asyncio.run(main())
    assert [a.frame_id for a in answers] == [0, 1, 2, 3]
    assert answers[1].error_code == grpc.StatusCode.INVALID_ARGUMENT.value[0] and answers[1].error
    assert all(len(a.rotation) == 9 and not a.error for a in (answers[0], answers[2], answers[3]))
    assert [a.frame_id for a in first_only] == [0]
    assert info.name == "tiny-test" and list(info.categories)


def test_invalid_argument_is_never_retried(target: str) -> None:
    async def main():
        async with AsyncPoseClient(target, timeout=10, retry=FAST) as client:
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await client.estimate(b"")
            return info.value, client.attempts

    error, attempts = asyncio.run(main())
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and attempts == 1
    with pytest.raises(ValueError, match="never retried"):
        RetryPolicy(codes=frozenset({grpc.StatusCode.INVALID_ARGUMENT}))


class ScriptedServicer(vantage_pb2_grpc.PoseEstimatorServicer):
    """Fails Estimate with the scripted codes in turn, then answers; `calls` counts the attempts it saw."""

    def __init__(self, codes: list[grpc.StatusCode], then_forever: grpc.StatusCode | None = None) -> None:
        self.codes = list(codes)
        self.then_forever = then_forever
        self.calls = 0

    async def Estimate(self, request, context: grpc.aio.ServicerContext):
        self.calls += 1
        code = self.codes.pop(0) if self.codes else self.then_forever
        if code is not None:
            await context.abort(code, f"scripted {code.name}")
        return vantage_pb2.EstimateResponse(category="car", request_id=request.request_id)


async def scripted_call(servicer: ScriptedServicer, retry: RetryPolicy, timeout: float = 10.0):
    """One estimate through a client with `retry` against `servicer`: (response or error, seconds, attempts)."""
    server = grpc.aio.server()
    vantage_pb2_grpc.add_PoseEstimatorServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with AsyncPoseClient(f"127.0.0.1:{port}", timeout=timeout, retry=retry) as client:
            t0 = time.monotonic()
            try:
                outcome = await client.estimate(IMAGE, request_id="r")
            except grpc.aio.AioRpcError as exc:
                outcome = exc
            return outcome, time.monotonic() - t0, client.attempts
    finally:
        await server.stop(0)


def test_unavailable_and_resource_exhausted_are_retried_until_success() -> None:
    servicer = ScriptedServicer([grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED])
    outcome, _, attempts = asyncio.run(scripted_call(servicer, FAST))
    assert isinstance(outcome, vantage_pb2.EstimateResponse) and outcome.request_id == "r"
    assert servicer.calls == attempts == 3


@pytest.mark.parametrize("code", [grpc.StatusCode.INTERNAL, grpc.StatusCode.UNAUTHENTICATED])
def test_other_statuses_are_final(code: grpc.StatusCode) -> None:
    servicer = ScriptedServicer([code])
    outcome, _, attempts = asyncio.run(scripted_call(servicer, FAST))
    assert isinstance(outcome, grpc.aio.AioRpcError) and outcome.code() == code
    assert servicer.calls == attempts == 1


def test_retries_stop_at_max_attempts() -> None:
    servicer = ScriptedServicer([], then_forever=grpc.StatusCode.RESOURCE_EXHAUSTED)
    outcome, _, attempts = asyncio.run(scripted_call(servicer, FAST))
    assert outcome.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert servicer.calls == attempts == FAST.max_attempts


def test_the_deadline_covers_retries_and_backoff() -> None:
    servicer = ScriptedServicer([], then_forever=grpc.StatusCode.UNAVAILABLE)
    slow = RetryPolicy(max_attempts=100, initial_backoff_s=0.1, multiplier=1.0, jitter=0.0)
    outcome, seconds, attempts = asyncio.run(scripted_call(servicer, slow, timeout=0.5))
    # the last attempt's UNAVAILABLE, or DEADLINE_EXCEEDED where the deadline fell inside an attempt (a loaded machine)
    assert outcome.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
    assert seconds < 0.5 + 0.3 and 3 <= attempts <= 6
    assert RetryPolicy(initial_backoff_s=1.0, max_backoff_s=1.5, jitter=0.0).backoff(5) == 1.5


def test_wait_ready_times_out_on_a_silent_port() -> None:
    async def main():
        async with AsyncPoseClient("127.0.0.1:1", retry=NO_RETRY) as client:
            await client.wait_ready(timeout=0.3)

    with pytest.raises(TimeoutError, match="not SERVING"):
        asyncio.run(main())


def test_mutual_tls_and_token(predictor: Predictor, pki: dict[str, str]) -> None:  # noqa: F811
    config = ServerConfig(port=0, workers=4, tls_cert=pki["server_cert"], tls_key=pki["server_key"],
                          tls_client_ca=pki["ca"], auth_token_file=pki["token"])
    running = start_server(predictor, config)
    target = f"localhost:{running.port}"
    mtls = dict(tls_ca=pki["ca"], tls_cert=pki["client_cert"], tls_key=pki["client_key"])

    async def outcome(**options) -> int | grpc.StatusCode:
        async with AsyncPoseClient(target, timeout=5, retry=NO_RETRY, **options) as client:
            try:
                return len((await client.estimate(IMAGE)).rotation)
            except grpc.aio.AioRpcError as exc:
                return exc.code()

    async def main():
        return [
            await outcome(token=TOKEN, **mtls),
            await outcome(**mtls),
            await outcome(token=TOKEN, tls_ca=pki["ca"]),
        ]

    try:
        good, no_token, no_certificate = asyncio.run(main())
    finally:
        running.stop(0)
    assert good == 9
    assert no_token == grpc.StatusCode.UNAUTHENTICATED
    assert no_certificate == grpc.StatusCode.UNAVAILABLE  # the handshake fails without a client certificate


def test_retrieve_with_a_token_equals_the_sync_client(indexed_bundle: Path, pki: dict[str, str]) -> None:  # noqa: F811
    config = ServerConfig(port=0, workers=2, auth_token_file=pki["token"])
    running = start_server(Predictor(indexed_bundle, intra_op_threads=1), config)
    target = f"127.0.0.1:{running.port}"

    async def retrieve(**options) -> vantage_pb2.RetrieveResponse | grpc.StatusCode:
        async with AsyncPoseClient(target, timeout=10, retry=FAST, **options) as client:
            try:
                return await client.retrieve(IMAGE, BOX, category="car", top_k=4)
            except grpc.aio.AioRpcError as exc:
                return exc.code()

    try:
        anonymous, good = asyncio.run(retrieve()), asyncio.run(retrieve(token=TOKEN))
        with PoseClient(target, timeout=10, token=TOKEN) as sync:
            expected = sync.retrieve(IMAGE, BOX, category="car", top_k=4)
    finally:
        running.stop(0)
    assert anonymous == grpc.StatusCode.UNAUTHENTICATED
    assert [v.view_id for v in good.retrieval.views] == [v.view_id for v in expected.retrieval.views]
    assert len(good.retrieval.views) == 4 and len(good.estimate.rotation) == 9
