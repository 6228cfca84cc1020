"""Redis addresses and clients: the one place a Redis URL is read and a Redis client is built.

Two URL forms, for the state store (``ALERTING_REDIS_URL``) and the Celery broker
(``CELERY_BROKER_URL``) alike:

* ``redis://[[user]:password@]host:6379/<db>`` (``rediss://`` for TLS, ``unix://`` too): one server,
  exactly as redis-py reads it.
* ``redis+sentinel://[[user]:password@]host1:26379,host2:26379,host3:26379/<master_name>/<db>``
  (``rediss+sentinel://`` for TLS): the primary of ``master_name`` as the sentinels name it, found
  again after a failover. The password is the primary's (and its replicas'); sentinels that want
  one of their own take ``?sentinel_password=...``. Other query options (``socket_timeout``,
  ``ssl_ca_certs``, ``ssl_cert_reqs``, ...) apply to the primary's connections.

Celery's broker needs the sentinel form in kombu's own spelling (``sentinel://h1:26379;sentinel://
h2:26379/<db>`` plus the ``master_name`` transport option): :func:`celery_broker` translates.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit

import redis
from redis.sentinel import Sentinel, SentinelConnectionPool

from alerting.errors import ConfigError

SENTINEL_SCHEMES = {"redis+sentinel": False, "rediss+sentinel": True}
DIRECT_SCHEMES = ("redis", "rediss", "unix")
REDIS_SCHEMES = (*DIRECT_SCHEMES, *SENTINEL_SCHEMES)
DEFAULT_SENTINEL_PORT = 26379
# Query options that take a number; everything else is passed on as text.
_NUMERIC = ("socket_timeout", "socket_connect_timeout", "health_check_interval", "max_connections")


@dataclass(frozen=True)
class RedisAddress:
    """Where a Redis URL points: one server, or the primary that sentinels name."""

    url: str
    sentinels: tuple[tuple[str, int], ...] = ()
    master_name: str = ""
    db: int = 0
    username: str | None = None
    password: str | None = None
    tls: bool = False
    options: Mapping[str, str] = field(default_factory=dict)

    @property
    def is_sentinel(self) -> bool:
        return bool(self.sentinels)

    def safe(self) -> str:
        """The address without its password, for logs and status output."""
        if not self.is_sentinel:
            parts = urlsplit(self.url)
            if parts.password is None:
                return self.url
            host = parts.netloc.rsplit("@", 1)[1]
            user = parts.username or ""
            return parts._replace(netloc=f"{user}:***@{host}").geturl()
        scheme = "rediss+sentinel" if self.tls else "redis+sentinel"
        hosts = ",".join(f"{h}:{p}" for h, p in self.sentinels)
        auth = f"{self.username or ''}:***@" if self.password else ""
        return f"{scheme}://{auth}{hosts}/{self.master_name}/{self.db}"


def parse_redis_url(url: str, setting: str = "Redis URL") -> RedisAddress:
    """Read ``url`` (either form above); a ConfigError naming ``setting`` says what is wrong."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme in DIRECT_SCHEMES:
        return RedisAddress(url=url)
    if scheme not in SENTINEL_SCHEMES:
        raise ConfigError(
            f"{setting}: expected redis://host:6379/0, rediss://..., or "
            f"redis+sentinel://host1:26379,host2:26379/<master_name>/<db>, got {_redacted(url)!r}"
        )
    rest = url.split("://", 1)[1]
    netloc, _, tail = rest.partition("/")
    path, _, query = tail.partition("?")
    username = password = None
    if "@" in netloc:
        auth, netloc = netloc.rsplit("@", 1)
        user, colon, secret = auth.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if colon else None
    sentinels = []
    for item in netloc.split(","):
        host, colon, port = item.strip().rpartition(":") if ":" in item else (item.strip(), "", "")
        host = host.strip("[]")
        if not host:
            raise ConfigError(f"{setting}: a sentinel address is empty in {_redacted(url)!r}")
        try:
            sentinels.append((host, int(port) if colon else DEFAULT_SENTINEL_PORT))
        except ValueError:
            raise ConfigError(f"{setting}: sentinel port {port!r} is not a number") from None
    segments = [unquote(s) for s in path.split("/") if s]
    if not segments:
        raise ConfigError(f"{setting}: the sentinel URL names no primary: add /<master_name>/<db>")
    if len(segments) > 2:
        raise ConfigError(f"{setting}: expected /<master_name>/<db> after the sentinels, got /{path}")
    try:
        db = int(segments[1]) if len(segments) == 2 else 0
    except ValueError:
        raise ConfigError(f"{setting}: database {segments[1]!r} is not a number") from None
    return RedisAddress(
        url=url,
        sentinels=tuple(sentinels),
        master_name=segments[0],
        db=db,
        username=username,
        password=password,
        tls=SENTINEL_SCHEMES[scheme],
        options=dict(parse_qsl(query)),
    )


