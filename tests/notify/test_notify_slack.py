"""Slack receiver against a local HTTPS server speaking the Web API and incoming webhooks."""

from __future__ import annotations

import re
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import redis

from alerting.errors import ConfigError
from alerting.notify.base import DeliveryError, Notification
from alerting.notify.kvstore import STORE_KEY, MemoryStore, RedisStore
from alerting.notify.receivers import INTEGRATIONS
from alerting.notify.receivers.slack import SlackBot, SlackWebhook, slack_integration
from alerting.worker.compose import check_routing_config
from tests.support.differential import run_both, unprefixed
from tests.support.fakes import SLACK_TOKEN, SLACK_WEBHOOK_PATH, LocalCA, SlackFake
from tests.support.httpfake import FakeHTTPServer, Reply
from tests.support.notifications import alert, notification


def bot(slack: SlackFake, ca: LocalCA, store: Any = None, **extra: Any) -> SlackBot:
    config = {
        "token": SLACK_TOKEN,
        "api_url": slack.api_url,
        "channel": "#alerts",
        "send_resolved": True,
        "http_config": {"tls_config": {"ca_file": ca.ca_file}},
        **extra,
    }
    integration = slack_integration(config, {STORE_KEY: store if store is not None else MemoryStore()})
    assert isinstance(integration, SlackBot)
    return integration


def webhook(slack: SlackFake, ca: LocalCA, **extra: Any) -> SlackWebhook:
    config = {"api_url": slack.webhook_url, "http_config": {"tls_config": {"ca_file": ca.ca_file}}, **extra}
    integration = slack_integration(config, {})
    assert isinstance(integration, SlackWebhook)
    return integration


def blocks(message: dict[str, Any]) -> list[dict[str, Any]]:
    (attachment,) = message["attachments"]
    return attachment["blocks"]


def mrkdwn_texts(message: dict[str, Any]) -> list[str]:
    """Every text Slack parses as mrkdwn (where <!channel> would ping)."""
    texts = [message["text"]]
    for block in blocks(message):
        for obj in [block.get("text"), *block.get("fields", []), *block.get("elements", [])]:
            if isinstance(obj, dict) and obj.get("type") == "mrkdwn":
                texts.append(obj["text"])
    return texts


def test_registered_under_alertmanager_config_key() -> None:
    assert INTEGRATIONS["slack_configs"] is slack_integration


def test_bot_message_has_header_fields_alerts_runbook_and_silence_hint(slack: SlackFake, ca: LocalCA) -> None:
    n = notification(
        alert(labels={"instance": "api-1:8080"}, value=3.2),
        alert(labels={"instance": "api-2:8080"}, value=4.5),
    )
    bot(slack, ca, username="alertbot", icon_emoji=":rotating_light:").send(n)

    request = slack.server.requests[0]
    assert request.path == "/api/chat.postMessage"
    assert request.headers["authorization"] == f"Bearer {SLACK_TOKEN}"
    (message,) = slack.calls("chat.postMessage")
    assert message["channel"] == "#alerts"
    assert message["username"] == "alertbot" and message["icon_emoji"] == ":rotating_light:"
    assert message["text"] == "[FIRING:2] HighErrorRate (api critical)"
    assert message["attachments"][0]["color"] == "#d7263d"
    header, fields, first, second, actions, context = blocks(message)
    assert header == {
        "type": "header",
        "text": {"type": "plain_text", "text": ":red_circle: FIRING:2 · critical · HighErrorRate"},
    }
    assert fields == {"type": "section", "fields": [{"type": "mrkdwn", "text": "*service*\napi"}]}
    assert first["text"]["text"].splitlines() == [
        "*5xx 3.2/s*  `3.2`",
        "The api answers 5xx to 3.2 requests per second.",
        "`instance=api-1:8080`",
        f"<{n.alerts[0].generator_url}|query>",
    ]
    assert second["text"]["text"].startswith("*5xx 3.2/s*  `4.5`")
    assert actions["elements"][0] == {
        "type": "button",
        "text": {"type": "plain_text", "text": "Runbook"},
        "url": "https://runbooks.example/high-error-rate",
    }
    assert [e["text"]["text"] for e in actions["elements"]] == ["Runbook", "Query"]
    assert context["elements"] == [
        {
            "type": "mrkdwn",
            "text": "Silence: `alerting silence add alertname=HighErrorRate --duration 2h --comment ...`",
        }
    ]


