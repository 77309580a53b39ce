"""Dynamic batching and stale-frame dropping, with stand-in runners (no model, fast)."""

from __future__ import annotations

import threading
import time
from concurrent.futures import CancelledError
from types import SimpleNamespace

import pytest

from vantage.serve.batching import DeadlineExceededError, DynamicBatcher, QueueFullError, ShuttingDownError
from vantage.serve.metrics import ServerMetrics
from vantage.serve.streaming import FrameMailbox
from vantage.v1 import vantage_pb2


class Recorder:
    """Runs batches by echoing their items; records batch contents and threads; can be held back."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.batches: list[list] = []
        self.threads: list[str] = []
        self.delay_s = delay_s
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()

    def run(self, prepared):
        self.entered.set()
        self.gate.wait(10)
        time.sleep(self.delay_s)
        self.batches.append(list(prepared))
        self.threads.append(threading.current_thread().name)
        return [SimpleNamespace(value=p, timings={}) for p in prepared]


def submit_now(batcher: DynamicBatcher, runner, item, deadline=None):
    with batcher.announce() as submit:
        return submit(runner, item, deadline)


def hold(batcher: DynamicBatcher, runner: Recorder, item="blocker"):
    """Occupy the batcher's only inference slot with `item` until `runner.gate` is set; its future."""
    runner.gate.clear()
    done: list = []
    thread = threading.Thread(target=lambda: done.append(submit_now(batcher, runner, item)), daemon=True)
    thread.start()
    assert runner.entered.wait(5)
    return done, thread


@pytest.fixture
def batcher():
    made = []

    def make(**kwargs) -> DynamicBatcher:
        made.append(DynamicBatcher(**kwargs))
        return made[-1]

    yield make
    for b in made:
        b.close(timeout=5)


def test_a_lone_request_runs_at_once_on_its_own_thread(batcher) -> None:
    b, runner = batcher(max_batch_size=8, max_delay_s=5.0, metrics=ServerMetrics()), Recorder()
    t0 = time.perf_counter()
    result = submit_now(b, runner, "a").result(timeout=5)
    assert time.perf_counter() - t0 < 1.0
    assert result.value == "a" and result.timings["queue_ms"] >= 0 and runner.batches == [["a"]]
    assert runner.threads == [threading.current_thread().name]


def test_concurrent_requests_share_batches_up_to_the_maximum(batcher) -> None:
    metrics = ServerMetrics()
    b, runner = batcher(max_batch_size=4, max_delay_s=0.05, metrics=metrics), Recorder()
    _, holder = hold(b, runner)  # the only slot is busy: the others queue up
    futures = [submit_now(b, runner, i) for i in range(10)]
    runner.gate.set()
    holder.join(5)
    assert [f.result(timeout=5).value for f in futures] == list(range(10))
    sizes = [len(batch) for batch in runner.batches[1:]]
    assert sum(sizes) == 10 and max(sizes) == 4 and len(sizes) <= 4
    assert [x for batch in runner.batches[1:] for x in batch] == list(range(10))  # first come, first served
    assert metrics.batch_size._sum.get() == 11 and set(runner.threads[1:]) == {"vantage-batch-0"}


def test_a_batch_waits_for_announced_requests(batcher) -> None:
    b, runner = batcher(max_batch_size=8, max_delay_s=2.0), Recorder()
    with b.announce() as late:  # a request being decoded elsewhere
        first = submit_now(b, runner, "first")
        time.sleep(0.1)
        assert not first.done(), "the batch did not wait for the announced request"
        second = late(runner, "second")
    assert first.result(timeout=5) and second.result(timeout=5)
    assert runner.batches == [["first", "second"]]


def test_full_queue_is_refused(batcher) -> None:
    b, runner = batcher(max_batch_size=1, queue_size=2), Recorder()
    running, holder = hold(b, runner, 0)
    queued = [submit_now(b, runner, i) for i in (1, 2)]
    with pytest.raises(QueueFullError, match="2 requests waiting"):
        submit_now(b, runner, 3)
    runner.gate.set()
    holder.join(5)
    assert [f.result(timeout=5).value for f in [*running, *queued]] == [0, 1, 2]


