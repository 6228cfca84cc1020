"""Email receiver (``email_configs``): multipart text + HTML mail over SMTP with the standard library.

Connection rules follow Alertmanager: port 465 (or ``implicit_tls: true``) speaks TLS from the first
byte; otherwise the connection starts plain and, with ``require_tls`` (the default), must upgrade with
STARTTLS or the send fails. Credentials are only sent when the server offers AUTH, and never over an
unencrypted connection to anything but localhost (the rule Go's ``smtp.PlainAuth`` enforces).
"""

from __future__ import annotations

import hashlib
import html
import smtplib
import socket
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate, getaddresses, make_msgid
from typing import Any

from alerting.notify import entries, templates, wording
from alerting.notify.base import DeliveryError, Notification, NotifyAlert, unreachable
from alerting.transport import TLSConfig, TLSFilesError, tls_context

_FIELDS = (
    "send_resolved",
    "to",
    "from",
    "hello",
    "smarthost",
    "auth_username",
    "auth_password",
    "auth_password_file",
    "auth_secret",
    "auth_secret_file",
    "auth_identity",
    "require_tls",
    "implicit_tls",
    "tls_config",
    "headers",
    "html",
    "text",
    "timeout",
)
_LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
_COLOURS = {"critical": "#d7263d", "error": "#f46036", "warning": "#c99a06", "info": "#2e86ab"}


@dataclass(frozen=True)
class EmailSettings:
    to: tuple[str, ...]
    sender: str
    host: str
    port: int
    hello: str = "localhost"
    username: str = ""
    password: str = ""
    require_tls: bool = True
    implicit_tls: bool = False
    tls: TLSConfig = field(default_factory=TLSConfig)
    headers: Mapping[str, str] = field(default_factory=dict)
    # Templates; None means our default, "" turns the part off (Alertmanager's `html: ""`).
    html: str | None = None
    text: str | None = None
    send_resolved: bool = False
    timeout: float = 30.0


# ---------------------------------------------------------------------------------------------------
# The message


def subject(notification: Notification) -> str:
    """``[FIRING:2] HighErrorRate (api critical)``: Alertmanager's default subject."""
    return wording.title(notification)


def _link(url: str, text: str) -> str:
    return f'<a href="{html.escape(url, quote=True)}">{html.escape(text)}</a>'


def _alert_rows(alert: NotifyAlert, colour: str) -> str:
    e = html.escape
    value = wording.format_value(alert.value)
    parts = [
        f'<tr><td style="border-left:4px solid {colour};padding:6px 10px">',
        f"<strong>{e(wording.alert_summary(alert))}</strong>",
    ]
    if value:
        parts.append(f" <code>{e(value)}</code>")
    description = wording.alert_description(alert)
    if description:
        parts.append(f"<br>{e(description)}")
    labels = ", ".join(f"{e(k)}={e(v)}" for k, v in sorted(alert.labels.items()))
    parts.append(f'<br><small style="color:#555">{labels}</small>')
    since = wording.when(alert.starts_at)
    parts.append(f'<br><small style="color:#555">since {e(since)}')
    if wording.is_web_link(alert.generator_url):
        parts.append(" · " + _link(alert.generator_url, "query"))
    parts.append("</small></td></tr>")
    return "".join(parts)