@pytest.mark.parametrize(
    ("severity", "colour"),
    [("critical", "#d7263d"), ("P2", "#f46036"), ("warning", "#f2c14e"), ("info", "#2e86ab")],
)
def test_colour_bar_follows_severity(slack: SlackFake, ca: LocalCA, severity: str, colour: str) -> None:
    bot(slack, ca).send(notification(alert(labels={"severity": severity})))
    assert slack.calls("chat.postMessage")[0]["attachments"][0]["color"] == colour


def test_label_and_annotation_values_cannot_ping_or_forge_links(slack: SlackFake, ca: LocalCA) -> None:
    n = notification(
        alert(
            labels={"service": "<!channel>", "pod": "a&b <@U024BE7LH>"},
            annotations={"summary": "see <https://evil.example|your bank>", "description": "<!here> & more"},
        ),
        group_labels={"alertname": "HighErrorRate", "service": "<!channel>"},
    )
    bot(slack, ca).send(n)
    message = slack.calls("chat.postMessage")[0]
    texts = mrkdwn_texts(message)
    joined = "\n".join(texts)
    for raw in ("<!channel>", "<!here>", "<@U024BE7LH>", "<https://evil.example"):
        assert raw not in joined
    assert "*service*\n&lt;!channel&gt;" in texts
    assert "*pod*\na&amp;b &lt;@U024BE7LH&gt;" in texts
    assert "*see &lt;https://evil.example|your bank&gt;*" in joined
    assert "&lt;!here&gt; &amp; more" in joined
    assert "service=\\&lt;!channel\\&gt;" not in joined  # escaped once, not twice
    assert "'service=&lt;!channel&gt;'" in joined  # the silence hint quotes it for the shell


def test_templates_escape_values_and_keep_the_authors_markup(slack: SlackFake, ca: LocalCA) -> None:
    integration = bot(
        slack,
        ca,
        channel="#{{ .CommonLabels.room }}",
        title='{{ template "slack.default.title" . }} [{{ .CommonLabels.team }}]',
        text="<!here> {{ range .Alerts }}*{{ .Annotations.summary }}* on {{ .Labels.pod }}\n{{ end }}",
        color='{{ if eq .Status "firing" }}danger{{ else }}good{{ end }}',
        footer="for {{ .Receiver }}",
    )
    n = notification(alert(labels={"room": "pages", "team": "t&c", "pod": "<!channel>"}))
    integration.send(n)
    message = slack.calls("chat.postMessage")[0]
    assert message["channel"] == "#pages"
    assert message["attachments"][0]["color"] == "danger"
    header, _fields, body, *_rest, context = blocks(message)
    assert header["text"]["text"] == ":red_circle: FIRING:1 · critical · HighErrorRate [t&c]"  # plain text
    assert body["text"]["text"] == "<!here> *5xx 3.2/s* on &lt;!channel&gt;\n"
    assert context["elements"][0]["text"] == "for oncall"


def test_failing_template_falls_back_to_the_default_text(slack: SlackFake, ca: LocalCA) -> None:
    bot(slack, ca, text="{{ index .Alerts 3 }}").send(notification())
    texts = mrkdwn_texts(slack.calls("chat.postMessage")[0])
    assert any(t.startswith("*5xx 3.2/s*") for t in texts)


def test_runbook_button_only_for_web_links(slack: SlackFake, ca: LocalCA) -> None:
    n = notification(alert(annotations={"runbook_url": "javascript:alert(1)"}, generator_url=""))
    bot(slack, ca).send(n)
    kinds = [b["type"] for b in blocks(slack.calls("chat.postMessage")[0])]
    assert "actions" not in kinds


