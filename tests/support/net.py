"""Where the tests' Redis listens, Celery queue names of the tests' own, free ports, and waiting
for servers."""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Callable

import redis

REDIS_URL = os.environ.get("ALERTING_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")

_queues: list[str] = []


def celery_queue(kind: str = "q") -> str:
    """A Celery queue name no other test uses; ``remove_queues`` deletes its broker keys."""
    name = f"{kind}-{uuid.uuid4().hex[:8]}"
    _queues.append(name)
    return name


def remove_queues(client: redis.Redis) -> None:
    """Delete what the broker kept in Redis for the queues this process named: leftover messages
    and kombu's bindings, so test runs leave nothing behind in the shared Redis."""
    keys = [k for q in _queues for k in (q, f"_kombu.binding.{q}", f"_kombu.binding_permanent.{q}")]
    for start in range(0, len(keys), 500):
        client.delete(*keys[start : start + 500])
    _queues.clear()


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
