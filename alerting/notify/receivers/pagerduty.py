"""PagerDuty receiver (``pagerduty_configs``): Events API v2 through PagerDuty's ``pagerduty`` client,
and the Events API v1 for entries with a ``service_key``.

One aggregation group is one PagerDuty alert: its ``dedup_key`` (v1: ``incident_key``) is the SHA-256
of the group key (as Alertmanager computes it), so repeated notifications update the same incident
and the resolve notification closes it.

The v1 event is what Alertmanager 0.25 posts to ``create_event.json``: ``service_key``,
``incident_key``, ``event_type`` (trigger/resolve), ``description``, string ``details`` and, on a
trigger, ``client`` and ``client_url``. Alertmanager posts v1 events to PagerDuty's fixed v1 URL
whatever ``url`` says (the global ``pagerduty_url`` is a v2 URL); we do the same unless the entry
itself sets ``url``.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import pagerduty
import structlog

from alerting import __version__, httppool
from alerting.notify import entries, templates, wording
from alerting.notify.base import DeliveryError, Notification, NotifyAlert
from alerting.transport import (
    JSON_HEADERS,
    HTTPConfig,
    SetupError,
    TLSConfig,
    authorization_header,
    client_for,
    retry_after,
    tls_context,
)

log = structlog.get_logger(__name__)

DEFAULT_URL = "https://events.pagerduty.com/v2/enqueue"
V1_URL = "https://events.pagerduty.com/generic/2010-04-15/create_event.json"
SUMMARY_LIMIT = 1024  # PagerDuty rejects longer summaries
# Alerts listed one by one in custom_details; a huge group is summarised so the event stays far
# below PagerDuty's 512 KB limit.
DETAILS_ALERT_LIMIT = 50

_FIELDS = (
    "routing_key",
    "routing_key_file",
    "service_key",
    "service_key_file",
    "url",
    "client",
    "client_url",
    "description",
    "details",
    "severity",
    "class",
    "component",
    "group",
    "source",
    "links",
    "images",
    "send_resolved",
    "http_config",
    "timeout",
)


def dedup_key(group_key: str) -> str:
    """The PagerDuty dedup_key of an aggregation group: stable across notifications and restarts."""
    return hashlib.sha256(group_key.encode()).hexdigest()


@dataclass(frozen=True)
class PagerDutySettings:
    routing_key: str
    base_url: str  # scheme://host[:port]; the client appends /v2/enqueue
    send_resolved: bool = True
    client: str = "alerting"
    client_url: str = ""
    description: str = ""
    details: Mapping[str, str] | None = None
    severity: str = ""
    event_class: str = ""
    component: str = ""
    group: str = ""
    source: str = ""
    links: tuple[tuple[str, str], ...] = ()  # (href, text)
    images: tuple[Mapping[str, str], ...] = ()
    timeout: float = 10.0


class _EventsClient(httppool.LeanRequests, pagerduty.EventsApiV2Client):
    """The library's Events API client, with httpx's per-request work trimmed (see ``LeanRequests``)."""

    _no_cookies = httppool.NoCookies2()


def _trigger(client: pagerduty.EventsApiV2Client, dedup_key: str, event: Mapping[str, Any]) -> None:
    """Send a trigger event through the client, its body written by orjson.

    The client's own ``send_event`` has its JSON written by the standard library. That took 0.3 ms
    for a storm's notification (a hundred alerts' details, 17 KB), against orjson's 0.02 ms, and
    the client deep-copies every request's arguments besides. Its request, retries, authentication
    (the routing key, added here as it adds it to a JSON body) and answer checks are the same.
    """
    body = {"event_action": "trigger", **event, "dedup_key": dedup_key, **client.auth_method.auth_param}
    context = "submitting an event to the events API"
    answer = pagerduty.successful_response(
        # ``request``, not ``post``: the client deep-copies the arguments it is given, and httpx's
        # ``post`` hands it a dozen.
        client.request("POST", "/v2/enqueue", content=orjson.dumps(body), headers=JSON_HEADERS),
        context=context,
    )
    decoded = pagerduty.try_decoding(answer)
    if not isinstance(decoded, dict) or "dedup_key" not in decoded:
        raise pagerduty.ServerHttpError(f"{context}: the answer is not an event's dedup_key", answer)


class PagerDuty:
    """Sends trigger and resolve events for one ``pagerduty_configs`` entry."""

    kind = "pagerduty"

    def __init__(self, settings: PagerDutySettings, http: HTTPConfig) -> None:
        self.settings = settings
        self.send_resolved = settings.send_resolved
        self._http = http
        self._verify = tls_context(http.tls_config) if http.tls_config != TLSConfig() else None
        # One client per process, kept: its connections are reused from send to send, so a storm
        # of events does not pay a TLS handshake each. (Its requests share no state but the pool.)
        self._kept: tuple[int, pagerduty.EventsApiV2Client] | None = None
        self._kept_lock = threading.Lock()

    def warm(self) -> None:
        """Build the kept client now, rather than in a storm's first send."""
        self._shared_client()

    def _shared_client(self) -> pagerduty.EventsApiV2Client:
        with self._kept_lock:
            if self._kept is None or self._kept[0] != os.getpid():  # a forked child opens its own
                self._kept = (os.getpid(), self._client())
            return self._kept[1]

    def _client(self) -> pagerduty.EventsApiV2Client:
        options: dict[str, Any] = {}
        if self._verify is not None:
            options["verify"] = self._verify
        if self._http.proxy_url:
            options["proxy"] = self._http.proxy_url
        else:  # the transport every receiver sends with (see alerting.httppool)
            options["transport"] = httppool.transport2(self._verify or tls_context(self._http.tls_config))
        client = _EventsClient(self.settings.routing_key, base_url=self.settings.base_url, **options)
        # The client would retry 429 forever and 5xx up to six times, sleeping in between. Our
        # delivery task owns backoff, so allow at most one quick retry per status and none for
        # network errors; the failure then comes back to us as a DeliveryError.
        client.retry = {429: 1, 500: 1, 502: 1, 503: 1, 504: 1}
        client.max_http_attempts = 1
        client.max_network_attempts = 0
        client.sleep_timer = 0.25
        client.timeout = self.settings.timeout  # type: ignore[assignment]  # httpx takes float seconds
        # The Events API authenticates by the routing key in the body; credentials of the
        # http_config (for a proxy or gateway in front of it) go as a default header.
        authorization = authorization_header(self._http)
        if authorization:
            client.headers["Authorization"] = authorization
        return client

    def send(self, notification: Notification) -> None:
        key = dedup_key(notification.group_key)
        resolved = notification.status == "resolved"
        if resolved and not self.send_resolved:
            return
        try:
            client = self._shared_client()
            if resolved:
                client.send_event("resolve", dedup_key=key)
            else:
                _trigger(client, key, self.trigger_event(notification))
        except pagerduty.HttpError as exc:
            raise _classify(exc.response) from None
        except SetupError as exc:
            raise DeliveryError(f"PagerDuty: {exc}", retryable=True) from None
        except pagerduty.Error as exc:
            # No HTTP answer at all (connection refused, timeout, TLS failure after the client gave up).
            raise DeliveryError(f"PagerDuty unreachable: {_cause(exc)}", retryable=True) from None

    def trigger_event(self, notification: Notification) -> dict[str, Any]:
        """The trigger event's fields besides ``event_action``, ``routing_key`` and ``dedup_key``.

        Every configured text is a template over the notification; empty results fall back to our
        defaults, so a template that renders nothing never leaves PagerDuty without a summary.
        """
        s = self.settings
        common = notification.common_labels
        defaults = pagerduty_defaults(notification)

        def field(name: str, text: str, fallback: str) -> str:
            value = templates.render_or(text, notification, name, lambda: fallback, defaults=defaults).strip()
            return value or fallback

        client = field("client", s.client, "alerting")
        payload: dict[str, Any] = {
            "summary": _truncate(
                field("description", s.description, wording.title(notification)), SUMMARY_LIMIT
            ),
            "source": field("source", s.source, _first(common, "instance", "job", "service") or client),
            "severity": _severity(field("severity", s.severity, ""), notification),
            "timestamp": _iso(min(a.starts_at for a in notification.alerts)),
            "custom_details": default_details(notification),
        }
        if s.details is not None:
            # Like Alertmanager: configured details add to (and may replace) the default ones.
            # Rendered as written, spaces and all, as Alertmanager sends them.
            for key, text in s.details.items():
                payload["custom_details"][key] = templates.render_or(
                    text, notification, f"details.{key}", lambda: "", defaults=defaults
                )
        component = field("component", s.component, _first(common, "service", "job"))
        event_class = field("class", s.event_class, common.get("alertname", ""))
        group = field("group", s.group, "")
        for name, value in (("component", component), ("group", group), ("class", event_class)):
            if value:
                payload[name] = value
        event: dict[str, Any] = {"payload": payload, "client": client}
        client_url = field("client_url", s.client_url, notification.external_url)
        if client_url:
            event["client_url"] = client_url
        links = [{"href": href, "text": text} for href, text in _default_links(notification)]
        for href, text in s.links:
            url = field("links.href", href, "")
            if url:
                links.append({"href": url, "text": field("links.text", text, url)})
        if links:
            event["links"] = links
        images = [{k: field(f"images.{k}", v, "") for k, v in image.items()} for image in s.images]
        images = [{k: v for k, v in image.items() if v} for image in images]
        if any(image.get("src") for image in images):
            event["images"] = [image for image in images if image.get("src")]
        return event