def test_many_alerts_are_summarised_within_slack_limits(slack: SlackFake, ca: LocalCA) -> None:
    firing = [alert(labels={"instance": f"api-{i}"}) for i in range(100)]
    resolved = [alert("resolved", labels={"instance": f"old-{i}"}) for i in range(20)]
    bot(slack, ca, max_alerts=500).send(notification(*firing, *resolved))
    (message,) = slack.calls("chat.postMessage")
    found = blocks(message)
    assert len(found) == 50
    assert sum(1 for b in found if b["type"] == "section" and "text" in b) == 50 - 5
    more = [b for b in found if b["type"] == "context"][0]
    assert more["elements"][0]["text"] == "and 75 more (55 firing, 20 resolved)"
    assert slack.messages  # the fake (which enforces the limits) accepted it


def test_default_shows_ten_alerts_then_and_n_more(slack: SlackFake, ca: LocalCA) -> None:
    bot(slack, ca).send(notification(*[alert(labels={"instance": f"api-{i}"}) for i in range(13)]))
    texts = mrkdwn_texts(slack.calls("chat.postMessage")[0])
    assert "and 3 more (3 firing)" in texts
    assert sum(1 for t in texts if t.startswith("*5xx 3.2/s*")) == 10


def test_long_texts_are_cut_to_section_and_header_limits(slack: SlackFake, ca: LocalCA) -> None:
    n = notification(
        alert(labels={"alertname": "H" * 400}, annotations={"description": "x" * 2990 + "&&&&&&&&&&"}),
        group_labels={"alertname": "H" * 400},
    )
    bot(slack, ca).send(n)
    message = slack.calls("chat.postMessage")[0]
    header = blocks(message)[0]["text"]["text"]
    assert len(header) == 150 and header.endswith("…")
    section = blocks(message)[2]["text"]["text"]
    assert len(section) <= 3000 and section.endswith("…")
    assert not section.removesuffix("…").endswith(("&", "&a", "&am", "&amp"))
    assert slack.messages


def test_resolve_updates_the_original_and_replies_in_its_thread(slack: SlackFake, ca: LocalCA) -> None:
    integration = bot(slack, ca)
    integration.send(notification(alert()))
    (first,) = slack.calls("chat.postMessage")
    (channel, ts), original = next(iter(slack.messages.items()))

    integration.send(notification(alert("resolved")))

    assert slack.calls("chat.update") == [
        {
            "channel": channel,
            "ts": ts,
            "text": "[RESOLVED] HighErrorRate (api critical)",
            "attachments": slack.calls("chat.update")[0]["attachments"],
        }
    ]
    update = slack.calls("chat.update")[0]
    assert update["attachments"][0]["color"] == "#2eb67d"
    assert blocks(update)[0]["text"]["text"] == ":white_check_mark: RESOLVED · critical · HighErrorRate"
    reply = slack.calls("chat.postMessage")[1]
    assert reply["channel"] == channel and reply["thread_ts"] == ts
    assert reply["reply_broadcast"] is False
    assert len([m for m in slack.messages.values() if "thread_ts" not in m]) == 1  # no second top-level post
    assert first["channel"] == "#alerts" and "thread_ts" not in first


def test_firing_update_is_broadcast_in_the_thread(slack: SlackFake, ca: LocalCA) -> None:
    integration = bot(slack, ca)
    integration.send(notification(alert()))
    integration.send(notification(alert(), alert(labels={"instance": "b"})))
    posts = slack.calls("chat.postMessage")
    assert len(posts) == 2 and posts[1]["reply_broadcast"] is True
    assert posts[1]["thread_ts"] == slack.calls("chat.update")[0]["ts"]
    assert slack.calls("chat.update")[0]["text"] == "[FIRING:2] HighErrorRate (api critical)"


def test_group_that_fires_again_after_resolving_starts_a_new_message(slack: SlackFake, ca: LocalCA) -> None:
    integration = bot(slack, ca)
    integration.send(notification(alert()))
    integration.send(notification(alert("resolved")))
    integration.send(notification(alert()))
    tops = [m for m in slack.calls("chat.postMessage") if "thread_ts" not in m]
    assert len(tops) == 2