def html_body(notification: Notification) -> str:
    """The HTML part: every label and annotation value escaped, only http(s) links."""
    e = html.escape
    level = wording.level({"severity": wording.notification_severity(notification)})
    colour = "#2eb67d" if notification.status == "resolved" else _COLOURS[level]
    out = [
        '<!DOCTYPE html><html><body style="font-family:sans-serif;font-size:14px">',
        f'<h2 style="color:{colour}">{e(subject(notification))}</h2>',
    ]
    facts = []
    severity = wording.notification_severity(notification)
    if severity:
        facts.append(("severity", severity))
    facts += wording.key_labels(notification)
    if facts:
        out.append('<table style="border-collapse:collapse">')
        out += [
            f'<tr><td style="padding:2px 10px 2px 0"><b>{e(k)}</b></td><td>{e(v)}</td></tr>' for k, v in facts
        ]
        out.append("</table>")
    for heading, alerts, tint in (
        ("Firing", notification.firing, colour),
        ("Resolved", notification.resolved, "#2eb67d"),
    ):
        if alerts:
            out.append(f"<h3>{heading} ({len(alerts)})</h3><table>")
            out += [_alert_rows(a, tint) for a in alerts]
            out.append("</table>")
    links = [
        _link(url, text)
        for url, text in (
            (wording.runbook_url(notification), "Runbook"),
            (wording.dashboard_url(notification), "Dashboard"),
            (notification.external_url if wording.is_web_link(notification.external_url) else "", "Alerting"),
        )
        if url
    ]
    if links:
        out.append(f"<p>{' · '.join(links)}</p>")
    if notification.firing:
        out.append(f"<p>Silence: <code>{e(wording.silence_command(notification))}</code></p>")
    out.append("</body></html>")
    return "\n".join(out)


def group_reference(notification: Notification) -> str:
    digest = hashlib.sha256(notification.group_key.encode()).hexdigest()[:32]
    return f"<group-{digest}@alerting>"


def message_id(notification: Notification, settings: EmailSettings) -> str:
    """Stable for one notification, so a mail resent after a worker died mid-send carries the same
    Message-ID as the first (mail stores that drop duplicate IDs show it once)."""
    if notification.notification_id:
        return f"<{notification.notification_id}@alerting>"
    return make_msgid(domain=settings.hello if "." in settings.hello else None)


def email_defaults(notification: Notification) -> templates.Defaults:
    """What Alertmanager's ``email.default.*`` template names render to here."""
    return {
        "email.default.subject": lambda: subject(notification),
        "email.default.html": lambda: html_body(notification),
        "email.default.text": lambda: wording.default_text(notification),
    }


def _one_line(text: str) -> str:
    # A rendered label value must not be able to start a new header line.
    return " ".join(text.split())


def build_message(notification: Notification, settings: EmailSettings) -> EmailMessage:
    """The mail: headers, a text part and an HTML part (either can be turned off or templated).

    In the HTML template every value from the data is HTML-escaped; the template's markup is not.
    """
    defaults = email_defaults(notification)
    rendered_headers = {
        name: _one_line(
            templates.render_or(value, notification, f"headers.{name}", lambda: "", defaults=defaults)
        )
        for name, value in settings.headers.items()
    }
    message = EmailMessage()
    headers = {
        "From": settings.sender,
        "To": ", ".join(settings.to),
        "Subject": subject(notification),
        "Date": formatdate(localtime=False),
        "Message-Id": message_id(notification, settings),
        # Every mail of one group points at the same (virtual) parent, so mail clients thread the
        # firing, repeat and resolved mails of an incident together.
        "References": group_reference(notification),
        "In-Reply-To": group_reference(notification),
        **{k: v for k, v in rendered_headers.items() if v},
    }
    for name, value in headers.items():
        message[name] = value
    text = _part(settings.text, notification, "text", lambda: wording.default_text(notification), defaults)
    body = _part(settings.html, notification, "html", lambda: html_body(notification), defaults, html.escape)
    if text is not None or body is None:
        message.set_content(text if text is not None else wording.default_text(notification))
        if body is not None:
            message.add_alternative(body, subtype="html")
    else:
        message.set_content(body, subtype="html")
    return message


def _part(
    template: str | None,
    notification: Notification,
    field: str,
    default: Callable[[], str],
    defaults: templates.Defaults,
    escape: Callable[[str], str] | None = None,
) -> str | None:
    if template is None:
        return default()
    if template == "":
        return None
    escape_data = escape or (lambda text: text)
    return templates.render_or(template, notification, field, default, escape=escape_data, defaults=defaults)


