"""The Webex integration against a local server speaking the Messages API, and beside a real
Alertmanager 0.25 sending the same alert group to the same server."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from alerting.notify.receivers import INTEGRATIONS
from alerting.notify.receivers.webex import MESSAGE_LIMIT, webex_integration
from tests.support import receivers
from tests.support.differential import route_ours
from tests.support.httpfake import FakeHTTPServer, Reply, Request
from tests.support.net import wait_until
from tests.support.notifications import alert, notification
from tests.support.routing_alertmanager import Alertmanager
from tests.support.routing_redis import isolated_redis

TOKEN = "NjA5ZmQ0YTktYmMyZS00ZWU2LWE0NzQtY2I0YzVhMTE0ZDAxODQ4_PF84_1eb65fdf"
ROOM = "Y2lzY29zcGFyazovL3VzL1JPT00vYmJjZWIxYWQtNDNmMS0zYjU4"


def created(request: Request) -> Reply:
    body = request.json()
    return Reply(200, {"id": "msg-1", "roomId": body.get("roomId"), "markdown": body.get("markdown")})


@pytest.fixture
def webex() -> Iterator[FakeHTTPServer]:
    with FakeHTTPServer(created) as fake:
        yield fake


def integration(fake: FakeHTTPServer, **fields: Any) -> Any:
    entry = {
        "api_url": fake.url + "/v1/messages",
        "room_id": ROOM,
        "http_config": {"authorization": {"credentials": TOKEN}},
        **fields,
    }
    return webex_integration(entry, {})


def markdown(fake: FakeHTTPServer) -> str:
    return str(fake.requests[-1].json()["markdown"])


def test_registered_as_webex_configs() -> None:
    assert INTEGRATIONS["webex_configs"] is webex_integration


def test_a_message_is_a_bearer_authorised_json_post(webex: FakeHTTPServer) -> None:
    integration(webex).send(notification())
    (request,) = webex.requests
    assert request.method == "POST" and request.path == "/v1/messages"
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert request.headers["content-type"] == "application/json"
    assert set(request.json()) == {"markdown", "roomId"} and request.json()["roomId"] == ROOM


def test_api_url_comes_from_the_global_webex_api_url(webex: FakeHTTPServer, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    entry = {"room_id": ROOM, "http_config": {"authorization": {"credentials_file": str(token_file)}}}
    webex_integration(entry, {"webex_api_url": webex.url + "/custom"}).send(notification())
    assert webex.requests[-1].path == "/custom"
    assert webex.requests[-1].headers["authorization"] == f"Bearer {TOKEN}"


def test_default_message_says_what_broke_where_and_how_to_silence_it(webex: FakeHTTPServer) -> None:
    integration(webex).send(notification(alert(labels={"instance": "web-1"}, value=3.2)))
    text = markdown(webex)
    assert text.startswith("**\\[FIRING:1\\] HighErrorRate (web-1 api critical)**")
    for part in (
        "- **5xx 3.2/s** `3.2`",
        "[Runbook](https://runbooks.example/high-error-rate)",
        "Silence: `alerting silence add alertname=HighErrorRate",
    ):
        assert part in text


def test_label_values_cannot_become_markup(webex: FakeHTTPServer) -> None:
    integration(webex).send(notification(alert(annotations={"summary": "[click](https://evil) *now*"})))
    assert "\\[click\\](https://evil) \\*now\\*" in markdown(webex)


def test_message_is_a_template_room_id_is_sent_as_written_as_alertmanager_does(webex: FakeHTTPServer) -> None:
    integration(webex, message="{{ .Status }} {{ .CommonLabels.alertname }}", room_id="{{ .Room }}").send(
        notification()
    )
    assert webex.requests[-1].json() == {"markdown": "firing HighErrorRate", "roomId": "{{ .Room }}"}
    integration(webex, message='{{ template "webex.default.message" . }}').send(notification())
    via_name = markdown(webex)
    integration(webex).send(notification())
    assert via_name == markdown(webex)
    integration(webex, send_resolved=False).send(notification(alert("resolved")))
    assert len(webex.requests) == 3


def test_long_messages_are_cut_to_webex_byte_limit(webex: FakeHTTPServer) -> None:
    integration(webex, message="{{ .CommonAnnotations.summary }}").send(
        notification(alert(annotations={"summary": "\u00e9" * 5000}))
    )
    assert len(markdown(webex).encode()) <= MESSAGE_LIMIT


test_answers_are_classified_without_showing_the_token = receivers.classification_test(
    "webex",
    lambda service: integration(service).send(notification()),
    [
        (
            Reply(
                400, {"message": "Unable to post message to room", "errors": [{"description": "bad roomId"}]}
            ),
            False,
            None,
            "bad roomId",
        ),
        (
            Reply(
                401, {"message": "The request requires a valid access token set in the Authorization header."}
            ),
            False,
            None,
            "valid access token",
        ),
        (Reply(404, {"message": "Could not find a room"}), False, None, "Could not find a room"),
        (
            Reply(429, {"message": "Too many requests"}, {"Retry-After": "30"}),
            True,
            30.0,
            "Too many requests",
        ),
        (Reply(502, "bad gateway"), True, None, "502"),
    ],
    TOKEN,
)


write_config = receivers.config_writer("webex_configs", "room")


test_bad_entries_are_rejected_at_their_position = receivers.rejection_test(
    write_config,
    [
        (
            "room_id: r\nroom: x\nhttp_config: {authorization: {credentials: t}}",
            'unknown field "room" in webex_configs',
            "room:",
        ),
        ("message: hi\nhttp_config: {authorization: {credentials: t}}", "room_id is required", "message"),
        (
            "room_id: r\nhttp_config: {follow_redirects: true}",
            "http_config.authorization with the bot's token",
            "http_config",
        ),
        (
            "room_id: r\napi_url: ftp://x\nhttp_config: {authorization: {credentials: t}}",
            "api_url must be an http(s) URL",
            "ftp://x",
        ),
        (
            "room_id: r\nmessage: '{{ .x'\nhttp_config: {authorization: {credentials: t}}",
            "message: template",
            "message",
        ),
    ],
    column=False,
)


def test_unset_token_variable_prints_to_the_console(tmp_path: Path) -> None:
    path = write_config(
        tmp_path, "room_id: r\nhttp_config: {authorization: {credentials: '${WEBEX_BOT_TOKEN}'}}"
    )
    receivers.assert_console_until_set(
        path, "room", "webex_configs", "WEBEX_BOT_TOKEN", TOKEN, quiet_when_set=False
    )


# ---------------------------------------------------------------------------------------------------
# Beside Alertmanager 0.25

DIFF_CONFIG = """
route:
  receiver: room
  group_by: [alertname]
  group_wait: 1s
  group_interval: 1m
  repeat_interval: 1h
  routes:
    - matchers: ['case="long"']
      receiver: long
