"""Redis addresses and clients: the one place a Redis URL is read and a Redis client is built.

Two URL forms, for the state store (``ALERTING_REDIS_URL``) and the Celery broker
(``CELERY_BROKER_URL``) alike:

* ``redis://[[user]:password@]host:6379/<db>`` (``rediss://`` for TLS, ``unix://`` too): one server,
  exactly as redis-py reads it.
* ``redis+sentinel://[[user]:password@]host1:26379,host2:26379,host3:26379/<master_name>/<db>``
  (``rediss+sentinel://`` for TLS): the primary of ``master_name`` as the sentinels name it, found
  again after a failover. The password is the primary's (and its replicas'); sentinels that want
  one of their own take ``?sentinel_password=...``. The other query options are redis-py's
  (:data:`SENTINEL_OPTIONS`); the ``ssl_*`` ones (the CA, a client certificate) hold for the
  sentinels and the data nodes alike, since TLS with sentinels is one set of certificates.

Celery's broker needs the sentinel form in kombu's own spelling (``sentinel://h1:26379;sentinel://
h2:26379/<db>`` plus the ``master_name`` transport option): :func:`celery_broker` translates.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit

import redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError, TimeoutError
from redis.sentinel import MasterNotFoundError, Sentinel, SentinelConnectionPool

from alerting.config.yamlfile import suggest
from alerting.errors import ConfigError

SENTINEL_SCHEMES = {"redis+sentinel": False, "rediss+sentinel": True}
DIRECT_SCHEMES = ("redis", "rediss", "unix")
REDIS_SCHEMES = (*DIRECT_SCHEMES, *SENTINEL_SCHEMES)
DEFAULT_SENTINEL_PORT = 26379


def _boolean(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected true or false")


def _file(text: str) -> str:
    # Checked here so a wrong path is a configuration error naming the setting, not a TLS failure
    # on the first command.
    if not os.path.isfile(text):
        raise ValueError(f"no such file: {text}")
    return text


def _cert_reqs(text: str) -> str:
    if text not in ("none", "optional", "required"):
        raise ValueError("expected none, optional or required")
    return text


def _positive(kind: Callable[[str], float]) -> Callable[[str], Any]:
    def read(text: str) -> Any:
        try:
            value: float | None = kind(text)
        except ValueError:
            value = None
        if value is None or value < 0:
            raise ValueError(f"expected a{'' if kind is float else ' whole'} number >= 0")
        return value

    return read


# The query options a sentinel URL takes, with how each is read. Any other is refused: redis-py
# would only stumble over it at the first connection, with a TypeError that names no setting.
SENTINEL_OPTIONS: Mapping[str, Callable[[str], Any]] = {
    "sentinel_password": str,
    "socket_timeout": _positive(float),
    "socket_connect_timeout": _positive(float),
    "socket_keepalive": _boolean,
    "retry_on_timeout": _boolean,
    "health_check_interval": _positive(float),
    "max_connections": _positive(int),
    "client_name": str,
    "ssl_ca_certs": _file,
    "ssl_certfile": _file,
    "ssl_keyfile": _file,
    "ssl_password": str,
    "ssl_cert_reqs": _cert_reqs,
    "ssl_check_hostname": _boolean,
}
# What the sentinels' own connections take from the URL besides TLS: they are short questions, so
# timeouts matter and pool sizes do not.
_SENTINEL_LINK = ("socket_timeout", "socket_connect_timeout", "socket_keepalive")


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
    address = RedisAddress(
        url=url,
        sentinels=tuple(sentinels),
        master_name=segments[0],
        db=db,
        username=username,
        password=password,
        tls=SENTINEL_SCHEMES[scheme],
        options=dict(parse_qsl(query, keep_blank_values=True)),
    )
    _typed(address, setting)
    return address


def _redacted(url: str) -> str:
    if "@" not in url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    auth, host = rest.rsplit("@", 1)
    return f"{scheme}://{auth.partition(':')[0]}:***@{host}"


def _typed(address: RedisAddress, setting: str = "Redis URL") -> dict[str, Any]:
    """The sentinel URL's query options as redis-py takes them; a ConfigError for one it cannot use."""
    out: dict[str, Any] = {}
    for key, text in address.options.items():
        read = SENTINEL_OPTIONS.get(key)
        if read is None:
            raise ConfigError(f"{setting}: unknown option {key!r}{suggest(key, SENTINEL_OPTIONS)}")
        if key.startswith("ssl_") and not address.tls:
            raise ConfigError(f"{setting}: option {key!r} is for TLS: use rediss+sentinel://")
        try:
            out[key] = read(text)
        except ValueError as exc:
            raise ConfigError(f"{setting}: option {key}={text!r}: {exc}") from None
    return out


