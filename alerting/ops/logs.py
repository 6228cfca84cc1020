"""Structured logging: one JSON object per line, the schema our users' own services log in.

Every line carries ``ts`` (RFC 3339, UTC, milliseconds), ``level`` (``DEBUG``, ``INFO``, ``WARN``,
``ERROR``, ``CRITICAL``), ``service``, ``event`` (a dotted identifier such as ``group.evaluated``)
and ``msg`` (a sentence for humans), then the correlation fields that apply (``group``, ``rule``,
``alertname``, ``fingerprint``, ``receiver``, ``eval_id``), then anything else.

Records from the standard library (Celery, kombu, httpx) go through the same processors: their
text becomes ``msg`` and their logger name ``event``. Secrets are redacted by key and by pattern
just before rendering, after exceptions are formatted, so a token inside an exception message or a
traceback is caught too. Tracebacks are rendered as plain text: no frame locals, ever.
"""

from __future__ import annotations

import logging
import re
import sys
import time
import uuid
from collections.abc import Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import structlog

from alerting.core import rfc3339

SERVICE = "alerting"
REDACTED = "[REDACTED]"

# The fields every line starts with, then the correlation fields, in this order; the rest follow.
HEAD_FIELDS = ("ts", "level", "service", "event", "msg")
CORRELATION_FIELDS = ("group", "rule", "alertname", "fingerprint", "receiver", "eval_id")

_LEVELS = {
    "debug": "DEBUG",
    "info": "INFO",
    "warn": "WARN",
    "warning": "WARN",
    "error": "ERROR",
    "exception": "ERROR",
    "critical": "CRITICAL",
    "fatal": "CRITICAL",
}

# A key is secret when one of its words is one of these (``bearer_token``, ``X-Api-Key``), but not
# when the word merely starts the same way (``tokens_used`` is a count, not a token).
_SECRET_WORDS = frozenset({"password", "passwd", "pwd", "token", "secret", "authorization", "cookie"})
_SECRET_PAIRS = frozenset({("api", "key"), ("routing", "key"), ("auth", "token"), ("private", "key")})
_SECRET_KEYS = frozenset({"apikey", "routingkey", "authtoken", "privatekey", "servicekey", "webhookurl"})

_URL_USERINFO = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s\"'<>]+@")
_SLACK_TOKEN = re.compile(r"\bxox[abposre]-[A-Za-z0-9-]+")
_SLACK_APP_TOKEN = re.compile(r"\bxapp-[A-Za-z0-9-]+")
_SLACK_WEBHOOK = re.compile(r"(hooks\.slack\.com/(?:services|workflows|triggers)/)[^\s\"'<>]+")
# A Telegram bot token (``<bot id>:<35 characters>``); the Bot API carries it in the URL path.
_TELEGRAM_BOT_TOKEN = re.compile(r"(?<!\d)\d{5,}:[A-Za-z0-9_-]{30,}")
# VictorOps's REST endpoint carries the API key in the URL path: .../alert/<api key>/<routing key>.
_VICTOROPS_KEY = re.compile(r"(/integrations/generic/\d+/alert/)[^/\s\"'<>?]+")
# A Discord webhook URL ends in the webhook's token.
_DISCORD_WEBHOOK = re.compile(r"(discord(?:app)?\.com/api/(?:v\d+/)?webhooks/\d+/)[^\s\"'<>?/]+")
# Pushover takes the user key as a query parameter (the token is caught as an assignment).
_PUSHOVER_URL = re.compile(r"api\.pushover\.net/[^\s\"'<>?]*\?[^\s\"'<>]*")
_PUSHOVER_USER = re.compile(r"(\buser=)[^&]+")
_AUTH_HEADER = re.compile(r"(?i)\b(bearer|basic|token|geniekey)(\s+)[A-Za-z0-9._~+/=-]{8,}")
_ASSIGNMENT = re.compile(
    r"(?i)(?P<key>[\w-]*(?:password|passwd|secret|token|api[_-]?key|routing[_-]?key|authorization)"
    r"[\"']?\s*[:=]\s*[\"']?)(?P<value>[^\s\"'&,;}\]]+)"
)

_configured = False


