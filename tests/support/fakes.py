"""Local servers that speak the Slack, PagerDuty and Twilio wire protocols, and a real SMTP server.

Each fake checks what the real API checks (auth, required fields, limits) and answers the way the
real API answers, including its error bodies. Tests can queue canned answers (429 with Retry-After,
5xx, ``ok: false``) ahead of the normal behaviour with ``fake.server.fail_next``. Everything binds
to 127.0.0.1 on a free port and stops when its ``with`` block ends.
"""

from __future__ import annotations

import re
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trustme

from tests.support.httpfake import FakeHTTPServer, Reply, Request
from tests.support.net import free_port

# ---------------------------------------------------------------------------------------------------
# TLS


@dataclass(frozen=True)
class LocalCA:
    """A throwaway CA: a server context for the fakes and the CA file clients should trust."""

    server_context: ssl.SSLContext
    ca_file: str


def make_ca(directory: Path, *hosts: str) -> LocalCA:
    """A CA whose certificate for ``hosts`` (127.0.0.1 and localhost unless given) the server uses."""
    ca = trustme.CA()
    cert = ca.issue_cert(*(hosts or ("127.0.0.1", "localhost")))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    cert.configure_cert(context)
    ca_file = directory / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    return LocalCA(context, str(ca_file))


# ---------------------------------------------------------------------------------------------------
# Slack: Web API (chat.postMessage, chat.update, reactions.get) and incoming webhooks

SLACK_TOKEN = "xoxb-1111-2222-test"
SLACK_WEBHOOK_PATH = "/services/T0000/B0000/abcdefghijklmnopqrstuvwx"
SLACK_CHANNELS = {"#alerts": "C0ALERTS", "C0ALERTS": "C0ALERTS", "#pages": "C0PAGES", "C0PAGES": "C0PAGES"}


def _slack_block_errors(payload: dict[str, Any]) -> str:
    """The Slack error for a payload over the Block Kit limits, or ""."""
    blocks = list(payload.get("blocks") or [])
    for attachment in payload.get("attachments") or []:
        blocks += attachment.get("blocks") or []
    if len(payload.get("blocks") or []) > 50 or any(
        len(a.get("blocks") or []) > 50 for a in payload.get("attachments") or []
    ):
        return "invalid_blocks"
    for block in blocks:
        kind = block.get("type")
        if kind == "header" and (block["text"]["type"] != "plain_text" or len(block["text"]["text"]) > 150):
            return "invalid_blocks"
        if kind == "section":
            if "text" in block and len(block["text"]["text"]) > 3000:
                return "invalid_blocks"
            if len(block.get("fields") or []) > 10 or any(
                len(f["text"]) > 2000 for f in block.get("fields") or []
            ):
                return "invalid_blocks"
        if kind == "context" and len(block.get("elements") or []) > 10:
            return "invalid_blocks"
        if kind == "actions":
            for element in block.get("elements") or []:
                if len(element["text"]["text"]) > 75 or len(element.get("url", "")) > 3000:
                    return "invalid_blocks"
    return ""