def _classify(response: Any) -> DeliveryError:
    status = response.status_code
    detail = _error_detail(response)
    if status == 429 or status >= 500:
        after = retry_after(response.headers)
        return DeliveryError(
            f"PagerDuty answered {status}{detail}; will retry", retryable=True, retry_after=after
        )
    # 400 (invalid event or unknown routing key), 401/403/404: sending the same event again cannot help.
    return DeliveryError(f"PagerDuty rejected the event ({status}){detail}", retryable=False)


def _error_detail(response: Any) -> str:
    try:
        body = response.json()
    except ValueError:
        return ""
    if not isinstance(body, dict):
        return ""
    parts = [str(body.get("message") or "")] + [str(e) for e in body.get("errors") or []]
    text = "; ".join(p for p in parts if p)
    return f": {text}" if text else ""


def _cause(exc: BaseException) -> str:
    cause = exc.__cause__
    return f"{type(cause).__name__}: {cause}" if cause else str(exc)


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _first(labels: Mapping[str, str], *names: str) -> str:
    return next((labels[n] for n in names if labels.get(n)), "")


@functools.lru_cache(maxsize=4096)
def _iso(seconds: float) -> str:
    # Cached: a group's alerts mostly started at the same few evaluations, and a storm's
    # notifications write these times by the thousand (2-3 µs each to format).
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds")


