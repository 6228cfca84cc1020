"""PagerDuty Events API v1 (``pagerduty_configs`` with ``service_key``) against a local server, and
beside a real Alertmanager 0.25 sending the same alert group through the same proxy to the same fake."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from alerting.notify.base import DeliveryError
from alerting.notify.receivers.pagerduty import V1_URL, PagerDutyV1, pagerduty_integration
from alerting.worker.compose import load_routing_config
from tests.support import receivers
from tests.support.connectproxy import ConnectProxy
from tests.support.differential import route_ours
from tests.support.fakes import make_ca
from tests.support.httpfake import FakeHTTPServer, Reply, Request
from tests.support.net import wait_until
from tests.support.notifications import alert, notification
from tests.support.routing_alertmanager import Alertmanager
from tests.support.routing_redis import isolated_redis

SERVICE_KEY = "e93facc04764012d7bfb002500d5d1a6"
V1_PATH = "/generic/2010-04-15/create_event.json"


def accepted(request: Request) -> Reply:
    """PagerDuty v1's answer to an event it took."""
    event = request.json()
    if event.get("service_key") != SERVICE_KEY:
        return Reply(
            400, {"status": "invalid event", "message": "Event object is invalid", "errors": ["bad key"]}
        )
    return Reply(
        200, {"status": "success", "message": "Event processed", "incident_key": event["incident_key"]}
    )


@pytest.fixture
def v1() -> Iterator[FakeHTTPServer]:
    with FakeHTTPServer(accepted) as fake:
        yield fake


def integration(fake: FakeHTTPServer, **fields: Any) -> Any:
    return pagerduty_integration({"service_key": SERVICE_KEY, "url": fake.url + V1_PATH, **fields}, {})


def test_service_key_makes_a_v1_integration_posting_to_the_v1_url_by_default() -> None:
    built = pagerduty_integration(
        {"service_key": SERVICE_KEY}, {"pagerduty_url": "https://x.example/v2/enqueue"}
    )
    assert isinstance(built, PagerDutyV1)
    assert built.settings.url == V1_URL and built.send_resolved is True
    assert SERVICE_KEY not in repr(built)


def test_v2_fields_beside_a_service_key_are_ignored_as_alertmanager_does(v1: FakeHTTPServer) -> None:
    integration(v1, severity="critical", routing_key="r" * 32, links=[{"href": "https://x"}]).send(
        notification()
    )
    event = v1.requests[-1].json()
    assert event["service_key"] == SERVICE_KEY and event["payload"] is None and "links" not in event


def test_trigger_event_is_what_alertmanager_sends(v1: FakeHTTPServer) -> None:
    n = notification(alert(labels={"instance": "web-1"}), alert(labels={"instance": "web-2"}, value=7.0))
    integration(v1).send(n)
    (request,) = v1.requests
    assert request.method == "POST" and request.path == V1_PATH
    assert request.headers["content-type"] == "application/json"
    event = request.json()
    assert list(event) == [
        "service_key",
        "incident_key",
        "event_type",
        "description",
        "event_action",
        "payload",
        "client",
        "client_url",
        "details",
    ]
    assert event["service_key"] == SERVICE_KEY
    assert event["incident_key"] == hashlib.sha256(n.group_key.encode()).hexdigest()
    assert event["event_type"] == "trigger"
    assert event["description"] == "[FIRING:2] HighErrorRate (api critical)"
    assert event["client"] == "alerting" and event["client_url"] == "http://alerting.example:8080"
    details = event["details"]
    assert set(details) == {"firing", "resolved", "num_firing", "num_resolved"}
    assert details["num_firing"] == "2" and details["num_resolved"] == "0" and details["resolved"] == ""
    for part in (
        "5xx 3.2/s (value 3.2)",
        "instance=web-2",
        "Runbook: https://runbooks.example/high-error-rate",
    ):
        assert part in details["firing"]
    assert "Silence: alerting silence add alertname=HighErrorRate" in details["firing"]


