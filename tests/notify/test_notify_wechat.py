"""The WeChat Work integration against a local server speaking gettoken and message/send, and beside
a real Alertmanager 0.25 sending the same alert group to the same server."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from alerting.notify.base import DeliveryError
from alerting.notify.receivers import INTEGRATIONS
from alerting.notify.receivers.wechat import wechat_integration
from tests.support import receivers
from tests.support.differential import route_ours
from tests.support.httpfake import FakeHTTPServer, Reply, Request
from tests.support.net import wait_until
from tests.support.notifications import alert, notification
from tests.support.routing_alertmanager import Alertmanager
from tests.support.routing_redis import isolated_redis

CORP = "ww1234567890abcdef"
SECRET = "Xq3sV9kLmN0pQrStUvWxYz1234567890abcdEFGHij"
TOKEN = "accesstoken-9f8e7d6c5b4a"


class WeChatFake:
    """gettoken hands out TOKEN for the right corp and secret; message/send wants it."""

    def __init__(self) -> None:
        self.server = FakeHTTPServer(self._handle)
        self.token = TOKEN

    def _handle(self, request: Request) -> Reply:
        if request.path.endswith("/gettoken"):
            q = {k: v[0] for k, v in request.query.items()}
            if q.get("corpid") != CORP or q.get("corpsecret") != SECRET:
                return Reply(200, {"errcode": 40001, "errmsg": "invalid credential"})
            return Reply(200, {"errcode": 0, "errmsg": "ok", "access_token": self.token, "expires_in": 7200})
        if request.path.endswith("/message/send"):
            if request.query.get("access_token") != [self.token]:
                return Reply(200, {"errcode": 42001, "errmsg": "access_token expired"})
            return Reply(200, {"errcode": 0, "errmsg": "ok", "msgid": "m-1"})
        return Reply(404, "not found")

    @property
    def sends(self) -> list[Request]:
        return [r for r in self.server.requests if r.path.endswith("/message/send")]


@pytest.fixture
def wechat() -> Iterator[WeChatFake]:
    fake = WeChatFake()
    with fake.server:
        yield fake


def integration(fake: WeChatFake, **fields: Any) -> Any:
    entry = {
        "api_url": fake.server.url + "/cgi-bin/",
        "corp_id": CORP,
        "api_secret": SECRET,
        "to_party": "2",
        "agent_id": "1000002",
        **fields,
    }
    return wechat_integration(entry, {})


def test_registered_as_wechat_configs() -> None:
    assert INTEGRATIONS["wechat_configs"] is wechat_integration


def test_a_token_then_a_message_as_alertmanager_sends_them(wechat: WeChatFake) -> None:
    hook = integration(wechat)
    hook.send(notification())
    hook.send(notification())
    token_request, first, second = wechat.server.requests
    assert token_request.method == "GET" and token_request.path == "/cgi-bin/gettoken"
    assert token_request.query == {"corpid": [CORP], "corpsecret": [SECRET]}
    assert first.method == "POST" and first.path == "/cgi-bin/message/send"
    assert first.query == {"access_token": [TOKEN]} and first.headers["content-type"] == "application/json"
    body = first.json()
    assert list(body) == ["text", "toparty", "agentid", "safe", "msgtype", "markdown"]
    assert body["toparty"] == "2" and body["agentid"] == "1000002" and body["safe"] == "0"
    assert body["msgtype"] == "text" and body["markdown"] == {"content": ""}
    assert second.json() == body  # the token was kept


def test_globals_supply_url_secret_and_corp(wechat: WeChatFake) -> None:
    global_config = {
        "wechat_api_url": wechat.server.url + "/cgi-bin",
        "wechat_api_secret": SECRET,
        "wechat_api_corp_id": CORP,
    }
    wechat_integration({"to_user": "zhang"}, global_config).send(notification())
    assert wechat.sends[-1].json()["touser"] == "zhang"


def test_secret_files_entry_or_global_are_read_when_a_token_is_fetched(
    wechat: WeChatFake, tmp_path: Path
) -> None:
    secret_file = tmp_path / "wechat-secret"
    secret_file.write_text(SECRET + "\n")
    url = wechat.server.url + "/cgi-bin/"
    for entry, global_config in (
        ({"api_secret_file": str(secret_file)}, {}),
        ({}, {"wechat_api_secret_file": str(secret_file)}),
    ):
        hook = wechat_integration({"api_url": url, "corp_id": CORP, "to_user": "li", **entry}, global_config)
        hook.send(notification())
    token_requests = [r for r in wechat.server.requests if r.path.endswith("/gettoken")]
    assert [r.query["corpsecret"] for r in token_requests] == [[SECRET], [SECRET]]
    assert len(wechat.sends) == 2
    secret_file.unlink()
    fresh = wechat_integration({"api_url": url, "corp_id": CORP, "api_secret_file": str(secret_file)}, {})
    with pytest.raises(DeliveryError, match="api_secret_file") as failure:
        fresh.send(notification())
    assert failure.value.retryable


def test_default_text_and_markdown_say_what_broke_and_how_to_silence_it(wechat: WeChatFake) -> None:
    integration(wechat).send(notification(alert(labels={"instance": "web-1"})))
    text = wechat.sends[-1].json()["text"]["content"]
    for part in (
        "[FIRING:1] HighErrorRate",
        "5xx 3.2/s (value 3.2)",
        "Runbook: https://runbooks.example/",
        "Silence: alerting silence add",
    ):
        assert part in text
    integration(wechat, message_type="markdown").send(notification())
    body = wechat.sends[-1].json()
    assert body["msgtype"] == "markdown" and body["text"] == {"content": ""}
    markdown = body["markdown"]["content"]
    assert markdown.startswith('**<font color="warning">[FIRING:1] HighErrorRate')
    assert (
        "[Runbook](https://runbooks.example/high-error-rate)" in markdown
        and "`alerting silence add" in markdown
    )


def test_templated_fields_and_default_names(wechat: WeChatFake) -> None:
    integration(
        wechat,
        message='{{ .Status }} {{ template "wechat.default.to_user" . }}|',
        to_user="{{ .CommonLabels.service }}",
    ).send(notification())
    body = wechat.sends[-1].json()
    assert body["text"]["content"] == "firing |" and body["touser"] == "api"


def test_resolved_is_off_by_default_as_in_alertmanager(wechat: WeChatFake) -> None:
    integration(wechat).send(notification(alert("resolved")))
    assert wechat.sends == []
    integration(wechat, send_resolved=True).send(notification(alert("resolved")))
    assert "[RESOLVED]" in wechat.sends[-1].json()["text"]["content"]


def test_an_expired_token_is_fetched_again_on_the_retry(wechat: WeChatFake) -> None:
    hook = integration(wechat)
    hook.send(notification())
    wechat.token = "rotated-token"
    with pytest.raises(DeliveryError) as failure:
        hook.send(notification())
    assert failure.value.retryable and TOKEN not in str(failure.value)
    hook.send(notification())
    assert wechat.sends[-1].query == {"access_token": ["rotated-token"]}


@pytest.mark.parametrize(
    ("reply", "retryable", "words"),
    [
        (Reply(200, {"errcode": 81013, "errmsg": "user & party & tag all invalid"}), False, "all invalid"),
        (Reply(200, {"errcode": 45009, "errmsg": "api freq out of limit"}), True, "freq out of limit"),
        (Reply(200, {"errcode": -1, "errmsg": "system busy"}), True, "system busy"),
        (Reply(502, "bad gateway"), True, "502"),
    ],
)
def test_answers_are_classified_without_showing_secrets(
    wechat: WeChatFake, reply: Reply, retryable: bool, words: str
) -> None:
    wechat.server.fail_next(reply, after=1)  # the token request goes through
    with pytest.raises(DeliveryError) as failure:
        integration(wechat).send(notification())
    assert failure.value.retryable is retryable and words in str(failure.value)
    assert SECRET not in str(failure.value) and TOKEN not in str(failure.value)


def test_a_wrong_secret_is_permanent_and_never_shown(wechat: WeChatFake) -> None:
    with pytest.raises(DeliveryError) as failure:
        integration(wechat, api_secret="wrong-secret-value").send(notification())
    assert not failure.value.retryable and "invalid credential" in str(failure.value)
    assert "wrong-secret-value" not in str(failure.value)


def test_secret_and_token_stay_out_of_the_logs_even_at_debug(wechat: WeChatFake) -> None:
    out = receivers.debug_logs(lambda: integration(wechat).send(notification()))
    assert "gettoken" in out and "message/send" in out
    assert SECRET not in out and TOKEN not in out


write_config = receivers.config_writer("wechat_configs", "wx")


test_bad_entries_are_rejected_at_their_position = receivers.rejection_test(
    write_config,
    [
        ("corp_id: c\napi_secret: s\nto_usr: x", 'unknown field "to_usr" in wechat_configs', "to_usr"),
        (
            "corp_id: c\nto_user: x",
            "api_secret (or api_secret_file, or the global wechat_api_secret[_file]) is required",
            "corp_id",
        ),
        ("api_secret: s\nto_user: x", "corp_id (or the global wechat_api_corp_id) is required", "api_secret"),
        (
            "corp_id: c\napi_secret: s\nmessage_type: news",
            'message_type must be "text" or "markdown"',
            "news",
        ),
        ("corp_id: c\napi_secret: s\napi_url: ftp://x", "api_url must be an http(s) URL", "ftp://x"),
        ("corp_id: c\napi_secret: s\nmessage: '{{ .Status'", "message: template", "'{{"),
    ],
    column=False,
)


def test_unset_secret_variable_prints_to_the_console(tmp_path: Path) -> None:
    path = write_config(tmp_path, "corp_id: c\napi_secret: ${WECHAT_API_SECRET}\nto_party: '2'")
    receivers.assert_console_until_set(
        path, "wx", "wechat_configs", "WECHAT_API_SECRET", SECRET, send_resolved=False, quiet_when_set=False
    )


# ---------------------------------------------------------------------------------------------------
# Beside Alertmanager 0.25

DIFF_CONFIG = """
route:
  receiver: text
  group_by: [alertname]
  group_wait: 1s
  group_interval: 1m
  repeat_interval: 1h
  routes:
    - matchers: ['case="md"']
      receiver: md
