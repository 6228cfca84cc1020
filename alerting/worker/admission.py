"""How many deliveries a process runs at once: a few while receivers answer promptly, up to many
while they keep their sends waiting.

A storm to receivers that answer within milliseconds keeps the process's interpreter busy: its
deliveries take turns holding it, and every send beyond a handful that runs at the same time adds
hand-overs between threads, not progress (at 10,000 alerts, 32 at a time cost about a third more
CPU than 8). A receiver that takes a tenth of a second or more to answer (most on the internet do)
needs the opposite: many sends in flight, each of them waiting.

So deliveries start ``steady`` at a time. A thread that finishes one takes the next waiting
delivery itself. Once the oldest of the running deliveries has been under way for ``patience``,
another starts beside them, and so on while it stays that way, up to ``most``: a slow or hung
receiver holds the others up for ``patience`` at most, and then they all run side by side.
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


class Admission(Generic[T]):
    """Runs ``run(item)`` for each submitted item on ``pool`` (which has ``most`` threads), as
    described in the module docstring."""

    def __init__(
        self, pool: ThreadPoolExecutor, run: Callable[[T], None], *, steady: int, most: int, patience: float
    ) -> None:
        self._pool = pool
        self._run = run
        self.most = max(1, most)
        self.steady = max(1, min(steady, self.most))
        self.patience = patience
        self._cond = threading.Condition()
        self._waiting: deque[T] = deque()
        # One entry per running delivery: its slot -> time.monotonic() when it started. A delivery
        # that starts is added at the end, so the first entry is always the oldest one running.
        self._running: dict[int, float] = {}
        self._slots = itertools.count()
        self._closed = False
        self._watcher: threading.Thread | None = None

    @property
    def running(self) -> int:
        return len(self._running)

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def submit(self, item: T) -> None:
        """Run ``item`` now if a steady slot is free, else after the deliveries ahead of it.
        Raises ``RuntimeError`` once closed."""
        with self._cond:
            if self._closed:
                raise RuntimeError("deliveries are closed")
            if len(self._running) >= self.steady:
                self._waiting.append(item)
                if len(self._waiting) == 1:  # the watcher sleeps while nothing waits
                    self._watch_locked()
                return
            slot = self._begin_locked()
        self._start(slot, item)

    def close(self) -> list[T]:
        """Start nothing more; returns what was still waiting (the running deliveries finish)."""
        with self._cond:
            self._closed = True
            left = list(self._waiting)
            self._waiting.clear()
            self._cond.notify_all()
        return left

    # -- inside ----------------------------------------------------------------------------------

    def _begin_locked(self) -> int:
        slot = next(self._slots)
        self._running[slot] = time.monotonic()
        return slot

    def _start(self, slot: int, item: T) -> None:
        try:
            self._pool.submit(self._work, slot, item)
        except RuntimeError:  # the pool is shut down: so are we
            with self._cond:
                self._running.pop(slot, None)
                self._closed = True
            raise

    def _work(self, slot: int, item: T) -> None:
        while True:
            try:
                self._run(item)
            except Exception as exc:  # noqa: BLE001 - one delivery's failure must not stop the rest
                log.error("notify.delivery_crashed", msg=f"{type(exc).__name__}: {exc}")
            with self._cond:
                del self._running[slot]
                if self._closed or not self._waiting:
                    return
                item = self._waiting.popleft()
                slot = self._begin_locked()

    def _watch_locked(self) -> None:
        if self._watcher is not None and self._watcher.is_alive():
            self._cond.notify_all()
            return
        self._watcher = threading.Thread(target=self._watch, name="delivery-admission", daemon=True)
        self._watcher.start()

    def _watch(self) -> None:
        """While deliveries wait: start another each time the oldest running one has been under
        way for ``patience`` (or when none runs at all)."""
        with self._cond:
            while not self._closed:
                timeout: float | None = None
                if self._waiting and len(self._running) < self.most:
                    oldest = next(iter(self._running.values()), None)
                    overdue = 0.0 if oldest is None else time.monotonic() - oldest - self.patience
                    if overdue >= 0:
                        slot, item = self._begin_locked(), self._waiting.popleft()
                        try:
                            self._pool.submit(self._work, slot, item)
                        except RuntimeError:
                            self._running.pop(slot, None)
                            self._waiting.appendleft(item)
                            self._closed = True
                        continue
                    timeout = -overdue
                self._cond.wait(timeout)
