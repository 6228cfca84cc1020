"""The Telegram integration against a local server speaking the Bot API, and beside a real
Alertmanager 0.25 sending the same alert group to the same server."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from alerting.errors import ConfigError
from alerting.notify.base import DeliveryError, Notification
from alerting.notify.receivers import INTEGRATIONS
from alerting.notify.receivers.telegram import MESSAGE_LIMIT, telegram_integration
from tests.support import receivers
from tests.support.differential import route_ours
from tests.support.httpfake import FakeHTTPServer, Reply, Request
from tests.support.net import wait_until
from tests.support.notifications import alert, notification
from tests.support.routing_alertmanager import Alertmanager
from tests.support.routing_redis import isolated_redis

TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
CHAT = -1001234567890


def sent(request: Request) -> Reply:
    """Telegram's answer to a sendMessage it accepted."""
    chat = int(request.json()["chat_id"])
    result = {"message_id": 7, "date": int(time.time()), "chat": {"id": chat, "type": "supergroup"}}
    return Reply(200, {"ok": True, "result": result})


def refused(code: int, description: str, **parameters: Any) -> Reply:
    body: dict[str, Any] = {"ok": False, "error_code": code, "description": description}
    if parameters:
        body["parameters"] = parameters
    return Reply(code, body)


@pytest.fixture
def telegram() -> Iterator[FakeHTTPServer]:
    with FakeHTTPServer(sent) as fake:
        yield fake


def integration(fake: FakeHTTPServer, **fields: Any) -> Any:
    return telegram_integration({"api_url": fake.url, "bot_token": TOKEN, "chat_id": CHAT, **fields}, {})


def text_of(fake: FakeHTTPServer) -> str:
    return str(fake.requests[-1].json()["text"])


# ---------------------------------------------------------------------------------------------------
# The request


def test_registered_as_telegram_configs() -> None:
    assert INTEGRATIONS["telegram_configs"] is telegram_integration


def test_a_message_is_a_json_post_to_send_message_with_string_parameters(telegram: FakeHTTPServer) -> None:
    integration(telegram).send(notification())
    (request,) = telegram.requests
    assert request.method == "POST"
    assert request.path == f"/bot{TOKEN}/sendMessage"
    assert request.headers["content-type"] == "application/json"
    body = request.json()
    assert body["chat_id"] == str(CHAT)
    assert body["parse_mode"] == "HTML"
    assert body["disable_web_page_preview"] == "true"
    assert "disable_notification" not in body
    assert set(body) == {"chat_id", "text", "parse_mode", "disable_web_page_preview"}


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"disable_notifications": True}, {"disable_notification": "true", "parse_mode": "HTML"}),
        ({"parse_mode": ""}, {}),
        ({"parse_mode": "MarkdownV2"}, {"parse_mode": "MarkdownV2"}),
        ({"parse_mode": "Markdown", "chat_id": "42"}, {"parse_mode": "Markdown"}),
    ],
)
def test_parse_mode_and_silent_messages_are_sent_as_configured(
    telegram: FakeHTTPServer, fields: dict[str, Any], expected: dict[str, str]
) -> None:
    integration(telegram, **fields).send(notification())
    body = telegram.requests[-1].json()
    optional = {k: v for k, v in body.items() if k in ("parse_mode", "disable_notification")}
    assert optional == expected
    assert body["chat_id"] == str(fields.get("chat_id", CHAT))


def test_api_url_comes_from_the_global_telegram_api_url(telegram: FakeHTTPServer) -> None:
    global_config = {"telegram_api_url": telegram.url + "/"}
    telegram_integration({"bot_token": TOKEN, "chat_id": CHAT}, global_config).send(notification())
    assert telegram.requests[0].path == f"/bot{TOKEN}/sendMessage"