# ---------------------------------------------------------------------------------------------------
# Sending


def _smtp_error(exc: smtplib.SMTPResponseException, what: str) -> DeliveryError:
    reason = (
        exc.smtp_error.decode(errors="replace") if isinstance(exc.smtp_error, bytes) else str(exc.smtp_error)
    )
    message = f"SMTP {what}: {exc.smtp_code} {reason}"
    # 4xx replies are SMTP's "try again later"; 5xx are final.
    return DeliveryError(message, retryable=400 <= exc.smtp_code < 500)


class Email:
    """Sends one mail per notification to the configured recipients."""

    kind = "email"

    def __init__(self, settings: EmailSettings) -> None:
        self.settings = settings
        self.send_resolved = settings.send_resolved

    def send(self, notification: Notification) -> None:
        if notification.status == "resolved" and not self.send_resolved:
            return
        message = build_message(notification, self.settings)
        try:
            self._deliver(message)
        except DeliveryError:
            raise
        except smtplib.SMTPAuthenticationError as exc:
            raise _smtp_error(exc, "authentication failed") from None
        except smtplib.SMTPSenderRefused as exc:
            raise _smtp_error(exc, f"sender {self.settings.sender} refused") from None
        except smtplib.SMTPRecipientsRefused as exc:
            codes = {code for code, _ in exc.recipients.values()}
            refused = ", ".join(f"{rcpt} ({code})" for rcpt, (code, _) in sorted(exc.recipients.items()))
            transient = all(400 <= code < 500 for code in codes)
            raise DeliveryError(f"SMTP refused every recipient: {refused}", retryable=transient) from None
        except smtplib.SMTPResponseException as exc:
            raise _smtp_error(exc, "error") from None
        except ssl.SSLCertVerificationError as exc:
            raise DeliveryError(
                f"SMTP server certificate not trusted ({exc.verify_message}); set tls_config.ca_file",
                retryable=False,
            ) from None
        except (smtplib.SMTPException, OSError) as exc:
            # Connection refused, timeouts, dropped connections: the server may be back soon.
            where = f"{self.settings.host}:{self.settings.port}"
            raise unreachable(f"SMTP server {where}", exc) from None

    def _connect(self, context: ssl.SSLContext) -> smtplib.SMTP:
        s = self.settings
        if s.implicit_tls:
            return _ImplicitTLS(
                s.tls.server_name,
                s.host,
                s.port,
                local_hostname=s.hello,
                timeout=s.timeout,
                context=context,
            )
        return _StartTLS(s.tls.server_name, s.host, s.port, local_hostname=s.hello, timeout=s.timeout)

    def _deliver(self, message: EmailMessage) -> None:
        s = self.settings
        try:
            context = tls_context(s.tls)
        except TLSFilesError as exc:
            raise DeliveryError(f"cannot load TLS files: {exc}", retryable=True) from None
        with self._connect(context) as smtp:
            smtp.ehlo()
            encrypted = s.implicit_tls
            if s.require_tls and not s.implicit_tls:
                if not smtp.has_extn("starttls"):
                    raise DeliveryError(
                        f"require_tls is true (the default) but {s.host}:{s.port} does not offer STARTTLS",
                        retryable=False,
                    )
                smtp.starttls(context=context)
                smtp.ehlo()
                encrypted = True
            if s.username and smtp.has_extn("auth"):
                if not encrypted and s.host not in _LOCAL_HOSTS:
                    raise DeliveryError(
                        f"refusing to send SMTP credentials to {s.host} over an unencrypted connection",
                        retryable=False,
                    )
                smtp.login(s.username, s.password)
            refused = smtp.send_message(message, from_addr=_address(s.sender), to_addrs=list(s.to))
        if refused:
            # The others got it; sending again would duplicate their mail, so report, do not retry.
            listed = ", ".join(f"{rcpt} ({code})" for rcpt, (code, _) in sorted(refused.items()))
            raise DeliveryError(f"SMTP refused some recipients: {listed}", retryable=False)


