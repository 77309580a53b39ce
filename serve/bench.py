"""`vantage bench`: throughput and latency of a Vantage server, in the spirit of Triton's perf_analyzer.

    vantage bench --model BUNDLE                             # starts its own servers: batching on, then off
    vantage bench --server HOST:PORT --model BUNDLE          # a running server (the bundle for the in-process line)
    vantage bench --model BUNDLE --quick                     # concurrency 1, 4, 16 for half a second each

For each batching setting, mode (unary `Estimate`, or `EstimateStream` in lock step:
each client sends its next frame when the previous answer arrived, so nothing is
dropped) and concurrency C, C clients (an `AsyncPoseClient` each, so a channel each,
never retrying: a refused request counts as an error) send requests back to back over
the inputs for `seconds` after two warm-up requests each; a request counts when it
completes inside the window. Started servers are separate processes (`python -m vantage
serve`), so the clients do not share the server's interpreter. The in-process line runs
the same model on the same inputs with `Predictor.predict_bytes` (decode, crop,
inference), one at a time, alternating with the same requests through the server (the
synchronous `PoseClient`) and with a no-op RPC that shows the machine's floor for a call
(see `paired_rows`).

Decision: the C clients are coroutines on one event loop, not a loop per thread. Measured
on a shared 2-core CPU machine (3 rounds, 2 s per level, the server on the same cores):
against a server that answers at once, one loop carried 4,100-6,100 unary and
6,000-11,000 stream requests/s at C = 16-64 (one round's 1,500 an outlier), above the
2,300-3,300 and 2,000-3,100 of the thread-per-client generator it replaced; against the
real server (tiny bundle, batching on) both gave 360-650 unary and 430-820 stream
requests/s at C = 16, the loop using 0.13-0.18 of a core. One loop is not the limit;
threads of loops would only contend for the GIL. A server faster than about 4,000
requests/s (a GPU host) wants several bench processes, or the bench measures itself.
A level whose clients have not all warmed up within WARMUP_TIMEOUT_S fails with a
reason: a server holds one handler thread per open stream, so stream mode above the
server's `--workers` would otherwise wait out the deadline.

Writes `bench.json` (settings, inputs, rows, ratios), `bench.csv` (rows) and, when
matplotlib is installed, `bench.png` (p50 and p99 latency against throughput), and
prints the ratios the issue asks for: gRPC p50 over in-process at concurrency 1
(target ≤ 1.2) and unary throughput with batching over without at concurrency 16
(target ≥ 1.5 on a CPU).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import itertools
import json
import logging
import math
import os
import re
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, AsyncIterator, Sequence

import grpc
import numpy as np

from vantage.serve.aio_client import NO_RETRY, AsyncPoseClient
from vantage.serve.client import PoseClient
from vantage.serve.security import ClientSecurity, add_client_arguments, client_security

log = logging.getLogger(__name__)

MODES: tuple[str, ...] = ("unary", "stream")
WARMUP_REQUESTS = 2
WARMUP_TIMEOUT_S = 60.0
TARGET_OVERHEAD = 1.2
TARGET_BATCHING_SPEEDUP = 1.5
QUICK = {"concurrency": (1, 4, 16), "seconds": 0.5, "count": 8}
_SERVING_LINE = re.compile(r"serving model .* on \S*:(\d+)")


@dataclass(frozen=True)
class BenchSettings:
    """What to measure; `vantage bench` flags are these names with dashes."""

    model: str = ""  # bundle: servers started by the bench, and the in-process reference
    server: str = ""  # HOST:PORT of a running server instead of started ones
    images: str = ""  # folder of JPEG/PNG inputs; default: renders of the built-in shapes, else synthetic
    count: int = 16  # inputs
    concurrency: tuple[int, ...] = (1, 2, 4, 8, 16, 32)
    seconds: float = 3.0  # measurement window per level
    modes: tuple[str, ...] = MODES
    backend: str = "auto"  # started servers and the in-process reference
    intra_op_threads: int = 0
    max_batch_size: int = 8  # "batching on"; "off" is 1
    batch_delay_ms: float = 2.0
    token_file: str = ""  # bearer token of a running server
    tls_ca: str = ""  # CA of a running TLS server
    tls_cert: str = ""  # client certificate (and key) of a running mTLS server
    tls_key: str = ""
    out: str = "runs/bench"


@dataclass
class Row:
    """One measured level."""

    mode: str
    batching: str
    concurrency: int
    requests: int
    errors: int
    seconds: float
    throughput_rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float


def summarise(mode: str, batching: str, concurrency: int, latencies_s: Sequence[float], errors: int, seconds: float) -> Row:
    """A Row from completed requests' latencies (seconds) over a window of `seconds`."""
    ms = np.asarray(latencies_s, np.float64) * 1e3
    p50, p90, p99 = np.percentile(ms, [50, 90, 99]) if len(ms) else (float("nan"),) * 3
    return Row(
        mode, batching, concurrency, len(ms), errors, round(seconds, 3), round(len(ms) / seconds, 2) if seconds else 0.0,
        round(float(p50), 3), round(float(p90), 3), round(float(p99), 3), round(float(ms.mean()), 3) if len(ms) else float("nan"),
    )


