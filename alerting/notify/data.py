"""Alertmanager's template data model, plus the wording and config helpers every receiver shares.

:func:`template_data` turns a :class:`~alerting.notify.base.Notification` into the structure that
Alertmanager templates expect (``.Status``, ``.Alerts.Firing``, ``.CommonLabels.SortedPairs`` ...).
Every object answers both attribute access (``data.Status``) and key access (``data["Status"]``), so
a template engine can walk it either way.

The rest of the module is what receivers have in common: the default title (Alertmanager's
``__subject``), the key labels, the summary of one alert, the runbook link, the ``alerting silence
add`` hint, the severity mapping, and reading secrets and TLS settings from a receiver config.
"""

from __future__ import annotations

import shlex
import ssl
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from alerting import yamlfile
from alerting.durations import parse_duration
from alerting.errors import ConfigError, DurationError, Position
from alerting.notify.base import Notification, NotifyAlert

# ---------------------------------------------------------------------------------------------------
# Template data (Alertmanager's template.Data)

# Go's zero time.Time; Alertmanager shows it as the EndsAt of alerts that are still firing.
GO_ZERO_TIME = datetime(1, 1, 1, tzinfo=UTC)


class KV(dict[str, str]):
    """A label or annotation set with the helper methods Alertmanager templates call."""

    @property
    def SortedPairs(self) -> Pairs:  # noqa: N802 - the name templates use
        return Pairs(Pair(k, self[k]) for k in sorted(self))

    @property
    def Names(self) -> list[str]:  # noqa: N802
        return sorted(self)

    @property
    def Values(self) -> list[str]:  # noqa: N802
        return [self[k] for k in sorted(self)]

    def Remove(self, names: Iterable[str]) -> KV:  # noqa: N802
        drop = set(names)
        return KV({k: v for k, v in self.items() if k not in drop})


@dataclass(frozen=True)
class Pair:
    """One ``Name``/``Value`` entry of ``.SortedPairs``."""

    Name: str  # noqa: N815
    Value: str  # noqa: N815

    def __getitem__(self, key: str) -> str:
        return str(getattr(self, key))


class Pairs(list[Pair]):
    """``.SortedPairs``: a list of pairs with ``.Names`` and ``.Values``."""

    @property
    def Names(self) -> list[str]:  # noqa: N802
        return [p.Name for p in self]

    @property
    def Values(self) -> list[str]:  # noqa: N802
        return [p.Value for p in self]


class _Fields:
    """Key access by field name, so mapping-walking engines see the same names as attribute access."""

    def __getitem__(self, key: str) -> Any:
        if key not in self.keys():
            raise KeyError(key)
        return getattr(self, key)

    def keys(self) -> list[str]:
        return [f.name for f in fields(self)]  # type: ignore[arg-type]

    def __contains__(self, key: object) -> bool:
        return key in self.keys()


@dataclass(frozen=True)
class Alert(_Fields):
    """One alert as templates see it (Alertmanager's ``template.Alert``)."""

    Status: str  # noqa: N815
    Labels: KV  # noqa: N815
    Annotations: KV  # noqa: N815
    StartsAt: datetime  # noqa: N815
    EndsAt: datetime  # noqa: N815
    GeneratorURL: str  # noqa: N815
    Fingerprint: str  # noqa: N815


class Alerts(tuple[Alert, ...]):
    """``.Alerts``, with the ``.Firing`` and ``.Resolved`` views templates use."""

    @property
    def Firing(self) -> Alerts:  # noqa: N802
        return Alerts(a for a in self if a.Status == "firing")

    @property
    def Resolved(self) -> Alerts:  # noqa: N802
        return Alerts(a for a in self if a.Status == "resolved")


@dataclass(frozen=True)
class Data(_Fields):
    """The root object a notification template is executed with (Alertmanager's ``template.Data``)."""

    Receiver: str  # noqa: N815
    Status: str  # noqa: N815
    Alerts: Alerts  # noqa: N815
    GroupLabels: KV  # noqa: N815
    CommonLabels: KV  # noqa: N815
    CommonAnnotations: KV  # noqa: N815
    ExternalURL: str  # noqa: N815


def _time(seconds: float | None) -> datetime:
    return GO_ZERO_TIME if seconds is None else datetime.fromtimestamp(seconds, UTC)


def template_alert(alert: NotifyAlert) -> Alert:
    return Alert(
        Status=alert.status,
        Labels=KV(alert.labels),
        Annotations=KV(alert.annotations),
        StartsAt=_time(alert.starts_at),
        # A firing alert has no end yet; Alertmanager shows Go's zero time there.
        EndsAt=_time(alert.ends_at) if alert.status == "resolved" else GO_ZERO_TIME,
        GeneratorURL=alert.generator_url,
        Fingerprint=alert.fingerprint,
    )


def template_data(notification: Notification) -> Data:
    """The template data for one notification, as Alertmanager builds it."""
    return Data(
        Receiver=notification.receiver,
        Status=notification.status,
        Alerts=Alerts(template_alert(a) for a in notification.alerts),
        GroupLabels=KV(notification.group_labels),
        CommonLabels=KV(notification.common_labels),
        CommonAnnotations=KV(notification.common_annotations),
        ExternalURL=notification.external_url,
    )


