"""A scriptable local HTTP(S) server: each request is recorded and answered by a handler function.

Tests can queue canned answers (5xx, 429 with Retry-After) ahead of the handler with
:meth:`FakeHTTPServer.fail_next`. The server binds 127.0.0.1 on a free port and stops when its
``with`` block ends.
"""

from __future__ import annotations

import base64
import json
import ssl
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass(frozen=True)
class Request:
    """One request as the server received it."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-cased names
    body: bytes
    at: float = 0.0  # time.monotonic() when the server had read it: for pauses between requests

    def json(self) -> Any:
        return json.loads(self.body)

    def form(self) -> dict[str, list[str]]:
        return parse_qs(self.body.decode(), keep_blank_values=True)

    def basic_auth(self) -> tuple[str, str] | None:
        value = self.headers.get("authorization", "")
        if not value.startswith("Basic "):
            return None
        user, _, password = base64.b64decode(value[6:]).decode().partition(":")
        return user, password


@dataclass(frozen=True)
class Reply:
    """An answer: ``body`` is bytes, text, or anything JSON-serialisable; ``delay`` holds it back."""

    status: int = 200
    body: Any = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0

    def encoded(self) -> tuple[bytes, str]:
        """The body's bytes and the Content-Type that goes with them unless ``headers`` names one."""
        if isinstance(self.body, bytes):
            return self.body, "application/octet-stream"
        if isinstance(self.body, str):
            return self.body.encode(), "text/plain; charset=utf-8"
        return json.dumps(self.body).encode(), "application/json"


Handler = Callable[[Request], Reply]


class _Server(ThreadingHTTPServer):
    # The default backlog of 5 drops bursts of connections, and a dropped SYN costs a second.
    request_queue_size = 128
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        # A client that gave up (its timeout, a test that hangs up on purpose) leaves the answer
        # with nobody to read it: nothing to report. Anything else is printed as before.
        if isinstance(sys.exc_info()[1], ConnectionError | ssl.SSLEOFError):
            return
        super().handle_error(request, client_address)


class FakeHTTPServer:
    """``with FakeHTTPServer(handler) as fake: fake.url`` — answers with ``handler(request)``."""

    def __init__(self, handler: Handler, ssl_context: ssl.SSLContext | None = None) -> None:
        self.handler = handler
        self.requests: list[Request] = []
        self._canned: deque[Reply | None] = deque()
        self._lock = threading.Lock()
        fake = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out as two writes; without TCP_NODELAY the body waits for the
            # client's delayed ACK (~40 ms per request on a kept-alive connection), which no real
            # service adds and which held each of a client's sending threads in the benchmarks.
            disable_nagle_algorithm = True

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                parts = urlsplit(self.path)
                request = Request(
                    self.command,
                    parts.path,
                    parse_qs(parts.query),
                    {k.lower(): v for k, v in self.headers.items()},
                    self.rfile.read(length) if length else b"",
                    time.monotonic(),
                )
                reply = fake._answer(request)
                if reply.delay:
                    threading.Event().wait(reply.delay)
                body, content_type = reply.encoded()
                headers = dict(reply.headers)
                if not any(name.lower() == "content-type" for name in headers):
                    headers["Content-Type"] = content_type
                try:
                    self.send_response(reply.status)
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout); nothing to tell it

            do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _serve  # noqa: N815

            def log_message(self, *_: object) -> None:
                pass

        self.server = _Server(("127.0.0.1", 0), _Handler)
        if ssl_context:
            self.server.socket = ssl_context.wrap_socket(self.server.socket, server_side=True)
        self.port = int(self.server.server_address[1])
        self.scheme = "https" if ssl_context else "http"
        # A short poll interval: shutting the server down waits for the current poll to end.
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def fail_next(self, reply: Reply, times: int = 1, *, after: int = 0) -> None:
        """Let ``after`` requests through, then answer ``times`` requests with ``reply`` (recorded,
        but not handed to the handler)."""
        with self._lock:
            self._canned.extend([None] * after + [reply] * times)

    def _answer(self, request: Request) -> Reply:
        with self._lock:
            self.requests.append(request)
            canned = self._canned.popleft() if self._canned else None
        return canned if canned is not None else self.handler(request)

    def __enter__(self) -> FakeHTTPServer:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)