# -- load generation -------------------------------------------------------------------


class _Window:
    """The measurement window shared by a level's clients: opens once every client has warmed up."""

    def __init__(self, clients: int, seconds: float) -> None:
        self.warmed = asyncio.Barrier(clients + 1)
        self.opened = asyncio.Event()
        self.seconds = seconds
        self.end = math.inf

    async def open(self) -> float:
        await self.warmed.wait()
        start = time.perf_counter()
        self.end = start + self.seconds
        self.opened.set()
        return start

    async def join(self) -> None:
        """Client side: wait until the window opens."""
        await self.warmed.wait()
        await self.opened.wait()


async def _unary_client(
    client: AsyncPoseClient, inputs: Sequence, offset: int, window: _Window
) -> tuple[list[float], int]:
    """Estimate calls back to back: the latencies completed inside the window and the failed calls."""
    latencies, errors = [], 0
    turns = (inputs[(offset + i) % len(inputs)] for i in itertools.count())
    for x in itertools.islice(turns, WARMUP_REQUESTS):
        await client.estimate(x.image, x.box)
    await window.join()
    for x in turns:
        t0 = time.perf_counter()
        if t0 >= window.end:
            break
        try:
            await client.estimate(x.image, x.box)
        except grpc.aio.AioRpcError:
            errors += 1
            continue
        t1 = time.perf_counter()
        if t1 <= window.end:
            latencies.append(t1 - t0)
    return latencies, errors


async def _stream_client(
    client: AsyncPoseClient, inputs: Sequence, offset: int, window: _Window
) -> tuple[list[float], int]:
    """One EstimateStream in lock step (the next frame leaves when the previous answer arrived)."""
    from vantage.serve.protocol import make_request  # noqa: PLC0415

    latencies, errors = [], 0
    answered = asyncio.Semaphore(0)
    stop = False
    sent_at = 0.0

    async def frames() -> AsyncIterator:
        nonlocal sent_at
        for i in itertools.count():
            x = inputs[(offset + i) % len(inputs)]
            sent_at = time.perf_counter()
            yield make_request(x.image, x.box, frame_id=i)
            await answered.acquire()
            if stop:
                return

    seen = 0
    async for response in client.stream(frames(), timeout=window.seconds + 120):
        now = time.perf_counter()
        seen += 1
        if seen == WARMUP_REQUESTS:
            await window.join()
        elif seen > WARMUP_REQUESTS:
            if now >= window.end:
                stop = True
            elif response.error_code or response.dropped:
                errors += 1
            else:
                latencies.append(now - sent_at)
        answered.release()
    return latencies, errors


async def _open(window: _Window, concurrency: int) -> float:
    """Open the window once every client warmed up; TimeoutError with the likely reason when they do not."""
    try:
        return await asyncio.wait_for(window.open(), WARMUP_TIMEOUT_S)
    except TimeoutError:
        raise TimeoutError(f"not all {concurrency} clients warmed up in {WARMUP_TIMEOUT_S:g} s: a server holds one "
                           "handler thread per open stream, is concurrency above its --workers?") from None


async def _level(
    target: str, client_options: ClientSecurity, inputs: Sequence, mode: str, concurrency: int, seconds: float
) -> tuple[list[float], int, float]:
    """`concurrency` clients (a channel each) as coroutines of this loop; see `run_level`."""
    worker = _unary_client if mode == "unary" else _stream_client
    window = _Window(concurrency, seconds)
    clients = [AsyncPoseClient(target, timeout=60, retry=NO_RETRY, **client_options) for _ in range(concurrency)]
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(worker(c, inputs, k * 7, window)) for k, c in enumerate(clients)]
            start = await _open(window, concurrency)
    finally:
        await asyncio.gather(*(c.close() for c in clients))
    results = [t.result() for t in tasks]
    return [x for lat, _ in results for x in lat], sum(e for _, e in results), min(seconds, time.perf_counter() - start)