class SlackFake:
    """Slack's Web API and incoming webhooks, as far as a notifier uses them.

    Messages keep their metadata, which ``conversations.history`` and ``conversations.replies``
    return only when asked with ``include_all_metadata``, as Slack does; both take a channel ID
    only (a name is ``channel_not_found``), and ``conversations.list`` maps names to IDs.
    ``answer_delay`` holds back the answer to the next ``chat.postMessage`` after the message is
    posted: the poster does not learn it went out until then (or ever, if it dies meanwhile).
    """

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.server = FakeHTTPServer(self._handle, tls)
        self.messages: dict[tuple[str, str], dict[str, Any]] = {}  # (channel id, ts) -> message
        self.reactions: dict[tuple[str, str], dict[str, list[str]]] = {}  # -> emoji name -> user ids
        self._ts = 1700000000_000100
        self.answer_delay = 0.0
        self.posted = threading.Event()  # set at each chat.postMessage that posts

    def channel(self, channel_id: str) -> list[dict[str, Any]]:
        """What the channel shows, oldest first: its messages and thread replies."""
        return [m for (c, _), m in sorted(self.messages.items(), key=lambda i: i[0][1]) if c == channel_id]

    @property
    def api_url(self) -> str:
        return self.server.url + "/api/"

    @property
    def webhook_url(self) -> str:
        return self.server.url + SLACK_WEBHOOK_PATH

    def calls(self, method: str) -> list[dict[str, Any]]:
        return [r.json() for r in self.server.requests if r.path == f"/api/{method}" and r.body]

    def react(self, channel: str, ts: str, name: str, user: str) -> None:
        """Someone adds a reaction to a message, as a person in the Slack client would."""
        self.reactions.setdefault((channel, ts), {}).setdefault(name, []).append(user)

    def first_message(self, text: str) -> tuple[str, str]:
        """(channel id, ts) of the first top-level message whose text contains ``text``."""
        return next(
            key for key, m in self.messages.items() if text in str(m.get("text", "")) and "thread_ts" not in m
        )

    def _next_ts(self) -> str:
        self._ts += 100
        text = str(self._ts)
        return f"{text[:10]}.{text[10:]}"

    def _handle(self, request: Request) -> Reply:
        if request.path == SLACK_WEBHOOK_PATH:
            return self._webhook(request)
        if request.path.startswith("/services/"):
            return Reply(404, "no_service")
        method = request.path.removeprefix("/api/")
        if request.headers.get("authorization") != f"Bearer {SLACK_TOKEN}":
            error = "not_authed" if "authorization" not in request.headers else "invalid_auth"
            return Reply(200, {"ok": False, "error": error})
        if method == "reactions.get":  # a read method: form or query parameters, not JSON
            params = {
                **{k: v[0] for k, v in request.query.items()},
                **{k: v[0] for k, v in request.form().items()},
            }
            return self._reactions(params)
        if method in ("conversations.history", "conversations.replies", "conversations.list"):
            form = request.form() if request.body else {}  # a query or a form body: Slack takes both
            return self._read(method, {k: v[-1] for k, v in {**request.query, **form}.items()})
        if "application/json" not in request.headers.get("content-type", ""):
            return Reply(200, {"ok": False, "error": "invalid_arguments"})
        payload = request.json()
        if method == "chat.postMessage":
            return self._post(payload)
        if method == "chat.update":
            return self._update(payload)
        return Reply(200, {"ok": False, "error": "unknown_method"})

    def _post(self, payload: dict[str, Any]) -> Reply:
        channel = SLACK_CHANNELS.get(payload.get("channel", ""))
        if channel is None:
            return Reply(200, {"ok": False, "error": "channel_not_found"})
        if not (payload.get("text") or payload.get("blocks") or payload.get("attachments")):
            return Reply(200, {"ok": False, "error": "no_text"})
        error = _slack_block_errors(payload)
        if error:
            return Reply(200, {"ok": False, "error": error})
        thread = payload.get("thread_ts")
        if thread is not None and (channel, thread) not in self.messages:
            return Reply(200, {"ok": False, "error": "thread_not_found"})
        ts = self._next_ts()
        message = {**payload, "ts": ts, "channel": channel}
        self.messages[(channel, ts)] = message
        delay, self.answer_delay = self.answer_delay, 0.0
        self.posted.set()
        return Reply(200, {"ok": True, "channel": channel, "ts": ts, "message": message}, delay=delay)

    def _read(self, method: str, query: dict[str, str]) -> Reply:
        if method == "conversations.list":
            channels = sorted(
                {(i, n.removeprefix("#")) for n, i in SLACK_CHANNELS.items() if n.startswith("#")}
            )
            return Reply(200, {"ok": True, "channels": [{"id": i, "name": n} for i, n in channels]})
        channel = query.get("channel", "")
        if channel not in SLACK_CHANNELS.values():
            return Reply(200, {"ok": False, "error": "channel_not_found"})
        with_metadata = query.get("include_all_metadata") in ("1", "true")
        messages = self.channel(channel)
        limit = int(query.get("limit", 100))
        if (
            method == "conversations.history"
        ):  # the channel's own messages and broadcast replies, newest first
            shown = [m for m in reversed(messages) if "thread_ts" not in m or m.get("reply_broadcast")][
                :limit
            ]
        else:  # the thread's parent and replies, oldest first
            thread = query.get("ts", "")
            if (channel, thread) not in self.messages:
                return Reply(200, {"ok": False, "error": "thread_not_found"})
            shown = [m for m in messages if m["ts"] == thread or m.get("thread_ts") == thread][:limit]
        out = [{k: v for k, v in m.items() if k != "metadata" or with_metadata} for m in shown]
        return Reply(200, {"ok": True, "messages": out, "has_more": False})

    def _reactions(self, params: dict[str, str]) -> Reply:
        channel, ts = params.get("channel", ""), params.get("timestamp", "")
        if channel not in SLACK_CHANNELS.values():
            return Reply(200, {"ok": False, "error": "channel_not_found"})
        if (channel, ts) not in self.messages:
            return Reply(200, {"ok": False, "error": "message_not_found"})
        reactions = [
            {"name": name, "users": list(users), "count": len(users)}
            for name, users in self.reactions.get((channel, ts), {}).items()
        ]
        message = {**self.messages[(channel, ts)], **({"reactions": reactions} if reactions else {})}
        return Reply(200, {"ok": True, "type": "message", "channel": channel, "message": message})

    def _update(self, payload: dict[str, Any]) -> Reply:
        channel, ts = payload.get("channel", ""), payload.get("ts", "")
        if channel not in SLACK_CHANNELS.values():
            return Reply(200, {"ok": False, "error": "channel_not_found"})
        if (channel, ts) not in self.messages:
            return Reply(200, {"ok": False, "error": "message_not_found"})
        error = _slack_block_errors(payload)
        if error:
            return Reply(200, {"ok": False, "error": error})
        self.messages[(channel, ts)] = {**self.messages[(channel, ts)], **payload}
        return Reply(200, {"ok": True, "channel": channel, "ts": ts, "text": payload.get("text", "")})

    def _webhook(self, request: Request) -> Reply:
        try:
            payload = request.json()
        except ValueError:
            return Reply(400, "invalid_payload")
        if not (payload.get("text") or payload.get("blocks") or payload.get("attachments")):
            return Reply(400, "no_text")
        if _slack_block_errors(payload):
            return Reply(400, "invalid_blocks")
        return Reply(200, "ok")


