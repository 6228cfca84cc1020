"""A local HTTP server that records webhook deliveries and answers what a test scripts."""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Delivery:
    path: str
    headers: dict[str, str]
    body: Any
    at: float


class Recorder:
    """Records every POST; ``fail(path, status, ...)`` queues answers other than 200."""

    def __init__(self) -> None:
        self.deliveries: list[Delivery] = []
        self._answers: dict[str, deque[tuple[int, dict[str, str]]]] = defaultdict(deque)
        self._lock = threading.Lock()
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                length = int(self.headers.get("Content-Length", 0))
                raw = self.rfile.read(length)
                with recorder._lock:
                    queue = recorder._answers.get(self.path)
                    status, headers = queue.popleft() if queue else (200, {})
                    if status == 200:
                        recorder.deliveries.append(
                            Delivery(self.path, dict(self.headers.items()), json.loads(raw), time.time())
                        )
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            # The default backlog of 5 drops bursts of connections, and a dropped SYN costs a second.
            request_queue_size = 128
            daemon_threads = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def fail(self, path: str, status: int, times: int = 1, headers: dict[str, str] | None = None) -> None:
        with self._lock:
            for _ in range(times):
                self._answers[path].append((status, headers or {}))

    def at(self, path: str) -> list[Delivery]:
        with self._lock:
            return [d for d in self.deliveries if d.path == path]

    def __enter__(self) -> Recorder:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)