def run_level(
    target: str, client_options: ClientSecurity, inputs: Sequence, mode: str, concurrency: int, seconds: float
) -> tuple[list[float], int, float]:
    """Latencies (s) of requests completed in the window, the error count and the window length."""
    try:
        return asyncio.run(_level(target, client_options, inputs, mode, concurrency, seconds))
    except* Exception as group:
        first = group.exceptions[0]
        raise RuntimeError(f"{mode} client failed at concurrency {concurrency}: {first!r}") from first


def _paired(predictor: Any, client: PoseClient, inputs: Sequence, repeats: int) -> dict[str, list[float]]:
    """Latencies of `predictor.predict_bytes`, of the same requests through the server, and of a no-op
    RPC (a health Check: the floor of any call on this machine), a pass of each in turn; the first
    pass warms up."""
    measured: dict[str, list[float]] = {"in-process": [], "unary-paired": [], "noop-rpc": []}
    calls = {
        "in-process": lambda x: predictor.predict_bytes(x.image, x.box),
        "unary-paired": lambda x: client.estimate(x.image, x.box),
        "noop-rpc": lambda x: client.health(),
    }
    for repeat in range(repeats + 1):
        for name, call in calls.items():
            for x in inputs:
                t0 = time.perf_counter()
                call(x)
                if repeat:
                    measured[name].append(time.perf_counter() - t0)
    return measured


def paired_rows(
    target: str, client_options: ClientSecurity, settings: BenchSettings, inputs: Sequence, batching: str,
    repeats: int = 5,
) -> tuple[Row, Row, Row]:
    """In-process latency, gRPC latency of the same requests and a no-op RPC, alternating pass by pass
    (no other load).

    A pass of `Predictor.predict_bytes` (decode, crop, inference) over the inputs on the
    same model and backend, then a pass of the same inputs through the server, then a pass
    of health Checks, and so on: alternating makes all see the same machine load, which on
    a shared machine drifts more than the overhead measured. The calls go through the
    synchronous `PoseClient`: at concurrency 1 an event loop only adds its own latency
    (0.1-0.3 ms measured here). The no-op RPC row is the machine's floor for a call: on the
    2-core VMs here a call whose handler is idle for ~6 ms (a sleep, no Vantage code) costs
    1.3-1.7 ms more than the handler, twice the 0.6-0.8 ms of an instant one (the VM's
    wake-up latency), while Vantage's own per-call work (interceptor, parsing, response)
    measured 0.05 ms; so the overhead over the floor is what the server can still win.
    """
    from vantage.serve.engine import Predictor  # noqa: PLC0415 (ONNX Runtime only when measuring)

    predictor = Predictor(settings.model, settings.backend, settings.intra_op_threads)
    with PoseClient(target, timeout=60, **client_options) as client:
        measured = _paired(predictor, client, inputs, repeats)
    rows = (summarise(name, "-" if name == "in-process" else batching, 1, lat, 0, sum(lat))
            for name, lat in measured.items())
    return tuple(rows)  # type: ignore[return-value]


# -- servers -------------------------------------------------------------------------------


class ServerProcess:
    """`python -m vantage serve` on a free loopback port, its log in `log_path`."""

    def __init__(self, model: str, flags: Sequence[str], log_path: Path, timeout: float = 120.0) -> None:
        cmd = [sys.executable, "-m", "vantage", "serve", "--model", model, "--port", "0", *flags]
        self.log_path = log_path
        with open(log_path, "w") as log_file:
            self.proc = subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT,
                                         env={**os.environ, "PYTHONUNBUFFERED": "1"})
        deadline = time.monotonic() + timeout
        while not (match := _SERVING_LINE.search(log_path.read_text())):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the server did not start; its log:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.05)
        self.target = f"127.0.0.1:{match.group(1)}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _client_options(settings: BenchSettings) -> ClientSecurity:
    return client_security(settings.token_file, settings.tls_ca, settings.tls_cert, settings.tls_key)


async def _server_backend(target: str, client_options: ClientSecurity) -> str:
    """The backend a server reports, once it is SERVING."""
    async with AsyncPoseClient(target, timeout=30, **client_options) as client:
        await client.wait_ready(timeout=120)
        return (await client.model_info()).backend