# ---------------------------------------------------------------------------------------------------
# PagerDuty Events API v2

PAGERDUTY_KEY = "R0123456789abcdef0123456789abcde"  # routing keys are 32 characters
PAGERDUTY_SEVERITIES = ("critical", "error", "warning", "info")


class PagerDutyFake:
    """``POST /v2/enqueue`` of the Events API v2, keeping incidents by dedup_key."""

    def __init__(self, tls: ssl.SSLContext) -> None:  # the client refuses anything but https
        self.server = FakeHTTPServer(self._handle, tls)
        self.incidents: dict[str, str] = {}  # dedup_key -> "triggered" | "resolved"

    @property
    def events(self) -> list[dict[str, Any]]:
        return [r.json() for r in self.server.requests if r.path == "/v2/enqueue"]

    @staticmethod
    def _invalid(*errors: str) -> Reply:
        body = {"status": "invalid event", "message": "Event object is invalid", "errors": list(errors)}
        return Reply(400, body)

    def _handle(self, request: Request) -> Reply:
        if request.method != "POST" or request.path != "/v2/enqueue":
            return Reply(404, {"status": "not found"})
        try:
            event = request.json()
        except ValueError:
            return Reply(400, {"status": "invalid request", "message": "Could not parse JSON"})
        key = event.get("routing_key", "")
        if len(key) != 32:
            return self._invalid("Length of 'routing_key' is incorrect (should be 32 characters)")
        if key != PAGERDUTY_KEY:
            return self._invalid("'routing_key' is not a known integration key")
        action = event.get("event_action")
        if action not in ("trigger", "acknowledge", "resolve"):
            return self._invalid("'event_action' is invalid")
        dedup = event.get("dedup_key")
        if action == "trigger":
            payload = event.get("payload") or {}
            missing = [k for k in ("summary", "source", "severity") if not payload.get(k)]
            if missing:
                return self._invalid(*(f"'payload.{k}' is missing or blank" for k in missing))
            if payload["severity"] not in PAGERDUTY_SEVERITIES:
                return self._invalid("'payload.severity' is invalid")
            if len(payload["summary"]) > 1024:
                return self._invalid("'payload.summary' is too long")
            dedup = dedup or f"generated-{len(self.incidents)}"
            self.incidents[dedup] = "triggered"
        elif not dedup:
            return self._invalid("'dedup_key' is missing or blank")
        elif action == "resolve" and dedup in self.incidents:
            self.incidents[dedup] = "resolved"
        return Reply(202, {"status": "success", "message": "Event processed", "dedup_key": dedup})


