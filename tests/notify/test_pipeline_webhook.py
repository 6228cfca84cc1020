"""The webhook integration on the wire: auth, TLS, errors, and its configuration checks."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from alerting.errors import ConfigError
from alerting.notify.base import DeliveryError, Notification
from alerting.notify.receivers.webhook import go_time, payload, webhook_integration
from tests.support.fakes import LocalCA, make_ca
from tests.support.routing_harness import T0, alert
from tests.support.webhook import WebhookRecorder


def notification(*alerts: Any) -> Notification:
    return Notification(
        receiver="team.a",
        group_key='{}:{alertname="Down"}',
        group_labels={"alertname": "Down"},
        alerts=alerts or (alert("Down", instance="a"),),
    )


def test_bearer_token_file_is_read_at_send_time(recorder: WebhookRecorder, tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("first\n")
    hook = webhook_integration(
        {"url": f"{recorder.url}/h", "http_config": {"bearer_token_file": str(token)}}, {}
    )
    hook.send(notification())
    token.write_text("rotated\n")
    hook.send(notification())
    assert [d.headers["authorization"] for d in recorder.at("/h")] == ["Bearer first", "Bearer rotated"]


def test_receiver_name_is_regex_quoted_as_alertmanager_sends_it(recorder: WebhookRecorder) -> None:
    webhook_integration({"url": f"{recorder.url}/h"}, {}).send(notification())
    assert recorder.at("/h")[0].body["receiver"] == "team\\.a"


@pytest.mark.parametrize(
    ("status", "headers", "retryable", "retry_after"),
    [
        (500, {}, True, None),
        (503, {"Retry-After": "30"}, True, 30.0),
        (429, {"Retry-After": "5"}, True, 5.0),
        (400, {}, False, None),
        (404, {}, False, None),
    ],
)
def test_error_answers_are_classified(
    recorder: WebhookRecorder,
    status: int,
    headers: dict[str, str],
    retryable: bool,
    retry_after: float | None,
) -> None:
    recorder.fail("/h", status, headers=headers)
    with pytest.raises(DeliveryError) as failure:
        webhook_integration({"url": f"{recorder.url}/h"}, {}).send(notification())
    assert failure.value.retryable is retryable and failure.value.retry_after == retry_after
    assert str(status) in str(failure.value)


def test_connection_refused_is_retryable() -> None:
    with pytest.raises(DeliveryError) as failure:
        webhook_integration({"url": "http://127.0.0.1:9/h"}, {}).send(notification())
    assert failure.value.retryable


def test_https_with_a_private_ca(ca: LocalCA) -> None:
    with WebhookRecorder(ca.server_context) as rec:
        url = f"{rec.url}/tls"
        trusted = webhook_integration(
            {"url": url, "http_config": {"tls_config": {"ca_file": ca.ca_file}}}, {}
        )
        trusted.send(notification())
        assert len(rec.at("/tls")) == 1
        with pytest.raises(DeliveryError) as failure:
            webhook_integration({"url": url, "timeout": "2s"}, {}).send(notification())
        assert failure.value.retryable


def test_tls_server_name_is_the_name_the_certificate_is_checked_against(tmp_path: Path) -> None:
    ca = make_ca(tmp_path, "hooks.internal.example")  # not the address the webhook connects to
    with WebhookRecorder(ca.server_context) as rec:
        url = f"{rec.url}/sni"
        tls = {"ca_file": ca.ca_file}
        with pytest.raises(DeliveryError, match="certificate|hostname"):
            webhook_integration({"url": url, "http_config": {"tls_config": tls}}, {}).send(notification())
        named = {"tls_config": {**tls, "server_name": "hooks.internal.example"}}
        webhook_integration({"url": url, "http_config": named}, {}).send(notification())
        assert len(rec.at("/sni")) == 1


def test_payload_times_and_truncation() -> None:
    firing = alert("Down", starts_at=T0 + 0.25, instance="b")
    gone = alert("Down", ends_at=T0 + 61.5, instance="a")
    body = payload(notification(firing, gone), max_alerts=1)
    assert body["status"] == "firing" and body["truncatedAlerts"] == 1
    (only,) = body["alerts"]
    assert only["labels"]["instance"] == "a" and only["endsAt"] == "2023-11-14T22:14:21.5Z"
    assert go_time(T0 + 0.25) == "2023-11-14T22:13:20.25Z" and go_time(None) == "0001-01-01T00:00:00Z"
    assert body["commonLabels"] == {"alertname": "Down"}  # over all alerts, not only those shown


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({}, "url (or url_file) is required"),
        ({"url": "ftp://x"}, "must start with http:// or https://"),
        ({"url": "http://x", "url_file": "/f"}, "not both"),
        ({"url": "http://x", "max_alerts": -1}, "max_alerts"),
        ({"url": "http://x", "send_resolved": "yes"}, "send_resolved"),
        ({"url": "http://x", "timeout": "1.5s"}, "timeout"),
        ({"url": "http://x", "urll": "y"}, 'unknown field "urll"'),
        (
            {"url": "http://x", "http_config": {"basic_auth": {"username": "u"}, "bearer_token": "t"}},
            "only one of basic_auth, authorization and bearer_token",
        ),
        ({"url": "http://x", "http_config": {"basic_auth": {"password": "p"}}}, "needs a username"),
        ({"url": "http://x", "http_config": {"authorization": {"type": "Basic"}}}, "use basic_auth"),
        ({"url": "http://x", "http_config": {"tls_config": {"ca": "x"}}}, 'unknown field "ca"'),
    ],
)
def test_bad_webhook_configs_are_rejected(config: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        webhook_integration(config, {})