def _measure_server(
    target: str, client_options: ClientSecurity, settings: BenchSettings, inputs: Sequence, batching: str
) -> tuple[list[Row], str, tuple[Row, Row, Row] | None]:
    """Every mode and concurrency against one server; also the backend it reports and, when the
    bundle is given and batching is on (or the server's own), the paired in-process comparison."""
    backend = asyncio.run(_server_backend(target, client_options))
    paired = None
    if settings.model and batching in ("on", "server"):
        paired = paired_rows(target, client_options, settings, inputs, batching)
        for row in paired:
            print(_format_row(row), flush=True)
    rows = []
    for mode in settings.modes:
        for c in settings.concurrency:
            latencies, errors, seconds = run_level(target, client_options, inputs, mode, c, settings.seconds)
            row = summarise(mode, batching, c, latencies, errors, seconds)
            print(_format_row(row), flush=True)
            rows.append(row)
    return rows, backend, paired


# -- report ------------------------------------------------------------------------------------


def _format_row(row: Row) -> str:
    return (f"{row.mode:>10} {row.batching:>8} c={row.concurrency:<3} {row.throughput_rps:9.1f} req/s  "
            f"p50 {row.p50_ms:7.2f}  p90 {row.p90_ms:7.2f}  p99 {row.p99_ms:7.2f} ms  errors {row.errors}")


def ratios(rows: Sequence[Row], paired: tuple[Row, Row, Row] | None) -> dict[str, float | None]:
    """gRPC p50 over in-process at concurrency 1 (paired), the overhead in ms and the no-op RPC's p50;
    throughput with batching over without at 16 (unary)."""
    unary = {(r.batching, r.concurrency): r for r in rows if r.mode == "unary"}
    on, off = unary.get(("on", 16)), unary.get(("off", 16))
    return {
        "grpc_p50_over_in_process_c1": round(paired[1].p50_ms / paired[0].p50_ms, 3) if paired else None,
        "grpc_overhead_ms_c1": round(paired[1].p50_ms - paired[0].p50_ms, 3) if paired else None,
        "noop_rpc_p50_ms": paired[2].p50_ms if paired else None,
        "batching_throughput_speedup_c16": round(on.throughput_rps / off.throughput_rps, 3)
        if on and off and off.throughput_rps else None,
    }


