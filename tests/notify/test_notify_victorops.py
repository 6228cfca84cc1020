"""The VictorOps integration against a local server speaking its REST endpoint, and beside a real
Alertmanager 0.25 sending the same alert group to the same server."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from alerting.errors import ConfigError
from alerting.notify.base import DeliveryError
from alerting.notify.receivers import INTEGRATIONS
from alerting.notify.receivers.victorops import STATE_MESSAGE_LIMIT, victorops_integration
from alerting.ops.logs import redact_text
from tests.support import receivers
from tests.support.differential import assert_same_json_posts, run_both
from tests.support.httpfake import FakeHTTPServer, Reply, Request
from tests.support.notifications import alert, notification

KEY = "0f1e2d3c-4b5a-6978-8a9b-acbdcedf0011"
ALERT_PATH = "/integrations/generic/20131114/alert/"


def accepted(request: Request) -> Reply:
    return Reply(200, {"result": "success", "entity_id": request.json().get("entity_id", "")})


@pytest.fixture
def victorops() -> Iterator[FakeHTTPServer]:
    with FakeHTTPServer(accepted) as fake:
        yield fake


def integration(fake: FakeHTTPServer, **fields: Any) -> Any:
    entry = {"api_url": fake.url + ALERT_PATH, "api_key": KEY, "routing_key": "ops", **fields}
    return victorops_integration(entry, {})


def entity_id(group_key: str = '{}:{alertname="HighErrorRate"}') -> str:
    return hashlib.sha256(group_key.encode()).hexdigest()


def test_registered_as_victorops_configs() -> None:
    assert INTEGRATIONS["victorops_configs"] is victorops_integration


def test_a_firing_group_is_a_critical_event_for_the_routing_key(victorops: FakeHTTPServer) -> None:
    integration(victorops).send(notification())
    (request,) = victorops.requests
    assert (request.method, request.path) == ("POST", f"{ALERT_PATH}{KEY}/ops")
    assert request.headers["content-type"] == "application/json"
    body = request.json()
    assert body["message_type"] == "CRITICAL"
    assert body["entity_id"] == entity_id()
    assert body["entity_display_name"] == "[FIRING:1] HighErrorRate (api critical)"
    assert body["monitoring_tool"] == "alerting"
    assert set(body) == {
        "message_type",
        "entity_id",
        "entity_display_name",
        "state_message",
        "monitoring_tool",
    }
    assert all(isinstance(v, str) for v in body.values())


def test_a_resolved_group_is_a_recovery_of_the_same_entity(victorops: FakeHTTPServer) -> None:
    integration(victorops, message_type="WARNING").send(notification(alert("resolved")))
    body = victorops.requests[0].json()
    assert body["message_type"] == "RECOVERY" and body["entity_id"] == entity_id()
    quiet = integration(victorops, send_resolved=False)
    quiet.send(notification(alert("resolved")))
    assert len(victorops.requests) == 1


@pytest.mark.parametrize(
    ("message_type", "sent"),
    [
        ("WARNING", "WARNING"),
        ("INFO", "INFO"),
        ('{{ if eq .CommonLabels.severity "critical" }}CRITICAL{{ else }}WARNING{{ end }}', "CRITICAL"),
        ("warning", "CRITICAL"),  # VictorOps knows three upper-case types; anything else pages
        ("ACKNOWLEDGEMENT", "CRITICAL"),
    ],
)
def test_message_type_is_templated_and_unknown_types_page(
    victorops: FakeHTTPServer, message_type: str, sent: str
) -> None:
    integration(victorops, message_type=message_type).send(notification())
    assert victorops.requests[0].json()["message_type"] == sent


def test_templated_fields_routing_key_and_custom_fields(victorops: FakeHTTPServer) -> None:
    integration(
        victorops,
        routing_key="{{ .CommonLabels.service }}-team",
        state_message="{{ .CommonAnnotations.summary }}",
        entity_display_name="{{ .CommonLabels.alertname }} on {{ .CommonLabels.service }}",
        monitoring_tool="prom",
        custom_fields={"runbook": "{{ .CommonAnnotations.runbook_url }}", "team": "payments"},
    ).send(notification())
    request = victorops.requests[0]
    assert request.path == f"{ALERT_PATH}{KEY}/api-team"
    body = request.json()
    assert body["state_message"] == "5xx 3.2/s"
    assert body["entity_display_name"] == "HighErrorRate on api"
    assert body["monitoring_tool"] == "prom"
    assert body["runbook"] == "https://runbooks.example/high-error-rate" and body["team"] == "payments"


def test_default_state_message_says_what_broke_where_and_how_to_silence(victorops: FakeHTTPServer) -> None:
    integration(victorops).send(notification(alert(labels={"instance": "web-1"})))
    text = victorops.requests[0].json()["state_message"]
    for part in (
        "Where: instance=web-1",
        "- 5xx 3.2/s (value 3.2)",
        "Runbook: https://runbooks.example/high-error-rate",
        "Silence: alerting silence add alertname=HighErrorRate --duration 2h",
    ):
        assert part in text


def test_long_state_messages_are_cut(victorops: FakeHTTPServer) -> None:
    integration(victorops, state_message="{{ .CommonAnnotations.summary }}").send(
        notification(alert(annotations={"summary": "x" * 30000}))
    )
    text = victorops.requests[0].json()["state_message"]
    assert len(text) == STATE_MESSAGE_LIMIT and text.endswith("\u2026")


def test_the_default_template_names_give_our_defaults(victorops: FakeHTTPServer) -> None:
    integration(
        victorops,
        state_message='{{ template "victorops.default.state_message" . }}',
        entity_display_name='{{ template "victorops.default.entity_display_name" . }}',
        monitoring_tool='{{ template "victorops.default.monitoring_tool" . }}',
    ).send(notification())
    integration(victorops).send(notification())
    named, plain = (r.json() for r in victorops.requests)
    assert named == plain


def test_api_key_and_url_fall_back_on_the_global_section(victorops: FakeHTTPServer, tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text(KEY + "\n")
    global_config = {"victorops_api_key_file": str(key_file), "victorops_api_url": victorops.url + ALERT_PATH}
    hook = victorops_integration({"routing_key": "ops"}, global_config)
    hook.send(notification())
    key_file.write_text("rotated")
    hook.send(notification())
    assert [r.path for r in victorops.requests] == [f"{ALERT_PATH}{KEY}/ops", f"{ALERT_PATH}rotated/ops"]


test_answers_are_classified_and_never_show_the_key = receivers.classification_test(
    "victorops",
    lambda service: integration(service).send(notification()),
    [
        (Reply(429, "slow down", {"Retry-After": "12"}), True, 12.0, "rate limited"),
        (Reply(500, {"result": "failure", "message": "internal"}), True, None, "internal"),
        (
            Reply(400, {"result": "failure", "message": "Missing fields: message_type"}),
            False,
            None,
            "Missing fields",
        ),
        (Reply(404, {"result": "failure", "message": f"no such key {KEY}"}), False, None, "no such key"),
    ],
    KEY,
)


def test_the_key_stays_out_of_errors_and_logs() -> None:
    hook = victorops_integration(
        {"api_url": "http://127.0.0.1:9" + ALERT_PATH, "api_key": KEY, "routing_key": "ops"}, {}
    )
    with pytest.raises(DeliveryError) as failure:
        hook.send(notification())
    assert failure.value.retryable and KEY not in str(failure.value) and KEY not in repr(hook)
    url = f"https://alert.victorops.com{ALERT_PATH}{KEY}/ops"
    assert KEY not in redact_text(f'HTTP Request: POST {url} "HTTP/1.1 200 OK"')


def test_the_key_stays_out_of_the_logs_even_at_debug(victorops: FakeHTTPServer) -> None:
    out = receivers.debug_logs(lambda: integration(victorops).send(notification()))
    assert ALERT_PATH in out and KEY not in out


# ---------------------------------------------------------------------------------------------------
# Configuration


write_config = receivers.config_writer("victorops_configs", "ops", with_global=True)


test_bad_entries_are_rejected_at_their_position = receivers.rejection_test(
    write_config,
    [
        (
            "api_key: k\nrouting_key: r\nrouting: x",
            'unknown field "routing" in victorops_configs',
            "routing:",
        ),
        ("api_key: k\nstate_message: x", "routing_key is required", "api_key"),
        ("routing_key: r", "api_key (or api_key_file) is required", "routing_key"),
        (
            "api_key: k\napi_key_file: /dev/null\nrouting_key: r",
            "set at most one of api_key and api_key_file",
            "/dev/null",
        ),
        (
            "api_key: k\nrouting_key: r\ncustom_fields: {entity_id: x}",
            "custom_fields may not set entity_id",
            "entity_id",
        ),
        ("api_key: k\nrouting_key: r\ncustom_fields: [a]", "custom_fields must be a mapping", "[a]"),
        ("api_key: k\nrouting_key: r\napi_url: mailto:x", "api_url must be an http(s) URL", "mailto:x"),
        ("api_key: k\nrouting_key: '{{ .Status'", "routing_key: template", "'{{"),
    ],
)


def test_a_direct_call_raises_config_errors_and_defaults_the_url() -> None:
    with pytest.raises(ConfigError, match="routing_key"):
        victorops_integration({"api_key": KEY}, {})
    hook = victorops_integration({"api_key": KEY, "routing_key": "r"}, {})
    assert hook.api_url == "https://alert.victorops.com/integrations/generic/20131114/alert/"


def test_unset_key_variable_prints_to_the_console_with_a_warning(tmp_path: Path) -> None:
    path = write_config(tmp_path, "routing_key: ops", "victorops_api_key: ${VICTOROPS_API_KEY}")
    receivers.assert_console_until_set(path, "ops", "victorops_configs", "VICTOROPS_API_KEY", KEY)


# ---------------------------------------------------------------------------------------------------
# Beside Alertmanager 0.25

DIFF_RECEIVERS = """
receivers:
  - name: main
    victorops_configs:
      - api_url: BASE/alert/
        api_key: "KEY"
        routing_key: '{{ .CommonLabels.service }}-team'
        message_type: '{{ if eq .CommonLabels.severity "warning" }}WARNING{{ else }}bogus{{ end }}'
        state_message: |-
          {{ range .Alerts }}{{ .Labels.instance }} {{ .Annotations.summary }} {{ .GeneratorURL }}
          {{ end }}{{ .Status }} {{ len .Alerts.Firing }}
        entity_display_name: '{{ .CommonLabels.alertname }} {{ .CommonLabels.service }}'
        monitoring_tool: prometheus
        custom_fields:
          runbook: '{{ .CommonAnnotations.runbook_url }}'
          team: payments
"""

DIFF_ALERTS = [
    {
        "labels": {
            "alertname": "Latency",
            "service": "api",
            "severity": "critical",
            "instance": 'web<1>&"a"',
        },
        "annotations": {
            "summary": '5 < 7 & it\'s "slow" \u00e9t\u00e9',
            "runbook_url": "https://rb.example/l",
        },
    },
    {
        "labels": {"alertname": "Latency", "service": "api", "severity": "critical", "instance": "web-2"},
        "annotations": {"summary": "plain", "runbook_url": "https://rb.example/l"},
    },
]


def test_same_requests_as_alertmanager(tmp_path: Path) -> None:
    with FakeHTTPServer(accepted) as fake:
        theirs, mine = run_both(
            tmp_path, fake, DIFF_RECEIVERS.replace("KEY", KEY), DIFF_ALERTS, expect=2, resolve=True
        )
    assert_same_json_posts(theirs, mine, 2, f"/alert/{KEY}/api-team")
    assert [r.json()["message_type"] for r in mine] == ["CRITICAL", "RECOVERY"]