receivers:
  - name: room
    webex_configs:
      - api_url: BASE/room
        room_id: 'ROOM-{{ .CommonLabels.team }}'
        http_config: {authorization: {credentials: TOKEN}}
        message: |-
          **{{ .Status | toUpper }}** {{ .CommonLabels.alertname }}
          {{ range .Alerts }}- {{ .Labels.instance }}: {{ .Annotations.summary }}
          {{ end }}
  - name: long
    webex_configs:
      - api_url: BASE/long
        room_id: ROOM
        http_config: {authorization: {credentials: TOKEN}}
        message: '{{ range .Alerts }}{{ .Annotations.summary }}{{ end }}'
"""

DIFF_ALERTS = [
    {
        "labels": {"alertname": "DiskFull", "team": "db", "instance": "db-1"},
        "annotations": {"summary": '92% <full> & "rising"'},
    },
    {
        "labels": {"alertname": "DiskFull", "team": "db", "instance": "db-2"},
        "annotations": {"summary": "96% full"},
    },
    # ASCII: Alertmanager 0.25's byte truncation panics on a long multi-byte text.
    {"labels": {"alertname": "Long", "case": "long"}, "annotations": {"summary": "x" * 8000}},
]


def test_same_requests_as_alertmanager(tmp_path: Path) -> None:
    with FakeHTTPServer(created) as fake, isolated_redis() as (client, prefix):
        for name, side in (("am.yml", "am"), ("ours.yml", "ours")):
            (tmp_path / name).write_text(
                DIFF_CONFIG.replace("BASE", f"{fake.url}/{side}").replace("TOKEN", TOKEN)
            )
        with Alertmanager(tmp_path / "am.yml", tmp_path) as am:
            am.post_alerts(DIFF_ALERTS)
            now = time.time()
            route_ours(client, prefix, tmp_path / "ours.yml", DIFF_ALERTS, now)
            wait_until(lambda: len(fake.requests) >= 4, timeout=20)

    def by_side(side: str) -> dict[str, Request]:
        return {r.path.split("/")[2]: r for r in fake.requests if r.path.startswith(f"/{side}/")}

    theirs, mine = by_side("am"), by_side("ours")
    assert set(theirs) == set(mine) == {"room", "long"}
    for case in ("room", "long"):
        a, b = theirs[case], mine[case]
        assert a.method == b.method == "POST"
        assert a.headers["authorization"] == b.headers["authorization"] == f"Bearer {TOKEN}"
        assert a.headers["content-type"] == b.headers["content-type"] == "application/json"
        assert a.json() == b.json(), case
    assert len(mine["long"].json()["markdown"].encode()) == MESSAGE_LIMIT