# smtplib checks the certificate against the host it connected to (``_host``); tls_config's
# server_name, when set, names the host to check instead, as in every other receiver.
class _StartTLS(smtplib.SMTP):
    def __init__(self, server_name: str, *args: Any, **kwargs: Any) -> None:
        self._server_name = server_name
        super().__init__(*args, **kwargs)

    def starttls(self, *args: Any, **kwargs: Any) -> tuple[int, bytes]:
        if self._server_name:
            self._host = self._server_name
        return super().starttls(*args, **kwargs)


class _ImplicitTLS(smtplib.SMTP_SSL):
    def __init__(self, server_name: str, *args: Any, **kwargs: Any) -> None:
        self._server_name = server_name
        super().__init__(*args, **kwargs)

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        if self._server_name:
            self._host = self._server_name
        return super()._get_socket(host, port, timeout)  # type: ignore[misc]


def _address(value: str) -> str:
    pairs = getaddresses([value])
    return pairs[0][1] if pairs and pairs[0][1] else value


def _smarthost(config: Mapping[str, Any], text: str, what: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    # Alertmanager takes what Go's SplitHostPort splits, white space around the port included
    # (`localhost: 25` is in real configurations).
    host, port = host.strip("[]"), port.strip()
    if not sep or not host or not port.isdigit():
        raise entries.config_error(config, "smarthost", f"{what}: smarthost must be host:port, got {text!r}")
    return host, int(port)


def email_integration(config: Mapping[str, Any], global_config: Mapping[str, Any]) -> Email:
    """Build an email integration from one ``email_configs`` entry (``smtp_*`` globals as defaults)."""
    what = "email_configs"
    entries.check_fields(config, _FIELDS, what)
    g = global_config

    def pick(key: str, global_key: str, default: str = "") -> str:
        return entries.string(config, key, what) or entries.string(g, global_key, "global") or default

    to = tuple(addr for _, addr in getaddresses([entries.string(config, "to", what)]) if addr)
    if not to:
        raise entries.config_error(
            config, "to", f"{what}: to (one or more addresses, comma-separated) is required"
        )
    sender = pick("from", "smtp_from")
    if not sender:
        raise entries.config_error(config, "from", f"{what}: from is required (or smtp_from in global)")
    smarthost = pick("smarthost", "smtp_smarthost")
    if not smarthost:
        raise entries.config_error(
            config, "smarthost", f"{what}: smarthost is required (or smtp_smarthost in global)"
        )
    host, port = _smarthost(config, smarthost, what)
    username = pick("auth_username", "smtp_auth_username")
    password = entries.secret(config, "auth_password", what, global_config=g, global_key="smtp_auth_password")
    password = password or entries.secret(
        config, "auth_secret", what, global_config=g, global_key="smtp_auth_secret"
    )
    require_tls = entries.boolean(
        config, "require_tls", what, entries.boolean(g, "smtp_require_tls", "global", True)
    )
    headers = entries.mapping(config, "headers", what)
    return Email(
        EmailSettings(
            to=to,
            sender=sender,
            host=host,
            port=port,
            hello=pick("hello", "smtp_hello", "localhost"),
            username=username,
            password=password,
            require_tls=require_tls,
            implicit_tls=entries.boolean(config, "implicit_tls", what, port == 465),
            tls=entries.tls_config(config, what),
            headers={str(k): templates.check_template(headers, k, what) for k in headers},
            html=templates.check_template(config, "html", what) if "html" in config else None,
            text=templates.check_template(config, "text", what) if "text" in config else None,
            send_resolved=entries.boolean(config, "send_resolved", what, False),
            timeout=entries.duration(config, "timeout", what, 30.0),
        )
    )
