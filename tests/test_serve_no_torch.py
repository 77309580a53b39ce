"""Serving runs where torch (and onnx, a training-only dependency) cannot be imported.

Each test runs a fresh Python whose `sys.meta_path` refuses `torch` and `onnx`, then
imports the whole serving side and runs it on the fixture bundle (made beforehand,
by this process, with torch).
"""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

from serve_fixtures import make_test_image
from vantage.serve.client import PoseClient

BLOCKER = textwrap.dedent(
    """
    import importlib.abc, sys

    BLOCKED = {"torch", "torchvision", "onnx"}
    attempts = []

    class Blocker(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                attempts.append(name)
                raise ImportError(f"{name} is blocked: serving must not need it")
            return None

    sys.meta_path.insert(0, Blocker())
    try:
        import torch
    except ImportError:
        pass
    else:
        raise SystemExit("the blocker does not work")
    attempts.clear()
    """
)

IN_PROCESS = BLOCKER + textwrap.dedent(
    """
    import json
    import vantage.v1.vantage_pb2, vantage.v1.vantage_pb2_grpc
    import vantage.serve, vantage.serve.engine, vantage.serve.server, vantage.serve.client
    import vantage.serve.predict, vantage.serve.results, vantage.serve.protocol
    import vantage.serve.backends, vantage.serve.batching, vantage.serve.bench, vantage.serve.bench_images
    import vantage.serve.config, vantage.serve.logs, vantage.serve.metrics, vantage.serve.reload
    import vantage.serve.security, vantage.serve.streaming, vantage.serve.telemetry, vantage.cli
    import vantage.serve.retrieval, vantage.serve.retrieval_api
    from vantage.serve.client import PoseClient
    from vantage.serve.engine import Predictor
    from vantage.serve.results import response_to_result, result_to_json
    from vantage.serve.config import ServerConfig
    from vantage.serve.server import start_server

    from vantage.serve.bench_images import bench_inputs

    bundle, image_path = sys.argv[1], sys.argv[2]
    inputs, source = bench_inputs(None, 2)  # the renderer needs no torch either
    assert source in ("rendered", "synthetic") and len(inputs) == 2, source
    running = start_server(Predictor(bundle), ServerConfig(port=0))
    with PoseClient(f"127.0.0.1:{running.port}", timeout=10) as client:
        client.wait_ready(10)
        result = response_to_result(client.estimate(open(image_path, "rb").read(), category="car"))
    running.stop(0)
    loaded = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
    print(json.dumps({"result": result_to_json(result), "loaded": loaded, "attempts": attempts}))
    """
)

SERVE = BLOCKER + textwrap.dedent(
    """
    from vantage.serve.config import ServerConfig
    from vantage.serve.server import serve
    serve(ServerConfig(model=sys.argv[1], host="127.0.0.1", port=0, workers=2, grace_s=2.0))
    print("attempts", attempts, flush=True)
    """
)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    return env


def test_serving_stack_runs_without_torch(tiny_bundle: Path, tmp_path: Path) -> None:
    image = tmp_path / "frame.png"
    image.write_bytes(make_test_image(seed=3))
    proc = subprocess.run(
        [sys.executable, "-c", IN_PROCESS, str(tiny_bundle), str(image)],
        cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["loaded"] == []
    assert out["result"]["category"] == "car" and out["result"]["category_given"] is True
    assert len(out["result"]["rotation"]) == 3


def test_serve_entry_point_stops_gracefully_on_sigterm(tiny_bundle: Path, tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVE, str(tiny_bundle)],
        cwd=tmp_path, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    log: list[str] = []

    def pump() -> None:
        for line in proc.stdout:
            lines.put(line)
        lines.put("")

    threading.Thread(target=pump, daemon=True).start()
    try:
        port = None
        while port is None:
            line = lines.get(timeout=30)
            log.append(line)
            assert line, "serve() exited early:\n" + "".join(log)
            match = re.search(r"serving model 'tiny-test'.* on 127\.0\.0\.1:(\d+)", line)
            port = int(match.group(1)) if match else None
        with PoseClient(f"127.0.0.1:{port}", timeout=10) as client:
            client.wait_ready(15)
            response = client.estimate(make_test_image(seed=4))
            assert len(response.rotation) == 9
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    while True:
        line = lines.get(timeout=5)
        if not line:
            break
        log.append(line)
    text = "".join(log)
    assert "SIGTERM received" in text and "server stopped" in text, text
    assert "attempts []" in text, text
