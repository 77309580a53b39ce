"""EstimateStream for cameras: answer every frame in order, but only process the newest.

A reader thread takes frames off the stream as fast as the client sends them into a
`FrameMailbox`; the handler thread answers them in order. When a frame arrives,
every earlier frame still waiting (unless its `keep_frame` is set) is replaced by a
tombstone, so it is answered `dropped` without being decoded, and its image bytes are
freed at once. At most `max_pending` entries wait: beyond that the reader stops
reading and HTTP/2 flow control slows the client down.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from typing import Callable, Iterable, Iterator

import grpc

from vantage.serve.metrics import ServerMetrics
from vantage.v1 import vantage_pb2

log = logging.getLogger(__name__)

DEFAULT_MAX_PENDING = 64

Frame = vantage_pb2.EstimateRequest
Answer = vantage_pb2.EstimateResponse


class FrameMailbox:
    """Frames (or tombstones of dropped frames) between the reader and the answering thread."""

    def __init__(self, max_pending: int = DEFAULT_MAX_PENDING) -> None:
        self._pending: deque[Frame | Answer] = deque()
        self._max_pending = max_pending
        self._input_done = False
        self._cancelled = False
        self._cond = threading.Condition()

    def put(self, frame: Frame) -> bool:
        """Queue a frame, dropping the waiting ones it makes stale; False once cancelled."""
        with self._cond:
            while len(self._pending) >= self._max_pending and not self._cancelled:
                self._cond.wait()
            if self._cancelled:
                return False
            for i, waiting in enumerate(self._pending):
                if isinstance(waiting, Frame) and not waiting.keep_frame:
                    self._pending[i] = Answer(request_id=waiting.request_id, frame_id=waiting.frame_id, dropped=True)
            self._pending.append(frame)
            self._cond.notify_all()
            return True

    def end_input(self) -> None:
        """The client sent its last frame (or the stream broke)."""
        with self._cond:
            self._input_done = True
            self._cond.notify_all()

    def cancel(self) -> None:
        """The call is over: wake and stop both sides."""
        with self._cond:
            self._cancelled = True
            self._pending.clear()
            self._cond.notify_all()

    def take(self) -> list[Frame | Answer]:
        """Everything waiting, in order (blocks); [] when the input has ended and all was taken, or on cancel."""
        with self._cond:
            while not self._pending and not self._input_done and not self._cancelled:
                self._cond.wait()
            taken = list(self._pending)
            self._pending.clear()
            self._cond.notify_all()
            return taken


def _read(frames: Iterable[Frame], mailbox: FrameMailbox) -> None:
    try:
        for frame in frames:
            if not mailbox.put(frame):
                return
    except Exception as exc:  # noqa: BLE001 - the stream broke (cancelled, deadline, transport)
        log.debug("stream input ended: %s", exc)
    finally:
        mailbox.end_input()


def answer_stream(
    frames: Iterable[Frame],
    context: grpc.ServicerContext,
    answer: Callable[[Frame], Answer],
    metrics: ServerMetrics | None = None,
    max_pending: int = DEFAULT_MAX_PENDING,
) -> Iterator[Answer]:
    """Responses of a stream, one per frame in order; `answer` processes a frame (never raises)."""
    mailbox = FrameMailbox(max_pending)
    context.add_callback(mailbox.cancel)
    reader = threading.Thread(target=_read, args=(frames, mailbox), name="vantage-stream-reader", daemon=True)
    reader.start()
    dropped = 0
    try:
        while entries := mailbox.take():
            for entry in entries:
                if isinstance(entry, Answer):
                    dropped += 1
                    if metrics is not None:
                        metrics.frames_dropped.inc()
                    yield entry
                    continue
                response = answer(entry)
                response.frames_dropped_before = dropped
                dropped = 0
                yield response
    finally:
        mailbox.cancel()
