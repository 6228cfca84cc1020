"""Reading one receiver configuration entry: its fields with file:line:col errors, secrets from
``*_file``, and ``tls_config``/``http_config`` through :mod:`alerting.transport`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import structlog

from alerting import transport
from alerting.config import yamlfile
from alerting.durations import parse_duration
from alerting.errors import ConfigError, DurationError, Position

log = structlog.get_logger(__name__)


def position(config: Mapping[str, Any], key: str | None = None) -> Position | None:
    """Where ``key`` (or the mapping itself) was written, when the config came from a YAML file."""
    if isinstance(config, yamlfile.Mapping):
        return config.at(key) if key else config.pos
    return None


def config_error(config: Mapping[str, Any], key: str | None, message: str) -> ConfigError:
    return ConfigError(message, position(config, key))


def check_fields(config: Mapping[str, Any], allowed: Iterable[str], what: str) -> None:
    """Reject unknown keys (typos) with a did-you-mean, at the key's position when known."""
    allowed = tuple(allowed)
    for key in config:
        if key not in allowed:
            pos = config.key_pos.get(key) if isinstance(config, yamlfile.Mapping) else None
            raise ConfigError(f'unknown field "{key}" in {what}{yamlfile.suggest(key, allowed)}', pos)


def string(config: Mapping[str, Any], key: str, what: str, default: str = "") -> str:
    value = config.get(key, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise config_error(config, key, f"{what}: {key} must be a string, got {yamlfile.type_name(value)}")
    return str(value)


def boolean(config: Mapping[str, Any], key: str, what: str, default: bool) -> bool:
    value = config.get(key, default)
    if not isinstance(value, bool):
        raise config_error(config, key, f"{what}: {key} must be true or false, got {value!r}")
    return value


def duration(config: Mapping[str, Any], key: str, what: str, default: float) -> float:
    """A Prometheus-style duration (``10s``, ``1m``) in seconds."""
    value = config.get(key)
    if value is None or value == "":
        return default
    try:
        seconds = parse_duration(str(value))
    except DurationError as exc:
        raise config_error(config, key, f"{what}: {key}: {exc}") from None
    if seconds <= 0:
        raise config_error(config, key, f"{what}: {key} must be more than 0")
    return seconds


def mapping(config: Mapping[str, Any], key: str, what: str) -> Mapping[str, Any]:
    value = config.get(key) or {}
    if not isinstance(value, Mapping):
        raise config_error(config, key, f"{what}: {key} must be a mapping, got {yamlfile.type_name(value)}")
    return value


def string_list(config: Mapping[str, Any], key: str, what: str) -> list[str]:
    value = config.get(key) or []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str | int) for v in value):
        raise config_error(config, key, f"{what}: {key} must be a list of strings")
    return [str(v) for v in value]


def secret(
    config: Mapping[str, Any],
    key: str,
    what: str,
    *,
    global_config: Mapping[str, Any] | None = None,
    global_key: str | None = None,
) -> str:
    """A secret from ``key`` or from the file named by ``key_file`` (then the global pair), or "".

    Files are read now, by :func:`alerting.transport.read_secret_file` (surrounding whitespace
    trimmed); an unreadable one is a configuration error at ``key_file``.
    """
    for source, name in ((config, key), (global_config or {}, global_key)):
        if not name:
            continue
        inline, file_key = source.get(name), f"{name}_file"
        path = source.get(file_key)
        if inline and path:
            raise config_error(source, file_key, f"{what}: set at most one of {name} and {file_key}")
        if inline:
            return string(source, name, what)
        if path:
            try:
                return transport.read_secret_file(str(path), file_key)
            except transport.SecretFileError as exc:
                raise config_error(source, file_key, f"{what}: {exc}") from None
    return ""


def tls_config(config: Mapping[str, Any], what: str) -> transport.TLSConfig:
    """The ``tls_config`` under ``config``, its files checked now (email's TLS settings)."""
    tls = transport.parse_tls_config(
        config.get("tls_config"), f"{what} tls_config", position(config, "tls_config")
    )
    transport.check_tls_files(tls, what, position(config, "tls_config"))
    return tls


def http_config(
    config: Mapping[str, Any], what: str, global_config: Mapping[str, Any] | None = None
) -> transport.HTTPConfig:
    """The receiver's ``http_config`` (Prometheus's common one), its TLS files checked now; with
    ``global_config``, an entry without one takes the global ``http_config``, as in Alertmanager."""
    source = config
    if config.get("http_config") is None and global_config and global_config.get("http_config") is not None:
        source = global_config
    where = position(source, "http_config")
    http = transport.parse_http_config(source.get("http_config"), f"{what} http_config", where)
    transport.check_tls_files(http.tls_config, what, where)
    return http