def test_threads_survive_a_restart_through_the_redis_store(slack: SlackFake, ca: LocalCA) -> None:
    client = redis.Redis.from_url("redis://127.0.0.1:6379/0")
    prefix = f"test-{uuid.uuid4().hex[:12]}:"
    try:
        bot(slack, ca, store=RedisStore(client, prefix)).send(notification(alert()))
        bot(slack, ca, store=RedisStore(client, prefix)).send(
            notification(alert("resolved"))
        )  # a new process
        assert len(slack.calls("chat.update")) == 1
        assert slack.calls("chat.postMessage")[1]["thread_ts"] == slack.calls("chat.update")[0]["ts"]
        # Resolved: the group's thread is forgotten (the channel's ID stays remembered).
        (thread,) = client.scan_iter(match=prefix + "slack-thread:*")
        assert 0 < client.pttl(thread) <= 1000
    finally:
        keys = list(client.scan_iter(match=prefix + "*"))
        if keys:
            client.delete(*keys)
        client.close()


def test_deleted_original_message_means_a_fresh_message(slack: SlackFake, ca: LocalCA) -> None:
    integration = bot(slack, ca)
    integration.send(notification(alert()))
    slack.messages.clear()  # someone deleted it
    integration.send(notification(alert(), alert(labels={"instance": "b"})))
    posts = slack.calls("chat.postMessage")
    assert len(posts) == 2 and "thread_ts" not in posts[1]


def test_failed_reply_is_retried_without_a_second_top_level_message(slack: SlackFake, ca: LocalCA) -> None:
    integration = bot(slack, ca)
    integration.send(notification(alert()))
    slack.server.fail_next(Reply(503, "upstream connect error"), after=1)  # update passes, reply fails
    with pytest.raises(DeliveryError) as caught:
        integration.send(notification(alert("resolved")))
    assert caught.value.retryable
    integration.send(notification(alert("resolved")))  # the task's retry
    tops = [m for m in slack.messages.values() if "thread_ts" not in m]
    replies = [m for m in slack.messages.values() if "thread_ts" in m]
    assert len(tops) == 1 and len(replies) == 1


def keyed(n: Notification, key: str, earlier_attempt: bool = False) -> Notification:
    return replace(n, notification_id=key, earlier_attempt=earlier_attempt)


def test_every_new_message_carries_the_idempotency_key_in_its_metadata(slack: SlackFake, ca: LocalCA) -> None:
    integration = bot(slack, ca)
    integration.send(keyed(notification(alert()), "nf-first"))
    integration.send(keyed(notification(alert("resolved")), "nf-resolve"))

    first, reply = slack.calls("chat.postMessage")
    assert first["metadata"] == {"event_type": "alerting_notification", "event_payload": {"id": "nf-first"}}
    assert reply["metadata"]["event_payload"] == {"id": "nf-resolve"}
    assert "metadata" not in slack.calls("chat.update")[0]  # the first message keeps its own key


def test_a_retry_after_a_lost_answer_finds_the_message_and_does_not_post_again(
    slack: SlackFake, ca: LocalCA
) -> None:
    """Slack posted the message but its answer never arrived: the retry, told the earlier attempt's
    outcome is unknown, finds the message by its key in the channel's history."""
    integration = bot(slack, ca, timeout="1s")
    slack.answer_delay = 3.0
    with pytest.raises(DeliveryError) as caught:
        integration.send(keyed(notification(alert()), "nf-lost"))
    assert caught.value.retryable

    integration.send(keyed(notification(alert()), "nf-lost", earlier_attempt=True))
    integration.send(keyed(notification(alert("resolved")), "nf-resolved"))

    (message, reply) = slack.channel("C0ALERTS")
    assert message["metadata"]["event_payload"]["id"] == "nf-lost" and "thread_ts" not in message
    assert reply["thread_ts"] == message["ts"]  # the found message is the group's thread


def test_a_retry_whose_earlier_attempt_never_reached_slack_posts(slack: SlackFake, ca: LocalCA) -> None:
    integration = bot(slack, ca, channel="C0ALERTS")
    integration.send(keyed(notification(alert()), "nf-never", earlier_attempt=True))

    assert [m["metadata"]["event_payload"]["id"] for m in slack.channel("C0ALERTS")] == ["nf-never"]


