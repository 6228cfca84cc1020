"""SMS receiver (``sms_configs``, our extension): Twilio's Messages API, or any HTTP SMS gateway.

The text is one SMS segment (160 GSM-7 characters): ``[P1 FIRING] HighErrorRate api: 5xx 3.2/s``.
Each recipient gets its own request. A recipient that already got this exact message for this group
(remembered for a while in the pipeline's key-value store) is skipped when the send is retried, so a
retry after a partial failure reaches only those who were missed.

Twilio answers are classified by their error code: throttling (20429, HTTP 429) and server errors
are retried; invalid, unsubscribed or landline numbers (21211, 21610, 21614), bad credentials and
other request errors are permanent and reported.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import quote

import httpx
import structlog

from alerting.notify import entries, kvstore, templates, wording
from alerting.notify.base import DeliveryError, Notification, unreachable
from alerting.transport import HTTPConfig, client_for, retry_after

log = structlog.get_logger(__name__)

TWILIO_API = "https://api.twilio.com"
SEGMENT = 160  # GSM-7 characters in one SMS
MARK_TTL = 3600.0  # how long "this recipient already got this message" is remembered

_FIELDS = (
    "to",
    "send_resolved",
    "body",
    "timeout",
    "http_config",
    # Twilio
    "account_sid",
    "auth_token",
    "auth_token_file",
    "from",
    "messaging_service_sid",
    "api_url",
    # generic gateway
    "url",
    "method",
    "headers",
    "form",
    "json",
)
_TWILIO_ONLY = ("account_sid", "auth_token", "auth_token_file", "from", "messaging_service_sid", "api_url")
_GATEWAY_ONLY = ("method", "headers", "form", "json")

# Twilio error codes that no retry can fix for that recipient.
_PERMANENT_RECIPIENT_CODES = {
    21211: "invalid phone number",
    21408: "sending to this region is not enabled",
    21610: "recipient unsubscribed (replied STOP)",
    21612: "no route to this number",
    21614: "not a mobile number",
}
_AUTH_CODES = frozenset({20003, 20005})

# The GSM 03.38 alphabet: basic characters cost one septet, extension characters two.
_GSM_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM_EXTENDED = frozenset("^{}\\[~]|€")
# Typography that has a plain GSM-7 stand-in.
_TYPOGRAPHY = str.maketrans(
    {"\t": " ", "…": "...", "—": "-", "–": "-", "“": '"', "”": '"', "‘": "'", "’": "'"}
)


def to_gsm(text: str) -> str:
    """``text`` in the GSM-7 alphabet: accents folded where possible, anything else becomes ``?``.

    One character outside GSM-7 would switch the whole message to UCS-2 and cut a segment to 70
    characters, so the summary is kept in GSM-7.
    """
    out = []
    for char in text.translate(_TYPOGRAPHY):
        if char in _GSM_BASIC or char in _GSM_EXTENDED:
            out.append(char)
            continue
        folded = "".join(c for c in unicodedata.normalize("NFKD", char) if not unicodedata.combining(c))
        out.append(folded if folded and all(c in _GSM_BASIC for c in folded) else "?")
    return "".join(out)


def gsm_length(text: str) -> int:
    return sum(2 if c in _GSM_EXTENDED else 1 for c in text)


def fit_segment(text: str, limit: int = SEGMENT) -> str:
    """Cut GSM-7 ``text`` to one segment, marking the cut with ``...``."""
    if gsm_length(text) <= limit:
        return text
    out, used = [], 3
    for char in text:
        cost = 2 if char in _GSM_EXTENDED else 1
        if used + cost > limit:
            break
        out.append(char)
        used += cost
    return "".join(out).rstrip() + "..."


def summary(notification: Notification) -> str:
    """``[P1 FIRING] HighErrorRate api: 5xx 3.2/s``: severity, status, alert, where, what."""
    severity = wording.notification_severity(notification).upper()
    status = notification.status.upper()
    if len(notification.firing) > 1:
        status += f":{len(notification.firing)}"
    tag = f"[{severity} {status}]" if severity else f"[{status}]"
    where = " ".join(v for _, v in wording.key_labels(notification))
    head = " ".join(p for p in (tag, wording.alertname(notification), where) if p)
    alerts = notification.firing or notification.resolved
    what = wording.alert_summary(alerts[0]) if alerts and notification.firing else ""
    if what and what != wording.alertname(notification):
        head += f": {what}"
    return fit_segment(to_gsm(" ".join(head.split())))


@dataclass(frozen=True)
class SmsSettings:
    to: tuple[str, ...]
    body: str = ""  # a template; "" means our summary
    send_resolved: bool = False
    timeout: float = 10.0
    # Twilio
    account_sid: str = ""
    auth_token: str = ""
    sender: str = ""
    messaging_service_sid: str = ""
    api_url: str = TWILIO_API
    # generic gateway
    url: str = ""
    method: str = "POST"
    headers: Mapping[str, str] = field(default_factory=dict)
    form: Mapping[str, str] | None = None
    json: Mapping[str, Any] | None = None


_PLACEHOLDER = re.compile(r"\{(to|body|from)\}")


def _fill(template: Any, values: Mapping[str, str], encode: bool = False) -> Any:
    """Replace ``{to}``, ``{body}`` and ``{from}`` (nothing else: no attribute access, no format specs)."""
    if isinstance(template, str):
        return _PLACEHOLDER.sub(
            lambda m: quote(values[m.group(1)], safe="") if encode else values[m.group(1)], template
        )
    if isinstance(template, Mapping):
        return {k: _fill(v, values) for k, v in template.items()}
    if isinstance(template, list):
        return [_fill(v, values) for v in template]
    return template


class _CredentialsRejected(DeliveryError):
    """The provider refused our credentials: no point trying the remaining recipients."""


class Sms:
    """Sends one text per recipient through Twilio or a generic gateway."""

    kind = "sms"

    def __init__(self, settings: SmsSettings, http: HTTPConfig, store: kvstore.KeyValueStore) -> None:
        self.settings = settings
        self.send_resolved = settings.send_resolved
        self._http = http
        self._store = store

    def text(self, notification: Notification) -> str:
        """The message: our summary, or the ``body`` template, folded into one GSM-7 segment."""
        if not self.settings.body:
            return summary(notification)
        defaults = {"sms.default.body": lambda: summary(notification)}
        rendered = templates.render_or(
            self.settings.body, notification, "body", lambda: summary(notification), defaults=defaults
        )
        return fit_segment(to_gsm(" ".join(rendered.split()))) or summary(notification)

    def send(self, notification: Notification) -> None:
        if notification.status == "resolved" and not self.send_resolved:
            return
        body = self.text(notification)
        digest = hashlib.sha256(f"{notification.group_key}\n{body}".encode()).hexdigest()[:32]
        failures: list[tuple[str, DeliveryError]] = []
        client = client_for(self._http, self.settings.timeout)
        for to in self.settings.to:
            mark = f"sms:{digest}:{to}"
            if self._delivered(mark):
                continue
            try:
                self._send_one(client, to, body)
            except DeliveryError as exc:
                failures.append((to, exc))
                if isinstance(exc, _CredentialsRejected):
                    break  # every other recipient would fail the same way
                continue
            self._mark(mark)
        if failures:
            retryable = any(e.retryable for _, e in failures)
            after = max((e.retry_after or 0.0 for _, e in failures if e.retryable), default=0.0) or None
            listed = "; ".join(f"{to}: {e}" for to, e in failures)
            raise DeliveryError(f"SMS not delivered to {listed}", retryable=retryable, retry_after=after)

    def _send_one(self, client: httpx.Client, to: str, body: str) -> None:
        s = self.settings
        # The provider's own credentials win over http_config's; a redirect is never followed, so
        # neither they nor the recipients' numbers go anywhere the configuration did not name.
        request: dict[str, Any] = {"follow_redirects": False}
        if s.account_sid:
            request["auth"] = httpx.BasicAuth(s.account_sid, s.auth_token)
        try:
            if s.account_sid:
                form = {"To": to, "Body": body}
                if s.messaging_service_sid:
                    form["MessagingServiceSid"] = s.messaging_service_sid
                else:
                    form["From"] = s.sender
                url = f"{s.api_url.rstrip('/')}/2010-04-01/Accounts/{quote(s.account_sid)}/Messages.json"
                response = client.post(url, data=form, **request)
            else:
                values = {"to": to, "body": body, "from": s.sender}
                request["headers"] = dict(s.headers)
                if s.form is not None:
                    request["data"] = _fill(s.form, values)
                elif s.json is not None:
                    request["json"] = _fill(s.json, values)
                response = client.request(s.method, _fill(s.url, values, encode=True), **request)
        except httpx.HTTPError as exc:
            raise unreachable("SMS provider", exc) from None
        if response.is_success:
            return
        raise self._classify(response)

    def _classify(self, response: httpx.Response) -> DeliveryError:
        status = response.status_code
        code, message = 0, response.text[:200].strip()
        if self.settings.account_sid:
            try:
                answer = response.json()
                code, message = int(answer.get("code") or 0), str(answer.get("message") or message)
            except (ValueError, AttributeError):
                pass
        label = f"Twilio error {code}" if code else f"HTTP {status}"
        if status == 429 or code == 20429 or status >= 500:
            return DeliveryError(
                f"{label}: {message}",
                retryable=True,
                retry_after=retry_after(response.headers),
            )
        if code in _PERMANENT_RECIPIENT_CODES:
            return DeliveryError(f"{label} ({_PERMANENT_RECIPIENT_CODES[code]}): {message}", retryable=False)
        if status in (401, 403) or code in _AUTH_CODES:
            return _CredentialsRejected(f"{label}: credentials rejected: {message}", retryable=False)
        return DeliveryError(f"{label}: {message}", retryable=False)

    def _delivered(self, mark: str) -> bool:
        try:
            return bool(self._store.get(mark))
        except Exception as exc:  # without the store we may send twice, which beats not sending
            log.warning("sms_store_failed", operation="get", error=str(exc))
            return False

    def _mark(self, mark: str) -> None:
        try:
            self._store.set(mark, "1", MARK_TTL)
        except Exception as exc:  # the message is out; a lost mark only risks a duplicate on retry
            log.warning("sms_store_failed", operation="set", error=str(exc))


def _form_or_json(
    config: Mapping[str, Any], what: str
) -> tuple[Mapping[str, str] | None, Mapping[str, Any] | None]:
    form = config.get("form")
    body = config.get("json")
    if form is not None and body is not None:
        raise entries.config_error(config, "json", f"{what}: set at most one of form and json")
    if form is not None and not isinstance(form, Mapping):
        raise entries.config_error(config, "form", f"{what}: form must be a mapping of field to text")
    if body is not None and not isinstance(body, Mapping):
        raise entries.config_error(config, "json", f"{what}: json must be a mapping")
    return ({str(k): str(v) for k, v in form.items()} if form is not None else None), body


def sms_integration(config: Mapping[str, Any], global_config: Mapping[str, Any]) -> Sms:
    """Build an SMS integration from one ``sms_configs`` entry (``twilio_*`` globals as defaults)."""
    what = "sms_configs"
    entries.check_fields(config, _FIELDS, what)
    g = global_config
    to = tuple(entries.string_list(config, "to", what))
    if not to:
        raise entries.config_error(config, "to", f"{what}: to (a list of phone numbers) is required")
    common = SmsSettings(
        to=to,
        body=templates.check_template(config, "body", what),
        send_resolved=entries.boolean(config, "send_resolved", what, False),
        timeout=entries.duration(config, "timeout", what, 10.0),
    )
    http = entries.http_config(config, what, global_config)
    store = kvstore.store_from(g)
    url = entries.string(config, "url", what)
    if url:
        extra = [k for k in _TWILIO_ONLY if k in config and k != "from"]
        if extra:
            raise entries.config_error(
                config, extra[0], f"{what}: {extra[0]} is for Twilio; a gateway uses url"
            )
        if not wording.is_web_link(url.replace("{", "").replace("}", "")):
            raise entries.config_error(config, "url", f"{what}: url must be an http(s) URL")
        method = entries.string(config, "method", what, "POST").upper()
        if method not in ("GET", "POST", "PUT"):
            raise entries.config_error(config, "method", f"{what}: method must be GET, POST or PUT")
        form, body = _form_or_json(config, what)
        headers = entries.mapping(config, "headers", what)
        settings = replace(
            common,
            url=url,
            method=method,
            sender=entries.string(config, "from", what),
            headers={str(k): str(v) for k, v in headers.items()},
            form=form,
            json=body,
        )
        return Sms(settings, http, store)

    extra = [k for k in _GATEWAY_ONLY if k in config]
    if extra:
        raise entries.config_error(config, extra[0], f"{what}: {extra[0]} is for a gateway url, not Twilio")
    sid = entries.string(config, "account_sid", what) or entries.string(g, "twilio_account_sid", "global")
    token = entries.secret(config, "auth_token", what, global_config=g, global_key="twilio_auth_token")
    if not sid or not token:
        need = "account_sid and auth_token (or twilio_* in global) for Twilio, or url for a gateway"
        raise entries.config_error(config, None, f"{what}: set {need}")
    sender = entries.string(config, "from", what) or entries.string(g, "twilio_from", "global")
    service = entries.string(config, "messaging_service_sid", what) or entries.string(
        g, "twilio_messaging_service_sid", "global"
    )
    if bool(sender) == bool(service):
        raise entries.config_error(
            config, "from", f"{what}: set exactly one of from and messaging_service_sid"
        )
    api_url = (
        entries.string(config, "api_url", what) or entries.string(g, "twilio_api_url", "global") or TWILIO_API
    )
    if not wording.is_web_link(api_url):
        raise entries.config_error(config, "api_url", f"{what}: api_url must be an http(s) URL")
    settings = replace(
        common,
        account_sid=sid,
        auth_token=token,
        sender=sender,
        messaging_service_sid=service,
        api_url=api_url,
    )
    return Sms(settings, http, store)
