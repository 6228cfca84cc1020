"""kombu's Redis Sentinel transport, adapted so a worker rides out a failover of the broker.

Used for a ``CELERY_BROKER_URL`` in the sentinel form (see :mod:`alerting.redisconn`).
"""

from __future__ import annotations

from kombu.transport.redis import SentinelChannel
from kombu.transport.redis import SentinelTransport as _KombuSentinelTransport


class FailoverSafeChannel(SentinelChannel):
    """A sentinel channel that survives the failover of its primary."""


class SentinelTransport(_KombuSentinelTransport):
    """kombu's ``sentinel://`` transport with :class:`FailoverSafeChannel`."""

    Channel = FailoverSafeChannel
