"""A real Redis connection with a unique key prefix per test, removed afterwards."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import redis

from tests.support.net import REDIS_URL


@contextmanager
def isolated_redis() -> Iterator[tuple[redis.Redis, str]]:
    client = redis.Redis.from_url(REDIS_URL)
    prefix = f"test-routing-{uuid.uuid4().hex[:12]}"
    try:
        yield client, prefix
    finally:
        delete_matching(client, f"{prefix}:*")
        client.close()


def delete_matching(client: redis.Redis, *patterns: str) -> None:
    """Delete every key matching one of ``patterns``, a thousand per command."""
    keys = [key for pattern in patterns for key in client.scan_iter(match=pattern, count=10000)]
    for start in range(0, len(keys), 1000):
        client.delete(*keys[start : start + 1000])
