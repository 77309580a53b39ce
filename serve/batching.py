"""Dynamic batching: requests that arrive close together run as one inference call.

    with batcher.announce() as submit:          # "a request is on its way" (being decoded)
        prepared = predictor.prepare_bytes(...)
        future = submit(predictor, prepared, deadline)
    result = future.result()

A batch starts with the oldest queued request and takes every queued request up to
`max_batch_size`; it waits for more (at most `max_delay_s`) only while other requests
are announced, i.e. being decoded by other handler threads. So a lone request never
waits, and under load batches fill up. A request that finds nothing queued, nothing
announced and an inference slot free runs at once on the submitting thread: at low
load that saves two thread hand-offs per request. Requests are grouped by the runner (the
predictor of the model version they were prepared for), so a hot reload never mixes
two models in one call.

The queue is bounded: `submit` raises QueueFullError when `queue_size` requests are
waiting (the server answers RESOURCE_EXHAUSTED). A request whose deadline has passed
when its batch starts is not run (DeadlineExceededError); a cancelled future is skipped.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Protocol, Sequence

from vantage.serve.metrics import ServerMetrics


class QueueFullError(RuntimeError):
    """The inference queue is full; retry later."""


class DeadlineExceededError(RuntimeError):
    """The request's deadline passed before its batch started; it was not run."""


class ShuttingDownError(RuntimeError):
    """The batcher is closed and takes no more requests."""


class Runner(Protocol):
    """What runs a batch: `Predictor.run` (results carry a `timings` dict)."""

    def run(self, prepared: Sequence[Any]) -> list[Any]: ...


@dataclass
class _Item:
    runner: Runner
    prepared: Any
    deadline: float | None  # time.monotonic() seconds
    enqueued: float = field(default_factory=time.monotonic)
    future: Future = field(default_factory=Future)


Submit = Callable[[Runner, Any, "float | None"], Future]


class DynamicBatcher:
    """A bounded queue and `workers` threads that run batches from it."""

    def __init__(
        self,
        max_batch_size: int = 8,
        max_delay_s: float = 0.002,
        queue_size: int = 64,
        workers: int = 1,
        metrics: ServerMetrics | None = None,
    ) -> None:
        self.max_batch_size = max_batch_size
        self.max_delay_s = max_delay_s
        self.queue_size = queue_size
        self.metrics = metrics
        self._items: deque[_Item] = deque()
        self._preparing = 0  # announced requests not yet queued
        self._forming = 0  # batches being collected (which a new request should join)
        self._closed = False
        self._cond = threading.Condition()
        self._slots = threading.Semaphore(workers)  # batches running at once, inline ones included
        self._threads = [
            threading.Thread(target=self._work, name=f"vantage-batch-{i}", daemon=True) for i in range(workers)
        ]
        for thread in self._threads:
            thread.start()

    @contextlib.contextmanager
    def announce(self) -> Iterator[Submit]:
        """Mark a request as on its way while it is prepared; yields `submit(runner, prepared, deadline)`."""
        with self._cond:
            self._preparing += 1
        submitted = False

        def submit(runner: Runner, prepared: Any, deadline: float | None = None) -> Future:
            nonlocal submitted
            submitted = True
            return self._enqueue(_Item(runner, prepared, deadline))

        try:
            yield submit
        finally:
            if not submitted:
                with self._cond:
                    self._preparing -= 1
                    self._cond.notify_all()

    def _enqueue(self, item: _Item) -> Future:
        with self._cond:
            self._preparing -= 1
            self._cond.notify_all()
            if self._closed:
                raise ShuttingDownError("the server is shutting down")
            idle = not self._items and self._preparing == 0 and self._forming == 0
            alone = idle and self._slots.acquire(blocking=False)
            if not alone:
                if len(self._items) >= self.queue_size:
                    raise QueueFullError(f"the inference queue is full ({self.queue_size} requests waiting)")
                self._items.append(item)
        if alone:
            try:
                self._process([item])
            finally:
                self._slots.release()
        return item.future

    def close(self, timeout: float | None = None) -> None:
        """Take no more requests, run those queued, stop the threads (waiting up to `timeout` s each)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        for thread in self._threads:
            thread.join(timeout)

    # -- worker side ------------------------------------------------------------------

    def _next_batch(self) -> list[_Item] | None:
        """The next batch, or None once closed and drained."""
        with self._cond:
            while not self._items and not self._closed:
                self._cond.wait()
            if not self._items:
                return None
            batch = [self._items.popleft()]
            end = time.monotonic() + self.max_delay_s
            self._forming += 1
            while len(batch) < self.max_batch_size:
                if self._items:
                    batch.append(self._items.popleft())
                    continue
                remaining = end - time.monotonic()
                if self._preparing == 0 or remaining <= 0 or self._closed:
                    break
                self._cond.wait(remaining)
            self._forming -= 1
            return batch

    def _work(self) -> None:
        while (batch := self._next_batch()) is not None:
            with self._slots:
                self._process(batch)

    def _process(self, batch: list[_Item]) -> None:
        """Run a batch's live requests, grouped by runner."""
        started = time.monotonic()
        live = []
        for item in batch:
            if not item.future.set_running_or_notify_cancel():
                continue  # the caller gave up (client cancelled)
            if item.deadline is not None and started > item.deadline:
                item.future.set_exception(DeadlineExceededError("the deadline passed while the request was queued"))
                continue
            live.append(item)
        groups: dict[int, list[_Item]] = {}
        for item in live:
            groups.setdefault(id(item.runner), []).append(item)
        for group in groups.values():
            self._run(group, started)

    def _run(self, group: list[_Item], started: float) -> None:
        t0 = time.perf_counter()
        try:
            results = group[0].runner.run([item.prepared for item in group])
        except Exception as exc:  # noqa: BLE001 - every caller gets the failure
            for item in group:
                item.future.set_exception(exc)
            return
        if self.metrics is not None:
            self.metrics.batch_size.observe(len(group))
            self.metrics.inference_seconds.observe(time.perf_counter() - t0)
        for item, result in zip(group, results):
            wait = started - item.enqueued
            if self.metrics is not None:
                self.metrics.queue_seconds.observe(wait)
            result.timings["queue_ms"] = wait * 1e3
            item.future.set_result(result)