# ---------------------------------------------------------------------------------------------------
# Default wording shared by the receivers

# Labels that say how urgent an alert is; the first one present wins.
SEVERITY_LABELS = ("severity", "priority")

# Our severity vocabulary folded onto the four levels PagerDuty (and our colours) know.
_LEVELS = {
    "p1": "critical",
    "critical": "critical",
    "p2": "error",
    "high": "error",
    "error": "error",
    "p3": "warning",
    "warning": "warning",
    "medium": "warning",
    "p4": "info",
    "low": "info",
    "info": "info",
}

# Labels that identify an alert rather than place it; they never count as "key labels".
_NOT_KEY = frozenset({"alertname", *SEVERITY_LABELS})


def severity(labels: Mapping[str, str]) -> str:
    """The alert's severity as written (``P1``, ``critical`` ...), or "" when it has none."""
    return next((labels[k] for k in SEVERITY_LABELS if labels.get(k)), "")


def level(labels: Mapping[str, str], default: str = "error") -> str:
    """``critical``/``error``/``warning``/``info`` for ``labels``; ``default`` when unknown."""
    return _LEVELS.get(severity(labels).strip().lower(), default)


def notification_severity(notification: Notification) -> str:
    """The most urgent severity among the group's firing alerts (all alerts when none fire)."""
    alerts = notification.firing or notification.alerts
    order = ["critical", "error", "warning", "info"]
    best = min(alerts, key=lambda a: order.index(level(a.labels, "info")), default=None)
    return severity(best.labels) if best else ""


def title(notification: Notification) -> str:
    """Alertmanager's default subject: ``[FIRING:2] HighErrorRate (api critical)``."""
    status = notification.status.upper()
    head = f"[{status}:{len(notification.firing)}]" if notification.firing else f"[{status}]"
    group = notification.group_labels
    parts = [head, *(group[k] for k in sorted(group))]
    common = notification.common_labels
    rest = [common[k] for k in sorted(common) if k not in group]
    text = " ".join(p for p in parts if p)
    return f"{text} ({' '.join(rest)})" if rest else text


def key_labels(notification: Notification) -> list[tuple[str, str]]:
    """Labels that tell where the problem is: group labels first, then the other common labels."""
    group = notification.group_labels
    common = notification.common_labels
    ordered = [(k, group[k]) for k in sorted(group)] + [
        (k, common[k]) for k in sorted(common) if k not in group
    ]
    return [(k, v) for k, v in ordered if k not in _NOT_KEY and v]


def alertname(notification: Notification) -> str:
    name = notification.common_labels.get("alertname") or notification.group_labels.get("alertname")
    if name:
        return name
    names = sorted({a.labels.get("alertname", "") for a in notification.alerts} - {""})
    return ", ".join(names)


def alert_summary(alert: NotifyAlert) -> str:
    """One line saying what is wrong with ``alert``."""
    notes = alert.annotations
    for key in ("summary", "message", "description"):
        if notes.get(key):
            return notes[key].strip().splitlines()[0]
    return alert.labels.get("alertname", "alert")


def alert_description(alert: NotifyAlert) -> str:
    """The longer explanation, when there is one besides the summary."""
    notes = alert.annotations
    text = notes.get("description", "").strip()
    return text if text and text != alert_summary(alert) else ""


def format_value(value: float | None) -> str:
    return "" if value is None else f"{value:.4g}"


def is_web_link(url: str) -> bool:
    """Only http(s) links become buttons and hrefs, so a label cannot smuggle ``javascript:``."""
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def _annotation_link(notification: Notification, *keys: str) -> str:
    for source in (notification.common_annotations, *(a.annotations for a in notification.alerts)):
        for key in keys:
            url = source.get(key, "")
            if url and is_web_link(url):
                return url.strip()
    return ""


def runbook_url(notification: Notification) -> str:
    return _annotation_link(notification, "runbook_url", "runbook")


def dashboard_url(notification: Notification) -> str:
    return _annotation_link(notification, "dashboard_url", "dashboard", "grafana_url")


def generator_url(notification: Notification) -> str:
    return next((a.generator_url for a in notification.alerts if is_web_link(a.generator_url)), "")


def silence_command(notification: Notification) -> str:
    """The command that silences this group (its group labels, or its common labels)."""
    labels = notification.group_labels or notification.common_labels
    if not labels:
        labels = {"alertname": alertname(notification)} if alertname(notification) else {}
    matchers = [shlex.quote(f"{k}={v}") for k, v in sorted(labels.items())]
    return " ".join(["alerting silence add", *matchers, "--duration", "2h", "--comment", shlex.quote("...")])


