"""Alertmanager forwarder against the real Alertmanager (Debian's prometheus-alertmanager)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from alerting.errors import ConfigError
from alerting.notify.base import DeliveryError
from alerting.notify.receivers import INTEGRATIONS
from alerting.notify.receivers.alertmanager import alertmanager_integration, postable_alert
from tests.support.httpfake import FakeHTTPServer, Reply, Request
from tests.support.net import free_port
from tests.support.notifications import T0, alert, notification
from tests.support.routing_alertmanager import Alertmanager

CONFIG = """
route:
  receiver: blackhole
receivers:
  - name: blackhole
"""


@pytest.fixture(scope="module")
def alertmanager(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    workdir = tmp_path_factory.mktemp("alertmanager")
    (workdir / "alertmanager.yml").write_text(CONFIG)
    with Alertmanager(workdir / "alertmanager.yml", workdir) as server:
        yield server.url


def active_alerts(url: str, alertname: str) -> list[dict[str, Any]]:
    answer = httpx.get(url + "/api/v2/alerts", params={"filter": f'alertname="{alertname}"'}, timeout=5)
    answer.raise_for_status()
    return answer.json()


def test_registered_as_alertmanager_configs() -> None:
    assert INTEGRATIONS["alertmanager_configs"] is alertmanager_integration


def test_forwarded_alerts_fire_and_resolve_in_alertmanager(alertmanager: str) -> None:
    name = f"Forwarded{time.monotonic_ns()}"
    firing = [
        alert(labels={"alertname": name, "instance": "api-1"}, starts_at=time.time() - 60),
        alert(labels={"alertname": name, "instance": "api-2"}, starts_at=time.time() - 60),
    ]
    forwarder = alertmanager_integration({"url": alertmanager}, {})
    forwarder.send(notification(*firing))

    found = sorted(active_alerts(alertmanager, name), key=lambda a: a["labels"]["instance"])
    assert [a["labels"]["instance"] for a in found] == ["api-1", "api-2"]
    assert found[0]["labels"] == dict(firing[0].labels)
    assert found[0]["annotations"] == dict(firing[0].annotations)
    assert found[0]["status"]["state"] == "active"
    assert found[0]["generatorURL"] == firing[0].generator_url

    resolved = [
        alert("resolved", labels=dict(a.labels), starts_at=a.starts_at, ends_at=time.time() - 1)
        for a in firing
    ]
    forwarder.send(notification(*resolved))
    assert active_alerts(alertmanager, name) == []


def test_firing_alerts_stay_valid_beyond_the_repeat_interval() -> None:
    body = postable_alert(alert(), now=T0 + 100, valid_for=5 * 3600)
    assert body["startsAt"] == "2026-01-01T00:00:00.000Z"
    assert body["endsAt"] == "2026-01-01T05:01:40.000Z"
    resolved = postable_alert(alert("resolved", ends_at=T0 + 30), now=T0 + 100, valid_for=5 * 3600)
    assert resolved["endsAt"] == "2026-01-01T00:00:30.000Z"
    assert "generatorURL" not in postable_alert(alert(generator_url="not a url"), now=T0, valid_for=60)


def test_bad_alerts_are_permanent_and_down_alertmanager_retryable(alertmanager: str) -> None:
    forwarder = alertmanager_integration({"url": alertmanager}, {})
    with pytest.raises(DeliveryError) as caught:
        forwarder.send(notification(alert(labels={"bad-label-name": "x"})))
    assert caught.value.retryable is False and "(400)" in str(caught.value)

    with pytest.raises(DeliveryError) as down:
        alertmanager_integration({"url": f"http://127.0.0.1:{free_port()}"}, {}).send(notification())
    assert down.value.retryable is True


def test_basic_auth_and_server_errors(tmp_path: Path) -> None:
    seen: list[Request] = []

    def handle(request: Request) -> Reply:
        seen.append(request)
        if request.basic_auth() != ("forwarder", "pw"):
            return Reply(401, "Unauthorized")
        return Reply(200, "")

    password = tmp_path / "pw"
    password.write_text("pw")
    with FakeHTTPServer(handle) as server:
        config = {
            "url": server.url + "/api/v2/alerts",
            "http_config": {"basic_auth": {"username": "forwarder", "password_file": str(password)}},
        }
        alertmanager_integration(config, {}).send(notification())
        assert (
            seen[0].path == "/api/v2/alerts" and seen[0].json()[0]["labels"]["alertname"] == "HighErrorRate"
        )
        server.fail_next(Reply(503, "overloaded"))
        with pytest.raises(DeliveryError) as caught:
            alertmanager_integration(config, {}).send(notification())
        assert caught.value.retryable is True
        with pytest.raises(DeliveryError) as rejected:
            alertmanager_integration({"url": server.url}, {}).send(notification())
        assert rejected.value.retryable is False


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({}, "url (the Alertmanager's http(s) base URL) is required"),
        ({"url": "http://am:9093", "valid_for": "0"}, "valid_for must be more than 0"),
        ({"url": "http://am:9093", "urll": "x"}, '(did you mean "url"?)'),
    ],
)
def test_bad_config_is_a_config_error(config: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        alertmanager_integration(config, {})
    assert message in str(caught.value)