def pagerduty_defaults(notification: Notification) -> templates.Defaults:
    return {
        "pagerduty.default.description": lambda: wording.title(notification),
        "pagerduty.default.client": lambda: "alerting",
        "pagerduty.default.clientURL": lambda: notification.external_url,
        "pagerduty.default.instances": lambda: wording.alert_list_text(notification),
    }


def _severity(configured: str, notification: Notification) -> str:
    if configured:
        return wording.level({"severity": configured}, default="error")
    return wording.level({"severity": wording.notification_severity(notification)}, default="error")


def _default_links(notification: Notification) -> list[tuple[str, str]]:
    links = []
    for url, text in (
        (wording.runbook_url(notification), "Runbook"),
        (wording.dashboard_url(notification), "Dashboard"),
        (wording.generator_url(notification), "Query in Prometheus"),
    ):
        if url:
            links.append((url, text))
    return links


def _alert_details(alert: NotifyAlert) -> dict[str, Any]:
    out: dict[str, Any] = {
        "summary": wording.alert_summary(alert),
        "labels": dict(alert.labels),
        "annotations": dict(alert.annotations),
        "starts_at": _iso(alert.starts_at),
    }
    if alert.value is not None:
        out["value"] = alert.value
    if alert.ends_at is not None and alert.status == "resolved":
        out["ends_at"] = _iso(alert.ends_at)
    if alert.generator_url:
        out["source"] = alert.generator_url
    return out


def default_details(notification: Notification) -> dict[str, Any]:
    """custom_details: what fires, with labels, annotations and values, and how to silence it."""
    details: dict[str, Any] = {
        "num_firing": len(notification.firing),
        "num_resolved": len(notification.resolved),
        "common_labels": notification.common_labels,
        "common_annotations": notification.common_annotations,
    }
    for name, alerts in (("firing", notification.firing), ("resolved", notification.resolved)):
        if alerts:
            details[name] = [_alert_details(a) for a in alerts[:DETAILS_ALERT_LIMIT]]
            if len(alerts) > DETAILS_ALERT_LIMIT:
                details[name].append(f"and {len(alerts) - DETAILS_ALERT_LIMIT} more")
    details["silence"] = wording.silence_command(notification)
    return details


def _base_url(config: Mapping[str, Any], url: str, what: str) -> str:
    if not url.startswith("https://"):
        raise entries.config_error(
            config, "url", f"{what}: url must use https:// (the PagerDuty client refuses plain http)"
        )
    for suffix in ("/v2/enqueue", "/v2/", "/v2", "/"):
        if url.endswith(suffix):
            return url[: -len(suffix)]
    return url


