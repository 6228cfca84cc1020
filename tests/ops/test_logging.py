"""Log lines as users' log pipelines see them: one JSON object per line with our schema, secrets
redacted by key and by pattern, tracebacks without frame locals, Celery's own records included."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import redis
from celery import Celery

from alerting.ops.logs import (
    CORRELATION_FIELDS,
    REDACTED,
    bound,
    configure_logging,
    get_logger,
    is_secret_key,
    redact_text,
)
from tests.support.net import REDIS_URL, celery_queue, wait_until

ROOT = Path(__file__).resolve().parents[2]
TS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
LEVELS = {"DEBUG", "INFO", "WARN", "ERROR", "CRITICAL"}


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """Logging configured as the worker does, writing into a buffer; restored afterwards."""
    stream = io.StringIO()
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    configure_logging("DEBUG", "json", stream)
    yield stream
    root.handlers[:], root.level = saved


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def assert_schema(line: dict[str, Any]) -> None:
    assert list(line)[:5] == ["ts", "level", "service", "event", "msg"], line
    assert TS.match(line["ts"]), line["ts"]
    assert line["level"] in LEVELS
    assert line["service"] == "alerting"
    assert isinstance(line["event"], str) and line["event"]
    assert isinstance(line["msg"], str)


def test_structlog_and_standard_library_lines_share_the_schema(captured: io.StringIO) -> None:
    log = get_logger("alerting.test")
    log.info(
        "alert.firing",
        msg="HighLatency firing",
        extra_field=3,
        receiver="slack",
        alertname="HighLatency",
        group="api",
        fingerprint="abc",
        rule="HighLatency",
    )
    log.warning("group.missed_slots", msg="2 slot(s) missed", group="api")
    logging.getLogger("celery.worker.strategy").info("Task %s[%s] received", "tasks.evaluate_group", "id-1")
    out = lines(captured)
    assert len(out) == 3
    for line in out:
        assert_schema(line)
    firing, missed, celery_line = out
    # correlation fields come right after the head, in the documented order
    assert list(firing)[5:10] == ["group", "rule", "alertname", "fingerprint", "receiver"]
    assert firing["level"] == "INFO" and missed["level"] == "WARN"
    assert firing["extra_field"] == 3
    assert celery_line["event"] == "celery.worker.strategy"
    assert celery_line["msg"] == "Task tasks.evaluate_group[id-1] received"


def test_eval_id_bound_once_appears_on_every_line_inside_the_block(captured: io.StringIO) -> None:
    log = get_logger("alerting.test")
    with bound(eval_id="e-123", group="api"):
        log.info("group.evaluated", msg="evaluated")
        logging.getLogger("celery.app.trace").info("Task succeeded")
    log.info("after")
    inside1, inside2, after = lines(captured)
    assert inside1["eval_id"] == inside2["eval_id"] == "e-123"
    assert inside2["group"] == "api"
    assert "eval_id" not in after
    assert "eval_id" in CORRELATION_FIELDS


@pytest.mark.parametrize(
    ("key", "secret"),
    [
        ("password", True),
        ("PASSWORD", True),
        ("token", True),
        ("bearer_token", True),
        ("secret", True),
        ("client_secret", True),
        ("api_key", True),
        ("X-Api-Key", True),
        ("apiKey", True),
        ("authorization", True),
        ("Authorization", True),
        ("routing_key", True),
        ("auth_token", True),
        ("tokens_used", False),
        ("password_file", False),
        ("routing", False),
        ("keyword", False),
        ("group", False),
    ],
)
def test_secret_keys_are_recognised_by_their_words(key: str, secret: bool) -> None:
    assert is_secret_key(key) is secret


def test_values_under_secret_keys_are_redacted_at_any_depth(captured: io.StringIO) -> None:
    get_logger("t").info(
        "notify.sent",
        password="hunter2",
        config={"slack": {"api_url": "https://example.com", "token": "tok-123456"}},
        headers=[{"Authorization": "Basic dXNlcjpwYXNz"}],
        routing_key="R0UT1NGKEY00000000000000000000000",
        tokens_used=450,
    )
    (line,) = lines(captured)
    assert line["password"] == REDACTED
    assert line["config"]["slack"] == {"api_url": "https://example.com", "token": REDACTED}
    assert line["headers"] == [{"Authorization": REDACTED}]
    assert line["routing_key"] == REDACTED
    assert line["tokens_used"] == 450
    text = captured.getvalue()
    for secret in ("hunter2", "tok-123456", "dXNlcjpwYXNz", "R0UT1NGKEY"):
        assert secret not in text


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("connecting to redis://:s3cretpw@cache:6379/0", "s3cretpw"),
        ("GET https://admin:hunter2@prom.example.com/api/v1/query", "hunter2"),
        ("slack said invalid_auth for xoxb-1234-5678-abcdefABCDEF", "xoxb-1234-5678-abcdefABCDEF"),
        ("posting to https://hooks.slack.com/services/T000/B000/XXXXSECRETXXXX", "XXXXSECRETXXXX"),
        (
            "POST https://api.telegram.org/bot123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw/sendMessage",
            "AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw",
        ),
        ("header Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.payload.sig", "eyJhbGciOiJIUzI1NiJ9"),
        ("GET /api?api_key=abcdef123456&x=1", "abcdef123456"),
        ("{'password': 'pa55word', 'user': 'bob'}", "pa55word"),
        ('{"routing_key": "0123456789abcdef0123456789abcdef"}', "0123456789abcdef0123456789abcdef"),
    ],
)
def test_secrets_with_a_recognisable_shape_are_redacted_inside_text(
    captured: io.StringIO, text: str, secret: str
) -> None:
    assert secret not in redact_text(text)
    get_logger("t").error("send.failed", msg=text)
    logging.getLogger("celery.app.trace").error("Task raised: %s", text)
    out = captured.getvalue()
    assert secret not in out
    assert REDACTED in out


def test_text_without_secrets_is_left_alone() -> None:
    text = "evaluated 3 rules in 0.2s; tokens_used=450; see https://prom.example.com/graph"
    assert redact_text(text) == text


def _fail_with_a_secret_in_a_local() -> None:
    api_password = "local-secret-value-42"  # noqa: F841 - the point: it must not be printed
    raise ConnectionError("upstream refused https://bot:inline-secret@hooks.example.com/x")


@pytest.mark.parametrize("fmt", ["json", "console"])
def test_tracebacks_carry_no_frame_locals_and_no_secrets(fmt: str) -> None:
    stream = io.StringIO()
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        configure_logging("INFO", fmt, stream)
        try:
            _fail_with_a_secret_in_a_local()
        except ConnectionError:
            get_logger("t").exception("query.crashed", msg="query crashed")
            logging.getLogger("celery.app.trace").exception("Task failed")
    finally:
        root.handlers[:], root.level = saved
    out = stream.getvalue()
    assert "_fail_with_a_secret_in_a_local" in out  # the traceback is there...
    assert "local-secret-value-42" not in out  # ...without the locals of its frames
    assert "inline-secret" not in out
    if fmt == "json":
        records = [json.loads(line) for line in out.splitlines()]
        assert [r["level"] for r in records] == ["ERROR", "ERROR"]
        assert all("Traceback" in r["exception"] for r in records)


def test_level_filters_debug_lines_and_console_format_is_readable() -> None:
    stream = io.StringIO()
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        configure_logging("INFO", "console", stream)
        get_logger("t").debug("hidden.debug")
        get_logger("t").info("alert.firing", msg="HighLatency firing", group="api", password="pw-xyz")
    finally:
        root.handlers[:], root.level = saved
    out = stream.getvalue()
    assert "hidden.debug" not in out
    assert "alert.firing" in out and "group=api" in out
    assert "pw-xyz" not in out
    with pytest.raises(json.JSONDecodeError):
        json.loads(out.splitlines()[0])


@pytest.fixture
def queue(redis_client: redis.Redis) -> Iterator[str]:
    name = celery_queue("q-log")
    yield name
    redis_client.delete(name, f"_kombu.binding.{name}")


APP_MODULE = """\
from alerting.worker.app import app  # the worker's own app, its signal handlers included
"""


def test_a_real_celery_worker_writes_only_json_lines_once_each(
    tmp_path: Path, prefix: str, queue: str
) -> None:
    """Celery's own records (startup warnings, task received/succeeded, shutdown notices) and
    ours, through one renderer, each once."""
    (tmp_path / "rules").mkdir()
    (tmp_path / "logapp.py").write_text(APP_MODULE)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)]),
        "ALERTING_RULES": str(tmp_path / "rules"),
        "ALERTING_REDIS_URL": REDIS_URL,
        "ALERTING_REDIS_PREFIX": prefix,
        "ALERTING_CELERY_QUEUE": queue,
        "ALERTING_CONFIG": str(tmp_path / "none.yml"),
        "LOG_LEVEL": "INFO",
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "logapp",
            "worker",
            "--concurrency=1",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            f"--hostname=log-{uuid.uuid4().hex[:6]}@%h",
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    assert process.stdout is not None
    stdout = process.stdout
    output: list[str] = []
    reader = threading.Thread(target=lambda: output.extend(iter(stdout.readline, "")), daemon=True)
    reader.start()
    try:
        wait_until(lambda: any("ready" in line for line in output), timeout=60, what="the worker to be ready")
        client = Celery(broker=REDIS_URL)
        client.send_task("tasks.evaluate_group", args=["missing.yml:nope"], queue=queue)
        wait_until(lambda: any("succeeded" in line for line in output), timeout=60, what="the task to finish")
        client.close()
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
        reader.join(timeout=5)
    records = []
    for line in output:
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            pytest.fail(f"plain-text line in the worker's output: {line!r}\n{''.join(output)}")
    for record in records:
        assert_schema(record)
    events = [r["event"] for r in records]
    assert "worker.starting" in events  # instead of the banner
    assert "celery.worker.strategy" in events  # Task ... received
    assert "celery.app.trace" in events  # Task ... succeeded
    assert "group.gone" in events  # ours, from inside the task
    assert any("shutdown" in r["msg"] for r in records)  # Celery's own shutdown notice
    assert events.count("worker.starting") == 1
    # Twice-written lines may differ only in their timestamps.
    lines = [json.dumps({k: v for k, v in r.items() if k != "ts"}) for r in records]
    assert len(set(lines)) == len(lines), [x for x in lines if lines.count(x) > 1]


# --- the console -------------------------------------------------------------------------------


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@contextmanager
def console(level: str = "INFO", stream: io.StringIO | None = None) -> Iterator[io.StringIO]:
    stream = stream if stream is not None else io.StringIO()
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    configure_logging(level, "console", stream)
    try:
        yield stream
    finally:
        root.handlers[:], root.level = saved


def celery_task_lines() -> None:
    logging.getLogger("celery.worker.strategy").info("Task %s[%s] received", "tasks.evaluate_group", "id-1")
    logging.getLogger("celery.app.trace").info("Task %s[%s] succeeded in 0.01s: None", "tasks.x", "id-1")


def test_console_shows_our_events_one_short_line_each_without_celerys_task_lines() -> None:
    with console() as out:
        celery_task_lines()
        get_logger("alerting.test").info(
            "alert.firing",
            msg="Watchdog firing: The alert evaluator is running (severity=none)",
            group="watchdog",
            alertname="Watchdog",
            fingerprint="abc",
            labels={"alertname": "Watchdog", "severity": "none"},
            value=1.0,
        )
        get_logger("alerting.test").info("group.evaluated", msg="evaluated 1 rules", group="watchdog")
        logging.getLogger("celery.app.trace").error("Task %s raised: boom", "tasks.x")
    shown = out.getvalue().splitlines()
    assert len(shown) == 2, shown
    assert re.fullmatch(
        r"\d\d:\d\d:\d\d INFO  alert\.firing  Watchdog firing: The alert evaluator is running "
        r"\(severity=none\)  group=watchdog alertname=Watchdog value=1",
        shown[0],
    ), shown[0]
    assert shown[1].split()[1:3] == ["ERROR", "celery.app.trace"]


def test_console_at_debug_keeps_celerys_task_lines_as_debug() -> None:
    with console("DEBUG") as out:
        celery_task_lines()
    shown = out.getvalue().splitlines()
    assert [line.split()[1] for line in shown] == ["DEBUG", "DEBUG"]
    assert "received" in shown[0] and "succeeded" in shown[1]


def test_json_keeps_celerys_task_lines_at_info(captured: io.StringIO) -> None:
    celery_task_lines()
    assert [(r["event"], r["level"]) for r in lines(captured)] == [
        ("celery.worker.strategy", "INFO"),
        ("celery.app.trace", "INFO"),
    ]


def test_console_keeps_a_message_of_several_lines_and_colours_only_a_terminal() -> None:
    with console() as plain:
        get_logger("alerting.test").info("worker.ready", msg="ready: 1 rules\n  rules  a.yml: g", rules=1)
    assert plain.getvalue().splitlines()[1:] == ["  rules  a.yml: g"]
    assert plain.getvalue().splitlines()[0].endswith("INFO  worker.ready  ready: 1 rules")
    assert "\x1b[" not in plain.getvalue()
    with console(stream=Terminal()) as terminal:
        get_logger("alerting.test").warning("rules.invalid", msg="bad.yml:1:1: broken")
    assert "\x1b[33mWARN " in terminal.getvalue()
