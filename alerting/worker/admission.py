"""How many deliveries a process runs at once: a few while the process is busy, up to many while
its sends are kept waiting by receivers.

A storm to receivers that answer within milliseconds keeps the process's interpreter busy: its
deliveries take turns holding it, and every send beyond a handful that runs at the same time adds
hand-overs between threads, not progress (at 10,000 alerts, 32 at a time cost about a third more
CPU than 8, and 8 more than 4). A receiver that takes a tenth of a second or more to answer (most
on the internet do) needs the opposite: many sends in flight, each of them waiting.

So deliveries start ``steady`` at a time; a thread that finishes one takes the next waiting
delivery itself. While deliveries wait, a watcher looks every ``patience``: if the oldest running
delivery has been under way that long and the process has used less than ``busy`` of a CPU
meanwhile (its sends are waiting on receivers, not on the CPU), twice as many may run, up to
``most``; with the process all but idle (under half of ``busy``), every delivery waiting may start
at once (a storm's groups come due together, and each waits on its receiver alike). The limit stays
there while the deliveries go on, so that those the next flushes make start at once; it goes back
to ``steady`` once the process has run out of deliveries, and when the process is busy, to
``steady`` besides the deliveries held up outside it: those whose thread has been waiting for its
receiver's answer for half their ``patience`` or longer (``held_since`` says since when a thread
waits; the HTTP transport's ``awaiting_since``). Half-way between two looks, the watcher lets one
more delivery start for each one held up since, and changes nothing else: a slow or hung receiver
holds the others up for about half a ``patience``, while the share of CPU is still measured over a
whole one.

Once a look has found a delivery held up, the receivers are slow: from then on (until a look finds
none), a delivery is no longer at work as soon as it has sent its request and waits for the answer,
however short that wait has been so far. The transport says when a thread begins to wait
(``on_awaiting``), and the next delivery waiting starts then, not at a look; a storm to receivers
far away starts as fast as the CPU allows. Before any is held up, a send waiting on its answer
still counts at work: receivers that answer within milliseconds keep the process busy.

The time a send takes, as a whole, is no measure of its own: in a busy process it is mostly the
wait for the interpreter, which more threads would only lengthen.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Generic, TypeVar

from alerting.ops.logs import get_logger

log = get_logger(__name__)

T = TypeVar("T")

BUSY = 0.5  # share of one CPU above which a process counts as busy (the interpreter runs on one)


class Admission(Generic[T]):
    """Runs ``run(item)`` for each submitted item on ``pool`` (which has ``most`` threads), as
    described in the module docstring."""

    def __init__(
        self,
        pool: ThreadPoolExecutor,
        run: Callable[[T], None],
        *,
        steady: int,
        most: int,
        patience: float,
        busy: float = BUSY,
        held_since: Callable[[int], float | None] | None = None,
        on_awaiting: Callable[[Callable[[int], None]], Callable[[], None]] | None = None,
    ) -> None:
        self._pool = pool
        self._run = run
        self.most = max(1, most)
        self.steady = max(1, min(steady, self.most))
        self.patience = patience
        self.busy = busy
        self._held_since = held_since
        self._limit = self.steady  # how many may run now
        lock = threading.Lock()
        self._cond = threading.Condition(lock)  # the watcher's: a delivery waits, or we close
        self._fewer = threading.Condition(lock)  # ``wait_fewer``'s: a waiting delivery started
        self._waiting: deque[T] = deque()
        # One entry per running delivery: its slot -> time.monotonic() when it started. A delivery
        # that starts is added at the end, so the first entry is always the oldest one running.
        self._running: dict[int, float] = {}
        self._threads: dict[int, int] = {}  # slot -> the thread running it (``threading.get_ident()``)
        self._next: dict[int, T] = {}  # thread -> the item it runs next, taken by ``take_next``
        self._slots = itertools.count()
        self._closed = False
        self._watcher: threading.Thread | None = None
        # Set at a look that found a delivery held up outside: the receivers are slow, and a
        # delivery that begins waiting on its answer is no longer counted at work from then on.
        self._slow = False
        self._unlisten = on_awaiting(self._awaits) if on_awaiting is not None else None

    @property
    def running(self) -> int:
        return len(self._running)

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    @property
    def limit(self) -> int:
        """How many may run now."""
        return self._limit

    def submit(self, item: T) -> None:
        """Run ``item`` now if fewer deliveries run than may, else after those ahead of it.
        Raises ``RuntimeError`` once closed."""
        with self._cond:
            if self._closed:
                raise RuntimeError("deliveries are closed")
            if not self._running and not self._waiting:  # an idle process: start over from steady
                self._limit, self._slow = self.steady, False
            self._waiting.append(item)
            if len(self._running) < self._limit:
                self._start_allowed_locked()
            elif len(self._waiting) == 1:  # the watcher sleeps while nothing waits
                self._watch_locked()

    def wait_fewer(self, than: int, timeout: float) -> None:
        """Return once fewer than ``than`` deliveries wait to start (or we are closed), or after
        ``timeout`` seconds: for whoever submits, to hold back more work until this process can
        start it soon."""
        with self._fewer:
            self._fewer.wait_for(lambda: self._closed or len(self._waiting) < than, timeout)

    def take_next(self) -> T | None:
        """For ``run`` while it runs an item: the item its thread runs next, taken now from those
        waiting, as the thread would take it once ``run`` returns (None: it will take none). The
        thread runs it next, even once closed."""
        me = threading.get_ident()
        with self._cond:
            if self._closed or not self._waiting or me in self._next or len(self._running) - 1 >= self._limit:
                return None
            if me not in self._threads.values():  # not one of our deliveries' threads
                return None
            item = self._next[me] = self._waiting.popleft()
            self._fewer.notify_all()
            return item

    def close(self) -> list[T]:
        """Start nothing more; returns what was still waiting (the running deliveries finish)."""
        with self._cond:
            self._closed = True
            if self._unlisten is not None:
                self._unlisten()
            left = list(self._waiting)
            self._waiting.clear()
            self._cond.notify_all()
            self._fewer.notify_all()
        return left

    # -- inside ----------------------------------------------------------------------------------

    def _begin_locked(self) -> int:
        slot = next(self._slots)
        self._running[slot] = time.monotonic()
        return slot

    def _work(self, slot: int, item: T) -> None:
        me = threading.get_ident()
        with self._cond:
            self._threads[slot] = me
        while True:
            try:
                self._run(item)
            except Exception as exc:  # noqa: BLE001 - one delivery's failure must not stop the rest
                log.error("notify.delivery_crashed", msg=f"{type(exc).__name__}: {exc}")
            with self._cond:
                del self._running[slot]
                del self._threads[slot]
                taken = self._next.pop(me, None)
                if taken is not None:
                    item = taken
                elif self._closed or not self._waiting or len(self._running) >= self._limit:
                    return
                else:
                    item = self._waiting.popleft()
                    self._fewer.notify_all()
                slot = self._begin_locked()
                self._threads[slot] = me

    def _watch_locked(self) -> None:
        if self._watcher is not None and self._watcher.is_alive():
            self._cond.notify_all()
            return
        self._watcher = threading.Thread(target=self._watch, name="delivery-admission", daemon=True)
        self._watcher.start()

    def _watch(self) -> None:
        """While deliveries wait, or more than ``steady`` may run: every ``patience``, let more run
        or fewer (see the module docstring), and start as many as may run."""
        with self._cond:
            since, used = time.monotonic(), time.process_time()
            while not self._closed:
                if not self._waiting and self._limit == self.steady:
                    self._cond.wait()  # until a delivery waits again
                    since, used = time.monotonic(), time.process_time()
                    continue
                self._cond.wait(self.patience / 2)
                if time.monotonic() - since < self.patience * 0.9:  # half-way (or woken early)
                    self._admit_held_locked()
                    continue
                now, cpu = time.monotonic(), time.process_time()
                share = (cpu - used) / max(now - since, 1e-3)
                since, used = now, cpu
                oldest = next(iter(self._running.values()), None)
                held, outside = self._outside_locked(now)
                self._slow = held > 0
                away = outside if self._slow else held  # not at work: waiting on receivers
                if not (self._running or self._waiting):
                    self._limit = self.steady  # out of deliveries: the episode is over
                elif share >= self.busy:  # busy: ``steady`` at work, besides those held up outside
                    self._limit = min(self.most, self.steady + away)
                elif self._waiting and (oldest is None or now - oldest >= self.patience):
                    wanted = max(2 * self._limit, self.steady + away)
                    if share < self.busy / 2:  # all but idle: every send is waiting on its receiver
                        wanted = max(wanted, len(self._running) + len(self._waiting))
                    self._limit = min(self.most, wanted)
                self._start_allowed_locked()

    def _admit_held_locked(self) -> None:
        """Between looks: one more delivery may start for each one held up outside the process
        since (once the receivers are slow, for each one waiting on its answer at all). The limit
        only rises here; the next look sets it as a whole."""
        if self._closed or not self._waiting:
            return
        held, outside = self._outside_locked(time.monotonic())
        self._slow = self._slow or held > 0
        wanted = self.steady + (outside if self._slow else held)
        if wanted > self._limit:
            self._limit = min(self.most, wanted)
            self._start_allowed_locked()

    def _awaits(self, thread: int) -> None:
        """``thread`` has sent a request and begins waiting for the answer. While the receivers are
        slow, that delivery is no longer at work: the next one waiting starts now, not at a look."""
        if not self._slow or not self._waiting:
            return
        with self._cond:
            if self._closed or not self._slow or not self._waiting or thread not in self._threads.values():
                return
            self._limit = min(self.most, max(self._limit, len(self._running) + 1))
            self._start_allowed_locked()

    def _outside_locked(self, now: float) -> tuple[int, int]:
        """How many running deliveries have been held up outside the process (waiting on their
        receiver's answer) for half their patience or longer, and how many wait on it at all."""
        held = outside = 0
        if self._held_since is None:
            return held, outside
        for thread in self._threads.values():
            since = self._held_since(thread)
            if since is not None:
                outside += 1
                if now - since >= self.patience / 2:
                    held += 1
        return held, outside

    def _start_allowed_locked(self) -> None:
        while not self._closed and self._waiting and len(self._running) < self._limit:
            slot, item = self._begin_locked(), self._waiting.popleft()
            self._fewer.notify_all()
            try:
                self._pool.submit(self._work, slot, item)
            except RuntimeError:  # the pool is shut down: so are we (``close`` returns the item)
                self._running.pop(slot, None)
                self._waiting.appendleft(item)
                self._closed = True
