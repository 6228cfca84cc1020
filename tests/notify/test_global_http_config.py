"""An integration entry without its own ``http_config`` takes the ``global`` one, as in
Alertmanager, whatever its kind: seen on the wire as the global basic-auth credentials."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from alerting.notify.base import DeliveryError
from alerting.notify.receivers import INTEGRATIONS
from tests.support.httpfake import FakeHTTPServer, Reply, Request
from tests.support.notifications import notification

GLOBAL = {"http_config": {"basic_auth": {"username": "egress", "password": "s3cret"}}}

# A minimal entry per kind, addressed to the local server (its base URL passed in).
ENTRIES: dict[str, Callable[[str], dict[str, Any]]] = {
    "webhook_configs": lambda url: {"url": url + "/hook"},
    "slack_configs": lambda url: {"api_url": url + "/services/T0/B0/x", "channel": "#ops"},
    "discord_configs": lambda url: {"webhook_url": url + "/api/webhooks/1/t"},
    "telegram_configs": lambda url: {"bot_token": "1:t", "chat_id": 42, "api_url": url},
    "victorops_configs": lambda url: {"api_key": "k", "routing_key": "ops", "api_url": url + "/"},
    "alertmanager_configs": lambda url: {"url": url},
    "msteams_configs": lambda url: {"webhook_url": url + "/webhookb2/x"},
    "mattermost_configs": lambda url: {"webhook_url": url + "/hooks/x"},
}


def accept(_: Request) -> Reply:
    return Reply(200, '{"ok": true, "result": {}, "status": "success"}')


@pytest.fixture
def server() -> Iterator[FakeHTTPServer]:
    with FakeHTTPServer(accept) as fake:
        yield fake


@pytest.mark.parametrize("key", sorted(ENTRIES))
def test_an_entry_without_http_config_uses_the_global_one(key: str, server: FakeHTTPServer) -> None:
    integration = INTEGRATIONS[key](ENTRIES[key](server.url), GLOBAL)
    with contextlib.suppress(DeliveryError):  # what the fake answers is not what this is about
        integration.send(notification())
    assert server.requests, f"{key} sent nothing"
    assert server.requests[-1].basic_auth() == ("egress", "s3cret")


@pytest.mark.parametrize("key", sorted(ENTRIES))
def test_an_entry_with_its_own_http_config_ignores_the_global_one(key: str, server: FakeHTTPServer) -> None:
    entry = {**ENTRIES[key](server.url), "http_config": {"follow_redirects": True}}
    integration = INTEGRATIONS[key](entry, GLOBAL)
    with contextlib.suppress(DeliveryError):
        integration.send(notification())
    assert server.requests[-1].basic_auth() is None


def test_webex_takes_its_required_credentials_from_the_global_http_config(server: FakeHTTPServer) -> None:
    global_config = {"http_config": {"authorization": {"credentials": "bot-token"}}}
    integration = INTEGRATIONS["webex_configs"](
        {"room_id": "room", "api_url": server.url + "/v1/messages"}, global_config
    )
    with contextlib.suppress(DeliveryError):
        integration.send(notification())
    assert server.requests[-1].headers["authorization"] == "Bearer bot-token"
