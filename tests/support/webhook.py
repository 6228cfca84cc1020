"""A webhook receiver for notification tests: records every request (Alertmanager's v4 JSON) and
answers 200, unless the test queued failures for a path (``fail``) or swapped ``answer`` to make it
fail, throttle or hang.

What it accepted is the user-visible outcome: what the on-call would have seen.
"""

from __future__ import annotations

import ssl
import threading
import time
from collections import defaultdict, deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tests.support.httpfake import FakeHTTPServer, Handler, Reply, Request
from tests.support.net import wait_until


@dataclass(frozen=True)
class Received:
    """One webhook request: when it came, where, what it said, and what we answered."""

    at: float  # wall-clock time it arrived
    path: str
    headers: Mapping[str, str]  # lower-cased names
    body: Any
    code: int  # the HTTP status we answered with

    @property
    def accepted(self) -> bool:
        return 200 <= self.code < 300

    @property
    def status(self) -> str:
        """The notification's status: "firing" or "resolved"."""
        return str(self.body["status"])

    @property
    def group(self) -> str:
        """The alertname the group is keyed by ("" when it is not grouped by alertname)."""
        return str(self.body.get("groupLabels", {}).get("alertname", ""))


class WebhookRecorder:
    """``with WebhookRecorder() as hook: hook.url`` — point webhook receivers at paths below it."""

    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        self.received: list[Received] = []
        self.answer: Handler = lambda _: Reply(200, "ok")
        self._failures: dict[str, deque[Reply]] = defaultdict(deque)
        self._lock = threading.Lock()
        self.server = FakeHTTPServer(self._handle, ssl_context)

    @property
    def url(self) -> str:
        return self.server.url

    def _handle(self, request: Request) -> Reply:
        with self._lock:
            queued = self._failures.get(request.path)
            reply = queued.popleft() if queued else None
        if reply is None:
            reply = self.answer(request)
        received = Received(time.time(), request.path, request.headers, request.json(), reply.status)
        with self._lock:
            self.received.append(received)
        return reply

    def fail(self, path: str, status: int, times: int = 1, headers: dict[str, str] | None = None) -> None:
        """Answer the next ``times`` requests to ``path`` with ``status`` (and ``headers``)."""
        with self._lock:
            self._failures[path].extend([Reply(status, "error", dict(headers or {}))] * times)

    def delivered(self, group: str | None = None) -> list[Received]:
        """Requests we accepted, optionally only those of one alertname's group."""
        with self._lock:
            return [r for r in self.received if r.accepted and (group is None or r.group == group)]

    def at(self, path: str) -> list[Received]:
        """Requests to ``path`` we accepted."""
        with self._lock:
            return [r for r in self.received if r.accepted and r.path == path]

    def statuses(self, group: str) -> list[str]:
        return [r.status for r in self.delivered(group)]

    def wait_for(self, group: str, status: str = "firing", timeout: float = 60) -> None:
        """Wait until a notification of ``group`` with ``status`` has been accepted."""
        wait_until(lambda: status in self.statuses(group), timeout=timeout, what=f"{group} {status}")

    def settle(self, quiet: float = 4.0) -> None:
        """Wait until nothing has arrived for ``quiet`` seconds (two group_intervals by default):
        whatever the worker was still going to send is in by then."""
        wait_until(
            lambda: not self.received or time.time() - self.received[-1].at >= quiet,
            timeout=120,
            interval=0.2,
            what="the receiver to go quiet",
        )

    def __enter__(self) -> WebhookRecorder:
        self.server.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.__exit__(*exc)
