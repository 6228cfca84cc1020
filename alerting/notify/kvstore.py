"""A small key-value store receivers keep per-group facts in (Slack threads, SMS recipients already
told): Redis in the worker, memory in tests and one-off commands.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, Protocol

import structlog

log = structlog.get_logger(__name__)


# Key under which the routing pipeline may pass a small key-value store in ``global_config``.
# Slack keeps group -> (channel, thread ts) there; SMS keeps which recipients already got a message.
STORE_KEY = "_thread_store"


class KeyValueStore(Protocol):
    """Anything with ``get`` and ``set`` with a TTL in seconds (Redis behind it in production)."""

    def get(self, key: str) -> str | None: ...

    def set(self, key: str, value: str, ttl: float) -> None: ...


class MemoryStore:
    """A process-local :class:`KeyValueStore`; enough for one worker, lost on restart."""

    def __init__(self) -> None:
        self._items: dict[str, tuple[str, float]] = {}

    def get(self, key: str) -> str | None:
        item = self._items.get(key)
        if item is None or item[1] < time.monotonic():
            self._items.pop(key, None)
            return None
        return item[0]

    def set(self, key: str, value: str, ttl: float) -> None:
        self._items[key] = (value, time.monotonic() + ttl)


class RedisStore:
    """A :class:`KeyValueStore` over a ``redis.Redis`` client, under one key prefix."""

    def __init__(self, client: Any, prefix: str) -> None:
        self._client, self._prefix = client, prefix

    def get(self, key: str) -> str | None:
        value = self._client.get(self._prefix + key)
        return value.decode() if isinstance(value, bytes) else value

    def set(self, key: str, value: str, ttl: float) -> None:
        self._client.set(self._prefix + key, value, px=max(1, int(ttl * 1000)))


def store_from(global_config: Mapping[str, Any]) -> KeyValueStore:
    store = global_config.get(STORE_KEY)
    return store if store is not None else MemoryStore()
