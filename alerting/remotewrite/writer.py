"""Sending samples to remote_write targets: one bounded queue and one sender thread per target.

Delivery is at least once: a batch is sent again after a connection error, a timeout, a 5xx or a
429 (after ``Retry-After`` when the target gives one, else after an exponential backoff between
``min_backoff`` and ``max_backoff``), so a sample may arrive twice; a retried sample keeps its
timestamp and value, which a Prometheus-style receiver stores once. Any other 4xx is the target's
final word on that batch (Prometheus answers 400 for out-of-order samples): it is dropped, counted
and logged, and later batches go on. One sender per target keeps each series' samples in order
within a process; across a worker's processes it does not (see "Remote write" in the README).
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

from alerting import __version__
from alerting.ops import metrics
from alerting.ops.logs import get_logger
from alerting.remotewrite.config import RemoteWriteTarget
from alerting.remotewrite.relabel import relabel
from alerting.remotewrite.series import Labels, Series
from alerting.remotewrite.wire import HEADERS, encode
from alerting.transport import TLSFilesError, new_client, retry_after

__all__ = ["RemoteWriter"]

log = get_logger(__name__)

# Label sets relabeled per target, remembered so a series written every tick is relabeled once.
_RELABEL_CACHE_SIZE = 10_000
# How much of a target's refusal is logged.
_ANSWER_CHARS = 512
_JOIN_TIMEOUT = 5.0


class _Ticket:
    """The samples of one waiting ``write``: settled one by one as targets accept or drop them."""

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


class _Sender:
    """One target's queue and the thread that empties it."""

    def __init__(self, target: RemoteWriteTarget) -> None:
        self.target = target
        self.remote = target.remote
        self._relabeled: dict[Labels, Labels | None] = {}
        self._reset()
        _live_senders.add(self)

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
        self._client: httpx.Client | None = None

    # -- the writer's side ------------------------------------------------------------------------

    def labels_for(self, labels: Labels) -> Labels | None:
        """``labels`` after the target's write_relabel_configs (None: not sent there)."""
        configs = self.target.write_relabel_configs
        if not configs:
            return labels
        try:
            return self._relabeled[labels]
        except KeyError:  # not seen yet (or the cache was just cleared by another thread)
            pass
        out = relabel(dict(labels), configs)
        result = tuple(sorted(out.items())) if out else None
        if len(self._relabeled) >= _RELABEL_CACHE_SIZE:
            self._relabeled.clear()
        self._relabeled[labels] = result
        return result

    def put(self, entries: list[_Entry]) -> int:
        """Queue what fits within ``capacity``; the rest is dropped. Returns how many were queued."""
        if not entries:
            return 0
        self._start()
        with self._cond:
            closed = self._closed
            room = 0 if closed else self.target.queue.capacity - len(self._queue) - self._in_flight
            accepted, dropped = entries[: max(0, room)], entries[max(0, room) :]
            self._queue.extend(accepted)
            self._urgent += sum(1 for e in accepted if e.ticket is not None)
            pending = len(self._queue) + self._in_flight
            self._cond.notify_all()
        metrics.observe_remote_write_pending(self.remote, pending)
        if dropped and closed:
            _settle(dropped, False)
            metrics.observe_remote_write_dropped(self.remote, "closed", len(dropped))
        elif dropped:
            _settle(dropped, False)
            metrics.observe_remote_write_dropped(self.remote, "queue_full", len(dropped))
            log.warning(
                "remote_write.queue_full",
                msg=f"remote_write {self.remote}: queue full ({self.target.queue.capacity} samples),"
                f" {len(dropped)} new samples dropped",
                remote=self.remote,
                dropped=len(dropped),
            )
        return len(accepted)

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
        try:
            self._client = new_client(
                self.target.http,
                httpx.Timeout(self.target.remote_timeout),
                headers={**dict(self.target.headers), **HEADERS, "User-Agent": f"alerting/{__version__}"},
            )
        except (TLSFilesError, httpx.HTTPError) as exc:
            log.error(
                "remote_write.setup_failed",
                msg=f"remote_write {self.remote}: cannot build its HTTP client: {exc}",
                remote=self.remote,
            )
            self.close()
            return
        try:
            while True:
                batch = self._next_batch()
                if batch is None:
                    return
                try:
                    self._deliver(batch)
                finally:
                    with self._cond:
                        self._in_flight = 0
                        pending = len(self._queue)
                        self._cond.notify_all()
                    metrics.observe_remote_write_pending(self.remote, pending)
        finally:
            self._client.close()

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

    def _too_old(self, batch: list[_Entry]) -> list[_Entry]:
        """``batch`` without samples past ``sample_age_limit`` (those are counted and settled)."""
        limit = self.target.queue.sample_age_limit
        if not limit:
            return batch
        oldest_ms = time.time() * 1000 - limit * 1000
        fresh = [e for e in batch if e.timestamp_ms >= oldest_ms]
        if len(fresh) < len(batch):
            old = [e for e in batch if e.timestamp_ms < oldest_ms]
            _settle(old, False)
            metrics.observe_remote_write_dropped(self.remote, "too_old", len(old))
        return fresh

    def _deliver(self, batch: list[_Entry]) -> None:
        assert self._client is not None
        q = self.target.queue
        backoff = q.min_backoff
        while True:
            batch = self._too_old(batch)
            if not batch:
                return
            body = encode(Series(e.labels, e.value, e.timestamp_ms) for e in batch)
            pause: float | None = None
            try:
                response = self._client.post(self.target.url, content=body)
            except httpx.HTTPError as exc:
                problem = f"{type(exc).__name__}: {exc}"
            else:
                if response.is_success:
                    _settle(batch, True)
                    metrics.observe_remote_write_sent(self.remote, len(batch))
                    return
                status = response.status_code
                problem = f"HTTP {status}: {response.text[:_ANSWER_CHARS]}"
                if status < 500 and not (status == 429 and q.retry_on_http_429):
                    _settle(batch, False)
                    metrics.observe_remote_write_dropped(self.remote, "rejected", len(batch))
                    log.warning(
                        "remote_write.rejected",
                        msg=f"remote_write {self.remote} ({self.target.shown_url}) refused"
                        f" {len(batch)} samples, which are dropped: {problem}",
                        remote=self.remote,
                        status=status,
                        samples=len(batch),
                    )
                    return
                pause = retry_after(response.headers)
            if pause is None:
                pause = backoff
                backoff = min(max(backoff * 2, q.min_backoff), q.max_backoff)
            log.info(
                "remote_write.retry",
                msg=f"remote_write {self.remote} ({self.target.shown_url}): {problem};"
                f" sending {len(batch)} samples again in {pause:.3g}s",
                remote=self.remote,
                samples=len(batch),
            )
            metrics.observe_remote_write_retry(self.remote)
            if self._stop.wait(pause):
                _settle(batch, False)
                metrics.observe_remote_write_dropped(self.remote, "closed", len(batch))
                return


