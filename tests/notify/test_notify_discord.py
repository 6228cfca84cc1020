"""The Discord integration against a local server speaking Discord's webhook API, and beside a real
Alertmanager 0.25 sending the same alert group to the same server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from alerting.errors import ConfigError
from alerting.notify.base import DeliveryError
from alerting.notify.receivers import INTEGRATIONS
from alerting.notify.receivers.discord import DESCRIPTION_LIMIT, TITLE_LIMIT, discord_integration
from alerting.ops.logs import redact_text
from tests.support import receivers
from tests.support.differential import assert_same_json_posts, run_both
from tests.support.httpfake import FakeHTTPServer, Reply, Request
from tests.support.notifications import alert, notification

WEBHOOK = (
    "/api/webhooks/1187654321098765432/Xa1b2C3d4E5f6G7h8I9j0KlMnOpQrStUvWxYz-_aBcDeFgHiJkLmNoPqRsTuVwXyZ01"
)
TOKEN = WEBHOOK.rsplit("/", 1)[1]


def accepted(request: Request) -> Reply:
    return Reply(204)


@pytest.fixture
def discord() -> Iterator[FakeHTTPServer]:
    with FakeHTTPServer(accepted) as fake:
        yield fake


def integration(fake: FakeHTTPServer, **fields: Any) -> Any:
    return discord_integration({"webhook_url": fake.url + WEBHOOK, **fields}, {})


def embed(fake: FakeHTTPServer) -> dict[str, Any]:
    body = fake.requests[-1].json()
    assert body["content"] == "" and len(body["embeds"]) == 1
    return dict(body["embeds"][0])


def test_registered_as_discord_configs() -> None:
    assert INTEGRATIONS["discord_configs"] is discord_integration


def test_a_notification_is_one_red_embed_posted_to_the_webhook(discord: FakeHTTPServer) -> None:
    integration(discord).send(notification())
    (request,) = discord.requests
    assert (request.method, request.path) == ("POST", WEBHOOK)
    assert request.headers["content-type"] == "application/json"
    sent = embed(discord)
    assert set(sent) == {"title", "description", "color"}
    assert sent["title"] == "[FIRING:1] HighErrorRate (api critical)" and sent["color"] == 0x992D22


def test_resolved_is_green_unless_send_resolved_is_off(discord: FakeHTTPServer) -> None:
    integration(discord).send(notification(alert("resolved")))
    assert embed(discord)["color"] == 0x2ECC71 and "silence add" not in embed(discord)["description"]
    integration(discord, send_resolved=False).send(notification(alert("resolved")))
    assert len(discord.requests) == 1


def test_default_description_says_what_broke_where_and_how_to_silence(discord: FakeHTTPServer) -> None:
    hostile = alert(labels={"instance": "web_1*"}, annotations={"summary": "5xx **3.2**/s"})
    integration(discord).send(notification(hostile))
    text = embed(discord)["description"]
    for part in (
        "instance: **web\\_1\\*** \u00b7 service: **api**",
        "**5xx \\*\\*3.2\\*\\*/s** `3.2`",
        "[Runbook](https://runbooks.example/high-error-rate)",
        "Silence: `alerting silence add alertname=HighErrorRate --duration 2h --comment ...`",
    ):
        assert part in text


def test_a_large_group_fits_and_counts_the_rest(discord: FakeHTTPServer) -> None:
    many = [alert(labels={"instance": f"web-{i}"}, annotations={"description": "d" * 600}) for i in range(30)]
    integration(discord).send(notification(*many))
    text = embed(discord)["description"]
    assert len(text) <= DESCRIPTION_LIMIT and "more*" in text and "silence add" in text


def test_templated_title_and_message_are_cut_to_discords_limits(discord: FakeHTTPServer) -> None:
    integration(
        discord,
        title="{{ .CommonLabels.alertname }} " + "t" * 300,
        message="{{ range .Alerts }}{{ .Annotations.summary }}{{ end }}",
    ).send(notification(alert(annotations={"summary": "\u00e9" * 5000})))
    sent = embed(discord)
    assert len(sent["title"]) == TITLE_LIMIT and sent["title"].endswith("\u2026")
    assert sent["description"] == "\u00e9" * (DESCRIPTION_LIMIT - 1) + "\u2026"


def test_the_default_template_names_give_our_defaults(discord: FakeHTTPServer) -> None:
    integration(
        discord,
        title='{{ template "discord.default.title" . }}',
        message='{{ template "discord.default.message" . }}',
    ).send(notification())
    integration(discord).send(notification())
    assert discord.requests[0].json() == discord.requests[1].json()


def test_webhook_url_file_is_read_at_send_time(discord: FakeHTTPServer, tmp_path: Path) -> None:
    url_file = tmp_path / "webhook"
    url_file.write_text(discord.url + WEBHOOK + "\n")
    hook = discord_integration({"webhook_url_file": str(url_file)}, {})
    hook.send(notification())
    assert discord.requests[0].path == WEBHOOK
    url_file.unlink()
    with pytest.raises(DeliveryError, match="webhook_url_file") as failure:
        hook.send(notification())
    assert failure.value.retryable


test_answers_are_classified_and_never_show_the_webhook = receivers.classification_test(
    "discord",
    lambda service: integration(service).send(notification()),
    [
        (
            Reply(429, {"message": "You are being rate limited.", "retry_after": 0.5, "global": False}),
            True,
            0.5,
            "rate limited",
        ),
        (Reply(429, {"message": "slow"}, {"Retry-After": "2"}), True, 2.0, "slow"),
        (Reply(502, "bad gateway"), True, None, "bad gateway"),
        (Reply(400, {"message": "Invalid Form Body", "code": 50035}), False, None, "Invalid Form Body"),
        (Reply(404, {"message": "Unknown Webhook", "code": 10015}), False, None, "Unknown Webhook"),
    ],
    TOKEN,
)


def test_the_webhook_token_stays_out_of_errors_and_logs() -> None:
    hook = discord_integration({"webhook_url": "http://127.0.0.1:9" + WEBHOOK}, {})
    with pytest.raises(DeliveryError) as failure:
        hook.send(notification())
    assert failure.value.retryable and TOKEN not in str(failure.value) and TOKEN not in repr(hook)
    assert TOKEN not in redact_text(f"HTTP Request: POST https://discord.com{WEBHOOK} 204")


write_config = receivers.config_writer("discord_configs", "chat")


test_bad_entries_are_rejected_at_their_position = receivers.rejection_test(
    write_config,
    [
        (
            "webhook_url: http://x/y\ntitel: x",
            'unknown field "titel" in discord_configs (did you mean "title"?)',
            "titel",
        ),
        ("title: x", "webhook_url (or webhook_url_file) is required", "title"),
        (
            "webhook_url: http://x/y\nwebhook_url_file: /dev/null",
            "set at most one of webhook_url",
            "/dev/null",
        ),
        ("webhook_url: discord-secret-token", "webhook_url must be an http(s) URL", "discord-secret"),
        ("webhook_url: http://x/y\nmessage: '{{ .Status'", "message: template", "'{{"),
    ],
    hidden="discord-secret-token",
)


def test_a_direct_call_raises_config_errors() -> None:
    with pytest.raises(ConfigError, match="webhook_url"):
        discord_integration({}, {})


def test_unset_webhook_variable_prints_to_the_console_with_a_warning(tmp_path: Path) -> None:
    path = write_config(tmp_path, "webhook_url: ${DISCORD_WEBHOOK_URL}")
    url = "https://discord.com" + WEBHOOK
    receivers.assert_console_until_set(path, "chat", "discord_configs", "DISCORD_WEBHOOK_URL", url)


DIFF_RECEIVERS = """
receivers:
  - name: main
    discord_configs:
      - webhook_url: BASE/api/webhooks/42/TOKEN
        title: '{{ .Status }} {{ .GroupLabels.alertname }}{{ range .Alerts }} {{ .Labels.instance }}{{ end }}'
        message: |-
          {{ range .Alerts }}**{{ .Labels.instance }}** {{ .Annotations.summary }} {{ .GeneratorURL }}
          {{ end }}{{ len .Alerts.Firing }} firing
"""

# Within Discord's limits: Alertmanager 0.25 sends longer titles and descriptions uncut (Discord then
# refuses the message); we cut them as later Alertmanager versions do (tested above).
DIFF_ALERTS = [
    {
        "labels": {"alertname": "QueueStuck", "instance": 'q<1>&"a"' + "x" * 150},
        "annotations": {"summary": '5 < 7 & it\'s "stuck" ' + "\u00e9" * 3500},
    },
    {"labels": {"alertname": "QueueStuck", "instance": "q-2"}, "annotations": {"summary": "plain"}},
]


def test_same_requests_as_alertmanager(tmp_path: Path) -> None:
    with FakeHTTPServer(accepted) as fake:
        theirs, mine = run_both(
            tmp_path, fake, DIFF_RECEIVERS.replace("TOKEN", TOKEN), DIFF_ALERTS, expect=2, resolve=True
        )
    assert_same_json_posts(theirs, mine, 2, f"/api/webhooks/42/{TOKEN}")
    assert [r.json()["embeds"][0]["color"] for r in mine] == [0x992D22, 0x2ECC71]
