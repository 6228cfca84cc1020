"""Where the tests' Redis listens, free ports, and waiting for servers."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable

REDIS_URL = os.environ.get("ALERTING_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(
    predicate: Callable[[], object], timeout: float = 30.0, interval: float = 0.1, what: str = "condition"
) -> object:
    """Poll ``predicate`` until it returns something truthy; fail with ``what`` on timeout."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = predicate()
            if result:
                return result
        except Exception as exc:  # the server may not be up yet
            last_error = exc
        time.sleep(interval)
    raise TimeoutError(f"timed out waiting for {what}" + (f": {last_error!r}" if last_error else ""))
