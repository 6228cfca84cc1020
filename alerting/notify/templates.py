"""Alertmanager's template data model and the rendering of receivers' template fields.

:func:`template_data` turns a :class:`~alerting.notify.base.Notification` into the structure
Alertmanager templates expect (``.Status``, ``.Alerts.Firing``, ``.CommonLabels.SortedPairs`` ...);
:func:`render` executes a receiver's template field (Slack ``text``, PagerDuty ``description`` ...)
over it. Alertmanager's default template names (``{{ template "slack.default.title" . }}``,
``__subject`` ...) are defined and render our defaults, so files written for Alertmanager keep working.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import structlog

from alerting import templating
from alerting.errors import TemplateError
from alerting.notify.base import Notification, NotifyAlert
from alerting.notify.entries import config_error, string
from alerting.notify.wording import alert_list_text, title
from alerting.templating import GoMap, GoStruct
from alerting.templating.funcs import DEFAULT_FUNCS
from alerting.templating.options import Limits
from alerting.templating.parser import ParseError, parse
from alerting.templating.values import GoList, GoTime

log = structlog.get_logger(__name__)


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
    Built once per notification and escape: a receiver renders a dozen fields from the same data,
    and templates cannot change it. (Kept beside the notification, which is never changed either.)
    """
    built: dict[Any, Data] = vars(notification).setdefault("_template_data", {})
    data = built.get(escape)
    if data is None:
        data = built[escape] = _template_data(notification, escape)
    return data


def _template_data(notification: Notification, escape: Callable[[str], str]) -> Data:
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
_MAX_OUTPUT = Limits().max_output


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
    if "{{" not in text and len(text) <= _MAX_OUTPUT:
        # Text without an action is its own output; building the data for it cost a notification's
        # whole template data (every alert, escaped) for a constant such as a channel name.
        return text
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
