"""A tiny /metrics endpoint whose values the test sets, for Prometheus to scrape."""

from __future__ import annotations

from tests.support.httpfake import FakeHTTPServer, Reply, Request


class Exporter:
    def __init__(self) -> None:
        self.values: dict[str, float] = {}
        self.server = FakeHTTPServer(self._metrics)

    def _metrics(self, _: Request) -> Reply:
        text = "".join(f"{k} {v!r}\n" for k, v in dict(self.values).items())
        return Reply(200, text, headers={"Content-Type": "text/plain; version=0.0.4"})

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.server.port}"

    def __enter__(self) -> Exporter:
        self.server.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.__exit__(*exc)