def test_resolve_event_has_no_client_and_send_resolved_turns_it_off(v1: FakeHTTPServer) -> None:
    resolved = notification(alert("resolved"))
    integration(v1).send(resolved)
    event = v1.requests[-1].json()
    assert event["event_type"] == "resolve" and "client" not in event and "client_url" not in event
    assert event["details"]["num_resolved"] == "1" and "Silence" not in event["details"]["firing"]
    integration(v1, send_resolved=False).send(resolved)
    assert len(v1.requests) == 1


def test_templated_fields_and_details_override_the_defaults(v1: FakeHTTPServer) -> None:
    integration(
        v1,
        description="{{ .CommonLabels.alertname }} on {{ .CommonLabels.service }}",
        client="{{ .Receiver }}",
        client_url="https://grafana.example/{{ .CommonLabels.service }}",
        details={"firing": "{{ len .Alerts }} alerts", "team": "{{ .CommonLabels.service }}-team"},
    ).send(notification())
    event = v1.requests[-1].json()
    assert event["description"] == "HighErrorRate on api"
    assert event["client"] == "oncall" and event["client_url"] == "https://grafana.example/api"
    assert event["details"]["firing"] == "1 alerts" and event["details"]["team"] == "api-team"
    assert event["details"]["num_firing"] == "1"


def test_default_template_names_still_render(v1: FakeHTTPServer) -> None:
    integration(v1, description='{{ template "pagerduty.default.description" . }}').send(notification())
    assert v1.requests[-1].json()["description"] == "[FIRING:1] HighErrorRate (api critical)"


def test_description_is_cut_to_1024_characters(v1: FakeHTTPServer) -> None:
    integration(v1, description="{{ .CommonAnnotations.summary }}").send(
        notification(alert(annotations={"summary": "x" * 2000}))
    )
    description = v1.requests[-1].json()["description"]
    assert len(description) == 1024 and description.endswith("\u2026")


