"""Sending samples to remote_write targets: a queue and one sender thread per target.

With a Redis client the queue of each target is one list in Redis shared by every process and
worker using that Redis (:mod:`alerting.remotewrite.shared`): one process at a time sends it, in the
order it was written, and it outlives the process that wrote it. Without one (tests, ``alerting
eval``, the benchmark) each process keeps a bounded queue in memory, in order within the process.

Delivery is at least once: a batch is sent again after a connection error, a timeout, a 5xx or a
429 (after ``Retry-After`` when the target gives one, else after an exponential backoff between
``min_backoff`` and ``max_backoff``), so a sample may arrive twice; a retried sample keeps its
timestamp and value, which a Prometheus-style receiver stores once. Any other 4xx is the target's
final word on that batch (Prometheus answers 400 for out-of-order samples): it is dropped, counted
and logged, and later batches go on (:mod:`alerting.remotewrite.sending`).
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import redis

from alerting.ops import metrics
from alerting.ops.logs import get_logger
from alerting.remotewrite.config import RemoteWriteTarget
from alerting.remotewrite.sending import Queued, Target, accepted
from alerting.remotewrite.series import Labels, Series
from alerting.remotewrite.shared import SharedQueue

__all__ = ["RemoteWriter"]

log = get_logger(__name__)

_JOIN_TIMEOUT = 5.0


class _Ticket:
    """The samples of one waiting ``write`` to one target: settled one by one as it accepts or
    drops them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending = 0
        self.ok = True
        self.settled = threading.Event()
        self.settled.set()

    def add(self, count: int) -> None:
        with self._lock:
            self._pending += count
            if self._pending:
                self.settled.clear()

    def settle(self, count: int, ok: bool) -> None:
        with self._lock:
            self._pending -= count
            self.ok = self.ok and ok
            if self._pending <= 0:
                self.settled.set()

    def wait(self, deadline: float) -> bool:
        return self.settled.wait(max(0.0, deadline - time.monotonic())) and self.ok


@dataclass(slots=True)
class _Entry:
    labels: Labels
    value: float
    timestamp_ms: int
    queued_at: float  # monotonic
    ticket: _Ticket | None


def _settle(entries: Sequence[_Entry], ok: bool) -> None:
    counts: dict[_Ticket, int] = {}
    for entry in entries:
        if entry.ticket is not None:
            counts[entry.ticket] = counts.get(entry.ticket, 0) + 1
    for ticket, count in counts.items():
        ticket.settle(count, ok)


class _MemoryQueue:
    """One target's queue in this process's memory and the thread that empties it."""

    def __init__(self, target: Target) -> None:
        self.sending = target
        self.target = target.target
        self.remote = target.remote
        self._reset()
        _live_queues.add(self)

    def _reset(self) -> None:
        """A fresh state: at construction, and in a forked child, where the parent's thread, lock
        holder and queued samples are not this process's (the parent sends those)."""
        self._cond = threading.Condition(threading.Lock())
        self._queue: deque[_Entry] = deque()
        self._in_flight = 0
        self._urgent = 0  # queued samples someone waits for: send them without waiting for a batch
        self._flushing = 0
        self._closed = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()

    # -- the writer's side ------------------------------------------------------------------------

    def put(self, series: list[Series], waiting: bool) -> Queued:
        """Queue what fits within ``capacity``; the rest is dropped."""
        if not series:
            return Queued(True, accepted)
        ticket = _Ticket() if waiting else None
        now = time.monotonic()
        entries = [_Entry(s.labels, s.value, s.timestamp_ms, now, ticket) for s in series]
        if ticket is not None:
            ticket.add(len(entries))
        self._start()
        with self._cond:
            closed = self._closed
            room = 0 if closed else self.target.queue.capacity - len(self._queue) - self._in_flight
            kept, dropped = entries[: max(0, room)], entries[max(0, room) :]
            self._queue.extend(kept)
            self._urgent += sum(1 for e in kept if e.ticket is not None)
            pending = len(self._queue) + self._in_flight
            self._cond.notify_all()
        metrics.observe_remote_write_pending(self.remote, pending)
        if dropped:
            _settle(dropped, False)
            self.sending.refused_new("closed" if closed else "queue_full", len(dropped))
        return Queued(not dropped, ticket.wait if ticket is not None else accepted)

    def flush(self, deadline: float) -> bool:
        """Send what is queued now, without waiting for full batches; True once all of it is settled."""
        if self._thread is None or self._pid != os.getpid():
            return True  # nothing was ever queued in this process
        with self._cond:
            self._flushing += 1
            self._cond.notify_all()
            try:
                while self._queue or self._in_flight:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0 or not self._thread.is_alive():
                        return False
                    self._cond.wait(remaining)
                return True
            finally:
                self._flushing -= 1

    def close(self) -> None:
        """Stop the thread: a request under way is abandoned after its current attempt; what is
        still queued is dropped (flush first to deliver it)."""
        if self._pid != os.getpid():
            return
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(_JOIN_TIMEOUT)
        with self._cond:
            left = list(self._queue)
            self._queue.clear()
            self._urgent = 0
        if left:
            _settle(left, False)
            metrics.observe_remote_write_dropped(self.remote, "closed", len(left))
        metrics.observe_remote_write_pending(self.remote, 0)

    def _start(self) -> None:
        if self._pid != os.getpid():
            self._reset()
        if self._thread is not None:
            return
        with self._cond:
            if self._thread is None and not self._closed:
                self._thread = threading.Thread(
                    target=self._run, name=f"remote-write-{self.remote}", daemon=True
                )
                self._thread.start()

    # -- the sender thread ------------------------------------------------------------------------

    def _run(self) -> None:
        client = self.sending.client()
        if client is None:
            self.close()
            return
        try:
            while True:
                batch = self._next_batch()
                if batch is None:
                    return
                try:
                    self._deliver(client, batch)
                finally:
                    with self._cond:
                        self._in_flight = 0
                        pending = len(self._queue)
                        self._cond.notify_all()
                    metrics.observe_remote_write_pending(self.remote, pending)
        finally:
            client.close()

    def _next_batch(self) -> list[_Entry] | None:
        q = self.target.queue
        with self._cond:
            while not self._queue and not self._closed:
                self._cond.wait()
            if self._closed:
                return None
            due = self._queue[0].queued_at + q.batch_send_deadline
            while (
                len(self._queue) < q.max_samples_per_send
                and not (self._urgent or self._flushing or self._closed)
                and time.monotonic() < due
            ):
                self._cond.wait(due - time.monotonic())
            if self._closed:
                return None
            batch = [self._queue.popleft() for _ in range(min(q.max_samples_per_send, len(self._queue)))]
            self._urgent -= sum(1 for e in batch if e.ticket is not None)
            self._in_flight = len(batch)
            return batch

    def _deliver(self, client: httpx.Client, batch: list[_Entry]) -> None:
        done = self.sending.deliver(client, batch, pause=lambda seconds: not self._stop.wait(seconds))
        if done is None:  # closed while retrying
            _settle(batch, False)
            metrics.observe_remote_write_dropped(self.remote, "closed", len(batch))
            return
        _settle(done.accepted, True)
        _settle(done.dropped, False)


