"""The incident.io integration against a local server speaking the HTTP alert source API."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from alerting.errors import ConfigError
from alerting.notify.base import DeliveryError
from alerting.notify.receivers import INTEGRATIONS
from alerting.notify.receivers.incidentio import PAYLOAD_LIMIT, incidentio_integration
from tests.support import receivers
from tests.support.httpfake import FakeHTTPServer, Reply, Request
from tests.support.notifications import alert, notification

SOURCE = "/v2/alert_events/http/01JXYZALERTSOURCE"
TOKEN = "inc_live_alert_source_token_5f2a9c"


def accepted(request: Request) -> Reply:
    if request.headers.get("authorization") != f"Bearer {TOKEN}":
        return Reply(401, {"type": "authentication_error", "message": "invalid alert source token"})
    return Reply(202, {"status": "success", "message": "Event accepted for processing"})


@pytest.fixture
def incidentio() -> Iterator[FakeHTTPServer]:
    with FakeHTTPServer(accepted) as fake:
        yield fake


def integration(fake: FakeHTTPServer, **fields: Any) -> Any:
    return incidentio_integration({"url": fake.url + SOURCE, "alert_source_token": TOKEN, **fields}, {})


def event(fake: FakeHTTPServer) -> dict[str, Any]:
    request = fake.requests[-1]
    assert request.method == "POST" and request.path == SOURCE
    assert request.headers["content-type"] == "application/json"
    return dict(request.json())


def test_registered_under_alertmanager_config_key() -> None:
    assert INTEGRATIONS["incidentio_configs"] is incidentio_integration


def test_the_group_is_posted_as_alertmanagers_data_with_a_bearer_token(incidentio: FakeHTTPServer) -> None:
    n = replace(
        notification(alert(labels={"instance": "a"}), alert(labels={"instance": "b"})), notification_id="nf-1"
    )
    integration(incidentio).send(n)
    body = event(incidentio)
    assert incidentio.requests[-1].headers["idempotency-key"] == "nf-1"
    assert body["version"] == "1" and body["groupKey"] == n.group_key and body["truncatedAlerts"] == 0
    assert body["status"] == "firing" and body["receiver"] == "oncall"
    assert body["groupLabels"] == {"alertname": "HighErrorRate"}
    assert body["commonLabels"] == {"alertname": "HighErrorRate", "service": "api", "severity": "critical"}
    assert body["externalURL"] == "http://alerting.example:8080"
    assert [a["labels"]["instance"] for a in body["alerts"]] == ["a", "b"]
    first = body["alerts"][0]
    assert set(first) >= {
        "status",
        "labels",
        "annotations",
        "startsAt",
        "endsAt",
        "generatorURL",
        "fingerprint",
    }
    assert first["startsAt"] == "2026-01-01T00:00:00Z"


def test_resolve_is_sent_unless_send_resolved_is_off(incidentio: FakeHTTPServer) -> None:
    integration(incidentio).send(notification(alert("resolved")))
    assert event(incidentio)["status"] == "resolved"
    integration(incidentio, send_resolved=False).send(notification(alert("resolved")))
    assert len(incidentio.requests) == 1


def test_max_alerts_cuts_the_list_and_counts_the_rest(incidentio: FakeHTTPServer) -> None:
    many = [alert(labels={"instance": f"web-{i}"}) for i in range(5)]
    integration(incidentio, max_alerts=2).send(notification(*many))
    body = event(incidentio)
    assert len(body["alerts"]) == 2 and body["truncatedAlerts"] == 3


def test_a_body_over_incidentios_limit_keeps_its_first_alert(incidentio: FakeHTTPServer) -> None:
    many = [
        alert(labels={"instance": f"web-{i}"}, annotations={"description": "d" * 20000}) for i in range(40)
    ]
    integration(incidentio).send(notification(*many))
    assert len(incidentio.requests[-1].body) <= PAYLOAD_LIMIT
    assert [a["labels"]["instance"] for a in event(incidentio)["alerts"]] == ["web-0"]


def test_http_config_authorization_instead_of_a_token(incidentio: FakeHTTPServer) -> None:
    config = {"url": incidentio.url + SOURCE, "http_config": {"authorization": {"credentials": TOKEN}}}
    incidentio_integration(config, {}).send(notification())
    assert event(incidentio)["version"] == "1"


def test_url_and_token_files_are_read_at_send_time(incidentio: FakeHTTPServer, tmp_path: Path) -> None:
    url_file, token_file = tmp_path / "url", tmp_path / "token"
    url_file.write_text(incidentio.url + SOURCE + "\n")
    token_file.write_text(TOKEN + "\n")
    hook = incidentio_integration({"url_file": str(url_file), "alert_source_token_file": str(token_file)}, {})
    hook.send(notification())
    assert event(incidentio)["status"] == "firing"
    token_file.unlink()
    with pytest.raises(DeliveryError, match="alert_source_token_file") as failure:
        hook.send(notification())
    assert failure.value.retryable


test_answers_are_classified_and_never_show_the_token = receivers.classification_test(
    "incidentio",
    lambda service: integration(service).send(notification()),
    [
        (Reply(429, {"message": "rate limited"}, {"Retry-After": "10"}), True, 10.0, "rate limited"),
        (Reply(500, {"message": "internal error"}), True, None, "internal error"),
        (
            Reply(422, {"message": "invalid payload", "errors": ["title is required"]}),
            False,
            None,
            "title is required",
        ),
        (Reply(401, {"message": f"token {TOKEN} is not valid"}), False, None, "not valid"),
    ],
    TOKEN,
)


write_config = receivers.config_writer("incidentio_configs", "chat")

test_bad_entries_are_rejected_at_their_position = receivers.rejection_test(
    write_config,
    [
        ("alert_source_token: t", "url (or url_file) is required", "alert_source_token"),
        (
            "url: https://api.incident.io/x",
            "alert_source_token (or its _file) or http_config.authorization",
            "url",
        ),
        (
            "url: https://api.incident.io/x\nalert_source_token: t\n"
            "http_config: {authorization: {credentials: c}}",
            "not both",
            "t",
        ),
        ("url: https://api.incident.io/x\nalert_source_token: t\nmax_alerts: -1", "max_alerts must be", "-1"),
        ("url: https://api.incident.io/x\nalert_source_token: t\ntimeout: soon", "timeout", "soon"),
        (
            "url: https://api.incident.io/x\nalert_source_token: t\nurl_file: /dev/null",
            "set at most one",
            "/dev/null",
        ),
    ],
    lines={"t": "alert_source_token: t"},
)


def test_a_direct_call_raises_config_errors() -> None:
    with pytest.raises(ConfigError, match="url"):
        incidentio_integration({"alert_source_token": TOKEN}, {})


def test_unset_token_variable_prints_to_the_console_with_a_warning(tmp_path: Path) -> None:
    path = write_config(
        tmp_path, "url: https://api.incident.io/v2/x\nalert_source_token: ${INCIDENTIO_TOKEN}"
    )
    receivers.assert_console_until_set(path, "chat", "incidentio_configs", "INCIDENTIO_TOKEN", TOKEN)


def test_the_body_is_json_that_round_trips(incidentio: FakeHTTPServer) -> None:
    integration(incidentio).send(notification(alert(annotations={"summary": "caf\u00e9 \u2603"})))
    raw = incidentio.requests[-1].body
    assert json.loads(raw)["alerts"][0]["annotations"]["summary"] == "caf\u00e9 \u2603"


def test_the_token_wins_over_a_global_authorization(incidentio: FakeHTTPServer) -> None:
    global_config = {"http_config": {"authorization": {"credentials": "global-credentials"}}}
    incidentio_integration({"url": incidentio.url + SOURCE, "alert_source_token": TOKEN}, global_config).send(
        notification()
    )
    assert incidentio.requests[-1].headers["authorization"] == f"Bearer {TOKEN}"