def _tls(query: Mapping[str, Any]) -> dict[str, Any]:
    """The TLS options of a rediss+sentinel:// URL, never empty.

    kombu turns TLS on for the broker only when these are a non-empty mapping, so certificate
    checking, redis-py's default anyway, is spelled out when the URL says nothing.
    """
    return {"ssl_cert_reqs": "required", **{k: v for k, v in query.items() if k.startswith("ssl_")}}


class _Sentinels(Sentinel):
    """redis-py's Sentinel, whose "no primary" error says in one line what each sentinel answered
    (redis-py's carries a full client repr per sentinel, burying the reason, a TLS one above all)."""

    def discover_master(self, service_name: str) -> tuple[str, int]:
        reasons = []
        for number, sentinel in enumerate(self.sentinels):
            try:
                masters = sentinel.sentinel_masters()
            except (RedisConnectionError, ResponseError, TimeoutError) as exc:
                reasons.append(str(exc) or type(exc).__name__)
                continue
            state = masters.get(service_name) if isinstance(masters, dict) else None
            if state and self.check_master_state(state, service_name):
                # The sentinel that answered is asked first next time, as redis-py does.
                self.sentinels[0], self.sentinels[number] = sentinel, self.sentinels[0]
                return state["ip"], state["port"]
            where = sentinel.connection_pool.connection_kwargs
            reasons.append(f"sentinel {where.get('host')}:{where.get('port')} knows no usable primary")
        raise MasterNotFoundError(f"no primary found for {service_name!r}: " + "; ".join(reasons))


def connect(url: str, **options: Any) -> redis.Redis:
    """A client for ``url``: one server, or whichever node the sentinels say is primary now.

    ``options`` are redis-py connection options (timeouts, health checks) for the data connections;
    the sentinels are asked with the same timeouts.
    """
    address = parse_redis_url(url)
    if not address.is_sentinel:
        return redis.Redis.from_url(url, **options)
    query = _typed(address)
    sentinel_password = query.pop("sentinel_password", None)
    node: dict[str, Any] = {**query, **options, "db": address.db}
    if address.password is not None:
        node["password"] = address.password
    if address.username:
        node["username"] = address.username
    if address.tls:
        node.update(_tls(node), ssl=True)
    asking = {k: v for k, v in node.items() if k.startswith(("ssl", *_SENTINEL_LINK))}
    if sentinel_password:
        asking["password"] = sentinel_password
    manager = _Sentinels(list(address.sentinels), sentinel_kwargs=asking, **node)
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
    query = _typed(address, "CELERY_BROKER_URL")
    sentinel_password = query.pop("sentinel_password", None)
    # kombu reads the data connections' timeouts and pool size from transport options of these
    # names; its TLS options come from broker_use_ssl.
    options: dict[str, Any] = {k: v for k, v in query.items() if not k.startswith("ssl_")}
    options["master_name"] = address.master_name
    # Given sentinel_kwargs, redis-py stops copying the data connections' socket options to the
    # sentinels' connections, so the URL's go into them too.
    sentinel_kwargs: dict[str, Any] = {k: v for k, v in query.items() if k in _SENTINEL_LINK}
    if sentinel_password:
        sentinel_kwargs["password"] = sentinel_password
    use_ssl = None
    if address.tls:
        use_ssl = _tls(query)
        sentinel_kwargs.update(use_ssl, ssl=True)
    if sentinel_kwargs:
        options["sentinel_kwargs"] = sentinel_kwargs
    return BrokerConfig(kombu_url, options, use_ssl, SENTINEL_TRANSPORT)