def _redacted(url: str) -> str:
    if "@" not in url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    auth, host = rest.rsplit("@", 1)
    return f"{scheme}://{auth.partition(':')[0]}:***@{host}"


def _typed(options: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in options.items():
        out[key] = float(value) if key in _NUMERIC and key != "max_connections" else value
        if key == "max_connections":
            out[key] = int(value)
    return out


def connect(url: str, **options: Any) -> redis.Redis:
    """A client for ``url``: one server, or whichever node the sentinels say is primary now.

    ``options`` are redis-py connection options (timeouts, health checks) for the data connections;
    the sentinels are asked with the same timeouts.
    """
    address = parse_redis_url(url)
    if not address.is_sentinel:
        return redis.Redis.from_url(url, **options)
    query = _typed(address.options)
    sentinel_password = query.pop("sentinel_password", None)
    node: dict[str, Any] = {**query, **options, "db": address.db}
    if address.password is not None:
        node["password"] = address.password
    if address.username:
        node["username"] = address.username
    if address.tls:
        node["ssl"] = True
    asking: dict[str, Any] = {k: v for k, v in node.items() if k.startswith(("socket_", "ssl"))}
    if sentinel_password:
        asking["password"] = sentinel_password
    manager = Sentinel(list(address.sentinels), sentinel_kwargs=asking, **node)
    return manager.master_for(address.master_name, redis_class=redis.Redis, **node)


def primary_address(client: redis.Redis) -> str:
    """``host:port`` of the node ``client`` writes to now (asking the sentinels for a sentinel URL)."""
    pool = client.connection_pool
    if isinstance(pool, SentinelConnectionPool):
        host, port = pool.get_master_address()
        return f"{host}:{port}"
    kwargs = pool.connection_kwargs
    if "path" in kwargs:
        return f"unix:{kwargs['path']}"
    return f"{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}"


@dataclass(frozen=True)
class BrokerConfig:
    """What Celery (kombu) needs for a broker URL: its URL and transport options (and TLS)."""

    url: str
    transport_options: Mapping[str, Any] = field(default_factory=dict)
    use_ssl: Mapping[str, Any] | None = None
    transport: str | None = None


# kombu's sentinel transport with the failover fix (see alerting/worker/broker.py).
SENTINEL_TRANSPORT = "alerting.worker.broker:SentinelTransport"


def celery_broker(url: str) -> BrokerConfig:
    """Our broker URL in kombu's terms; any URL that is not a sentinel URL passes unchanged."""
    if "://" not in url or url.split("://", 1)[0].lower() not in SENTINEL_SCHEMES:
        return BrokerConfig(url)
    address = parse_redis_url(url, "CELERY_BROKER_URL")
    auth = ""
    if address.password is not None or address.username:
        auth = f"{quote(address.username or '', safe='')}:{quote(address.password or '', safe='')}@"
    kombu_url = ";".join(f"sentinel://{auth}{host}:{port}/{address.db}" for host, port in address.sentinels)
    query = _typed(address.options)
    options: dict[str, Any] = {"master_name": address.master_name}
    sentinel_password = query.pop("sentinel_password", None)
    sentinel_kwargs: dict[str, Any] = {}
    if sentinel_password:
        sentinel_kwargs["password"] = sentinel_password
    use_ssl = None
    if address.tls:
        use_ssl = {k: v for k, v in query.items() if k.startswith("ssl_")}
        sentinel_kwargs["ssl"] = True
        sentinel_kwargs.update(use_ssl)
    if sentinel_kwargs:
        options["sentinel_kwargs"] = sentinel_kwargs
    return BrokerConfig(kombu_url, options, use_ssl, SENTINEL_TRANSPORT)