def test_the_bot_token_comes_from_the_global_telegram_bot_token_or_its_file(
    telegram: FakeHTTPServer, tmp_path: Path
) -> None:
    telegram_integration({"api_url": telegram.url, "chat_id": CHAT}, {"telegram_bot_token": TOKEN}).send(
        notification()
    )
    token_file = tmp_path / "token"
    token_file.write_text("1:from-file\n")
    global_config = {"telegram_bot_token_file": str(token_file)}
    telegram_integration({"api_url": telegram.url, "chat_id": CHAT}, global_config).send(notification())
    # The entry's own token wins over the global one.
    telegram_integration(
        {"api_url": telegram.url, "chat_id": CHAT, "bot_token": "2:own"}, global_config
    ).send(notification())
    paths = [r.path for r in telegram.requests]
    assert paths == [f"/bot{TOKEN}/sendMessage", "/bot1:from-file/sendMessage", "/bot2:own/sendMessage"]


def test_bot_token_file_is_read_at_send_time(telegram: FakeHTTPServer, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("1:first\n")
    hook = telegram_integration(
        {"api_url": telegram.url, "bot_token_file": str(token_file), "chat_id": CHAT}, {}
    )
    hook.send(notification())
    token_file.write_text("1:rotated\n")
    hook.send(notification())
    assert [r.path for r in telegram.requests] == ["/bot1:first/sendMessage", "/bot1:rotated/sendMessage"]
    token_file.unlink()
    with pytest.raises(DeliveryError, match="bot_token_file") as failure:
        hook.send(notification())
    assert failure.value.retryable


def test_resolved_messages_are_sent_unless_send_resolved_is_off(telegram: FakeHTTPServer) -> None:
    resolved = notification(alert("resolved"))
    integration(telegram).send(resolved)
    assert len(telegram.requests) == 1 and "RESOLVED" in text_of(telegram)
    quiet = integration(telegram, send_resolved=False)
    assert quiet.send_resolved is False
    quiet.send(resolved)
    assert len(telegram.requests) == 1
    quiet.send(notification())
    assert len(telegram.requests) == 2


# ---------------------------------------------------------------------------------------------------
# The message


def test_default_message_says_what_broke_where_and_how_to_silence_it(telegram: FakeHTTPServer) -> None:
    dashboard = "https://grafana.example/d/api"
    firing = alert(labels={"instance": "web-1"}, annotations={"dashboard_url": dashboard}, value=3.2)
    integration(telegram).send(
        notification(firing, group_labels={"alertname": "HighErrorRate", "service": "api"})
    )
    text = text_of(telegram)
    first_line = text.splitlines()[0]
    assert "FIRING:1" in first_line and "HighErrorRate" in first_line and "critical" in first_line
    for part in (
        "<b>5xx 3.2/s</b> <code>3.2</code>",  # summary and value
        "The api answers 5xx to 3.2 requests per second.",  # description
        "service: <b>api</b> \u00b7 instance: <b>web-1</b>",  # the key labels
        '<a href="https://runbooks.example/high-error-rate">Runbook</a>',
        f'<a href="{dashboard}">Dashboard</a>',
        '<a href="http://prometheus.example:9090/graph?g0.expr=rate%28http_5xx%5B5m%5D%29">Query</a>',
        "Silence: <code>alerting silence add alertname=HighErrorRate service=api --duration 2h",
    ):
        assert part in text


def test_label_and_annotation_values_are_html_escaped_in_the_default_message(
    telegram: FakeHTTPServer,
) -> None:
    hostile = alert(
        labels={"instance": "<b>web</b>&1"},
        annotations={"summary": "<a href='x'>click</a>", "description": "5 < 7 & 8 > 2"},
    )
    integration(telegram).send(notification(hostile))
    text = text_of(telegram)
    assert "&lt;a href='x'&gt;click&lt;/a&gt;" in text
    assert "5 &lt; 7 &amp; 8 &gt; 2" in text
    assert "instance: <b>&lt;b&gt;web&lt;/b&gt;&amp;1</b>" in text
    assert "<b>web</b>" not in text and "<a href='x'>" not in text


def test_resolved_message_has_no_silence_command(telegram: FakeHTTPServer) -> None:
    integration(telegram).send(notification(alert("resolved")))
    text = text_of(telegram)
    assert text.startswith("\u2705 <b>RESOLVED</b>") and "silence add" not in text


def test_message_template_escapes_the_data_but_not_its_own_markup(telegram: FakeHTTPServer) -> None:
    template = (
        "<b>{{ .Status }}</b> {{ range .Alerts }}{{ .Labels.instance }} {{ .Annotations.summary }}{{ end }}"
    )
    hostile = alert(labels={"instance": "a&b"}, annotations={"summary": 'it\'s <down> "now" +1'})
    integration(telegram, message=template).send(notification(hostile))
    assert text_of(telegram) == "<b>firing</b> a&amp;b it&#39;s &lt;down&gt; &#34;now&#34; &#43;1"
    # Other parse modes insert the data as written, as Alertmanager does.
    integration(telegram, message=template, parse_mode="MarkdownV2").send(notification(hostile))
    assert text_of(telegram) == '<b>firing</b> a&b it\'s <down> "now" +1'


def test_the_default_template_name_gives_our_default_message(telegram: FakeHTTPServer) -> None:
    integration(telegram, message='{{ template "telegram.default.message" . }}').send(notification())
    via_name = text_of(telegram)
    integration(telegram).send(notification())
    assert via_name == text_of(telegram)


def test_long_messages_are_cut_to_telegrams_limit_with_an_ellipsis(telegram: FakeHTTPServer) -> None:
    integration(telegram, message="{{ .CommonAnnotations.description }}", parse_mode="").send(
        notification(alert(annotations={"description": "\u00e9" * 5000}))
    )
    text = text_of(telegram)
    assert len(text) == MESSAGE_LIMIT and text == "\u00e9" * (MESSAGE_LIMIT - 1) + "\u2026"


@pytest.mark.parametrize("parse_mode", ["HTML", "MarkdownV2", "Markdown", ""])
def test_default_message_of_a_large_group_fits_and_counts_the_rest(
    telegram: FakeHTTPServer, parse_mode: str
) -> None:
    many = [
        alert(labels={"instance": f"web-{i}"}, annotations={"description": "a <long> story. " * 200})
        for i in range(40)
    ]
    integration(telegram, parse_mode=parse_mode).send(notification(*many))
    text = text_of(telegram)
    assert 0 < len(text) <= MESSAGE_LIMIT
    if parse_mode == "HTML":
        assert "more (" in text and "silence add" in text
        assert text.count("<b>") == text.count("</b>") and text.count("<code>") == text.count("</code>")


# ---------------------------------------------------------------------------------------------------
# Telegram's answers


test_answers_are_classified_and_never_show_the_token = receivers.classification_test(
    "telegram",
    lambda service: integration(service).send(notification()),
    [
        (refused(429, "Too Many Requests: retry after 17", retry_after=17), True, 17.0, "rate limited"),
        (refused(500, "Internal Server Error"), True, None, "Internal Server Error"),
        (Reply(502, "<html>Bad Gateway</html>"), True, None, "502"),
        (refused(400, "Bad Request: chat not found"), False, None, "chat not found"),
        (refused(401, "Unauthorized"), False, None, "Unauthorized"),
        (refused(403, "Forbidden: bot was kicked from the group chat"), False, None, "bot was kicked"),
        (
            refused(
                400, "Bad Request: group chat was upgraded to a supergroup chat", migrate_to_chat_id=-100999
            ),
            False,
            None,
            "-100999",
        ),
    ],
    TOKEN,
    TOKEN.split(":")[1],
)


def test_an_unreachable_api_is_retryable_and_never_shows_the_token() -> None:
    hook = telegram_integration({"api_url": "http://127.0.0.1:9", "bot_token": TOKEN, "chat_id": CHAT}, {})
    with pytest.raises(DeliveryError) as failure:
        hook.send(notification())
    assert failure.value.retryable and TOKEN not in str(failure.value)
    assert TOKEN not in repr(hook)


def test_the_token_stays_out_of_the_logs_even_at_debug(telegram: FakeHTTPServer) -> None:
    def send_twice() -> None:
        telegram.fail_next(refused(400, "Bad Request: chat not found"))
        with pytest.raises(DeliveryError):
            integration(telegram).send(notification())
        integration(telegram).send(notification())

    out = receivers.debug_logs(send_twice)
    assert "sendMessage" in out  # the requests were logged, URL and all
    assert TOKEN.split(":")[1] not in out


# ---------------------------------------------------------------------------------------------------
# Configuration


write_config = receivers.config_writer("telegram_configs", "chat", with_global=True)


test_bad_entries_are_rejected_at_their_position = receivers.rejection_test(
    write_config,
    [
        (
            "bot_token: t\nchat_id: 1\nchat_idd: 2",
            'unknown field "chat_idd" in telegram_configs (did you mean "chat_id"?)',
            "chat_idd",
        ),
        (
            "bot_token: t\nbot_token_file: /dev/null\nchat_id: 1",
            "set at most one of bot_token and bot_token_file",
            "/dev/null",
        ),
        ("bot_token: t\nmessage: hi", "chat_id is required", "bot_token"),
        (
            "chat_id: 5",
            "bot_token (or bot_token_file, or the global telegram_bot_token) is required",
            "chat_id",
        ),
        ("bot_token: t\nchat_id: general", "chat_id must be a chat's numeric id", "general"),
        ("bot_token: t\nchat_id: true", "chat_id must be a chat's numeric id", "true"),
        (
            "bot_token: t\nchat_id: 1\nparse_mode: html",
            'parse_mode must be "HTML", "Markdown", "MarkdownV2"',
            "html",
        ),
        ("bot_token: t\nchat_id: 1\napi_url: ftp://x", "api_url must be an http(s) URL", "ftp://x"),
        ("bot_token: t\nchat_id: 1\nmessage: '{{ .Status'", "message: template", "'{{"),
        ("bot_token: t\nchat_id: 1\nsend_resolved: maybe", "send_resolved must be true or false", "maybe"),
        (
            "bot_token: t\nchat_id: 1\ndisable_notifications: often",
            "disable_notifications must be true or false",
            "often",
        ),
    ],
)


def test_a_good_entry_loads_and_a_direct_call_raises_config_errors() -> None:
    with pytest.raises(ConfigError, match="chat_id is required"):
        telegram_integration({"bot_token": TOKEN}, {})
    assert telegram_integration({"bot_token": TOKEN, "chat_id": "-100 ".strip()}, {}).settings.chat_id == -100


def test_unset_token_variable_prints_to_the_console_with_a_warning(tmp_path: Path) -> None:
    path = write_config(tmp_path, "bot_token: ${TELEGRAM_BOT_TOKEN}\nchat_id: ${TELEGRAM_CHAT_ID}")
    warning = receivers.assert_console_until_set(
        path, "chat", "telegram_configs", "TELEGRAM_BOT_TOKEN", TOKEN, env={"TELEGRAM_CHAT_ID": "-100123"}
    )
    assert "chat/telegram_configs[0]" in warning


# ---------------------------------------------------------------------------------------------------
# Beside Alertmanager 0.25

DIFF_CONFIG = """
route:
  receiver: html
  group_by: [alertname]
  group_wait: 1s
  group_interval: 1m
  repeat_interval: 1h
  routes:
    - matchers: ['case="plain"']
      receiver: plain
    - matchers: ['case="long_html"']
      receiver: long_html
receivers:
  - name: html
    telegram_configs:
      - api_url: BASE/html
        bot_token: "TOKEN"
        chat_id: -1001234567890
        message: |-
          <b>{{ .Status | toUpper }}</b> {{ .CommonLabels.alertname }} ({{ len .Alerts.Firing }} firing)
          {{ range .Alerts }}- {{ .Labels.instance }}: {{ .Annotations.summary }}
            [{{ .Fingerprint }}] {{ .GeneratorURL }}
          {{ end }}{{ range .CommonLabels.SortedPairs }}{{ .Name }}={{ .Value }} {{ end }}
  - name: plain
    telegram_configs:
      - api_url: BASE/plain
        bot_token: "TOKEN"
        chat_id: 42
        parse_mode: ''
        disable_notifications: true
        message: '{{ range .Alerts }}{{ .Annotations.summary }}{{ end }}'
  - name: long_html
    telegram_configs:
      - api_url: BASE/long_html
        bot_token: "TOKEN"
        chat_id: 43
        message: '<i>{{ range .Alerts }}{{ .Annotations.summary }}{{ end }}</i>'
"""

DIFF_ALERTS = [
    {
        "labels": {"alertname": "Quoting", "case": "html", "instance": 'web<1>&"a"\'+'},
        "annotations": {"summary": '5 < 7 & it\'s "bad" + worse'},
    },
    {
        "labels": {"alertname": "Quoting", "case": "html", "instance": "web-2"},
        "annotations": {"summary": "plain \u00e9t\u00e9"},
    },
    {
        "labels": {"alertname": "Long", "case": "plain"},
        "annotations": {"summary": "\u00e9" * 4090 + "abcdefghij"},
    },
    {"labels": {"alertname": "Long", "case": "long_html"}, "annotations": {"summary": "<&>" * 1500}},
]


def test_same_requests_as_alertmanager(tmp_path: Path) -> None:
    with FakeHTTPServer(sent) as fake, isolated_redis() as (client, prefix):
        ours_path, theirs_path = tmp_path / "ours.yml", tmp_path / "am.yml"
        for path, side in ((ours_path, "ours"), (theirs_path, "am")):
            path.write_text(DIFF_CONFIG.replace("BASE", f"{fake.url}/{side}").replace("TOKEN", TOKEN))
        now = time.time()
        url = "http://prometheus.example:9090/graph?g0.expr=up+%3D%3D+0&g0.tab=1"
        with Alertmanager(theirs_path, tmp_path) as am:
            am.post_alerts([{**a, "generatorURL": url} for a in DIFF_ALERTS])
            route_ours(client, prefix, ours_path, DIFF_ALERTS, now, url)
            wait_until(lambda: len(fake.requests) >= 6, timeout=20)

    def by_side(side: str) -> dict[str, Request]:
        return {r.path.split("/")[2]: r for r in fake.requests if r.path.startswith(f"/{side}/")}

    theirs, mine = by_side("am"), by_side("ours")
    assert set(theirs) == set(mine) == {"html", "plain", "long_html"}
    for case in ("html", "plain", "long_html"):
        a, b = theirs[case], mine[case]
        assert a.method == b.method == "POST"
        assert a.path.split("/", 3)[3] == b.path.split("/", 3)[3] == f"bot{TOKEN}/sendMessage"
        assert a.headers["content-type"] == b.headers["content-type"] == "application/json"
        assert a.json() == b.json(), case  # chat_id, text, parse_mode, disable_notification, previews
    assert len(mine["plain"].json()["text"]) == len(mine["long_html"].json()["text"]) == MESSAGE_LIMIT
    assert "&lt;1&gt;&amp;&#34;a&#34;&#39;&#43;" in mine["html"].json()["text"]


def test_notification_without_group_labels_still_sends(telegram: FakeHTTPServer) -> None:
    integration(telegram).send(
        Notification(receiver="r", group_key="{}:{}", group_labels={}, alerts=(alert(),))
    )
    assert "HighErrorRate" in text_of(telegram)
