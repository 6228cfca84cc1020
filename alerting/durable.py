"""Writes that must survive a Redis failover, and the one place that waits for a replica to have them.

The durability contract (README, "Redis Sentinel and the durability contract"): slot claims, alert
state, the notification log, silences, acknowledgements, escalation clocks and fallback delivery
marks are written through
:func:`pipeline`, which ends the batch with ``WAIT 1 <timeout>`` on the same connection, so it
returns only once a replica acknowledged every write of the batch, or the timeout passed. One WAIT
per batch, never one per key.

The rule for a primary without replicas is explicit: WAIT is skipped (it could only time out), and
a standalone Redis's own persistence (AOF) is what keeps the data. Whether replicas exist is read
from ``INFO replication`` at most every few seconds per client.

A WAIT that times out does not fail the write (the data is on the primary, and undoing a send is
impossible): it is counted in ``alerting_redis_unreplicated_writes_total{what}`` and logged as a
warning, because a failover in that window can lose that write.
"""

from __future__ import annotations

import threading
import time
import weakref
from typing import Any

import redis
import structlog
from redis.client import Pipeline

log = structlog.get_logger(__name__)

DEFAULT_TIMEOUT = 1.0
REPLICAS_TTL = 5.0  # how long a primary's replica count is trusted before INFO is asked again

_timeout = DEFAULT_TIMEOUT


def configure(timeout: float) -> None:
    """Set how long a durable write waits for a replica (``ALERTING_REDIS_WAIT_TIMEOUT``)."""
    global _timeout
    _timeout = timeout


class _Replicas:
    """A client's view of how many replicas its primary has, refreshed every REPLICAS_TTL and
    whenever a sentinel-managed pool has moved to another primary (which starts without any)."""

    def __init__(self) -> None:
        self.count = 0
        self.read_at = float("-inf")
        self.primary: Any = None
        self.lock = threading.Lock()

    def get(self, client: redis.Redis) -> int:
        now = time.monotonic()
        primary = getattr(client.connection_pool, "master_address", None)
        if now - self.read_at < REPLICAS_TTL and primary == self.primary:
            return self.count
        with self.lock:
            if now - self.read_at >= REPLICAS_TTL or primary != self.primary:
                self.primary = primary
                try:
                    info = client.info("replication")
                    self.count = int(info.get("connected_slaves", 0))
                except redis.RedisError:
                    self.count = 0  # the write itself will fail and say why
                self.read_at = now
            return self.count


_replicas: weakref.WeakKeyDictionary[Any, _Replicas] = weakref.WeakKeyDictionary()
_replicas_lock = threading.Lock()


def replica_count(client: redis.Redis) -> int:
    """Replicas connected to ``client``'s primary (cached a few seconds)."""
    with _replicas_lock:
        entry = _replicas.get(client.connection_pool)
        if entry is None:
            entry = _replicas[client.connection_pool] = _Replicas()
    return entry.get(client)


def forget_replicas(client: Any) -> None:
    """Drop the cached replica count of ``client``'s pool, so the next write asks again."""
    with _replicas_lock:
        _replicas.pop(client.connection_pool, None)


class DurablePipeline(Pipeline):
    """A pipeline whose ``execute`` ends with ``WAIT`` on the connection that made the writes.

    WAIT counts only the writes of its own connection and cannot run inside MULTI, so it is sent
    right after the batch (or after EXEC) on the same connection, before the connection goes back
    to the pool.
    """

    what = "write"
    replicas = 0
    acked: int | None = None

    def _wait(self, connection: Any) -> None:
        if self.replicas < 1:
            return
        connection.send_command("WAIT", 1, max(1, int(_timeout * 1000)))
        self.acked = int(connection.read_response())

    def _execute_transaction(self, connection: Any, commands: Any, raise_on_error: bool) -> list[Any]:
        data = super()._execute_transaction(connection, commands, raise_on_error)
        self._wait(connection)
        return data

    def _execute_pipeline(self, connection: Any, commands: Any, raise_on_error: bool) -> list[Any]:
        data = super()._execute_pipeline(connection, commands, raise_on_error)
        self._wait(connection)
        return data

    def execute(self, raise_on_error: bool = True) -> list[Any]:
        self.acked = None
        data = super().execute(raise_on_error)
        if self.replicas >= 1 and (self.acked or 0) < 1:
            # The replica may be gone for good (a failover leaves the new primary without one for
            # a while): ask INFO again at the next write instead of waiting out the cache.
            forget_replicas(self)
            _not_replicated(self.what)
        return data


def pipeline(client: redis.Redis, what: str, *, transaction: bool = True) -> DurablePipeline:
    """A pipeline over ``client`` whose writes are acknowledged by a replica when ``execute`` returns
    (or counted and logged as unreplicated after the timeout). ``what`` names the data in the
    metric and the warning: ``claim``, ``state``, ``nflog``, ``silence``, ..."""
    pipe = DurablePipeline(client.connection_pool, client.response_callbacks, transaction, None)
    pipe.what = what
    pipe.replicas = replica_count(client)
    return pipe


def _not_replicated(what: str) -> None:
    from alerting.ops import metrics

    metrics.observe_unreplicated(what)
    log.warning(
        "redis.not_replicated",
        msg=f"no replica acknowledged the {what} write within {_timeout:g}s; a failover now could lose it",
        what=what,
        timeout=_timeout,
    )
