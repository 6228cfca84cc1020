"""The Microsoft Teams integrations against a local server speaking the incoming-webhook protocol:
MessageCards (``msteams_configs``) and Adaptive Cards for workflows (``msteamsv2_configs``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from alerting.errors import ConfigError
from alerting.notify.base import DeliveryError
from alerting.notify.receivers import INTEGRATIONS
from alerting.notify.receivers.msteams import TEXT_LIMIT, msteams_integration
from alerting.notify.receivers.msteamsv2 import msteamsv2_integration
from tests.support import receivers
from tests.support.httpfake import FakeHTTPServer, Reply, Request
from tests.support.notifications import alert, notification

HOOK = "/webhookb2/7f1c0d8e-1234@0a1b/IncomingWebhook/5e9f0c2d44/9a8b7c6d-secret"
SIGNATURE = "5e9f0c2d44/9a8b7c6d-secret"


def accepted(request: Request) -> Reply:
    return Reply(200, "1")  # what an Office 365 connector answers


@pytest.fixture
def teams() -> Iterator[FakeHTTPServer]:
    with FakeHTTPServer(accepted) as fake:
        yield fake


def v1(fake: FakeHTTPServer, **fields: Any) -> Any:
    return msteams_integration({"webhook_url": fake.url + HOOK, **fields}, {})


def v2(fake: FakeHTTPServer, **fields: Any) -> Any:
    return msteamsv2_integration({"webhook_url": fake.url + HOOK, **fields}, {})


def body(fake: FakeHTTPServer) -> dict[str, Any]:
    request = fake.requests[-1]
    assert request.method == "POST" and request.path == HOOK
    assert request.headers["content-type"] == "application/json"
    return dict(request.json())


def test_registered_under_alertmanager_config_keys() -> None:
    assert INTEGRATIONS["msteams_configs"] is msteams_integration
    assert INTEGRATIONS["msteamsv2_configs"] is msteamsv2_integration


def test_a_notification_is_one_message_card(teams: FakeHTTPServer) -> None:
    v1(teams).send(notification(alert(labels={"instance": "web-1"})))
    card = body(teams)
    assert set(card) == {"@context", "type", "title", "summary", "text", "themeColor"}
    assert card["@context"] == "http://schema.org/extensions" and card["type"] == "MessageCard"
    assert card["title"] == card["summary"] == "[FIRING:1] HighErrorRate (web-1 api critical)"
    assert card["themeColor"] == "D7263D"  # critical


def test_default_text_says_what_broke_where_and_how_to_silence(teams: FakeHTTPServer) -> None:
    v1(teams).send(
        notification(alert(value=3.2), group_labels={"alertname": "HighErrorRate", "service": "api"})
    )
    text = body(teams)["text"]
    for part in (
        "service: **api**",
        "- **5xx 3.2/s** `3.2`",
        "The api answers 5xx to 3.2 requests per second.",
        "[Runbook](https://runbooks.example/high-error-rate)",
        "Silence: `alerting silence add alertname=HighErrorRate service=api --duration 2h",
    ):
        assert part in text
    assert "\n\n" in text and "\n" not in text.replace("\n\n", "")  # Teams needs paragraph breaks


def test_label_values_cannot_become_markup(teams: FakeHTTPServer) -> None:
    v1(teams).send(notification(alert(annotations={"summary": "[click](http://evil.example) *now* @all"})))
    text = body(teams)["text"]
    assert "\\[click\\]\\(http://evil.example\\) \\*now\\* \\@all" in text


def test_resolved_is_green_without_a_silence_command_unless_send_resolved_is_off(
    teams: FakeHTTPServer,
) -> None:
    resolved = notification(alert("resolved"))
    v1(teams).send(resolved)
    card = body(teams)
    assert card["themeColor"] == "2EB67D" and card["title"].startswith("[RESOLVED]")
    assert "silence add" not in card["text"]
    quiet = v1(teams, send_resolved=False)
    quiet.send(resolved)
    assert len(teams.requests) == 1


def test_templated_fields_render_over_alertmanagers_data(teams: FakeHTTPServer) -> None:
    v1(
        teams,
        title="{{ .Status | toUpper }} {{ .CommonLabels.service }}",
        summary="{{ len .Alerts.Firing }} firing",
        text='{{ range .Alerts }}{{ .Labels.instance }} {{ end }}{{ template "msteams.default.title" . }}',
    ).send(notification(alert(labels={"instance": "a"}), alert(labels={"instance": "b"})))
    card = body(teams)
    assert (card["title"], card["summary"]) == ("FIRING api", "2 firing")
    assert card["text"] == "a b [FIRING:2] HighErrorRate (api critical)"


def test_long_text_is_cut_to_the_limit(teams: FakeHTTPServer) -> None:
    v1(teams, text="{{ .CommonAnnotations.description }}").send(
        notification(alert(annotations={"description": "x" * (TEXT_LIMIT + 50)}))
    )
    text = body(teams)["text"]
    assert len(text) == TEXT_LIMIT and text.endswith("\u2026")


def test_a_workflow_message_is_one_adaptive_card(teams: FakeHTTPServer) -> None:
    v2(teams, title="{{ .Status }}: {{ .GroupLabels.alertname }}").send(notification())
    message = body(teams)
    assert message["type"] == "message"
    (attachment,) = message["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    assert attachment["contentUrl"] is None
    card = attachment["content"]
    assert (card["type"], card["version"], card["msteams"]) == ("AdaptiveCard", "1.2", {"width": "full"})
    heading, text = card["body"]
    assert heading == {
        "type": "TextBlock",
        "text": "firing: HighErrorRate",
        "weight": "Bolder",
        "size": "Medium",
        "wrap": True,
        "style": "heading",
        "color": "Attention",
    }
    assert text["type"] == "TextBlock" and text["wrap"] is True and "silence add" in text["text"]
    v2(teams).send(notification(alert("resolved")))
    assert body(teams)["attachments"][0]["content"]["body"][0]["color"] == "Good"


@pytest.mark.parametrize("build", [v1, v2])
def test_webhook_url_file_is_read_at_send_time(teams: FakeHTTPServer, tmp_path: Path, build: Any) -> None:
    url_file = tmp_path / "teams-url"
    url_file.write_text(teams.url + HOOK + "\n")
    key = "msteams_configs" if build is v1 else "msteamsv2_configs"
    hook = INTEGRATIONS[key]({"webhook_url_file": str(url_file)}, {})
    hook.send(notification())
    assert teams.requests[-1].path == HOOK
    url_file.unlink()
    with pytest.raises(DeliveryError, match="webhook_url_file") as failure:
        hook.send(notification())
    assert failure.value.retryable


test_answers_are_classified_and_never_show_the_webhook = receivers.classification_test(
    "teams",
    lambda service: v1(service).send(notification()),
    [
        (
            Reply(429, "Microsoft Teams endpoint returned HTTP error 429", {"Retry-After": "3"}),
            True,
            3.0,
            "429",
        ),
        (Reply(500, "Webhook message delivery failed with error: internal"), True, None, "500"),
        (Reply(400, "Bad payload received by generic incoming webhook."), False, None, "Bad payload"),
        (Reply(404, "Webhook not found"), False, None, "404"),
    ],
    SIGNATURE,
)


def test_the_webhook_stays_out_of_errors_when_teams_is_unreachable() -> None:
    hook = msteams_integration({"webhook_url": "http://127.0.0.1:9" + HOOK}, {})
    with pytest.raises(DeliveryError) as failure:
        hook.send(notification())
    assert failure.value.retryable and SIGNATURE not in str(failure.value) and SIGNATURE not in repr(hook)


write_v1 = receivers.config_writer("msteams_configs", "chat")
write_v2 = receivers.config_writer("msteamsv2_configs", "chat")

test_bad_entries_are_rejected_at_their_position = receivers.rejection_test(
    write_v1,
    [
        ("webhook_url: https://x.example/h\ntitel: x", 'unknown field "titel"', "titel"),
        ("title: x", "webhook_url (or webhook_url_file) is required", "title"),
        (
            "webhook_url: https://x.example/h\nwebhook_url_file: /dev/null",
            "set at most one of webhook_url and webhook_url_file",
            "/dev/null",
        ),
        ("webhook_url: ftp://x.example/h", "webhook_url must be an http(s) URL", "ftp://"),
        ("webhook_url: https://x.example/h\ntext: '{{ .Status'", "text: template", "'{{"),
        (
            "webhook_url: https://x.example/h\nsend_resolved: often",
            "send_resolved must be true or false",
            "often",
        ),
    ],
)

test_bad_workflow_entries_are_rejected_at_their_position = receivers.rejection_test(
    write_v2,
    [
        ("webhook_url: https://x.example/h\nsummary: x", 'unknown field "summary"', "summary"),
        ("text: x", "webhook_url (or webhook_url_file) is required", "text"),
    ],
)


def test_a_direct_call_raises_config_errors() -> None:
    with pytest.raises(ConfigError, match="webhook_url"):
        msteams_integration({}, {})


def test_unset_webhook_variable_prints_to_the_console_with_a_warning(tmp_path: Path) -> None:
    path = write_v1(tmp_path, "webhook_url: ${TEAMS_WEBHOOK_URL}")
    receivers.assert_console_until_set(
        path, "chat", "msteams_configs", "TEAMS_WEBHOOK_URL", "https://example.webhook.office.com" + HOOK
    )


def test_an_entry_without_http_config_takes_the_global_one(teams: FakeHTTPServer) -> None:
    global_config = {"http_config": {"basic_auth": {"username": "proxy-user", "password": "proxy-pass"}}}
    msteams_integration({"webhook_url": teams.url + HOOK}, global_config).send(notification())
    assert teams.requests[-1].basic_auth() == ("proxy-user", "proxy-pass")
    own = {"webhook_url": teams.url + HOOK, "http_config": {"follow_redirects": True}}
    msteams_integration(own, global_config).send(notification())
    assert teams.requests[-1].basic_auth() is None
