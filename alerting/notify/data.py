"""Alertmanager's template data model, plus the wording and config helpers every receiver shares.

:func:`template_data` turns a :class:`~alerting.notify.base.Notification` into the structure that
Alertmanager templates expect (``.Status``, ``.Alerts.Firing``, ``.CommonLabels.SortedPairs`` ...).
:func:`render` executes a receiver's template field (Slack ``text``, PagerDuty ``description`` ...)
over it with our Go-template engine; Alertmanager's default template names (``{{ template
"slack.default.title" . }}``, ``__subject`` ...) are defined and render our defaults, so routing files
written for Alertmanager keep working.

The rest of the module is what receivers have in common: the default title (Alertmanager's
``__subject``), the key labels, the summary of one alert, the runbook link, the ``alerting silence
add`` hint, the severity mapping, and reading a receiver config's fields (secrets, ``tls_config`` and
``http_config`` through :mod:`alerting.transport`).
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar, Protocol
from urllib.parse import urlsplit

import structlog

from alerting import templating, transport
from alerting.config import yamlfile
from alerting.durations import parse_duration
from alerting.errors import ConfigError, DurationError, Position, TemplateError
from alerting.notify.base import Notification, NotifyAlert
from alerting.templating import GoMap, GoStruct
from alerting.templating.funcs import DEFAULT_FUNCS
from alerting.templating.parser import ParseError, parse
from alerting.templating.values import GoList, GoTime

log = structlog.get_logger(__name__)

# ---------------------------------------------------------------------------------------------------
# Template data (Alertmanager's template.Data), as values our Go-template engine can walk

_GO_ZERO_NANOS = -62135596800 * 10**9


class KV(GoMap, GoStruct):
    """A label or annotation set (``map[string]string``) with Alertmanager's ``KV`` methods."""

    go_type: ClassVar[str] = "template.KV"
    go_methods: ClassVar[tuple[str, ...]] = ("SortedPairs", "Names", "Values", "Remove")
    go_signatures: ClassVar[dict[str, tuple[str, ...]]] = {"Remove": ("interface {}",)}

    def __init__(self, items: Mapping[str, str] | None = None) -> None:
        super().__init__(items, "string")

    def SortedPairs(self) -> Pairs:  # noqa: N802 - the names templates call
        return Pairs(Pair(k, self[k]) for k in sorted(self))

    def Names(self) -> GoList:  # noqa: N802
        return GoList(sorted(self), "[]string")

    def Values(self) -> GoList:  # noqa: N802
        return GoList([self[k] for k in sorted(self)], "[]string")

    def Remove(self, names: Iterable[str]) -> KV:  # noqa: N802
        drop = set(names)
        return KV({k: v for k, v in self.items() if k not in drop})

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Mapping) and dict(self.items()) == dict(other.items())

    __hash__ = None  # type: ignore[assignment]


@dataclass(frozen=True)
class Pair(GoStruct):
    """One ``Name``/``Value`` entry of ``.SortedPairs``."""

    Name: str  # noqa: N815
    Value: str  # noqa: N815

    go_type: ClassVar[str] = "template.Pair"
    go_fields: ClassVar[tuple[str, ...]] = ("Name", "Value")


class Pairs(GoList, GoStruct):
    """``.SortedPairs``: a list of pairs with ``.Names`` and ``.Values``."""

    go_type: ClassVar[str] = "template.Pairs"
    go_methods: ClassVar[tuple[str, ...]] = ("Names", "Values")

    def __init__(self, items: Iterable[Pair] = ()) -> None:
        super().__init__(items, "template.Pairs")

    def Names(self) -> GoList:  # noqa: N802
        return GoList([p.Name for p in self], "[]string")

    def Values(self) -> GoList:  # noqa: N802
        return GoList([p.Value for p in self], "[]string")


