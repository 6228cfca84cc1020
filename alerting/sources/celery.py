"""Celery datasource: the broker's queue lengths and the number of workers answering a ping.

Rule syntax (``celery:``)::

    celery: {measure: queue_length, queues: [celery, emails]}   # one sample per queue
    celery: {measure: workers}                                 # one sample: workers that answer
    celery: {measure: workers, queues: [emails], timeout: 2s}  # ... and consume one of these queues

A queue's length is what waits in the broker, read through kombu (for Redis that is the queue's list
plus the priority sub-lists Celery keeps beside it); a queue that does not exist has length 0.
Workers are counted by a broadcast ping (or, with ``queues``, an ``active_queues`` inspection)
over a Celery app bound to the datasource's broker, waiting ``timeout`` (default 1s) for answers.
A broker that cannot be reached is a datasource error; zero workers is an answer, not an error.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

# Absolute imports: this module is alerting.sources.celery, the library below is the real Celery.
import celery
import kombu
from kombu.exceptions import KombuError
from kombu.transport import virtual
from kombu.utils.url import maybe_sanitize_url

from alerting import redisconn
from alerting.config.yamlfile import suggest, type_name
from alerting.durations import parse_duration
from alerting.errors import ConfigError, DatasourceError, DurationError, Position, QueryError, RuleFileError
from alerting.sources import Kind, QuerySpec, Sample, reject_unknown_settings, settings_error

MEASURES = ("queue_length", "workers")
_FIELDS = ("measure", "queues", "timeout")
_CONFIG_FIELDS = ("type", "broker_url", "broker_transport_options", "control_exchange", "connect_timeout")
_DEFAULT_BROKER = "redis://localhost:6379/0"
_DEFAULT_PING_TIMEOUT = 1.0
_MAX_PING_TIMEOUT = 30.0
_PAST_TOLERANCE = 3600.0  # the broker only knows the present; see probe.py


@dataclass(frozen=True)
class CeleryCheck(QuerySpec):
    """A checked ``celery:`` spec. Hashable, and readable as a mapping of the fields that are set."""

    measure: str
    queues: tuple[str, ...] = ()
    timeout: float | None = None

    always_shown: ClassVar[tuple[str, ...]] = ("measure",)

    def _shown(self, key: str, value: Any) -> Any:
        return list(value) if key == "queues" else value


def check_celery(spec: Any, pos: Position) -> CeleryCheck:
    """Validate a rule's ``celery`` spec offline, pointing at the offending key or value."""
    if not isinstance(spec, Mapping):
        raise RuleFileError(
            "celery must be a mapping such as {measure: queue_length, queues: [celery]}, "
            f"got {type_name(spec)}",
            pos,
        )

    def value_at(key: str) -> Position:
        at = getattr(spec, "at", None)
        return at(key) if callable(at) else pos

    for key in spec:
        if key not in _FIELDS:
            where = getattr(spec, "key_pos", {}).get(key, pos)
            raise RuleFileError(f'unknown field "{key}" in celery{suggest(str(key), _FIELDS)}', where)
    measure = spec.get("measure")
    if measure not in MEASURES:
        shown = "nothing" if measure is None else repr(measure)
        raise RuleFileError(
            f"celery measure must be {' or '.join(MEASURES)}, got {shown}",
            value_at("measure") if "measure" in spec else getattr(spec, "pos", pos),
        )
    queues: tuple[str, ...] = ()
    if "queues" in spec or measure == "queue_length":
        raw = spec.get("queues", ["celery"])
        items = [raw] if isinstance(raw, str) else raw
        if not isinstance(items, list) or not items or not all(isinstance(q, str) and q for q in items):
            raise RuleFileError("celery queues must be a list of queue names", value_at("queues"))
        if len(set(items)) != len(items):
            raise RuleFileError("celery queues lists a queue twice", value_at("queues"))
        queues = tuple(items)
    timeout = None
    if "timeout" in spec:
        if measure != "workers":
            raise RuleFileError("timeout applies to measure: workers only", value_at("timeout"))
        try:
            timeout = parse_duration(str(spec["timeout"]))
        except DurationError as exc:
            raise RuleFileError(f"celery timeout: {exc}", value_at("timeout")) from None
        if not 0 < timeout <= _MAX_PING_TIMEOUT:
            raise RuleFileError(
                f"celery timeout must be above 0 and at most {_MAX_PING_TIMEOUT:g}s", value_at("timeout")
            )
    return CeleryCheck(measure=str(measure), queues=queues, timeout=timeout)


