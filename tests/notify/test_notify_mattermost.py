"""The Mattermost integration against a local server speaking the incoming-webhook protocol."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from alerting.errors import ConfigError
from alerting.notify.base import DeliveryError
from alerting.notify.receivers import INTEGRATIONS
from alerting.notify.receivers.mattermost import TEXT_LIMIT, mattermost_integration
from tests.support import receivers
from tests.support.httpfake import FakeHTTPServer, Reply, Request
from tests.support.notifications import alert, notification

HOOK_ID = "xoxo1n6pq3bm8r5k9w7dtcy4ze"
HOOK = f"/hooks/{HOOK_ID}"


def accepted(request: Request) -> Reply:
    return Reply(200, "ok")


@pytest.fixture
def mattermost() -> Iterator[FakeHTTPServer]:
    with FakeHTTPServer(accepted) as fake:
        yield fake


def integration(fake: FakeHTTPServer, **fields: Any) -> Any:
    return mattermost_integration({"webhook_url": fake.url + HOOK, **fields}, {})


def post(fake: FakeHTTPServer) -> dict[str, Any]:
    request = fake.requests[-1]
    assert request.method == "POST" and request.path == HOOK
    assert request.headers["content-type"] == "application/json"
    return dict(request.json())


def test_registered_under_alertmanager_config_key() -> None:
    assert INTEGRATIONS["mattermost_configs"] is mattermost_integration


def test_default_post_is_markdown_saying_what_broke_where_and_how_to_silence(
    mattermost: FakeHTTPServer,
) -> None:
    integration(mattermost).send(notification(group_labels={"alertname": "HighErrorRate", "service": "api"}))
    body = post(mattermost)
    assert set(body) == {"text"}
    text = body["text"]
    assert text.startswith("**\\[FIRING:1\\] HighErrorRate api \\(critical\\)**")
    for part in (
        "service: **api**",
        "- **5xx 3.2/s** `3.2`",
        "[Runbook](https://runbooks.example/high-error-rate)",
        "Silence: `alerting silence add alertname=HighErrorRate service=api --duration 2h",
    ):
        assert part in text


def test_every_field_is_a_template_and_empty_ones_are_left_out(mattermost: FakeHTTPServer) -> None:
    integration(
        mattermost,
        channel="alerts-{{ .CommonLabels.service }}",
        username="{{ .GroupLabels.alertname }}",
        icon_emoji=":fire:",
        icon_url="",
        text="{{ .Status }}: {{ .CommonAnnotations.summary }}",
        type="custom_alert",
        props={"card": "**{{ .CommonLabels.severity }}**"},
        attachments=[
            {
                "title": "{{ .GroupLabels.alertname }}",
                "title_link": "{{ .ExternalURL }}",
                "color": '{{ if eq .Status "firing" }}#FF0000{{ else }}#00FF00{{ end }}',
                "fields": [{"title": "service", "value": "{{ .CommonLabels.service }}", "short": True}],
            }
        ],
    ).send(notification())
    assert post(mattermost) == {
        "text": "firing: 5xx 3.2/s",
        "channel": "alerts-api",
        "username": "HighErrorRate",
        "icon_emoji": ":fire:",
        "type": "custom_alert",
        "props": {"card": "**critical**"},
        "attachments": [
            {
                "title": "HighErrorRate",
                "title_link": "http://alerting.example:8080",
                "color": "#FF0000",
                "fields": [{"title": "service", "value": "api", "short": True}],
            }
        ],
    }


def test_the_entrys_own_attachment_fields_make_the_first_attachment(mattermost: FakeHTTPServer) -> None:
    integration(mattermost, title="{{ .Status }}", color="danger", attachments=[{"text": "second"}]).send(
        notification()
    )
    assert post(mattermost)["attachments"] == [{"title": "firing", "color": "danger"}, {"text": "second"}]


@pytest.mark.parametrize(
    ("priority", "sent"),
    [
        (
            {"priority": "URGENT", "requested_ack": True, "persistent_notifications": True},
            {"priority": "urgent", "requested_ack": True, "persistent_notifications": True},
        ),
        (
            {"priority": "important", "persistent_notifications": True, "requested_ack": True},
            {"priority": "important", "requested_ack": True},
        ),
        ({"priority": "standard", "requested_ack": True}, {"priority": "standard"}),
        ({"priority": "whenever"}, {"priority": "standard"}),
        (
            {"priority": '{{ if eq .CommonLabels.severity "critical" }}urgent{{ end }}'},
            {"priority": "urgent"},
        ),
    ],
)
def test_priority_follows_mattermosts_rules(
    mattermost: FakeHTTPServer, priority: dict[str, Any], sent: dict[str, Any]
) -> None:
    integration(mattermost, priority=priority).send(notification())
    assert post(mattermost)["priority"] == sent


def test_long_text_is_cut_to_mattermosts_limit(mattermost: FakeHTTPServer) -> None:
    integration(mattermost, text="{{ .CommonAnnotations.description }}").send(
        notification(alert(annotations={"description": "\u00e9" * 20000}))
    )
    text = post(mattermost)["text"]
    assert len(text) == TEXT_LIMIT and text.endswith("\u2026")


def test_resolved_is_sent_unless_send_resolved_is_off(mattermost: FakeHTTPServer) -> None:
    integration(mattermost).send(notification(alert("resolved")))
    assert "RESOLVED" in post(mattermost)["text"] and "silence add" not in post(mattermost)["text"]
    integration(mattermost, send_resolved=False).send(notification(alert("resolved")))
    assert len(mattermost.requests) == 1


def test_webhook_from_the_global_setting_or_a_file_read_at_send_time(
    mattermost: FakeHTTPServer, tmp_path: Path
) -> None:
    mattermost_integration({}, {"mattermost_webhook_url": mattermost.url + HOOK}).send(notification())
    url_file = tmp_path / "hook"
    url_file.write_text(mattermost.url + HOOK + "\n")
    hook = mattermost_integration({}, {"mattermost_webhook_url_file": str(url_file)})
    hook.send(notification())
    assert [r.path for r in mattermost.requests] == [HOOK, HOOK]
    url_file.unlink()
    with pytest.raises(DeliveryError, match="mattermost_webhook_url_file") as failure:
        hook.send(notification())
    assert failure.value.retryable


test_answers_are_classified_and_never_show_the_hook = receivers.classification_test(
    "mattermost",
    lambda service: integration(service).send(notification()),
    [
        (Reply(429, {"message": "too many requests"}, {"Retry-After": "4"}), True, 4.0, "too many requests"),
        (Reply(503, {"message": "maintenance"}), True, None, "maintenance"),
        (
            Reply(
                400,
                {"message": "Unable to parse incoming data", "id": "web.incoming_webhook.parse.app_error"},
            ),
            False,
            None,
            "Unable to parse incoming data",
        ),
        (
            Reply(404, {"message": "Unable to find the webhook", "status_code": 404}),
            False,
            None,
            "find the webhook",
        ),
    ],
    HOOK_ID,
)


write_config = receivers.config_writer("mattermost_configs", "chat", with_global=True)

test_bad_entries_are_rejected_at_their_position = receivers.rejection_test(
    write_config,
    [
        (
            "channel: ops",
            "webhook_url (or webhook_url_file) is required, or mattermost_webhook_url",
            "channel",
        ),
        ("webhook_url: https://m.example/hooks/x\nchanel: ops", 'unknown field "chanel"', "chanel"),
        (
            "webhook_url: https://m.example/hooks/x\nwebhook_url_file: /dev/null",
            "set at most one",
            "/dev/null",
        ),
        (
            "webhook_url: https://m.example/hooks/x\npriority: {level: urgent}",
            'unknown field "level"',
            "level",
        ),
        (
            "webhook_url: https://m.example/hooks/x\nfields: [{title: a}]",
            "needs a title and a value",
            "{title: a}",
        ),
        ("webhook_url: https://m.example/hooks/x\ntext: '{{ .Status'", "text: template", "'{{"),
    ],
)


def test_a_direct_call_raises_config_errors() -> None:
    with pytest.raises(ConfigError, match="mattermost_webhook_url"):
        mattermost_integration({"channel": "ops"}, {})


def test_unset_webhook_variable_prints_to_the_console_with_a_warning(tmp_path: Path) -> None:
    path = write_config(tmp_path, "webhook_url: ${MATTERMOST_WEBHOOK_URL}")
    receivers.assert_console_until_set(
        path, "chat", "mattermost_configs", "MATTERMOST_WEBHOOK_URL", "https://chat.example" + HOOK
    )