_live_queues: weakref.WeakSet[_MemoryQueue] = weakref.WeakSet()


def _reset_in_child() -> None:
    # A lock held by one of the parent's threads at the fork would stay held in the child forever.
    for queue in list(_live_queues):
        queue._reset()


os.register_at_fork(after_in_child=_reset_in_child)


class RemoteWriter:
    """Writes samples to every configured target (none: every write is accepted and goes nowhere).

    Built once and shared; threads start on the first write in each process, so a writer built
    before Celery's prefork pool forks works in every child. Given ``redis``, each target's queue is
    the list ``{prefix}:remotewrite:{remote}`` there, shared with every writer over that Redis and
    prefix; without it, each process queues in memory.
    """

    def __init__(
        self,
        targets: Sequence[RemoteWriteTarget],
        *,
        redis: redis.Redis | None = None,
        prefix: str = "alerting",
    ) -> None:
        self.targets: tuple[RemoteWriteTarget, ...] = tuple(targets)
        self._sending = tuple(Target(t) for t in self.targets)
        self._queues: tuple[_MemoryQueue | SharedQueue, ...] = tuple(
            _MemoryQueue(t) if redis is None else SharedQueue(t, redis, prefix) for t in self._sending
        )

    def write(self, series: Sequence[Series], *, wait: float | None = None) -> bool:
        """Queue ``series`` for every target.

        With ``wait`` None, returns at once: False if a target's full queue dropped some of them.
        With ``wait`` seconds, the queued samples are sent without waiting for a full batch and
        this blocks until every target accepted them (True), or one dropped some, or time ran out
        (False).
        """
        if not self._queues or not series:
            return True
        queued = [
            queue.put(sending.relabeled(series), wait is not None)
            for sending, queue in zip(self._sending, self._queues, strict=True)
        ]
        complete = all(q.complete for q in queued)
        if wait is None:
            return complete
        deadline = time.monotonic() + max(0.0, wait)
        return all([q.wait(deadline) for q in queued]) and complete

    def flush(self, timeout: float) -> bool:
        """Deliver what is queued (at shutdown): True if every target settled it within ``timeout``
        (a queue in Redis has nothing to lose here: what it holds waits there for the next sender)."""
        deadline = time.monotonic() + timeout
        return all([queue.flush(deadline) for queue in self._queues])

    def close(self) -> None:
        """Stop every sender thread; samples still queued in memory are dropped (counted as
        ``closed``), those queued in Redis stay there."""
        for queue in self._queues:
            queue.close()

    def __enter__(self) -> RemoteWriter:
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()