def _when(seconds: float | None) -> str:
    if seconds is None:
        return ""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def default_text(notification: Notification) -> str:
    """The plain-text body every receiver can fall back on (email text part, console, tests)."""
    lines = [title(notification), ""]
    sev = notification_severity(notification)
    if sev:
        lines.append(f"Severity: {sev}")
    where = key_labels(notification)
    if where:
        lines.append("Where: " + ", ".join(f"{k}={v}" for k, v in where))
    for heading, alerts in (("Firing", notification.firing), ("Resolved", notification.resolved)):
        if not alerts:
            continue
        lines += ["", f"{heading} ({len(alerts)}):"]
        for alert in alerts:
            value = format_value(alert.value)
            lines.append(f"- {alert_summary(alert)}" + (f" (value {value})" if value else ""))
            description = alert_description(alert)
            if description:
                lines.append(f"  {description}")
            lines.append("  Labels: " + ", ".join(f"{k}={v}" for k, v in sorted(alert.labels.items())))
            since = f"  Since: {_when(alert.starts_at)}"
            if alert.status == "resolved" and alert.ends_at is not None:
                since += f", resolved: {_when(alert.ends_at)}"
            lines.append(since)
            if alert.generator_url:
                lines.append(f"  Source: {alert.generator_url}")
    lines.append("")
    if runbook_url(notification):
        lines.append(f"Runbook: {runbook_url(notification)}")
    if dashboard_url(notification):
        lines.append(f"Dashboard: {dashboard_url(notification)}")
    if notification.firing:
        lines.append(f"Silence: {silence_command(notification)}")
    return "\n".join(lines).rstrip() + "\n"


# ---------------------------------------------------------------------------------------------------
# Reading receiver configs

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

    Secrets in files lose one trailing newline, the way editors and ``kubectl create secret`` leave
    them; nothing else is stripped.
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
                text = Path(str(path)).read_text(encoding="utf-8")
            except OSError as exc:
                raise config_error(
                    source, file_key, f"{what}: cannot read {file_key} {path}: {exc.strerror}"
                ) from None
            return text[:-1] if text.endswith("\n") else text
    return ""


def tls_context(config: Mapping[str, Any], what: str) -> ssl.SSLContext | None:
    """An SSL context from Alertmanager's ``tls_config`` under ``config``; ``None``: system defaults.

    Supported: ``ca_file``, ``cert_file``/``key_file`` (client certificates), ``insecure_skip_verify``
    and ``min_version``.
    """
    tls = mapping(config, "tls_config", what)
    if not tls:
        return None
    allowed = ("ca_file", "cert_file", "key_file", "insecure_skip_verify", "min_version")
    check_fields(tls, allowed, f"{what} tls_config")
    context = ssl.create_default_context()
    try:
        if tls.get("ca_file"):
            context.load_verify_locations(cafile=str(tls["ca_file"]))
        if tls.get("cert_file"):
            context.load_cert_chain(str(tls["cert_file"]), str(tls.get("key_file") or "") or None)
    except (OSError, ssl.SSLError) as exc:
        raise config_error(tls, None, f"{what}: cannot load TLS files: {exc}") from None
    if boolean(tls, "insecure_skip_verify", what, False):
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    minimum = string(tls, "min_version", what)
    if minimum:
        versions = {"TLS12": ssl.TLSVersion.TLSv1_2, "TLS13": ssl.TLSVersion.TLSv1_3}
        if minimum not in versions:
            raise config_error(tls, "min_version", f"{what}: min_version must be TLS12 or TLS13")
        context.minimum_version = versions[minimum]
    return context


@dataclass(frozen=True)
class HttpSettings:
    """What we honour of Alertmanager's ``http_config``."""

    ssl_context: ssl.SSLContext | None = None
    basic_auth: tuple[str, str] | None = None
    authorization: str = ""  # a complete Authorization header value, e.g. "Bearer xoxb-..."
    proxy_url: str = ""


_HTTP_FIELDS = (
    "tls_config",
    "basic_auth",
    "authorization",
    "bearer_token",
    "bearer_token_file",
    "proxy_url",
    "follow_redirects",
    "enable_http2",
)


def http_settings(config: Mapping[str, Any], what: str) -> HttpSettings:
    """Parse the receiver's ``http_config`` (TLS, basic auth, Authorization, proxy)."""
    http = mapping(config, "http_config", what)
    check_fields(http, _HTTP_FIELDS, f"{what} http_config")
    basic = mapping(http, "basic_auth", what)
    check_fields(basic, ("username", "password", "password_file"), f"{what} basic_auth")
    auth = mapping(http, "authorization", what)
    check_fields(auth, ("type", "credentials", "credentials_file"), f"{what} authorization")
    header = ""
    credentials = secret(auth, "credentials", what) or secret(http, "bearer_token", what)
    if credentials:
        header = f"{string(auth, 'type', what, 'Bearer')} {credentials}"
    if basic and header:
        raise config_error(http, "basic_auth", f"{what}: set at most one of basic_auth and authorization")
    return HttpSettings(
        ssl_context=tls_context(http, what),
        basic_auth=(string(basic, "username", what), secret(basic, "password", what)) if basic else None,
        authorization=header,
        proxy_url=string(http, "proxy_url", what),
    )
