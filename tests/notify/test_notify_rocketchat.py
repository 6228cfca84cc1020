"""The Rocket.Chat integration against a local server speaking the REST API's chat.postMessage."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from alerting.errors import ConfigError
from alerting.notify.base import DeliveryError
from alerting.notify.receivers import INTEGRATIONS
from alerting.notify.receivers.rocketchat import TITLE_LIMIT, rocketchat_integration
from tests.support import receivers
from tests.support.httpfake import FakeHTTPServer, Reply, Request
from tests.support.notifications import alert, notification

TOKEN = "9HqLlyZOugoStsXCUfD_0YdwnNnunAJF8V47U3QHXSq"
USER = "aobEdbYhXfu5hkeqG"


def post_message(request: Request) -> Reply:
    if request.headers.get("x-auth-token") != TOKEN or request.headers.get("x-user-id") != USER:
        return Reply(401, {"status": "error", "message": "You must be logged in to do this."})
    body = request.json()
    return Reply(200, {"success": True, "channel": body.get("channel", ""), "message": {"_id": "m1"}})


@pytest.fixture
def rocketchat() -> Iterator[FakeHTTPServer]:
    with FakeHTTPServer(post_message) as fake:
        yield fake


def integration(fake: FakeHTTPServer, **fields: Any) -> Any:
    config = {"api_url": fake.url + "/", "token": TOKEN, "token_id": USER, "channel": "#ops", **fields}
    return rocketchat_integration(config, {})


def sent(fake: FakeHTTPServer) -> dict[str, Any]:
    request = fake.requests[-1]
    assert request.method == "POST" and request.path == "/api/v1/chat.postMessage"
    assert request.headers["content-type"] == "application/json"
    return dict(request.json())


def test_registered_under_alertmanager_config_key() -> None:
    assert INTEGRATIONS["rocketchat_configs"] is rocketchat_integration


def test_a_message_is_one_attachment_posted_with_the_users_token(rocketchat: FakeHTTPServer) -> None:
    integration(rocketchat).send(notification(group_labels={"alertname": "HighErrorRate", "service": "api"}))
    body = sent(rocketchat)
    assert set(body) == {"channel", "attachments"} and body["channel"] == "#ops"
    (attachment,) = body["attachments"]
    assert attachment["title"] == "[FIRING:1] HighErrorRate api (critical)"
    assert attachment["title_link"] == "http://alerting.example:8080"
    assert attachment["color"] == "red"
    for part in (
        "service: **api**",
        "- **5xx 3.2/s** `3.2`",
        "[Runbook](https://runbooks.example/high-error-rate)",
        "Silence: `alerting silence add alertname=HighErrorRate service=api --duration 2h",
    ):
        assert part in attachment["text"]


def test_every_field_is_a_template(rocketchat: FakeHTTPServer) -> None:
    integration(
        rocketchat,
        channel="#{{ .CommonLabels.service }}",
        emoji=":{{ .CommonLabels.severity }}:",
        icon_url="https://img.example/{{ .Status }}.png",
        title="{{ .Status | toUpper }}",
        title_link="https://alerting.example/#/{{ .GroupLabels.alertname }}",
        text="{{ .CommonAnnotations.summary }}",
        color='{{ if eq .Status "firing" }}#f00{{ end }}',
        image_url="https://img.example/graph.png",
        thumb_url="https://img.example/thumb.png",
        short_fields=True,
        fields=[
            {"title": "service", "value": "{{ .CommonLabels.service }}"},
            {"title": "count", "value": "{{ len .Alerts }}", "short": False},
        ],
        actions=[{"type": "button", "text": "Silence", "url": "{{ .ExternalURL }}/#/silences"}],
    ).send(notification())
    assert sent(rocketchat) == {
        "channel": "#api",
        "emoji": ":critical:",
        "avatar": "https://img.example/firing.png",
        "attachments": [
            {
                "title": "FIRING",
                "title_link": "https://alerting.example/#/HighErrorRate",
                "text": "5xx 3.2/s",
                "image_url": "https://img.example/graph.png",
                "thumb_url": "https://img.example/thumb.png",
                "color": "#f00",
                "fields": [
                    {"short": True, "title": "service", "value": "api"},
                    {"short": False, "title": "count", "value": "1"},
                ],
                "actions": [
                    {
                        "type": "button",
                        "text": "Silence",
                        "url": "http://alerting.example:8080/#/silences",
                        "msg": "",
                        "is_webview": False,
                        "msg_in_chat_window": False,
                    }
                ],
            }
        ],
    }


def test_long_titles_are_cut(rocketchat: FakeHTTPServer) -> None:
    integration(rocketchat, title="{{ .CommonAnnotations.description }}").send(
        notification(alert(annotations={"description": "t" * 3000}))
    )
    title = sent(rocketchat)["attachments"][0]["title"]
    assert len(title) == TITLE_LIMIT and title.endswith("\u2026")


def test_resolved_messages_are_off_unless_send_resolved(rocketchat: FakeHTTPServer) -> None:
    integration(rocketchat).send(notification(alert("resolved")))
    assert rocketchat.requests == []
    integration(rocketchat, send_resolved=True).send(notification(alert("resolved")))
    attachment = sent(rocketchat)["attachments"][0]
    assert attachment["color"] == "green" and "silence add" not in attachment["text"]


def test_tokens_from_global_settings_and_files_read_at_send_time(
    rocketchat: FakeHTTPServer, tmp_path: Path
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    global_config = {
        "rocketchat_api_url": rocketchat.url,
        "rocketchat_token_file": str(token_file),
        "rocketchat_token_id": USER,
    }
    hook = rocketchat_integration({"channel": "#ops"}, global_config)
    hook.send(notification())
    assert sent(rocketchat)["channel"] == "#ops"
    token_file.unlink()
    with pytest.raises(DeliveryError, match="rocketchat_token_file") as failure:
        hook.send(notification())
    assert failure.value.retryable


test_answers_are_classified_and_never_show_the_token = receivers.classification_test(
    "rocketchat",
    lambda service: integration(service).send(notification()),
    [
        (
            Reply(429, {"success": False, "error": "Error, too many requests."}, {"Retry-After": "6"}),
            True,
            6.0,
            "too many",
        ),
        (
            Reply(500, {"success": False, "error": "Internal server error"}),
            True,
            None,
            "Internal server error",
        ),
        (Reply(200, {"success": False, "error": "error-not-allowed"}), False, None, "error-not-allowed"),
        (Reply(400, {"success": False, "error": "[invalid-channel]"}), False, None, "invalid-channel"),
        (Reply(401, {"status": "error", "message": f"token {TOKEN} refused"}), False, None, "refused"),
    ],
    TOKEN,
)


write_config = receivers.config_writer("rocketchat_configs", "chat", with_global=True)

test_bad_entries_are_rejected_at_their_position = receivers.rejection_test(
    write_config,
    [
        ("token: t\nchannel: '#ops'", "token_id (or token_id_file) is required", "token"),
        ("token_id: u\nchannel: '#ops'", "token (or token_file) is required", "token_id"),
        (
            "token: t\ntoken_file: /dev/null\ntoken_id: u",
            "set at most one of token and token_file",
            "/dev/null",
        ),
        ("token: t\ntoken_id: u\nchanel: x", 'unknown field "chanel"', "chanel"),
        ("token: t\ntoken_id: u\napi_url: ftp://r.example", "api_url must be an http(s) URL", "ftp://"),
        ("token: t\ntoken_id: u\nfields: [{title: a, long: true}]", 'unknown field "long"', "long"),
        ("token: t\ntoken_id: u\ntitle: '{{ .Status'", "title: template", "'{{"),
    ],
)


def test_a_direct_call_raises_config_errors() -> None:
    with pytest.raises(ConfigError, match="rocketchat_token_id"):
        rocketchat_integration({"token": TOKEN}, {})


def test_unset_token_variable_prints_to_the_console_with_a_warning(tmp_path: Path) -> None:
    path = write_config(tmp_path, "token: ${ROCKETCHAT_TOKEN}\ntoken_id: u\nchannel: '#ops'")
    receivers.assert_console_until_set(
        path, "chat", "rocketchat_configs", "ROCKETCHAT_TOKEN", TOKEN, send_resolved=False
    )
