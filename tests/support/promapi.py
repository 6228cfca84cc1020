"""A stand-in for Prometheus's query API whose answers the test sets, on a local HTTP server."""

from __future__ import annotations

import threading
from typing import Self

from tests.support.httpfake import FakeHTTPServer, Reply, Request

Vector = list[tuple[dict[str, str], float]]  # (labels, value) of each series


class PromAPI:
    """``/api/v1/query``: each query answers the series set for it in ``vectors`` (an empty vector
    otherwise) and a query starting with ``rejected`` is a bad query (400). ``down`` makes every
    answer a 503; ``slow`` holds every answer that many seconds, setting ``in_flight`` when a query
    is caught that way."""

    def __init__(self) -> None:
        self.vectors: dict[str, Vector] = {}
        self.down = False
        self.slow = 0.0
        self.in_flight = threading.Event()
        self.server = FakeHTTPServer(self._answer)

    @property
    def url(self) -> str:
        return self.server.url

    def _answer(self, request: Request) -> Reply:
        if request.path != "/api/v1/query":
            return Reply(404, "not found")
        if self.down:
            return Reply(503, "Service Unavailable")
        query = request.form().get("query", [""])[0]
        if query.startswith("rejected"):
            return Reply(400, {"status": "error", "errorType": "bad_data", "error": "parse error"})
        result = [
            {"metric": labels, "value": [0, repr(value)]} for labels, value in self.vectors.get(query, [])
        ]
        if self.slow:
            self.in_flight.set()
        body = {"status": "success", "data": {"resultType": "vector", "result": result}}
        return Reply(200, body, delay=self.slow)

    def __enter__(self) -> Self:
        self.server.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.__exit__(*exc)