@dataclass(frozen=True)
class Alert(GoStruct):
    """One alert as templates see it (Alertmanager's ``template.Alert``)."""

    Status: str  # noqa: N815
    Labels: KV  # noqa: N815
    Annotations: KV  # noqa: N815
    StartsAt: GoTime  # noqa: N815
    EndsAt: GoTime  # noqa: N815
    GeneratorURL: str  # noqa: N815
    Fingerprint: str  # noqa: N815

    go_type: ClassVar[str] = "template.Alert"
    go_fields: ClassVar[tuple[str, ...]] = (
        "Status",
        "Labels",
        "Annotations",
        "StartsAt",
        "EndsAt",
        "GeneratorURL",
        "Fingerprint",
    )


class Alerts(GoList, GoStruct):
    """``.Alerts``, with the ``.Firing`` and ``.Resolved`` methods templates call."""

    go_type: ClassVar[str] = "template.Alerts"
    go_methods: ClassVar[tuple[str, ...]] = ("Firing", "Resolved")

    def __init__(self, items: Iterable[Alert] = ()) -> None:
        super().__init__(items, "template.Alerts")

    def Firing(self) -> Alerts:  # noqa: N802
        return Alerts(a for a in self if a.Status == "firing")

    def Resolved(self) -> Alerts:  # noqa: N802
        return Alerts(a for a in self if a.Status == "resolved")


@dataclass(frozen=True)
class Data(GoStruct):
    """The root object a notification template runs on (Alertmanager's ``template.Data``)."""

    Receiver: str  # noqa: N815
    Status: str  # noqa: N815
    Alerts: Alerts  # noqa: N815
    GroupLabels: KV  # noqa: N815
    CommonLabels: KV  # noqa: N815
    CommonAnnotations: KV  # noqa: N815
    ExternalURL: str  # noqa: N815

    go_type: ClassVar[str] = "*template.Data"
    go_fields: ClassVar[tuple[str, ...]] = (
        "Receiver",
        "Status",
        "Alerts",
        "GroupLabels",
        "CommonLabels",
        "CommonAnnotations",
        "ExternalURL",
    )
    go_pointer: ClassVar[bool] = True


def _time(seconds: float | None) -> GoTime:
    return GoTime(_GO_ZERO_NANOS if seconds is None else round(seconds * 1e9))


def _same(text: str) -> str:
    return text


def _escaped(items: Mapping[str, str], escape: Callable[[str], str]) -> KV:
    return KV({k: escape(v) for k, v in items.items()})


def template_alert(alert: NotifyAlert, escape: Callable[[str], str] = _same) -> Alert:
    return Alert(
        Status=alert.status,
        Labels=_escaped(alert.labels, escape),
        Annotations=_escaped(alert.annotations, escape),
        StartsAt=_time(alert.starts_at),
        # A firing alert has no end yet; Alertmanager shows Go's zero time there.
        EndsAt=_time(alert.ends_at if alert.status == "resolved" else None),
        GeneratorURL=escape(alert.generator_url),
        Fingerprint=alert.fingerprint,
    )


def template_data(notification: Notification, escape: Callable[[str], str] = _same) -> Data:
    """The template data for one notification, as Alertmanager builds it.

    ``escape`` is applied to every label and annotation value and URL, so a template for Slack mrkdwn
    or HTML can insert values without them turning into markup; the template's own text is untouched.
    """
    return Data(
        Receiver=notification.receiver,
        Status=notification.status,
        Alerts=Alerts(template_alert(a, escape) for a in notification.alerts),
        GroupLabels=_escaped(notification.group_labels, escape),
        CommonLabels=_escaped(notification.common_labels, escape),
        CommonAnnotations=_escaped(notification.common_annotations, escape),
        ExternalURL=escape(notification.external_url),
    )


# ---------------------------------------------------------------------------------------------------
# Rendering template fields

# Alertmanager's template functions that Prometheus's set lacks.
NOTIFY_FUNCS: dict[str, Callable[..., Any]] = {
    "join": lambda sep, items: str(sep).join(str(i) for i in items),
    "stringSlice": lambda *items: GoList([str(i) for i in items], "[]string"),
    "trimSpace": lambda text: str(text).strip(),
}
_DEFAULT_FUNC = "alertingDefault"


Defaults = Mapping[str, Callable[[], str]]


