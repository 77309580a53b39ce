"""Reliability of a real server on loopback: hostile requests, load limits, streams, reload, soak, SIGTERM.

Every loop here is bounded in count and time, and every server listens on 127.0.0.1.
`VANTAGE_SOAK_SECONDS` sets the soak's length (default 5 s; 60 for the long form).
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from pathlib import Path

import cv2
import grpc
import numpy as np
import pytest

from serve_fixtures import add_version, make_test_image, process_resources, slow_server
from vantage.serve.client import PoseClient
from vantage.serve.config import ServerConfig
from vantage.serve.engine import Predictor
from vantage.serve.logs import configure_logging
from vantage.serve.protocol import SERVICE_NAME, make_request
from vantage.serve.reload import ModelStore
from vantage.serve.server import start_server

IMAGE = make_test_image(160, 120, seed=2)
JPEG = make_test_image(320, 240, seed=3, ext=".jpg")
MAX_PIXELS = 1_000_000
SOAK_SECONDS = float(os.environ.get("VANTAGE_SOAK_SECONDS", "5"))
TOKEN = "soak-token"


def png_bomb() -> bytes:
    """A real 4000×3000 PNG (12 M pixels, about 40 KB): over MAX_PIXELS, tiny on the wire."""
    ok, buf = cv2.imencode(".png", np.zeros((3000, 4000), np.uint8), [cv2.IMWRITE_PNG_COMPRESSION, 9])
    assert ok
    return buf.tobytes()


@pytest.fixture(scope="module")
def server(tiny_bundle: Path):
    predictor = Predictor(tiny_bundle, intra_op_threads=1, max_pixels=MAX_PIXELS)
    running = start_server(predictor, ServerConfig(port=0, workers=8, max_message_bytes=1 << 20, metrics_port=0))
    yield running
    running.stop(1.0)


@pytest.fixture(scope="module")
def client(server):
    with PoseClient(f"127.0.0.1:{server.port}", timeout=10) as c:
        c.wait_ready(10)
        yield c


def raw_estimate(channel: grpc.Channel, data: bytes) -> grpc.RpcError | bytes:
    """Send bytes as an Estimate request without serialising a message (identity serializers)."""
    call = channel.unary_unary(f"/{SERVICE_NAME}/Estimate", request_serializer=None, response_deserializer=None)
    try:
        return call(data, timeout=10)
    except grpc.RpcError as exc:
        return exc


HOSTILE = {
    "truncated jpeg": (dict(image=JPEG[: len(JPEG) // 2]), grpc.StatusCode.INVALID_ARGUMENT, "could not be decoded"),
    "png bomb": (dict(image=png_bomb()), grpc.StatusCode.INVALID_ARGUMENT, "more than the limit of 1000000"),
    "huge box": (dict(image=IMAGE, box=(-1e6, -1e6, 1e6, 1e6)), grpc.StatusCode.INVALID_ARGUMENT, "crop, more than"),
    "float max box": (dict(image=IMAGE, box=(0, 0, 3e38, 3e38)), grpc.StatusCode.INVALID_ARGUMENT, "crop, more than"),
    "nan box": (dict(image=IMAGE, box=(0, float("nan"), 50, 50)), grpc.StatusCode.INVALID_ARGUMENT, "non-finite"),
    "too large message": (dict(image=b"\xff\xd8" + bytes(2 << 20)), grpc.StatusCode.RESOURCE_EXHAUSTED, ""),
}
RAW = {
    "not protobuf": (b"\xff\xff\xff\xff", "not a valid vantage.v1.PoseEstimator/Estimate request"),
    "bytes field sent as a number": (b"\x08\x05", "image is empty"),
    "string field with invalid utf-8": (b"\x1a\x02\xff\xfe", "not a valid"),
    "box field holding garbage": (b"\x12\x03\xff\xff\xff", "not a valid"),
}


def hostile_round(client: PoseClient, channel: grpc.Channel) -> None:
    for name, (kwargs, code, expected) in HOSTILE.items():
        with pytest.raises(grpc.RpcError) as info:
            client.estimate(**kwargs)
        assert info.value.code() == code, (name, info.value.details())
        assert expected in info.value.details(), (name, info.value.details())
        assert len(client.estimate(IMAGE).rotation) == 9, f"a good request after {name} failed"
    for name, (data, expected) in RAW.items():
        answer = raw_estimate(channel, data)
        assert isinstance(answer, grpc.RpcError), name
        assert answer.code() == grpc.StatusCode.INVALID_ARGUMENT and expected in answer.details(), (name, answer.details())
        assert len(client.estimate(IMAGE).rotation) == 9, f"a good request after {name} failed"
    assert list(client.stream([], timeout=10)) == []  # an empty stream ends cleanly


def test_hostile_requests_get_the_right_status_and_leak_nothing(server, client: PoseClient) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        hostile_round(client, channel)  # warm every path up first
        threads, py_threads, rss = process_resources()
        for _ in range(5):
            hostile_round(client, channel)
        time.sleep(0.2)
        threads_after, py_threads_after, rss_after = process_resources()
    assert py_threads_after <= py_threads and threads_after <= threads + 2
    assert rss_after - rss < 30 << 20, f"RSS grew by {(rss_after - rss) >> 20} MiB over 5 rounds"


def test_client_cancelling_mid_stream(server, client: PoseClient) -> None:
    _, py_threads, _ = process_resources()
    for _ in range(3):
        go_on = threading.Event()

        def frames():
            yield make_request(IMAGE, frame_id=0)
            go_on.wait(10)  # the client keeps the stream open until it cancels

        call = client.stream(frames(), timeout=30)
        assert next(call).frame_id == 0
        call.cancel()
        go_on.set()
        with pytest.raises(grpc.RpcError) as info:
            next(call)
        assert info.value.code() == grpc.StatusCode.CANCELLED
    deadline = time.monotonic() + 5
    while process_resources()[1] > py_threads and time.monotonic() < deadline:
        time.sleep(0.05)  # the stream reader threads end with their calls
    assert process_resources()[1] <= py_threads
    assert len(client.estimate(IMAGE).rotation) == 9


def _metrics_text(server) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=5) as response:
        return response.read().decode()


def test_metrics_endpoint(server, client: PoseClient) -> None:
    client.estimate(IMAGE)
    with pytest.raises(grpc.RpcError):
        client.estimate(b"")
    text = _metrics_text(server)
    for pattern in (
        r'vantage_requests_total\{code="OK",method="Estimate",service="vantage.v1.PoseEstimator"\} [1-9]',
        r'vantage_requests_total\{code="INVALID_ARGUMENT",method="Estimate",service="vantage.v1.PoseEstimator"\} [1-9]',
        r"vantage_queue_seconds_count [1-9]", r"vantage_preprocess_seconds_count [1-9]",
        r"vantage_inference_seconds_count [1-9]", r"vantage_batch_size_count [1-9]",
        r"vantage_retrieval_seconds_count 0", r"vantage_in_flight_requests \d",
        r'vantage_request_seconds_bucket\{le="0.064",method="Estimate"',
        r'vantage_model_info\{backend="onnxruntime/CPUExecutionProvider",bundle_version="",name="tiny-test",version="test-1"\} 1',
    ):
        assert re.search(pattern, text), pattern


@pytest.fixture
def restore_logging():
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    yield
    root.handlers[:], root.level = saved


def test_json_logs_carry_request_ids(server, client: PoseClient, capsys, restore_logging) -> None:
    configure_logging("json", "DEBUG")  # in the test: pytest resets the root level after each setup
    client.estimate(IMAGE, request_id="field-id")
    client.stub.Estimate(make_request(IMAGE), metadata=(("x-request-id", "header-id"),), timeout=10)
    with pytest.raises(grpc.RpcError):
        client.estimate(b"nope", request_id="bad-one")
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    calls = {e.get("request_id"): e for e in lines if e.get("grpc_method") == f"{SERVICE_NAME}/Estimate"}
    assert calls["field-id"]["grpc_code"] == "OK" and calls["header-id"]["grpc_code"] == "OK"
    assert calls["bad-one"]["grpc_code"] == "INVALID_ARGUMENT" and calls["bad-one"]["duration_ms"] > 0
    rejected = [e for e in lines if e["level"] == "INFO" and "INVALID_ARGUMENT" in e["msg"]]
    assert rejected and rejected[0]["request_id"] == "bad-one" and "could not be decoded" in rejected[0]["msg"]


def test_full_queue_and_expired_deadlines(tiny_bundle: Path) -> None:
    running, predictor = slow_server(tiny_bundle, 0.3, workers=8, max_batch_size=1, queue_size=1)
    try:
        with PoseClient(f"127.0.0.1:{running.port}", timeout=10) as c:
            codes: list[grpc.StatusCode] = []
            together = threading.Barrier(5)

            def call() -> None:
                together.wait(10)  # all five within one 0.3 s batch: one runs, one waits, the rest are refused
                try:
                    c.estimate(IMAGE)
                    codes.append(grpc.StatusCode.OK)
                except grpc.RpcError as exc:
                    codes.append(exc.code())

            threads = [threading.Thread(target=call) for _ in range(5)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(20)
            counts = Counter(codes)
            assert counts[grpc.StatusCode.RESOURCE_EXHAUSTED] >= 1 and counts[grpc.StatusCode.OK] >= 2, counts
            assert set(counts) == {grpc.StatusCode.OK, grpc.StatusCode.RESOURCE_EXHAUSTED}

            predictor.runs.clear()
            predictor.running.clear()
            busy = threading.Thread(target=c.estimate, args=(IMAGE,))
            busy.start()
            assert predictor.running.wait(10)
            with pytest.raises(grpc.RpcError) as info:
                c.estimate(IMAGE, timeout=0.15)  # queued behind a 0.3 s batch: expires before it runs
            assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
            busy.join(10)
            time.sleep(0.4)
            assert predictor.runs == [1], "the expired request was run"
    finally:
        running.stop(0)


def test_stream_drops_stale_frames_and_says_so(tiny_bundle: Path) -> None:
    running, predictor = slow_server(tiny_bundle, 0.4, workers=4)
    keep = 3

    def frames():
        """Frame 0, then (once it is being processed) frames 1-6 at once: faster than answered."""
        yield make_request(IMAGE, frame_id=0)
        predictor.running.wait(10)  # a timeout shows as a failed assertion below
        yield from (make_request(IMAGE, frame_id=i, keep_frame=i == keep) for i in range(1, 7))

    try:
        with PoseClient(f"127.0.0.1:{running.port}", timeout=10) as c:
            responses = list(c.stream(frames(), timeout=30))
            assert [r.frame_id for r in responses] == list(range(7))
            dropped = [r.frame_id for r in responses if r.dropped]
            processed = [r for r in responses if not r.dropped]
            assert 0 not in dropped and 6 not in dropped and keep not in dropped and len(dropped) >= 3, dropped
            assert all(len(r.rotation) == 9 and not r.error for r in processed)
            assert all(not r.rotation and not r.error_code for r in responses if r.dropped)
            assert sum(r.frames_dropped_before for r in processed) == len(dropped)
            assert f"vantage_stream_frames_dropped_total {float(len(dropped))}" in _registry_text(running)
    finally:
        running.stop(0)


def _registry_text(running) -> str:
    from prometheus_client import generate_latest

    return generate_latest(running.metrics.registry).decode()


def versions_store(tiny_bundle: Path, models: Path, poll_s: float = 0.0) -> ModelStore:
    models.mkdir()
    add_version(tiny_bundle, models, "1", model_version="v1")
    return ModelStore.open(models, lambda p: Predictor(p, intra_op_threads=1))


def test_hot_reload_by_polling_and_by_rpc(tiny_bundle: Path, tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text(TOKEN)
    models = tmp_path / "models"
    store = versions_store(tiny_bundle, models)
    running = start_server(store, ServerConfig(port=0, workers=4, auth_token_file=str(token), reload_poll_s=0.05))

    def served_after_polls(c: PoseClient, expected: str) -> str:
        deadline = time.monotonic() + 10
        while (version := c.model_info().bundle_version) != expected and time.monotonic() < deadline:
            time.sleep(0.05)
        return version

    try:
        with PoseClient(f"127.0.0.1:{running.port}", timeout=10, token=TOKEN) as c:
            info = c.model_info()
            assert (info.bundle_version, info.model_version) == ("1", "v1")
            assert c.reload().changed is False
            add_version(tiny_bundle, models, "10", model_version="v10")  # numeric order: 10 > 9 > 1
            assert served_after_polls(c, "10") == "10" and c.model_info().model_version == "v10"

            answer = c.reload("1")  # a rollback pins its version: polling leaves it alone
            assert answer.changed and (answer.model.bundle_version, answer.model.model_version) == ("1", "v1")
            broken = add_version(tiny_bundle, models, "11")
            (broken / "model.onnx").write_bytes(b"not a model")
            time.sleep(0.3)
            assert c.model_info().bundle_version == "1"
            with pytest.raises(grpc.RpcError) as failed:
                c.reload("11")
            assert failed.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "cannot load" in failed.value.details()
            assert c.model_info().bundle_version == "1" and len(c.estimate(IMAGE).rotation) == 9

            (broken / "vantage.json").unlink()  # no longer a version
            add_version(tiny_bundle, models, "12", model_version="v12")
            answer = c.reload()  # the newest again, and polling resumes
            assert answer.changed and answer.model.model_version == "v12"
            text = _registry_text(running)
            assert 'vantage_model_reloads_total{result="swapped"} 3.0' in text
            assert 'vantage_model_reloads_total{result="failed"} 1.0' in text
            assert 'bundle_version="12"' in text
    finally:
        running.stop(0)


def _client_loop(client: PoseClient, stop: threading.Event, codes: Counter, lock: threading.Lock, stream: bool) -> None:
    while not stop.is_set():
        try:
            if stream:
                frames = [make_request(IMAGE, frame_id=i, keep_frame=True) for i in range(4)]
                ok = all(not r.error_code for r in client.stream(frames, timeout=30))
                code = grpc.StatusCode.OK if ok else grpc.StatusCode.INTERNAL
            else:
                client.estimate(IMAGE, timeout=30)
                code = grpc.StatusCode.OK
        except grpc.RpcError as exc:
            code = exc.code()
        with lock:
            codes[code] += 1
        if code == grpc.StatusCode.UNAVAILABLE:
            return  # the server is gone: stop instead of spinning


def soak(target: str, seconds: float, during: list[tuple[float, callable]], clients: int = 16) -> Counter:
    """`clients` threads (a quarter of them streaming) call `target` for `seconds`; `during` runs actions at times."""
    stop, lock, codes = threading.Event(), threading.Lock(), Counter()
    pool = [PoseClient(target, timeout=30, token=TOKEN) for _ in range(clients)]
    threads = [threading.Thread(target=_client_loop, args=(c, stop, codes, lock, i % 4 == 0)) for i, c in enumerate(pool)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for at, action in during:
        time.sleep(max(0.0, t0 + at - time.monotonic()))
        action()
    time.sleep(max(0.0, t0 + seconds - time.monotonic()))
    stop.set()
    for t in threads:
        t.join(60)
    for c in pool:
        c.close()
    return codes


@pytest.mark.slow
def test_soak_with_hot_reloads(tiny_bundle: Path, tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text(TOKEN)
    models = tmp_path / "models"
    running = start_server(versions_store(tiny_bundle, models), ServerConfig(port=0, auth_token_file=str(token)))
    target = f"127.0.0.1:{running.port}"
    try:
        soak(target, min(2.0, SOAK_SECONDS), [])  # warm-up: every thread and buffer exists
        threads, py_threads, rss = process_resources()
        admin = PoseClient(target, timeout=30, token=TOKEN)

        def reload_to(version: str):
            return lambda: admin.reload(version)

        add_version(tiny_bundle, models, "2", model_version="v2")
        codes = soak(target, SOAK_SECONDS, [(SOAK_SECONDS / 3, reload_to("2")), (2 * SOAK_SECONDS / 3, reload_to("1"))])
        assert admin.model_info().bundle_version == "1"
        admin.close()
        time.sleep(0.3)
        threads_after, py_threads_after, rss_after = process_resources()
    finally:
        running.stop(2.0)
    assert set(codes) == {grpc.StatusCode.OK} and codes[grpc.StatusCode.OK] > 16, codes
    assert py_threads_after <= py_threads + 1, (py_threads, py_threads_after)
    assert threads_after <= threads + 4, (threads, threads_after)
    assert rss_after - rss < 120 << 20, f"RSS grew by {(rss_after - rss) >> 20} MiB (a reloaded model is freed)"


@pytest.mark.slow
def test_sigterm_during_soak_loses_no_accepted_request(tiny_bundle: Path, tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text(TOKEN)
    log_path = tmp_path / "server.log"
    cmd = [sys.executable, "-m", "vantage", "serve", "--model", str(tiny_bundle), "--port", "0", "--grace-s", "10",
           "--auth-token-file", str(token), "--log-format", "json", "--log-level", "DEBUG", "--intra-op-threads", "1"]
    with open(log_path, "w") as log_file:
        proc = subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while not (match := re.search(r"serving model .* on 127\.0\.0\.1:(\d+)", log_path.read_text())):
            assert proc.poll() is None and time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.05)
        target = f"127.0.0.1:{match.group(1)}"
        with PoseClient(target, timeout=30) as c:
            c.wait_ready(30)
        seconds = min(SOAK_SECONDS, 4.0)
        codes = soak(target, seconds, [(seconds / 2, lambda: proc.send_signal(signal.SIGTERM))])
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    log = log_path.read_text()
    assert "SIGTERM received" in log and "server stopped" in log
    # Every call the server accepted (its handler ran: one log line each) finished OK, and the
    # clients got all of them. Calls sent after the signal were refused: UNAVAILABLE, or
    # CANCELLED for the few that gRPC had queued but not yet handed to the server's code.
    calls = [json.loads(line) for line in log.splitlines() if line.startswith("{") and '"grpc_code"' in line]
    served = Counter(c["grpc_code"] for c in calls if c["grpc_method"].startswith(SERVICE_NAME))
    assert set(served) == {"OK"}, served
    assert served["OK"] == codes[grpc.StatusCode.OK] > 16, (served, codes)
    assert set(codes) <= {grpc.StatusCode.OK, grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED}, codes
    assert codes[grpc.StatusCode.UNAVAILABLE] >= 1, codes