def configure_logging(level: str = "INFO", fmt: str = "json", stream: Any = None) -> None:
    """Route structlog and the standard library (Celery included) through one renderer.

    ``fmt`` is ``json`` (one object per line, every record) or ``console`` (one short line per
    event for a person: Celery's per-task lines move to DEBUG; colour only on a terminal).
    """
    global _configured
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        _add_level,
        _add_timestamp,
        _add_service,
    ]
    stream = stream or sys.stderr
    renderer: Any = (
        structlog.processors.JSONRenderer(default=_json_default)
        if fmt == "json"
        else ConsoleLines(colors=_is_terminal(stream))
    )
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            structlog.stdlib.PositionalArgumentsFormatter(),
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, structlog.stdlib.ExtraAdder(), _drop_color_copies, _foreign_event],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            # Plain-text traceback from the standard library's formatter: it never reads frame
            # locals (unlike rich's or structlog's dict tracebacks), so secrets held in local
            # variables cannot leak through an exception.
            structlog.processors.format_exc_info,
            redact,
            _order,
            renderer,
        ],
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    if fmt != "json":
        # JSON keeps every record for machines; a person reading the console wants our events.
        handler.addFilter(TaskChatter(level))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Libraries that install their own handlers would print a second, plain-text copy.
    for name in ("celery", "celery.task", "celery.redirected", "kombu", "amqp", "py.warnings"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
    # httpx logs every request at INFO (URLs included); one line per query is noise.
    quiet = logging.DEBUG if level.upper() == "DEBUG" else logging.WARNING
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(quiet)
    logging.captureWarnings(True)
    _configured = True


def get_logger(name: str) -> Any:
    return structlog.stdlib.get_logger(name)


def new_eval_id() -> str:
    """A short id that ties one evaluation to the notifications it causes."""
    return uuid.uuid4().hex[:16]


@contextmanager
def bound(**fields: Any) -> Iterator[None]:
    """Add ``fields`` (e.g. ``eval_id``, ``group``) to every line logged inside the block."""
    with structlog.contextvars.bound_contextvars(**fields):
        yield


def context_value(name: str) -> Any:
    """A field bound with :func:`bound` in the current context (``None`` if unbound)."""
    return structlog.contextvars.get_contextvars().get(name)


def prepare_celery_worker(instance: Any, level: str = "INFO", fmt: str = "json") -> None:
    """Make a Celery worker print nothing but our lines. For Celery's ``celeryd_init`` signal
    (``instance`` is the worker being built), which comes before anything is printed.

    Logging is configured now rather than at ``setup_logging``, so warnings Celery raises while
    starting (e.g. about running as root) are rendered too; the multi-line plain-text banner is
    replaced by one line; and the few notices Celery prints itself (warm/cold shutdown) are sent
    through logging.
    """
    configure_logging(level, fmt)
    instance.quiet = True
    get_logger("celery.worker").info(
        "worker.starting",
        msg=f"worker {getattr(instance, 'hostname', '?')} starting",
        hostname=getattr(instance, "hostname", None),
    )
    from celery.apps import worker as celery_worker

    def say(msg: str, f: Any = None) -> None:
        logging.getLogger("celery.apps.worker").warning(str(msg).strip())

    celery_worker.safe_say = say


# --- the console ------------------------------------------------------------------------------

# Celery's records about each task ("Task ... received", "Task ... succeeded in 0.01s") and its
# start-up notices, which the worker's own summary (``worker.ready``) replaces: at INFO they
# outnumber everything a person is looking for.
_CHATTY_LOGGERS = (
    "celery.worker.strategy",
    "celery.app.trace",
    "celery.beat",
    "celery.worker.consumer",
    "celery.apps.worker",
)
# Our routine events: every tick, every delivery job, and what the summary or the printed
# notification already says.
_ROUTINE_EVENTS = frozenset({"group.evaluated", "notify.job", "http.started", "notification.console"})

# Fields a console line leaves out: identifiers for machines, and structures the message already
# says in words (the JSON line keeps all of them).
_CONSOLE_HIDDEN = frozenset(
    {
        *HEAD_FIELDS,
        "fingerprint",
        "eval_id",
        "labels",
        "annotations",
        "slot",
        "active_at",
        "group_key",
        "hostname",
        "exception",
        "stack",
    }
)
_COLOURS = {
    "DEBUG": "\x1b[2m",
    "INFO": "\x1b[32m",
    "WARN": "\x1b[33m",
    "ERROR": "\x1b[31m",
    "CRITICAL": "\x1b[1;31m",
}
_RESET = "\x1b[0m"


def _is_terminal(stream: Any) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False


class TaskChatter(logging.Filter):
    """For the console: demotes Celery's per-task INFO records and our per-tick events to DEBUG,
    and drops them below ``level``. Warnings and errors from the same places pass unchanged."""

    def __init__(self, level: str = "INFO") -> None:
        super().__init__()
        self.shown = logging.getLevelName(level.upper()) <= logging.DEBUG

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.INFO:
            return True
        ours = record.msg.get("event") if isinstance(record.msg, dict) else None
        if ours in _ROUTINE_EVENTS or (ours is None and record.name.startswith(_CHATTY_LOGGERS)):
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return self.shown
        return True


class ConsoleLines:
    """structlog renderer: ``12:00:01 INFO  alert.firing  Watchdog firing  group=... alertname=...``.

    The time is local wall-clock time (the JSON line has the full UTC timestamp); a message of
    several lines (the start-up summary) keeps its lines; a traceback follows, indented.
    """

    def __init__(self, colors: bool = False) -> None:
        self.colors = colors

    def __call__(self, _: Any, __: str, event: MutableMapping[str, Any]) -> str:
        level = str(event.get("level", "INFO"))
        name = str(event.get("event", ""))
        msg = str(event.get("msg", ""))
        clock = time.strftime("%H:%M:%S", time.localtime(_epoch(event.get("ts"))))
        shown = f"{level:<5}"
        if self.colors:
            shown = f"{_COLOURS.get(level, '')}{shown}{_RESET}"
        first, _, rest = msg.partition("\n")
        head = [clock, shown, name]
        if first and first != name:
            head.append(first)
        fields = [
            f"{k}={_short(v)}"
            for k, v in event.items()
            if k not in _CONSOLE_HIDDEN and isinstance(v, str | int | float) and v != ""
        ]
        # A message of several lines (the start-up summary) says it all: its fields are for JSON.
        line = "  ".join([" ".join(head[:2]) + " " + head[2], *head[3:], "" if rest else " ".join(fields)])
        line = line.rstrip()
        extra = [rest] if rest else []
        if event.get("exception"):
            extra.append("  " + str(event["exception"]).rstrip().replace("\n", "\n  "))
        return "\n".join([line, *extra])


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _epoch(ts: Any) -> float:
    try:
        return datetime.fromisoformat(str(ts).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return time.time()


# --- redaction --------------------------------------------------------------------------------


def is_secret_key(key: str) -> bool:
    """True for keys whose values are credentials (``password``, ``X-Api-Key``, ``routing_key``).

    Keys naming a file that holds a secret (``password_file``) are not secret themselves.
    """
    words = [w for w in re.split(r"[^a-z0-9]+", re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", key).lower()) if w]
    if not words or words[-1] in ("file", "path"):
        return False
    if any(w in _SECRET_WORDS for w in words) or "".join(words) in _SECRET_KEYS:
        return True
    return any(pair in _SECRET_PAIRS for pair in zip(words, words[1:], strict=False))


def redact_text(text: str) -> str:
    """Blank out credentials that have a recognisable shape inside free text."""
    text = _URL_USERINFO.sub(lambda m: f"{m.group('scheme')}{REDACTED}@", text)
    text = _SLACK_TOKEN.sub(REDACTED, text)
    text = _SLACK_APP_TOKEN.sub(REDACTED, text)
    text = _SLACK_WEBHOOK.sub(lambda m: m.group(1) + REDACTED, text)
    text = _TELEGRAM_BOT_TOKEN.sub(REDACTED, text)
    text = _PUSHOVER_URL.sub(lambda m: _PUSHOVER_USER.sub(lambda p: p.group(1) + REDACTED, m.group(0)), text)
    text = _DISCORD_WEBHOOK.sub(lambda m: m.group(1) + REDACTED, text)
    text = _VICTOROPS_KEY.sub(lambda m: m.group(1) + REDACTED, text)
    text = _AUTH_HEADER.sub(lambda m: m.group(1) + m.group(2) + REDACTED, text)
    return _ASSIGNMENT.sub(lambda m: m.group("key") + REDACTED, text)


def redact_value(value: Any, key: str = "") -> Any:
    """``value`` with secrets removed: by ``key`` name, then recursively by pattern."""
    if key and is_secret_key(key) and value not in (None, ""):
        return REDACTED
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return {k: redact_value(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [redact_value(v) for v in value]
    if isinstance(value, bytes):
        return redact_text(value.decode("utf-8", "replace"))
    if isinstance(value, int | float | bool) or value is None:
        return value
    # Anything else is rendered through str() by the renderer: redact that text instead.
    return redact_text(str(value))


def redact(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: the last step before rendering."""
    return {k: v if k in ("ts", "level", "service") else redact_value(v, k) for k, v in event.items()}


# --- processors -------------------------------------------------------------------------------


def _add_level(_: Any, method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    record = event.get("_record")
    name = record.levelname.lower() if record is not None else method
    event["level"] = _LEVELS.get(name, name.upper())
    return event


def _add_timestamp(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    record = event.get("_record")
    event["ts"] = rfc3339(record.created if record is not None else time.time())
    return event


def _drop_color_copies(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    # uvicorn attaches a terminal-coloured copy of its message; ours is the plain one.
    event.pop("color_message", None)
    return event


def _add_service(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    event.setdefault("service", SERVICE)
    event.setdefault("msg", event.get("event", ""))
    return event


def _foreign_event(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """A standard-library record's text is a message, not an identifier: name it by its logger."""
    record = event.get("_record")
    if record is not None:
        event["msg"] = event.get("event", "")
        event["event"] = record.name
    return event


def _order(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    out = {k: event.pop(k) for k in (*HEAD_FIELDS, *CORRELATION_FIELDS) if k in event}
    out.update(event)
    return out


def _json_default(value: Any) -> Any:
    return str(value)