def _defines(names: Iterable[str]) -> str:
    # Appended after the user's text, so line and column numbers in errors stay the user's.
    return "".join(f'{{{{define "{n}"}}}}{{{{{_DEFAULT_FUNC} "{n}"}}}}{{{{end}}}}' for n in sorted(names))


def _shared(notification: Notification) -> dict[str, Callable[[], str]]:
    return {
        "__subject": lambda: title(notification),
        "__description": lambda: "",
        "__text_alert_list": lambda: alert_list_text(notification),
        "__alertmanagerURL": lambda: notification.external_url,
    }


def render(
    text: str,
    notification: Notification,
    field: str,
    *,
    escape: Callable[[str], str] = _same,
    defaults: Defaults | None = None,
) -> str:
    """Execute template ``text`` (one config field) for ``notification``; raises TemplateError.

    ``escape`` applies to the data (label and annotation values, URLs), never to the template text,
    so a Slack template may still write ``<!here>`` on purpose while a label cannot.
    """
    table = {**_shared(notification), **(defaults or {})}

    def default(name: str) -> str:
        return table[name]()

    funcs = {**NOTIFY_FUNCS, _DEFAULT_FUNC: default}
    source = text + _defines(table)
    return templating.render(source, template_data(notification, escape), funcs=funcs, name=field)


def render_or(
    text: str,
    notification: Notification,
    field: str,
    fallback: Callable[[], str],
    *,
    escape: Callable[[str], str] = _same,
    defaults: Defaults | None = None,
) -> str:
    """:func:`render`, or ``fallback()`` when the template fails: a broken template costs its author
    the custom wording, never the on-call person the page. The failure is logged."""
    if not text:
        return fallback()
    try:
        return render(text, notification, field, escape=escape, defaults=defaults)
    except TemplateError as exc:
        log.warning(
            "notification_template_failed", field=field, receiver=notification.receiver, error=str(exc)
        )
        return fallback()


def check_template(config: Mapping[str, Any], key: str, what: str) -> str:
    """The template text under ``key`` ("" when unset), rejected at load time if it does not parse."""
    text = string(config, key, what)
    if "{{" not in text:
        return text
    funcs = frozenset({*DEFAULT_FUNCS, *NOTIFY_FUNCS, _DEFAULT_FUNC})
    try:
        # The user's text alone, so the message is about what they wrote; the default-name
        # definitions appended at render time parse on their own.
        parse(key, text, funcs)
    except ParseError as exc:
        raise config_error(config, key, f"{what}: {key}: template: {key}:{exc.line}: {exc.message}") from None
    return text


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


def when(seconds: float | None) -> str:
    """``2026-01-01 00:00:00 UTC``; "" for no time."""
    if seconds is None:
        return ""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def alert_list_text(notification: Notification) -> str:
    """The firing and resolved alerts, one paragraph each, as plain text."""
    lines: list[str] = []
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
            since = f"  Since: {when(alert.starts_at)}"
            if alert.status == "resolved" and alert.ends_at is not None:
                since += f", resolved: {when(alert.ends_at)}"
            lines.append(since)
            if alert.generator_url:
                lines.append(f"  Source: {alert.generator_url}")
    return "\n".join(lines).lstrip("\n")


def default_text(notification: Notification) -> str:
    """The plain-text body every receiver can fall back on (email text part, console, tests)."""
    lines = [title(notification), ""]
    sev = notification_severity(notification)
    if sev:
        lines.append(f"Severity: {sev}")
    where = key_labels(notification)
    if where:
        lines.append("Where: " + ", ".join(f"{k}={v}" for k, v in where))
    lines += ["", alert_list_text(notification), ""]
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


def http_config(config: Mapping[str, Any], what: str) -> transport.HTTPConfig:
    """The receiver's ``http_config`` (Prometheus's common one), its TLS files checked now."""
    where = position(config, "http_config")
    http = transport.parse_http_config(config.get("http_config"), f"{what} http_config", where)
    transport.check_tls_files(http.tls_config, what, where)
    return http