_live_senders: weakref.WeakSet[_Sender] = weakref.WeakSet()


def _reset_in_child() -> None:
    # A lock held by one of the parent's threads at the fork would stay held in the child forever.
    for sender in list(_live_senders):
        sender._reset()


os.register_at_fork(after_in_child=_reset_in_child)


class RemoteWriter:
    """Writes samples to every configured target (none: every write is accepted and goes nowhere).

    Built once and shared; threads start on the first write in each process, so a writer built
    before Celery's prefork pool forks works in every child.
    """

    def __init__(self, targets: Sequence[RemoteWriteTarget]) -> None:
        self.targets: tuple[RemoteWriteTarget, ...] = tuple(targets)
        self._senders = tuple(_Sender(t) for t in self.targets)

    def write(self, series: Sequence[Series], *, wait: float | None = None) -> bool:
        """Queue ``series`` for every target.

        With ``wait`` None, returns at once: False if a target's full queue dropped some of them.
        With ``wait`` seconds, the queued samples are sent without waiting for a full batch and
        this blocks until every target accepted them (True), or one dropped some, or time ran out
        (False).
        """
        if not self._senders or not series:
            return True
        ticket = _Ticket() if wait is not None else None
        now = time.monotonic()
        complete = True
        for sender in self._senders:
            entries = []
            for one in series:
                labels = sender.labels_for(one.labels)
                if labels is not None:
                    entries.append(_Entry(labels, one.value, one.timestamp_ms, now, ticket))
            if ticket is not None:
                ticket.add(len(entries))
            if sender.put(entries) < len(entries):
                complete = False
        if ticket is None:
            return complete
        return ticket.settled.wait(max(0.0, wait or 0.0)) and ticket.ok and complete

    def flush(self, timeout: float) -> bool:
        """Deliver what is queued (at shutdown): True if every target settled it within ``timeout``."""
        deadline = time.monotonic() + timeout
        return all([sender.flush(deadline) for sender in self._senders])

    def close(self) -> None:
        """Stop every sender thread; samples still queued are dropped (counted as ``closed``)."""
        for sender in self._senders:
            sender.close()

    def __enter__(self) -> RemoteWriter:
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()