receivers:
  - name: text
    wechat_configs:
      - api_url: BASE/text/
        corp_id: CORP
        api_secret: SECRET
        to_user: '{{ .CommonLabels.team }}-oncall'
        to_party: '2'
        agent_id: '1000002'
        message: |-
          [{{ .Status | toUpper }}] {{ .CommonLabels.alertname }}
          {{ range .Alerts }}{{ .Labels.instance }}: {{ .Annotations.summary }}
          {{ end }}
  - name: md
    wechat_configs:
      - api_url: BASE/md
        corp_id: CORP
        api_secret: SECRET
        to_tag: '7'
        agent_id: '1000002'
        message_type: markdown
        message: '**{{ .CommonLabels.alertname }}** <font color="warning">{{ .Status }}</font>'
"""

DIFF_ALERTS = [
    {
        "labels": {"alertname": "DiskFull", "team": "db", "instance": "db-1"},
        "annotations": {"summary": '92% <full> & "rising" \u78c1\u76d8'},
    },
    {
        "labels": {"alertname": "DiskFull", "team": "db", "instance": "db-2"},
        "annotations": {"summary": "96% full"},
    },
    {"labels": {"alertname": "Styled", "case": "md"}, "annotations": {"summary": "x"}},
]


def test_same_requests_as_alertmanager(tmp_path: Path) -> None:
    fake = WeChatFake()
    with fake.server, isolated_redis() as (client, prefix):
        for name, side in (("am.yml", "am"), ("ours.yml", "ours")):
            text = (
                DIFF_CONFIG.replace("BASE", f"{fake.server.url}/{side}")
                .replace("CORP", CORP)
                .replace("SECRET", SECRET)
            )
            (tmp_path / name).write_text(text)
        with Alertmanager(tmp_path / "am.yml", tmp_path) as am:
            am.post_alerts(DIFF_ALERTS)
            now = time.time()
            route_ours(client, prefix, tmp_path / "ours.yml", DIFF_ALERTS, now)
            wait_until(lambda: len(fake.sends) >= 4, timeout=20)

    def requests(side: str, case: str) -> list[Request]:
        return [r for r in fake.server.requests if r.path.startswith(f"/{side}/{case}/")]

    for case in ("text", "md"):
        theirs, mine = requests("am", case), requests("ours", case)
        assert [(r.method, r.path.split("/", 2)[2], r.query) for r in theirs] == [
            (r.method, r.path.split("/", 2)[2], r.query) for r in mine
        ], case
        a, b = theirs[-1], mine[-1]
        assert a.headers["content-type"] == b.headers["content-type"] == "application/json"
        assert list(a.json()) == list(b.json()) and a.json() == b.json(), case
