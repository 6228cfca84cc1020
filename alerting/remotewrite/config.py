"""``remote_write:`` in alerting.yml: Prometheus's remote_write entries, parsed into frozen data.

The fields are Prometheus's own (2.42, plus ``sample_age_limit`` from later versions), so an entry
can be copied from a prometheus.yml. What this worker has no use for is accepted and ignored
(``metadata_config``, the shard counts) or, when it would promise something we do not do, refused
(``send_exemplars: true``, ``sigv4``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from alerting.config import yamlfile
from alerting.config.env import expand
from alerting.durations import parse_duration
from alerting.errors import ConfigError, DurationError, Position
from alerting.remotewrite.relabel import RelabelConfig, parse_relabel_configs
from alerting.transport import (
    HTTP_CONFIG_FIELDS,
    HTTPConfig,
    check_tls_files,
    optional_mapping,
    parse_http_config,
)

__all__ = ["QueueConfig", "RemoteWriteTarget", "parse_remote_write"]

_FIELDS = (
    "url",
    "name",
    "remote_timeout",
    "headers",
    "write_relabel_configs",
    "queue_config",
    "metadata_config",
    "send_exemplars",
    "send_native_histograms",
    "sigv4",
    "azuread",
)
_QUEUE_FIELDS = (
    "capacity",
    "max_shards",
    "min_shards",
    "max_samples_per_send",
    "batch_send_deadline",
    "min_backoff",
    "max_backoff",
    "retry_on_http_429",
    "sample_age_limit",
)
_METADATA_FIELDS = ("send", "send_interval", "max_samples_per_send")
# Headers Prometheus refuses in remote_write, lower-cased: the protocol's own, hop-by-hop ones, and
# the ones an authentication setting writes.
_RESERVED_HEADERS = frozenset(
    {
        "host",
        "content-encoding",
        "content-length",
        "content-type",
        "user-agent",
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "www-authenticate",
        "accept-encoding",
        "x-prometheus-remote-write-version",
        "x-prometheus-remote-read-version",
        "x-amz-date",
        "x-amz-security-token",
        "x-amz-content-sha256",
    }
)


@dataclass(frozen=True)
class QueueConfig:
    """``queue_config``. ``capacity`` bounds the samples held for the target in all (Prometheus
    bounds each shard); we send from one thread, so ``max_shards``/``min_shards`` are kept only so
    a copied entry loads."""

    capacity: int = 2500
    max_shards: int = 200
    min_shards: int = 1
    max_samples_per_send: int = 500
    batch_send_deadline: float = 5.0
    min_backoff: float = 0.03
    max_backoff: float = 5.0
    # Prometheus 2.42 drops a batch answered 429 unless this is set; a recorded result dropped
    # because the receiver was briefly busy is lost for good, so we retry by default.
    retry_on_http_429: bool = True
    sample_age_limit: float = 0.0  # 0: no limit


@dataclass(frozen=True)
class RemoteWriteTarget:
    """One ``remote_write`` entry: where to send, how, and what to send there."""

    url: str
    name: str = ""
    remote_timeout: float = 30.0
    headers: tuple[tuple[str, str], ...] = ()
    write_relabel_configs: tuple[RelabelConfig, ...] = ()
    http: HTTPConfig = field(default_factory=HTTPConfig)
    queue: QueueConfig = field(default_factory=QueueConfig)
    pos: Position | None = field(default=None, compare=False)

    @property
    def remote(self) -> str:
        """How logs and metrics name the target: its ``name``, else a short hash of its URL."""
        if self.name:
            return self.name
        return hashlib.sha256(self.url.encode()).hexdigest()[:6]

    @property
    def shown_url(self) -> str:
        """The URL without the ``user:password@`` it may carry, for logs and errors."""
        return str(httpx.URL(self.url).copy_with(username=None, password=None))


def parse_remote_write(
    raw: Any, pos: Position | None, *, env: Mapping[str, str] | None = None
) -> tuple[RemoteWriteTarget, ...]:
    """The ``remote_write:`` list (None: no targets). With ``env``, ``${NAME}`` references are
    expanded first and one to an unset variable without a default is an error naming it.
    Raises ConfigError at the ``file:line:col`` of the first problem."""
    if raw is None:
        return ()
    if env is not None:
        expansion = expand(raw, env, pos)
        missing = [u for u in expansion.unset if u.default is None]
        if missing:
            raise ConfigError(
                f"remote_write: environment variable {missing[0].name} is not set", missing[0].pos
            )
        raw = expansion.value
    if not isinstance(raw, list):
        raise ConfigError(f"remote_write must be a list, got {yamlfile.type_name(raw)}", pos)
    item_pos = raw.item_pos if isinstance(raw, yamlfile.Sequence) else [pos] * len(raw)
    targets: list[RemoteWriteTarget] = []
    names: dict[str, Position | None] = {}
    for index, (item, at) in enumerate(zip(raw, item_pos, strict=True)):
        target = _target(item, f"remote_write[{index}]", at)
        if target.name and target.name in names:
            raise ConfigError(f'remote_write: the name "{target.name}" is used twice', _pos(item, "name", at))
        if not target.name and target.remote in names:
            # Metrics and logs would mix the two: unnamed targets are told apart by their URL.
            raise ConfigError(
                f"remote_write: {target.shown_url} is written to twice; give the entries distinct names",
                _pos(item, "url", at),
            )
        names[target.remote] = at
        targets.append(target)
    return tuple(targets)


def _pos(raw: Any, key: str | None, fallback: Position | None) -> Position | None:
    if isinstance(raw, yamlfile.Mapping):
        return raw.at(key) if key else raw.pos
    return fallback


def _key_pos(raw: Any, key: str, fallback: Position | None) -> Position | None:
    return raw.key_pos.get(key, raw.pos) if isinstance(raw, yamlfile.Mapping) else fallback


def _fields(raw: Mapping[str, Any], allowed: tuple[str, ...], what: str, pos: Position | None) -> None:
    for key in raw:
        if key not in allowed:
            raise ConfigError(
                f'unknown field "{key}" in {what}{yamlfile.suggest(str(key), allowed)}',
                _key_pos(raw, key, pos),
            )


def _text(raw: Mapping[str, Any], key: str, what: str, pos: Position | None) -> str:
    value = raw.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ConfigError(
            f"{what}: {key} must be a string, got {yamlfile.type_name(value)}", _pos(raw, key, pos)
        )
    return value


def _duration(raw: Mapping[str, Any], key: str, what: str, default: float, pos: Position | None) -> float:
    value = raw.get(key)
    if value is None:
        return default
    try:
        return parse_duration(str(value) if isinstance(value, int) and not isinstance(value, bool) else value)
    except DurationError as exc:
        raise ConfigError(f"{what}: {key}: {exc}", _pos(raw, key, pos)) from None


def _count(raw: Mapping[str, Any], key: str, what: str, default: int, pos: Position | None) -> int:
    value = raw.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{what}: {key} must be a whole number above 0, got {value!r}", _pos(raw, key, pos))
    return value


def _flag(raw: Mapping[str, Any], key: str, what: str, default: bool, pos: Position | None) -> bool:
    value = raw.get(key)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise ConfigError(f"{what}: {key} must be true or false, got {value!r}", _pos(raw, key, pos))
    return value


def _target(raw: Any, what: str, pos: Position | None) -> RemoteWriteTarget:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{what} must be a mapping, got {yamlfile.type_name(raw)}", pos)
    pos = _pos(raw, None, pos)
    _fields(raw, (*_FIELDS, *HTTP_CONFIG_FIELDS), what, pos)
    url = _text(raw, "url", what, pos)
    if not url:
        raise ConfigError(f"{what}: url is required", pos)
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise ConfigError(f"{what}: url {url!r} is not a URL: {exc}", _pos(raw, "url", pos)) from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ConfigError(
            f"{what}: url must be an http:// or https:// URL with a host", _pos(raw, "url", pos)
        )
    name = _text(raw, "name", what, pos)
    if name:
        what = f'remote_write "{name}"'
    for key in ("send_exemplars", "send_native_histograms"):
        if _flag(raw, key, what, False, pos):
            kind = "exemplars" if key == "send_exemplars" else "native histograms"
            raise ConfigError(
                f"{what}: {key} cannot be true: the worker records float samples only,"
                f" it has no {kind} to send",
                _pos(raw, key, pos),
            )
    for key in ("sigv4", "azuread"):
        if raw.get(key) is not None:
            raise ConfigError(
                f"{what}: {key} is not supported here; authenticate with basic_auth, authorization or oauth2"
                " (or send through a proxy that signs requests)",
                _key_pos(raw, key, pos),
            )
    _metadata(raw.get("metadata_config"), what, _pos(raw, "metadata_config", pos))
    http = parse_http_config(raw, what, pos, beside=_FIELDS)
    check_tls_files(http.tls_config, what, _pos(raw, "tls_config", pos))
    timeout = _duration(raw, "remote_timeout", what, 30.0, pos)
    if timeout <= 0:
        raise ConfigError(f"{what}: remote_timeout must be above zero", _pos(raw, "remote_timeout", pos))
    return RemoteWriteTarget(
        url=url,
        name=name,
        remote_timeout=timeout,
        headers=_headers(raw.get("headers"), what, _pos(raw, "headers", pos)),
        write_relabel_configs=parse_relabel_configs(
            raw.get("write_relabel_configs"),
            f"{what} write_relabel_configs",
            _pos(raw, "write_relabel_configs", pos),
        ),
        http=http,
        queue=_queue(raw.get("queue_config"), what, _pos(raw, "queue_config", pos)),
        pos=pos,
    )


def _headers(raw: Any, what: str, pos: Position | None) -> tuple[tuple[str, str], ...]:
    headers = optional_mapping(raw, f"{what} headers", pos)
    out = []
    for key, value in headers.items():
        at = _key_pos(headers, key, pos)
        lowered = str(key).lower()
        if lowered == "authorization":
            raise ConfigError(
                f"{what}: the Authorization header is set through basic_auth, authorization or oauth2,"
                " not headers",
                at,
            )
        if lowered in _RESERVED_HEADERS:
            raise ConfigError(f"{what}: {key} is a reserved header; it cannot be set in headers", at)
        if not isinstance(value, str):
            raise ConfigError(
                f"{what}: header {key} must be a string, got {yamlfile.type_name(value)}",
                _pos(headers, key, pos),
            )
        out.append((str(key), value))
    return tuple(out)


def _queue(raw: Any, what: str, pos: Position | None) -> QueueConfig:
    where = f"{what} queue_config"
    queue = optional_mapping(raw, where, pos)
    pos = _pos(queue, None, pos)
    _fields(queue, _QUEUE_FIELDS, where, pos)
    d = QueueConfig()
    config = QueueConfig(
        capacity=_count(queue, "capacity", where, d.capacity, pos),
        max_shards=_count(queue, "max_shards", where, d.max_shards, pos),
        min_shards=_count(queue, "min_shards", where, d.min_shards, pos),
        max_samples_per_send=_count(queue, "max_samples_per_send", where, d.max_samples_per_send, pos),
        batch_send_deadline=_duration(queue, "batch_send_deadline", where, d.batch_send_deadline, pos),
        min_backoff=_duration(queue, "min_backoff", where, d.min_backoff, pos),
        max_backoff=_duration(queue, "max_backoff", where, d.max_backoff, pos),
        retry_on_http_429=_flag(queue, "retry_on_http_429", where, d.retry_on_http_429, pos),
        sample_age_limit=_duration(queue, "sample_age_limit", where, d.sample_age_limit, pos),
    )
    if config.batch_send_deadline <= 0:
        raise ConfigError(
            f"{where}: batch_send_deadline must be above zero", _pos(queue, "batch_send_deadline", pos)
        )
    return config


def _metadata(raw: Any, what: str, pos: Position | None) -> None:
    # Accepted so an entry copied from prometheus.yml loads; the worker sends no metric metadata.
    where = f"{what} metadata_config"
    metadata = optional_mapping(raw, where, pos)
    pos = _pos(metadata, None, pos)
    _fields(metadata, _METADATA_FIELDS, where, pos)
    _flag(metadata, "send", where, True, pos)
    _duration(metadata, "send_interval", where, 60.0, pos)
    _count(metadata, "max_samples_per_send", where, 500, pos)