class CelerySource:
    """One broker. Each query opens its own short connection, so threads and forks share nothing."""

    def __init__(self, name: str, config: Mapping[str, Any]) -> None:
        self.name = name
        fail = settings_error(name, config)
        reject_unknown_settings(config, _CONFIG_FIELDS, fail)
        # Settings fill in the worker's own broker (CELERY_BROKER_URL) for a datasource without one.
        url = config.get("broker_url") or _DEFAULT_BROKER
        if not isinstance(url, str):
            raise fail("broker_url must be a URL such as redis://localhost:6379/0")
        options = config.get("broker_transport_options") or {}
        if not isinstance(options, Mapping):
            raise fail("broker_transport_options must be a mapping")
        control_exchange = config.get("control_exchange", "celery")
        if not isinstance(control_exchange, str) or not control_exchange:
            raise fail("control_exchange must be a name")
        try:
            self.connect_timeout = parse_duration(str(config.get("connect_timeout", "5s")))
        except DurationError as exc:
            raise fail(f"connect_timeout: {exc}") from None
        # Our sentinel URL form (redis+sentinel://...) becomes kombu's sentinel:// URLs and options.
        try:
            broker = redisconn.celery_broker(url)
        except ConfigError as exc:
            raise fail(f"broker_url: {exc}") from None
        self.url = broker.url
        self._options = {**broker.transport_options, **options}
        self._transport = broker.transport
        self._use_ssl = dict(broker.use_ssl) if broker.use_ssl is not None else None
        self._control_exchange = control_exchange
        self.safe_url = maybe_sanitize_url(url)  # password masked: this is what messages show
        try:
            with self._connection() as conn:
                conn.transport  # noqa: B018 - resolves the transport, or fails here
        except (KombuError, KeyError, ValueError, ImportError) as exc:
            raise fail(f"broker_url {self.safe_url!r} is not usable: {exc}") from None
        self._lock = threading.Lock()
        self._app: tuple[int, celery.Celery] | None = None

    def close(self) -> None:
        with self._lock:
            if self._app is not None and self._app[0] == os.getpid():
                self._app[1].close()
            self._app = None

    def query(self, query: Any, at: float) -> list[Sample]:
        """Measure now: queue lengths (one sample per queue) or the number of live workers."""
        check = query if isinstance(query, CeleryCheck) else check_celery(query, Position("<celery>"))
        if at < time.time() - _PAST_TOLERANCE:
            raise QueryError("the broker observes the present and cannot be queried in the past")
        with self._connection() as conn:
            try:
                conn.ensure_connection(max_retries=0)
                if check.measure == "queue_length":
                    return [
                        Sample({"queue": queue}, float(length))
                        for queue, length in zip(check.queues, self._lengths(conn, check.queues), strict=True)
                    ]
                return [Sample({}, float(self._workers(conn, check)))]
            except conn.channel_errors as exc:
                # The broker answered but refused, e.g. a queue name that is some other key.
                raise QueryError(f"broker refused the request: {_first_line(exc)}") from None
            except (KombuError, *conn.connection_errors) as exc:
                raise DatasourceError(
                    f"cannot reach broker {self.safe_url}: {_first_line(exc)}", self.name
                ) from None

    def _connection(self) -> kombu.Connection:
        return kombu.Connection(
            self.url,
            transport=self._transport,
            ssl=self._use_ssl or False,
            transport_options=self._options,
            connect_timeout=self.connect_timeout,
        )

    def _lengths(self, conn: kombu.Connection, queues: tuple[str, ...]) -> list[int]:
        lengths = []
        channel = conn.channel()
        try:
            for queue in queues:
                if isinstance(channel, virtual.Channel):
                    # Redis and the other virtual transports: the transport's own count, which
                    # sums the priority sub-queues and honours global_keyprefix (a passive
                    # declare does not: its existence check ignores the prefix).
                    lengths.append(int(channel._size(queue)))
                    continue
                try:
                    lengths.append(channel.queue_declare(queue=queue, passive=True).message_count)
                except conn.channel_errors as exc:
                    if str(getattr(exc, "reply_code", "")) != "404":
                        raise
                    # A queue nobody declared holds nothing. AMQP brokers close the channel on
                    # this answer, so carry on with a fresh one.
                    lengths.append(0)
                    channel.close()
                    channel = conn.channel()
        finally:
            channel.close()
        return lengths

    def _workers(self, conn: kombu.Connection, check: CeleryCheck) -> int:
        app = self._celery_app()
        timeout = check.timeout or _DEFAULT_PING_TIMEOUT
        if not check.queues:
            replies = app.control.ping(timeout=timeout, connection=conn) or []
            return len({host for reply in replies for host in reply})
        answers = app.control.inspect(timeout=timeout, connection=conn).active_queues() or {}
        wanted = set(check.queues)
        return sum(
            1
            for consumed in answers.values()
            if any(isinstance(q, dict) and q.get("name") in wanted for q in consumed or ())
        )

    def _celery_app(self) -> celery.Celery:
        # One app per process: a forked child builds its own rather than reuse the parent's pools.
        with self._lock:
            if self._app is None or self._app[0] != os.getpid():
                app = celery.Celery(f"alerting-{self.name}", broker=self.url, set_as_current=False)
                app.conf.update(
                    broker_transport_options=self._options,
                    # Celery would take CELERY_BROKER_URL from the environment over ``broker``.
                    broker_read_url=self.url,
                    broker_write_url=self.url,
                    broker_transport=self._transport,
                    broker_use_ssl=self._use_ssl,
                    control_exchange=self._control_exchange,
                    broker_connection_timeout=self.connect_timeout,
                    broker_connection_retry=False,
                    broker_connection_max_retries=0,
                )
                self._app = (os.getpid(), app)
            return self._app[1]


def _first_line(exc: BaseException) -> str:
    # redis-py wraps an error inside a pipeline as "Command # 1 (LLEN key) of pipeline caused error: ..."
    text = re.sub(r"^Command # \d+ \(.*?\) of pipeline caused error: ", "", str(exc).strip())
    return text.splitlines()[0] if text else type(exc).__name__


KIND: Kind = Kind(
    name="celery", field="celery", check=check_celery, open=CelerySource, default_datasource="celery"
)
