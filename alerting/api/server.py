"""Serve an ASGI app with uvicorn from a daemon thread of the current process.

The socket is bound before the thread starts, so a port in use fails the caller at once (and port 0
gets its real number); uvicorn installs no signal handlers off the main thread, so Celery keeps its own.
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
from typing import Any

import uvicorn


class ThreadedServer:
    """``ThreadedServer(app, ("127.0.0.1", 0)).start()``; ``stop()`` waits for open requests briefly."""

    def __init__(
        self,
        app: Any,
        addr: tuple[str, int],
        *,
        name: str = "alerting-http",
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        family = socket.AF_INET6 if ":" in addr[0] else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.sock.bind(addr)
            self.sock.listen(128)
        except OSError:
            self.sock.close()
            raise
        config = uvicorn.Config(
            app,
            log_config=None,  # our structured logs, not uvicorn's handlers
            access_log=False,  # requests are not worth a log line each
            lifespan="off",
            timeout_graceful_shutdown=2,
            server_header=False,
            date_header=False,
            # HTTPS with the context given (built from ALERTING_WEB_CONFIG), else plain HTTP
            ssl_context_factory=(lambda _config, _default: ssl_context) if ssl_context is not None else None,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)

    def _run(self) -> None:
        self.server.run(sockets=[self.sock])

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.sock.getsockname()[:2]
        return str(host), int(port)

    def start(self, timeout: float = 10.0) -> ThreadedServer:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started and self.thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.01)
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self.server.should_exit = True
        if self.thread.is_alive():
            self.thread.join(timeout)
        self.sock.close()