def test_a_retried_thread_reply_that_went_out_is_not_replied_twice(slack: SlackFake, ca: LocalCA) -> None:
    integration = bot(slack, ca)
    integration.send(keyed(notification(alert()), "nf-1"))
    two = notification(alert(), alert(labels={"instance": "b"}))
    integration.send(keyed(two, "nf-2"))
    integration.send(keyed(two, "nf-2", earlier_attempt=True))  # its outcome was never learnt

    replies = [m for m in slack.channel("C0ALERTS") if "thread_ts" in m]
    assert [m["metadata"]["event_payload"]["id"] for m in replies] == ["nf-2"]


@pytest.mark.parametrize(
    ("reply", "retryable", "retry_after", "text"),
    [
        (Reply(200, {"ok": False, "error": "invalid_auth"}), False, None, "invalid_auth"),
        (Reply(200, {"ok": False, "error": "channel_not_found"}), False, None, "channel_not_found"),
        (Reply(200, {"ok": False, "error": "internal_error"}), True, None, "internal_error"),
        (Reply(429, {"ok": False, "error": "ratelimited"}, {"Retry-After": "7"}), True, 7.0, "rate limited"),
        (Reply(500, "<html>oops</html>"), True, None, "chat.postMessage"),
        (Reply(503, {"ok": False, "error": "service_unavailable"}), True, None, "service_unavailable"),
    ],
)
def test_bot_errors_are_classified(
    slack: SlackFake, ca: LocalCA, reply: Reply, retryable: bool, retry_after: float | None, text: str
) -> None:
    slack.server.fail_next(reply)
    with pytest.raises(DeliveryError) as caught:
        bot(slack, ca).send(notification())
    assert caught.value.retryable is retryable
    assert caught.value.retry_after == retry_after
    assert text in str(caught.value)
    assert len(slack.server.requests) == 1  # no retry inside the client


def test_wrong_token_is_a_permanent_invalid_auth(slack: SlackFake, ca: LocalCA) -> None:
    with pytest.raises(DeliveryError, match="invalid_auth") as caught:
        bot(slack, ca, token="xoxb-revoked").send(notification())
    assert not caught.value.retryable
    assert "xoxb-revoked" not in str(caught.value)


def test_alertmanager_style_bot_config_uses_chat_post_message_url(slack: SlackFake, ca: LocalCA) -> None:
    config = {
        "api_url": slack.api_url + "chat.postMessage",
        "channel": "#alerts",
        "http_config": {"authorization": {"credentials": SLACK_TOKEN}, "tls_config": {"ca_file": ca.ca_file}},
    }
    slack_integration(config, {}).send(notification())
    assert slack.server.requests[0].path == "/api/chat.postMessage"
    assert len(slack.messages) == 1


def test_a_slack_app_token_posts_through_chat_post_message(
    slack: SlackFake, ca: LocalCA, tmp_path: Path
) -> None:
    tls = {"tls_config": {"ca_file": ca.ca_file}}
    app_url = slack.api_url + "chat.postMessage"
    entry = {"channel": "#alerts", "http_config": tls}
    slack_integration({**entry, "app_token": SLACK_TOKEN, "app_url": app_url}, {}).send(notification())
    token_file = tmp_path / "app-token"
    token_file.write_text(SLACK_TOKEN + "\n")
    global_config = {"slack_app_token_file": str(token_file), "slack_app_url": app_url}
    integration = slack_integration(entry, global_config)
    assert isinstance(integration, SlackBot)
    integration.send(notification())
    assert [c["channel"] for c in slack.calls("chat.postMessage")] == ["#alerts", "#alerts"]