PAGERDUTY_API_TOKEN = "u+pagerduty-rest-test-token"


class PagerDutyRestFake:
    """``GET /incidents`` of the REST API v2 over the incidents ``events`` triggered; a test
    acknowledges one as a responder would in PagerDuty (``acknowledge``)."""

    def __init__(self, events: PagerDutyFake, tls: ssl.SSLContext) -> None:  # the client wants https
        self.events = events
        self.server = FakeHTTPServer(self._handle, tls)
        self.acknowledged: dict[str, str] = {}  # dedup_key -> who acknowledged

    def acknowledge(self, dedup_key: str, who: str) -> None:
        self.acknowledged[dedup_key] = who

    def _handle(self, request: Request) -> Reply:
        if request.headers.get("authorization") != f"Token token={PAGERDUTY_API_TOKEN}":
            return Reply(401, {"error": {"message": "Unauthorized", "code": 2006}})
        if request.method != "GET" or request.path != "/incidents":
            return Reply(404, {"error": {"message": "Not Found", "code": 2100}})
        key = (request.query.get("incident_key") or [""])[0]
        statuses = request.query.get("statuses[]") or ["triggered", "acknowledged", "resolved"]
        incidents = []
        state = self.events.incidents.get(key)
        if state is not None:
            status = "acknowledged" if key in self.acknowledged and state == "triggered" else state
            incident: dict[str, Any] = {"id": "PINC" + key[:6].upper(), "incident_key": key, "status": status}
            if status == "acknowledged":
                who = self.acknowledged[key]
                incident["acknowledgements"] = [
                    {"at": "2026-01-01T00:00:00Z", "acknowledger": {"type": "user_reference", "summary": who}}
                ]
            if status in statuses:
                incidents.append(incident)
        return Reply(200, {"incidents": incidents, "limit": 25, "offset": 0, "more": False, "total": None})


# ---------------------------------------------------------------------------------------------------
# Twilio Messages API

TWILIO_SID = "AC" + "0" * 30 + "1"
TWILIO_TOKEN = "twilio-test-auth-token"
TWILIO_FROM = "+15005550006"
TWILIO_SERVICE = "MG" + "0" * 31 + "9"
TWILIO_UNSUBSCRIBED = "+15005550011"  # answers 21610 (the recipient replied STOP)
TWILIO_LANDLINE = "+15005550012"  # answers 21614 (not a mobile number)
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")


def twilio_error(status: int, code: int, message: str) -> Reply:
    body = {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }
    return Reply(status, body)