def _links(config: Mapping[str, Any], what: str) -> tuple[tuple[str, str], ...]:
    items = config.get("links") or []
    if not isinstance(items, list):
        raise entries.config_error(config, "links", f"{what}: links must be a list of {{href, text}}")
    out = []
    for item in items:
        if not isinstance(item, Mapping) or not item.get("href"):
            raise entries.config_error(config, "links", f"{what}: every link needs an href")
        entries.check_fields(item, ("href", "text"), f"{what} link")
        href = templates.check_template(item, "href", what)
        out.append((href, templates.check_template(item, "text", what) or href))
    return tuple(out)


def _images(config: Mapping[str, Any], what: str) -> tuple[Mapping[str, str], ...]:
    items = config.get("images") or []
    if not isinstance(items, list) or not all(isinstance(i, Mapping) and i.get("src") for i in items):
        raise entries.config_error(config, "images", f"{what}: images must be a list of {{src, href, alt}}")
    for item in items:
        entries.check_fields(item, ("src", "href", "alt"), f"{what} image")
    return tuple({k: templates.check_template(item, k, what) for k in item} for item in items)


def pagerduty_integration(
    config: Mapping[str, Any], global_config: Mapping[str, Any]
) -> PagerDuty | PagerDutyV1:
    """Build a PagerDuty integration from one ``pagerduty_configs`` entry."""
    what = "pagerduty_configs"
    entries.check_fields(config, _FIELDS, what)
    if config.get("service_key") or config.get("service_key_file"):
        # Alertmanager sends v1 events whenever a service key is set, routing key or not.
        return pagerduty_v1_integration(config, global_config, what)
    routing_key = entries.secret(config, "routing_key", what)
    if not routing_key:
        raise entries.config_error(config, None, f"{what}: routing_key or routing_key_file is required")
    url = (
        entries.string(config, "url", what)
        or entries.string(global_config, "pagerduty_url", "global")
        or DEFAULT_URL
    )
    details = config.get("details")
    if details is not None and not isinstance(details, Mapping):
        raise entries.config_error(config, "details", f"{what}: details must be a mapping of name to text")

    def template(source: Mapping[str, Any], key: str) -> str:
        return templates.check_template(source, key, what)

    settings = PagerDutySettings(
        routing_key=routing_key,
        base_url=_base_url(config, url, what),
        send_resolved=entries.boolean(config, "send_resolved", what, True),
        client=template(config, "client"),
        client_url=template(config, "client_url"),
        description=template(config, "description"),
        details={str(k): template(details, k) for k in details} if details is not None else None,
        severity=template(config, "severity"),
        event_class=template(config, "class"),
        component=template(config, "component"),
        group=template(config, "group"),
        source=template(config, "source"),
        links=_links(config, what),
        images=_images(config, what),
        timeout=entries.duration(config, "timeout", what, 10.0),
    )
    return PagerDuty(settings, entries.http_config(config, what, global_config))


# ---------------------------------------------------------------------------------------------------
# Events API v1 (``service_key``)

# Fields of a pagerduty_configs entry that only the v2 event has. Alertmanager accepts them beside a
# service_key and ignores them; so do we, with a warning, so a file amtool accepts still loads.
_V2_ONLY = ("routing_key", "routing_key_file", "severity", "class", "component", "group", "source")
_V2_ONLY_LISTS = ("links", "images")


@dataclass(frozen=True)
class PagerDutyV1Settings:
    service_key: str
    url: str = V1_URL
    send_resolved: bool = True
    client: str = ""  # templates; "" means our default
    client_url: str = ""
    description: str = ""
    details: Mapping[str, str] | None = None
    timeout: float = 10.0


def v1_details(notification: Notification) -> dict[str, str]:
    """Alertmanager's four default v1 details, with our texts: the alerts, then how to act on them."""
    firing, resolved = notification.firing, notification.resolved

    def listed(alerts: tuple[NotifyAlert, ...]) -> str:
        if not alerts:
            return ""
        text = wording.alert_list_text(replace(notification, alerts=alerts))
        return text.split("\n", 1)[1] if "\n" in text else text  # without the "Firing (n):" heading

    actions = []
    if firing:
        if wording.runbook_url(notification):
            actions.append(f"Runbook: {wording.runbook_url(notification)}")
        actions.append(f"Silence: {wording.silence_command(notification)}")
    return {
        "firing": "\n".join([listed(firing), *actions]).strip() if firing else "",
        "resolved": listed(resolved),
        "num_firing": str(len(firing)),
        "num_resolved": str(len(resolved)),
    }


