"""A remote-write receiver for tests: decodes every request it accepts and records its samples."""

from __future__ import annotations

import threading
from collections.abc import Callable

from alerting.remotewrite import Labels, Series, decode
from tests.support.httpfake import FakeHTTPServer, Reply, Request


class WriteReceiver:
    """``with WriteReceiver() as rw: rw.url`` — answers 204 to well-formed remote-write 1.0 requests
    (400 to anything else) on any path. ``server.fail_next`` queues refusals ahead of that."""

    def __init__(self, answer: Callable[[Request], Reply | None] | None = None) -> None:
        self.answer = answer
        self._lock = threading.Lock()
        self.accepted: list[tuple[Request, list[Series]]] = []
        self.server = FakeHTTPServer(self._handle)

    @property
    def url(self) -> str:
        return f"{self.server.url}/api/v1/write"

    def _handle(self, request: Request) -> Reply:
        headers = request.headers
        if (
            request.method != "POST"
            or headers.get("content-encoding") != "snappy"
            or headers.get("content-type") != "application/x-protobuf"
            or headers.get("x-prometheus-remote-write-version") != "0.1.0"
        ):
            return Reply(400, f"not a remote-write 1.0 request: {request.method} {headers}")
        try:
            samples = decode(request.body)
        except ValueError as exc:
            return Reply(400, str(exc))
        reply = self.answer(request) if self.answer else None
        if reply is not None:
            return reply
        with self._lock:
            self.accepted.append((request, samples))
        return Reply(204)

    def samples(self, path: str | None = None) -> list[Series]:
        """Every accepted sample (of requests to ``path`` only, when given), in arrival order."""
        with self._lock:
            return [s for request, batch in self.accepted if path in (None, request.path) for s in batch]

    def label_sets(self, path: str | None = None) -> set[Labels]:
        return {s.labels for s in self.samples(path)}

    def __enter__(self) -> WriteReceiver:
        self.server.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.__exit__(*exc)