@pytest.mark.parametrize(
    ("config", "global_config", "message"),
    [
        (
            {"app_token": "xoxb-1", "api_url": "https://hooks.slack.com/services/T/B/x", "channel": "#a"},
            {},
            "set at most one of api_url/api_url_file and app_token/app_token_file",
        ),
        (
            {
                "channel": "#a",
                "http_config": {"authorization": {"credentials": "xoxb-2"}},
                "app_token": "xoxb-1",
            },
            {},
            "authorization cannot be set with a Slack app token",
        ),
    ],
)
def test_app_token_conflicts_are_config_errors(
    config: dict[str, Any], global_config: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        slack_integration(config, global_config)


def test_a_global_app_token_beside_a_webhook_url_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "alerting.yml"
    path.write_text(
        "global:\n  slack_app_token: xoxb-1\n  slack_api_url: https://hooks.slack.com/services/T/B/x\n"
        "route:\n  receiver: chat\nreceivers:\n  - name: chat\n    slack_configs:\n      - channel: '#a'\n"
    )
    problems = check_routing_config(path, env={})
    assert "at most one of slack_app_token/slack_app_token_file & slack_api_url" in str(problems[0])
    assert str(problems[0]).startswith(f"{path}:2:3: ")


def test_webhook_posts_the_same_block_kit_message(slack: SlackFake, ca: LocalCA) -> None:
    webhook(slack, ca, channel="#alerts").send(notification())
    request = slack.server.requests[0]
    assert request.path.startswith("/services/")
    body = request.json()
    assert body["channel"] == "#alerts"
    assert body["text"] == "[FIRING:1] HighErrorRate (api critical)"
    assert blocks(body)[0]["type"] == "header"


def test_webhook_resolve_is_a_new_message_when_enabled(slack: SlackFake, ca: LocalCA) -> None:
    webhook(slack, ca).send(notification(alert("resolved")))
    assert slack.server.requests == []
    webhook(slack, ca, send_resolved=True).send(notification(alert("resolved")))
    assert slack.server.requests[0].json()["text"] == "[RESOLVED] HighErrorRate (api critical)"


@pytest.mark.parametrize(
    ("reply", "retryable", "retry_after"),
    [
        (Reply(400, "invalid_payload"), False, None),
        (Reply(404, "no_service"), False, None),
        (Reply(410, "channel_is_archived"), False, None),
        (Reply(429, "rate_limited", {"Retry-After": "12"}), True, 12.0),
        (Reply(500, "rollup_error"), True, None),
    ],
)
def test_webhook_errors_are_classified_without_leaking_the_url(
    slack: SlackFake, ca: LocalCA, reply: Reply, retryable: bool, retry_after: float | None
) -> None:
    slack.server.fail_next(reply)
    with pytest.raises(DeliveryError) as caught:
        webhook(slack, ca).send(notification())
    assert caught.value.retryable is retryable
    assert caught.value.retry_after == retry_after
    assert "/services/" not in str(caught.value)


def test_unreachable_slack_is_retryable(ca: LocalCA) -> None:
    fake = SlackFake(ca.server_context)
    with fake.server:
        pass
    for integration in (bot(fake, ca), webhook(fake, ca)):
        with pytest.raises(DeliveryError) as caught:
            integration.send(notification())
        assert caught.value.retryable


def test_webhook_url_from_file_and_global(slack: SlackFake, ca: LocalCA, tmp_path: Path) -> None:
    url_file = tmp_path / "slack-url"
    url_file.write_text(slack.webhook_url + "\n")
    tls = {"http_config": {"tls_config": {"ca_file": ca.ca_file}}}
    slack_integration({"api_url_file": str(url_file), **tls}, {}).send(notification())
    slack_integration(tls, {"slack_api_url": slack.webhook_url}).send(notification())
    assert [r.path for r in slack.server.requests] == [SLACK_WEBHOOK_PATH] * 2


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({}, "set token (bot) or api_url (incoming webhook)"),
        ({"token": "xoxb-1"}, "channel is required with a bot token"),
        ({"api_url": "hooks.slack.com/services/x"}, "api_url must be an http(s) URL"),
        (
            {"api_url": "https://hooks.example/x", "chanel": "#a"},
            'unknown field "chanel" in slack_configs (did you mean "channel"?)',
        ),
        ({"api_url": "https://hooks.example/x", "max_alerts": 0}, "max_alerts must be a whole number"),
        ({"token": "a", "token_file": "/b", "channel": "#a"}, "set at most one of token and token_file"),
        (
            {"api_url": "https://hooks.example/x", "text": "{{ range }}"},
            "text: template: text:1: missing value for range",
        ),
    ],
)
def test_bad_config_is_a_config_error(config: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        slack_integration(config, {})
    assert message in str(caught.value)


# ---------------------------------------------------------------------------------------------------
# Beside Alertmanager 0.25: both post to one incoming webhook

# Our messages are Block Kit inside one coloured attachment (a header, the key labels as fields, one
# section per alert, link buttons, the silence command); Alertmanager 0.25 sends a classic attachment
# whose fields are the rendered templates. Both are set from the same templates here and compared
# field by field: the addressing, the colour, the fallback (our ``text``), and each rendered
# template in the block that carries it. The data has no ``&``, ``<`` or ``>``: we escape those for
# mrkdwn (so a label cannot ping a channel or forge a link), Alertmanager 0.25 does not.
DIFF_RECEIVERS = """
receivers:
  - name: main
    slack_configs:
      - api_url: BASE/services/T0000/B0000/abcdefghijklmnopqrstuvwx
        send_resolved: true
        channel: '#alerts-{{ .CommonLabels.team }}'
        username: '{{ .GroupLabels.alertname }} bot'
        icon_emoji: ':rotating_light:'
        color: '{{ if eq .Status "firing" }}danger{{ else }}good{{ end }}'
        title: '[{{ .Status | toUpper }}:{{ len .Alerts.Firing }}] {{ .GroupLabels.alertname }}'
        title_link: 'https://alerting.example/#/groups/{{ .GroupLabels.alertname }}'
        pretext: '*{{ .CommonLabels.team }}* on call'
        text: |-
          {{ range .Alerts }}- `{{ .Labels.instance }}` {{ .Annotations.summary }} ({{ .Status }})
          {{ end }}
        footer: 'from {{ .Receiver }}'
        fallback: '{{ .Status }}: {{ .CommonAnnotations.summary }}'
"""

DIFF_ALERTS = [
    {
        "labels": {"alertname": "QueueBacklog", "team": "billing", "instance": f"worker-{i}"},
        "annotations": {"summary": "billing queue is \u00e9t\u00e9 long"},
    }
    for i in (1, 2)
]


def _as_alertmanager_fields(body: dict[str, Any]) -> dict[str, Any]:
    """Our Block Kit message read back as the classic attachment fields Alertmanager sends."""
    attachment = body["attachments"][0]
    out: dict[str, Any] = {"fallback": body["text"], "color": attachment["color"]}
    for block in attachment["blocks"]:
        if block["type"] == "header":
            out["title"] = block["text"]["text"]
        elif block["type"] == "section" and "text" in block:
            text = block["text"]["text"]
            if "title_link" not in out and text.startswith("<"):
                out["title_link"] = text[1:].split("|", 1)[0]
            elif "pretext" not in out:
                out["pretext"] = text
            else:
                out["text"] = text
        elif block["type"] == "context":
            out["footer"] = block["elements"][0]["text"]
    return out


def test_same_webhook_posts_as_alertmanager(tmp_path: Path) -> None:
    with FakeHTTPServer(lambda request: Reply(200, "ok")) as fake:
        theirs, mine = run_both(tmp_path, fake, DIFF_RECEIVERS, DIFF_ALERTS, expect=2, resolve=True)
    assert [unprefixed(r) for r in theirs] == [unprefixed(r) for r in mine] == [SLACK_WEBHOOK_PATH] * 2
    for a, b in zip(theirs, mine, strict=True):
        assert a.method == b.method == "POST"
        # slack-sdk adds ``;charset=utf-8``, which is what JSON is anyway.
        media_types = {r.headers["content-type"].split(";")[0] for r in (a, b)}
        assert media_types == {"application/json"}
        am, ours = a.json(), b.json()
        for field in ("channel", "username", "icon_emoji"):
            assert am[field] == ours[field], field
        (attachment,) = am["attachments"]
        wanted = ("fallback", "color", "title", "title_link", "pretext", "text", "footer")
        assert {k: attachment[k] for k in wanted} == _as_alertmanager_fields(ours)
    assert [r.json()["attachments"][0]["color"] for r in mine] == ["danger", "good"]
    assert mine[0].json()["channel"] == "#alerts-billing"