class PagerDutyV1:
    """Sends Events API v1 trigger and resolve events for a ``pagerduty_configs`` entry with a service key."""

    kind = "pagerduty"

    def __init__(self, settings: PagerDutyV1Settings, http: HTTPConfig) -> None:
        self.settings = settings
        self.send_resolved = settings.send_resolved
        self.http = http

    def __repr__(self) -> str:
        return f"PagerDutyV1(url={self.settings.url!r})"

    def event(self, notification: Notification) -> dict[str, Any]:
        """The v1 event, its keys in Alertmanager's order (``event_action`` and ``payload`` included:
        Alertmanager's shared v1/v2 message type writes them empty, and PagerDuty ignores them)."""
        s = self.settings
        resolved = notification.status == "resolved"
        defaults = pagerduty_defaults(notification)

        def field(name: str, text: str, fallback: str) -> str:
            return templates.render_or(text, notification, name, lambda: fallback, defaults=defaults)

        # Sent as rendered (Alertmanager does not trim it); a blank one falls back to our title.
        description = field("description", s.description, wording.title(notification))
        details = v1_details(notification)
        for key, text in (s.details or {}).items():
            details[key] = field(f"details.{key}", text, "")
        event: dict[str, Any] = {
            "service_key": s.service_key,
            "incident_key": dedup_key(notification.group_key),
            "event_type": "resolve" if resolved else "trigger",
            "description": _truncate(
                description if description.strip() else wording.title(notification), SUMMARY_LIMIT
            ),
            "event_action": "",
            "payload": None,
        }
        if not resolved:
            client = field("client", s.client, "alerting")
            client_url = field("client_url", s.client_url, notification.external_url)
            if client:
                event["client"] = client
            if client_url:
                event["client_url"] = client_url
        if details:
            event["details"] = details
        return event

    def send(self, notification: Notification) -> None:
        if notification.status == "resolved" and not self.send_resolved:
            return
        body = json.dumps(self.event(notification)).encode()
        headers = {"Content-Type": "application/json", "User-Agent": f"alerting/{__version__}"}
        try:
            response = client_for(self.http, self.settings.timeout).post(
                self.settings.url, content=body, headers=headers
            )
        except httpx.TimeoutException:
            raise DeliveryError(
                f"PagerDuty timed out after {self.settings.timeout:g}s", retryable=True
            ) from None
        except httpx.HTTPError as exc:
            detail = f"{type(exc).__name__}: {exc}".replace(self.settings.service_key, "<redacted>")
            raise DeliveryError(f"PagerDuty unreachable: {detail}", retryable=True) from None
        if 200 <= response.status_code < 300:
            return
        failure = _classify_v1(response)
        raise DeliveryError(
            str(failure).replace(self.settings.service_key, "<redacted>"),
            retryable=failure.retryable,
            retry_after=failure.retry_after,
        )


def _classify_v1(response: httpx.Response) -> DeliveryError:
    status = response.status_code
    detail = _error_detail(response)
    # v1 answers 403 when the service key is over its rate limit (429 on the v2 API).
    if status in (403, 429) or status >= 500:
        return DeliveryError(
            f"PagerDuty answered {status}{detail}; will retry",
            retryable=True,
            retry_after=retry_after(response.headers),
        )
    return DeliveryError(f"PagerDuty rejected the event ({status}){detail}", retryable=False)


def pagerduty_v1_integration(
    config: Mapping[str, Any], global_config: Mapping[str, Any], what: str
) -> PagerDutyV1:
    """A v1 integration from a ``pagerduty_configs`` entry with ``service_key`` or ``service_key_file``."""
    ignored = [key for key in (*_V2_ONLY, *_V2_ONLY_LISTS) if config.get(key)]
    if ignored:
        log.warning("pagerduty_v1_ignores_fields", fields=ignored, position=str(entries.position(config)))
    service_key = entries.secret(config, "service_key", what)
    if not service_key:
        raise entries.config_error(config, "service_key", f"{what}: service_key is empty")
    url = entries.string(config, "url", what) or V1_URL
    if not wording.is_web_link(url):
        raise entries.config_error(config, "url", f"{what}: url must be an http(s) URL, got {url!r}")
    details = config.get("details")
    if details is not None and not isinstance(details, Mapping):
        raise entries.config_error(config, "details", f"{what}: details must be a mapping of name to text")
    settings = PagerDutyV1Settings(
        service_key=service_key,
        url=url,
        send_resolved=entries.boolean(config, "send_resolved", what, True),
        client=templates.check_template(config, "client", what),
        client_url=templates.check_template(config, "client_url", what),
        description=templates.check_template(config, "description", what),
        details={str(k): templates.check_template(details, k, what) for k in details}
        if details is not None
        else None,
        timeout=entries.duration(config, "timeout", what, 10.0),
    )
    return PagerDutyV1(settings, entries.http_config(config, what, global_config))