def test_service_key_file_is_read(v1: FakeHTTPServer, tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text(SERVICE_KEY + "\n")
    pagerduty_integration({"service_key_file": str(key_file), "url": v1.url + V1_PATH}, {}).send(
        notification()
    )
    assert v1.requests[-1].json()["service_key"] == SERVICE_KEY


test_answers_are_classified_without_showing_the_key = receivers.classification_test(
    "v1",
    lambda service: integration(service).send(notification()),
    [
        (Reply(403, {"status": "throttled"}), True, None, "403"),
        (Reply(429, "slow down", {"Retry-After": "12"}), True, 12.0, "429"),
        (Reply(500, "oops"), True, None, "500"),
        (
            Reply(
                400,
                {"status": "invalid event", "message": "Event object is invalid", "errors": ["description"]},
            ),
            False,
            None,
            "Event object is invalid",
        ),
        (Reply(404, "no"), False, None, "404"),
    ],
    SERVICE_KEY,
)


def test_unreachable_is_retryable() -> None:
    with pytest.raises(DeliveryError) as failure:
        pagerduty_integration({"service_key": SERVICE_KEY, "url": "http://127.0.0.1:9/x"}, {}).send(
            notification()
        )
    assert failure.value.retryable


write_config = receivers.config_writer("pagerduty_configs", "pd")


test_bad_v1_entries_are_rejected_at_their_position = receivers.rejection_test(
    write_config,
    [
        ("service_key: k\nurl: ftp://x", "url must be an http(s) URL", "ftp://x"),
        ("service_key: k\ndetails: [a]", "details must be a mapping", "details"),
        ("service_key: k\ndescription: '{{ .Status'", "description: template", "'{{"),
        ("service_key: k\nsend_resolved: sometimes", "send_resolved must be true or false", "sometimes"),
        ("service_key: k\nservice_key_file: /dev/null", "set at most one of service_key and", "/dev/null"),
    ],
    column=False,
)


def test_unset_service_key_variable_prints_to_the_console(tmp_path: Path) -> None:
    path = write_config(tmp_path, "service_key: ${PAGERDUTY_SERVICE_KEY}")
    config = load_routing_config(path, env={})
    (built,) = config.receivers["pd"].integrations
    assert built.kind == "console" and built.stands_for == "pagerduty_configs"
    assert "PAGERDUTY_SERVICE_KEY" in config.warnings[0]
    live = load_routing_config(path, env={"PAGERDUTY_SERVICE_KEY": SERVICE_KEY})
    assert isinstance(live.receivers["pd"].integrations[0].integration, PagerDutyV1)


# ---------------------------------------------------------------------------------------------------
# Beside Alertmanager 0.25: it posts v1 events to PagerDuty's fixed URL, so both sides go through a
# CONNECT proxy to a local TLS fake holding a certificate for events.pagerduty.com.

DIFF_CONFIG = """
route:
  receiver: pd
  group_by: [alertname]
  group_wait: 1s
  group_interval: 1m
  repeat_interval: 1h
receivers:
  - name: pd
    pagerduty_configs:
      - service_key: "KEY"
        http_config:
          proxy_url: PROXY
          tls_config: {ca_file: CA}
        description: >-
          {{ .Status | toUpper }} {{ .CommonLabels.alertname }}:
          {{ range .Alerts }}{{ .Labels.instance }} {{ end }}
        client: 'alerting-test {{ .Receiver }}'
        client_url: 'https://ops.example/{{ .GroupLabels.alertname }}?a=<b>&c'
        details:
          firing: '{{ range .Alerts.Firing }}{{ .Annotations.summary }};{{ end }}'
          resolved: '{{ range .Alerts.Resolved }}{{ .Labels.instance }};{{ end }}'
          team: '{{ .CommonLabels.team }}'
"""

DIFF_ALERTS = [
    {
        "labels": {"alertname": "DiskFull", "team": "storage", "instance": "db-1"},
        "annotations": {"summary": '92% <full> & "rising"'},
    },
    {
        "labels": {"alertname": "DiskFull", "team": "storage", "instance": "db-2"},
        "annotations": {"summary": "96% full"},
    },
]


def test_same_requests_as_alertmanager(tmp_path: Path) -> None:
    ca = make_ca(tmp_path, "events.pagerduty.com")
    with FakeHTTPServer(accepted, ca.server_context) as fake, ConnectProxy(fake.port) as proxy:
        config = DIFF_CONFIG.replace("KEY", SERVICE_KEY).replace("PROXY", proxy.url).replace("CA", ca.ca_file)
        (tmp_path / "am.yml").write_text(config)
        (tmp_path / "ours.yml").write_text(config)
        with isolated_redis() as (client, prefix), Alertmanager(tmp_path / "am.yml", tmp_path) as am:
            am.post_alerts(DIFF_ALERTS)
            wait_until(lambda: len(fake.requests) >= 1, timeout=20, what="Alertmanager's event")
            now = time.time()
            route_ours(client, prefix, tmp_path / "ours.yml", DIFF_ALERTS, now)
            wait_until(lambda: len(fake.requests) >= 2, timeout=20, what="our event")
    assert proxy.targets == ["events.pagerduty.com:443", "events.pagerduty.com:443"]
    theirs, mine = fake.requests[0], fake.requests[1]
    assert theirs.method == mine.method == "POST"
    assert theirs.path == mine.path == V1_PATH
    assert theirs.headers["content-type"] == mine.headers["content-type"] == "application/json"
    a, b = theirs.json(), mine.json()
    assert list(a) == list(b)
    assert a == b  # incident_key included: the same group key, hashed the same way
    assert a["incident_key"] == hashlib.sha256(b'{}:{alertname="DiskFull"}').hexdigest()
