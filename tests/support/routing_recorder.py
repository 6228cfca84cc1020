"""A local HTTP server that records webhook deliveries and answers what a test scripts."""

from __future__ import annotations

import ssl
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass
from typing import Any

from tests.support.httpfake import FakeHTTPServer, Reply, Request


@dataclass(frozen=True)
class Delivery:
    path: str
    headers: dict[str, str]  # lower-cased names
    body: Any
    at: float


class Recorder:
    """Records every POST answered 200; ``fail(path, status, ...)`` queues answers other than 200."""

    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        self.deliveries: list[Delivery] = []
        self._answers: dict[str, deque[tuple[int, dict[str, str]]]] = defaultdict(deque)
        self._lock = threading.Lock()
        self.server = FakeHTTPServer(self._handle, ssl_context)

    def _handle(self, request: Request) -> Reply:
        with self._lock:
            queue = self._answers.get(request.path)
            status, headers = queue.popleft() if queue else (200, {})
            if status == 200:
                self.deliveries.append(Delivery(request.path, request.headers, request.json(), time.time()))
        return Reply(status, "ok", headers)

    @property
    def url(self) -> str:
        return self.server.url

    def fail(self, path: str, status: int, times: int = 1, headers: dict[str, str] | None = None) -> None:
        with self._lock:
            for _ in range(times):
                self._answers[path].append((status, headers or {}))

    def at(self, path: str) -> list[Delivery]:
        with self._lock:
            return [d for d in self.deliveries if d.path == path]

    def __enter__(self) -> Recorder:
        self.server.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.__exit__(*exc)
