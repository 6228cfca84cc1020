"""The worker's broker connection, adapted so a worker rides out a failover of the broker.

Two adapters, both small:

* :class:`BrokerAMQP` gives Celery connections that retry a lost broker every 0.5 s, growing by
  0.5 s up to 5 s (kombu's defaults: 2 s, growing by 2 s up to 30 s), so a failover that takes two
  seconds stops the worker's consuming for about that long, not for the next step of a slow backoff.
* :class:`SentinelTransport`, for a ``CELERY_BROKER_URL`` in the sentinel form (see
  :mod:`alerting.redisconn`), fixes the failure below.

The failure it fixes: when the primary dies, Celery closes the broker connection, and kombu's
channel, while closing, puts its unacknowledged (late-acked, still running) messages back. By then
the transport has already let go of its connection settings (``transport.client`` is None), so
building a Redis pool for that restore, or for a late ack of a task that finishes after the
failover, raises ``AttributeError`` (``'NoneType' object has no attribute 'hostname'``). Celery
takes an AttributeError for a bug and stops the worker ("Unrecoverable error").

Here that moment is what it is: a lost connection. The channel raises redis's ``ConnectionError``,
which kombu and Celery treat as recoverable: the consumer reconnects (to the new primary, through
the sentinels), a late ack that cannot be made is logged as such by Celery, and the message stays in
kombu's unacked index, from which kombu redelivers it after the visibility timeout. Every task is
idempotent (slot claims, the notification log), so that redelivery does nothing twice.
"""

from __future__ import annotations

from typing import Any

from celery.app.amqp import AMQP
from kombu import Connection
from kombu.transport.redis import SentinelChannel
from kombu.transport.redis import SentinelTransport as _KombuSentinelTransport
from redis.exceptions import ConnectionError as RedisConnectionError


class FailoverSafeChannel(SentinelChannel):
    """A sentinel channel whose use after its connection is gone is a connection error."""

    def _connparams(self, asynchronous: bool = False) -> Any:
        transport = self.connection
        if transport is None or getattr(transport, "client", None) is None:
            raise RedisConnectionError("the broker connection is closed (the Redis primary failed over)")
        return super()._connparams(asynchronous)


class SentinelTransport(_KombuSentinelTransport):
    """kombu's ``sentinel://`` transport with :class:`FailoverSafeChannel`."""

    Channel = FailoverSafeChannel


class QuickReconnect(Connection):
    """A kombu connection whose reconnect attempts start at 0.5 s apart and never exceed 5 s."""

    def ensure_connection(
        self,
        errback: Any = None,
        max_retries: int | None = None,
        interval_start: float = 0.5,
        interval_step: float = 0.5,
        interval_max: float = 5.0,
        **kwargs: Any,
    ) -> Any:
        return super().ensure_connection(
            errback, max_retries, interval_start, interval_step, interval_max, **kwargs
        )


class BrokerAMQP(AMQP):
    """Celery's AMQP helper with :class:`QuickReconnect` connections (``Celery(amqp=...)``)."""

    Connection = QuickReconnect
    BrokerConnection = QuickReconnect