def _plot(rows: Sequence[Row], in_process: Row | None, path: Path) -> bool:
    """Latency against throughput per mode and batching setting, the in-process p50 as a line."""
    try:
        import matplotlib  # noqa: PLC0415
        import matplotlib.ticker  # noqa: PLC0415

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # noqa: PLC0415
    except ImportError:
        log.info("matplotlib is not installed: no plot")
        return False
    fig, ax = plt.subplots(figsize=(8, 5))
    series = sorted({(r.mode, r.batching) for r in rows})
    for i, (mode, batching) in enumerate(series):
        pts = sorted((r for r in rows if (r.mode, r.batching) == (mode, batching)), key=lambda r: r.concurrency)
        colour = f"C{i}"
        x = [r.throughput_rps for r in pts]
        ax.plot(x, [r.p50_ms for r in pts], "o-", color=colour, label=f"{mode}, batching {batching}: p50")
        ax.plot(x, [r.p99_ms for r in pts], ":", color=colour, alpha=0.6, label=f"{mode}, batching {batching}: p99")
        for r in pts:
            ax.annotate(str(r.concurrency), (r.throughput_rps, r.p50_ms), fontsize=7, xytext=(3, 3),
                        textcoords="offset points")
    if in_process is not None:
        ax.axhline(in_process.p50_ms, color="k", ls="--", lw=1, label="in-process p50 (batch 1)")
    ax.set_xlabel("throughput (requests/s)")
    ax.set_ylabel("latency (ms)")
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.set_title("Vantage server: latency against throughput (labels: concurrency)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def write_report(out: Path, report: dict[str, Any], rows: Sequence[Row], paired: tuple[Row, Row, Row] | None) -> list[Path]:
    """bench.json, bench.csv and (with matplotlib) bench.png in `out`; returns the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "bench.json", out / "bench.csv"]
    paths[0].write_text(json.dumps(report, indent=2) + "\n")
    with open(paths[1], "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=[f.name for f in fields(Row)])
        writer.writeheader()
        writer.writerows(asdict(r) for r in [*rows, *(paired or ())])
    if _plot(rows, paired[0] if paired else None, out / "bench.png"):
        paths.append(out / "bench.png")
    return paths


def run_bench(settings: BenchSettings) -> dict[str, Any]:
    """Measure as `settings` say, write the report files, print the table and ratios; returns the report."""
    from vantage.serve.bench_images import bench_inputs  # noqa: PLC0415

    if not settings.model and not settings.server:
        raise ValueError("give --model BUNDLE (servers started here) and/or --server HOST:PORT")
    unknown = set(settings.modes) - set(MODES)
    if unknown:
        raise ValueError(f"unknown modes {sorted(unknown)}; expected {', '.join(MODES)}")
    out = Path(settings.out)
    out.mkdir(parents=True, exist_ok=True)
    inputs, source = bench_inputs(settings.images or None, settings.count)
    print(f"{len(inputs)} {source} inputs; concurrency {list(settings.concurrency)}, {settings.seconds:g} s per level",
          flush=True)
    rows: list[Row] = []
    backends: dict[str, str] = {}
    paired: tuple[Row, Row, Row] | None = None
    if settings.server:
        rows, backends["server"], paired = _measure_server(
            settings.server, _client_options(settings), settings, inputs, "server"
        )
    else:
        common = ["--backend", settings.backend, "--intra-op-threads", str(settings.intra_op_threads),
                  "--batch-delay-ms", str(settings.batch_delay_ms)]
        for batching, size in (("on", settings.max_batch_size), ("off", 1)):
            flags = [*common, "--max-batch-size", str(size)]
            server = ServerProcess(settings.model, flags, out / f"server-batching-{batching}.log")
            try:
                measured, backends[batching], pair = _measure_server(server.target, {}, settings, inputs, batching)
            finally:
                server.stop()
            rows += measured
            paired = paired or pair
    report = {
        "settings": asdict(settings),
        "inputs": {"source": source, "count": len(inputs)},
        "backends": backends,
        "cpu_count": os.cpu_count(),
        "rows": [asdict(r) for r in rows],
        "paired_c1": [asdict(r) for r in paired] if paired else None,
        "ratios": ratios(rows, paired),
    }
    paths = write_report(out, report, rows, paired)
    r = report["ratios"]
    for name, value, target, better in (
        ("gRPC p50 / in-process p50 at concurrency 1", r["grpc_p50_over_in_process_c1"], TARGET_OVERHEAD, "≤"),
        ("throughput batching on / off at concurrency 16", r["batching_throughput_speedup_c16"], TARGET_BATCHING_SPEEDUP, "≥"),
    ):
        print(f"{name}: {'n/a' if value is None else f'{value:.2f}x'} (target {better} {target}x)")
    if paired:
        print(f"gRPC overhead at concurrency 1: {r['grpc_overhead_ms_c1']:.2f} ms per call; "
              f"a no-op RPC (health Check) takes {r['noop_rpc_p50_ms']:.2f} ms here")
    print("wrote " + ", ".join(str(p) for p in paths))
    return report


# -- command line ------------------------------------------------------------------------------


def add_bench_arguments(parser: argparse.ArgumentParser) -> None:
    """`vantage bench` flags: the BenchSettings fields, plus --quick."""
    d = BenchSettings()
    add = parser.add_argument
    add("--model", help="bundle folder: the bench starts servers of it (batching on, then off) and runs it in-process")
    add("--server", help="HOST:PORT of a running server to measure instead")
    add("--images", help="folder of JPEG/PNG inputs (default: renders of the built-in shapes, else synthetic)")
    add("--count", type=int, help=f"number of inputs (default {d.count})")
    add("--concurrency", type=int, nargs="+", help=f"client counts (default {' '.join(map(str, d.concurrency))})")
    add("--seconds", type=float, help=f"measurement window per level (default {d.seconds})")
    add("--modes", nargs="+", choices=MODES, help="unary and/or stream (default both)")
    add("--backend", help=f"backend of started servers and the in-process run (default {d.backend})")
    add("--intra-op-threads", type=int, help="ONNX Runtime threads (default 0 = one per core)")
    add("--max-batch-size", type=int, help=f"batch size with batching on (default {d.max_batch_size})")
    add("--batch-delay-ms", type=float, help=f"batching delay (default {d.batch_delay_ms})")
    add_client_arguments(parser)  # --token-file, --tls-ca, --tls-cert, --tls-key: a running server's
    add("--out", help=f"output folder (default {d.out})")
    add("--quick", action="store_true", help="concurrency 1 4 16, 0.5 s each, 8 inputs (CI)")


def settings_from_args(args: argparse.Namespace) -> BenchSettings:
    """Defaults, then --quick's, then the flags given."""
    values: dict[str, Any] = dict(QUICK) if args.quick else {}
    for f in fields(BenchSettings):
        value = getattr(args, f.name)
        if value is not None:
            values[f.name] = tuple(value) if isinstance(value, list) else value
    return BenchSettings(**values)


def bench_from_args(args: argparse.Namespace) -> int:
    try:
        run_bench(settings_from_args(args))
    except ValueError as exc:
        print(f"vantage bench: {exc}", file=sys.stderr)
        return 2
    return 0