class TwilioFake:
    """``POST /2010-04-01/Accounts/{sid}/Messages.json`` with Twilio's checks and error codes."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.server = FakeHTTPServer(self._handle, tls)
        self.sent: list[dict[str, str]] = []

    def messages(self) -> list[dict[str, str]]:
        return [{k: v[0] for k, v in r.form().items()} for r in self.server.requests if r.body]

    def _handle(self, request: Request) -> Reply:
        match = re.fullmatch(r"/2010-04-01/Accounts/([^/]+)/Messages\.json", request.path)
        if request.method != "POST" or not match:
            return twilio_error(404, 20404, "The requested resource was not found")
        if request.basic_auth() != (TWILIO_SID, TWILIO_TOKEN) or match.group(1) != TWILIO_SID:
            return twilio_error(401, 20003, "Authenticate")
        if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            return twilio_error(400, 20001, "Unsupported content type")
        form = {k: v[0] for k, v in request.form().items()}
        to, body = form.get("To", ""), form.get("Body", "")
        if not to:
            return twilio_error(400, 21604, "A 'To' phone number is required.")
        if "From" not in form and "MessagingServiceSid" not in form:
            return twilio_error(400, 21603, "A 'From' phone number is required.")
        if (
            form.get("From", TWILIO_FROM) != TWILIO_FROM
            or form.get("MessagingServiceSid", TWILIO_SERVICE) != TWILIO_SERVICE
        ):
            return twilio_error(400, 21606, "The From phone number is not a valid, SMS-capable number.")
        if not body:
            return twilio_error(400, 21602, "Message body is required.")
        if len(body) > 1600:
            return twilio_error(400, 21617, "The concatenated message body exceeds the 1600 character limit.")
        if not _E164.match(to):
            return twilio_error(400, 21211, f"The 'To' number {to} is not a valid phone number.")
        if to == TWILIO_UNSUBSCRIBED:
            return twilio_error(400, 21610, "Attempt to send to unsubscribed recipient")
        if to == TWILIO_LANDLINE:
            return twilio_error(400, 21614, f"'To' number {to} is not a valid mobile number")
        self.sent.append(form)
        sid = f"SM{len(self.sent):032d}"
        answer = {
            "sid": sid,
            "status": "queued",
            "to": to,
            "body": body,
            "num_segments": "1",
            "error_code": None,
        }
        return Reply(201, answer)


# ---------------------------------------------------------------------------------------------------
# SMTP


@dataclass
class Mailbox:
    """What an aiosmtpd server accepted: one entry per message."""

    messages: list[tuple[str, list[str], bytes]] = field(default_factory=list)  # from, to, data
    logins: list[str] = field(default_factory=list)


class _MailHandler:
    def __init__(self, box: Mailbox) -> None:
        self.box = box

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:  # noqa: N802
        if address.endswith("@invalid.example"):
            return "550 5.1.1 mailbox unavailable"
        if address.endswith("@busy.example"):
            return "451 4.3.0 try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.box.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content))
        return "250 Message accepted for delivery"


SMTP_USER, SMTP_PASSWORD = "alerts", "s3cret-smtp"


@contextmanager
def smtp_server(
    *,
    tls: ssl.SSLContext | None = None,
    implicit_tls: bool = False,
    require_auth: bool = False,
    port: int | None = None,
) -> Iterator[tuple[int, Mailbox]]:
    """A real aiosmtpd server: plain, STARTTLS (``tls``), or implicit TLS; optionally with AUTH; on
    ``port`` when the test chose it beforehand, else on a free one."""
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, LoginPassword

    box = Mailbox()

    def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login.decode(), data.password.decode()) == (
            SMTP_USER,
            SMTP_PASSWORD,
        )
        if ok:
            box.logins.append(data.login.decode())
        # handled=False: let aiosmtpd answer 535 itself (with True it stays silent).
        return AuthResult(success=ok, handled=False)

    options: dict[str, Any] = {"hostname": "127.0.0.1", "port": port or free_port()}
    if implicit_tls:
        options["ssl_context"] = tls
    elif tls is not None:
        options["tls_context"] = tls
        options["require_starttls"] = True
    if require_auth:
        options["authenticator"] = authenticate
        options["auth_required"] = True
        # With implicit TLS the whole session is encrypted, but aiosmtpd only counts STARTTLS.
        options["auth_require_tls"] = tls is not None and not implicit_tls
    controller = Controller(_MailHandler(box), **options)
    controller.start()
    try:
        yield options["port"], box
    finally:
        controller.stop()