def test_expired_and_cancelled_requests_are_not_run(batcher) -> None:
    b, runner = batcher(max_batch_size=1), Recorder()
    blocker, holder = hold(b, runner)
    expired = submit_now(b, runner, "expired", deadline=time.monotonic() + 0.05)
    cancelled = submit_now(b, runner, "cancelled")
    assert cancelled.cancel()
    time.sleep(0.1)
    runner.gate.set()
    holder.join(5)
    assert blocker[0].result(timeout=5).value == "blocker"
    with pytest.raises(DeadlineExceededError):
        expired.result(timeout=5)
    with pytest.raises(CancelledError):
        cancelled.result(timeout=5)
    assert runner.batches == [["blocker"]]


def test_batches_never_mix_runners_and_failures_reach_every_caller(batcher) -> None:
    b = batcher(max_batch_size=8, max_delay_s=0.05)
    old, new = Recorder(), Recorder()
    first, holder = hold(b, old, "warm")
    futures = [submit_now(b, runner, i) for i, runner in enumerate([old, new, old, new])]
    old.gate.set()
    holder.join(5)
    assert [f.result(timeout=5).value for f in [*first, *futures]] == ["warm", 0, 1, 2, 3]
    assert all(set(batch) <= {"warm", 0, 2} for batch in old.batches)
    assert all(set(batch) <= {1, 3} for batch in new.batches)

    class Broken:
        def run(self, prepared):
            raise RuntimeError("boom")

    failing = [submit_now(b, Broken(), i) for i in range(3)]  # inline: the failure is in the future too
    for f in failing:
        with pytest.raises(RuntimeError, match="boom"):
            f.result(timeout=5)


def test_close_runs_what_was_queued_and_refuses_more(batcher) -> None:
    b, runner = batcher(max_batch_size=2), Recorder(delay_s=0.02)
    first, holder = hold(b, runner, 0)
    futures = [submit_now(b, runner, i) for i in range(1, 5)]
    runner.gate.set()
    b.close(timeout=5)
    holder.join(5)
    futures = [*first, *futures]
    assert [f.result(timeout=0).value for f in futures] == list(range(5))
    with pytest.raises(ShuttingDownError):
        submit_now(b, runner, 9)


def frame(i: int, keep: bool = False) -> vantage_pb2.EstimateRequest:
    return vantage_pb2.EstimateRequest(image=b"x", frame_id=i, request_id=f"r{i}", keep_frame=keep)


def test_mailbox_drops_stale_frames_but_keeps_order_and_kept_frames() -> None:
    box = FrameMailbox()
    for i, keep in enumerate([False, True, False, False]):
        assert box.put(frame(i, keep))
    taken = box.take()
    assert [e.frame_id for e in taken] == [0, 1, 2, 3]
    kinds = [type(e).__name__ for e in taken]
    assert kinds == ["EstimateResponse", "EstimateRequest", "EstimateResponse", "EstimateRequest"]
    assert taken[0].dropped and taken[0].request_id == "r0" and taken[2].dropped
    box.end_input()
    assert box.take() == []


def test_mailbox_bounds_what_waits_and_cancel_wakes_both_sides() -> None:
    box = FrameMailbox(max_pending=2)
    assert box.put(frame(0, True)) and box.put(frame(1, True))
    blocked = threading.Thread(target=lambda: box.put(frame(2)), daemon=True)
    blocked.start()
    time.sleep(0.05)
    assert blocked.is_alive(), "a full mailbox must stop the reader"
    assert [e.frame_id for e in box.take()] == [0, 1]
    blocked.join(5)
    assert [e.frame_id for e in box.take()] == [2]
    box.cancel()
    assert box.take() == [] and box.put(frame(3)) is False
