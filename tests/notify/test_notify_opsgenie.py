"""The Opsgenie integration against a local server speaking Opsgenie's Alert API v2, and beside a
real Alertmanager 0.25 sending the same alert group to the same server."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from alerting.errors import ConfigError
from alerting.notify.base import DeliveryError
from alerting.notify.receivers import INTEGRATIONS
from alerting.notify.receivers.opsgenie import MESSAGE_LIMIT, opsgenie_integration
from alerting.worker.compose import load_routing_config
from tests.support import receivers
from tests.support.differential import run_both, unprefixed
from tests.support.fakes import LocalCA
from tests.support.httpfake import FakeHTTPServer, Reply, Request
from tests.support.notifications import alert, notification

KEY = "eb243592-faa2-4ba2-a551q-1afdf565c889"


def accepted(request: Request) -> Reply:
    """Opsgenie takes every request asynchronously."""
    return Reply(202, {"result": "Request will be processed", "took": 0.002, "requestId": "43a29c5c"})


@pytest.fixture
def opsgenie() -> Iterator[FakeHTTPServer]:
    with FakeHTTPServer(accepted) as fake:
        yield fake


def integration(fake: FakeHTTPServer, **fields: Any) -> Any:
    return opsgenie_integration({"api_url": fake.url + "/", "api_key": KEY, **fields}, {})


def alias(group_key: str = '{}:{alertname="HighErrorRate"}') -> str:
    return hashlib.sha256(group_key.encode()).hexdigest()


# ---------------------------------------------------------------------------------------------------
# The requests


def test_registered_as_opsgenie_configs() -> None:
    assert INTEGRATIONS["opsgenie_configs"] is opsgenie_integration


def test_a_firing_group_creates_one_alert_keyed_by_the_group(opsgenie: FakeHTTPServer) -> None:
    integration(opsgenie).send(notification())
    (request,) = opsgenie.requests
    assert (request.method, request.path) == ("POST", "/v2/alerts")
    assert request.headers["authorization"] == f"GenieKey {KEY}"
    assert request.headers["content-type"] == "application/json"
    body = request.json()
    assert body["alias"] == alias()
    assert body["details"] == {"alertname": "HighErrorRate", "service": "api", "severity": "critical"}
    assert body["source"] == "http://alerting.example:8080"
    assert set(body) == {"alias", "message", "description", "details", "source"}


def test_a_resolved_group_closes_the_alert_by_its_alias(opsgenie: FakeHTTPServer) -> None:
    integration(opsgenie, source="prom").send(notification(alert("resolved")))
    (request,) = opsgenie.requests
    assert (request.method, request.path) == ("POST", f"/v2/alerts/{alias()}/close")
    assert request.query == {"identifierType": ["alias"]}
    assert request.json() == {"source": "prom"}


def test_send_resolved_off_leaves_the_alert_open(opsgenie: FakeHTTPServer) -> None:
    quiet = integration(opsgenie, send_resolved=False)
    quiet.send(notification(alert("resolved")))
    assert quiet.send_resolved is False and opsgenie.requests == []


def test_update_alerts_also_replaces_message_and_description(opsgenie: FakeHTTPServer) -> None:
    integration(opsgenie, update_alerts=True, message="m {{ .Status }}", description="d").send(notification())
    create, message, description = opsgenie.requests
    assert create.path == "/v2/alerts"
    assert (message.method, message.path, message.json()) == (
        "PUT",
        f"/v2/alerts/{alias()}/message",
        {"message": "m firing"},
    )
    assert (description.method, description.path, description.json()) == (
        "PUT",
        f"/v2/alerts/{alias()}/description",
        {"description": "d"},
    )
    assert message.query == description.query == {"identifierType": ["alias"]}


def test_templated_fields_responders_tags_and_details(opsgenie: FakeHTTPServer) -> None:
    integration(
        opsgenie,
        message="{{ .CommonLabels.alertname }} on {{ .CommonLabels.service }}",
        description="{{ .CommonAnnotations.summary }}",
        source="{{ .Receiver }}",
        entity="{{ .CommonLabels.service }}",
        note="see {{ .CommonAnnotations.runbook_url }}",
        priority='{{ if eq .CommonLabels.severity "critical" }}P1{{ else }}P3{{ end }}',
        tags="{{ .CommonLabels.service }},prod,,team-a",
        actions="restart,page",
        details={"team": "{{ .CommonLabels.service }}-oncall", "severity": "overridden"},
        responders=[
            {"name": "{{ .CommonLabels.service }}-team,db", "type": "teams"},
            {"username": "jane@example.com", "type": "user"},
            {"id": "{{ .CommonLabels.nothere }}", "type": "escalation"},
        ],
    ).send(notification())
    body = opsgenie.requests[0].json()
    assert body["message"] == "HighErrorRate on api"
    assert body["description"] == "5xx 3.2/s"
    assert body["source"] == "oncall"
    assert body["entity"] == "api"
    assert body["note"] == "see https://runbooks.example/high-error-rate"
    assert body["priority"] == "P1"
    assert body["tags"] == ["api", "prod", "team-a"]
    assert body["actions"] == ["restart", "page"]
    assert body["details"]["team"] == "api-oncall" and body["details"]["severity"] == "overridden"
    assert body["responders"] == [
        {"name": "api-team", "type": "team"},
        {"name": "db", "type": "team"},
        {"username": "jane@example.com", "type": "user"},
        {"type": "escalation"},
    ]


def test_api_key_and_url_fall_back_on_the_global_section(opsgenie: FakeHTTPServer, tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text(f"{KEY}\n")
    global_config = {"opsgenie_api_key_file": str(key_file), "opsgenie_api_url": opsgenie.url}
    opsgenie_integration({}, global_config).send(notification())
    assert opsgenie.requests[0].path == "/v2/alerts"
    assert opsgenie.requests[0].headers["authorization"] == f"GenieKey {KEY}"


def test_api_key_file_is_read_at_send_time(opsgenie: FakeHTTPServer, tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text("first-key\n")
    hook = opsgenie_integration({"api_url": opsgenie.url, "api_key_file": str(key_file)}, {})
    hook.send(notification())
    key_file.write_text("rotated-key")
    hook.send(notification())
    assert [r.headers["authorization"] for r in opsgenie.requests] == [
        "GenieKey first-key",
        "GenieKey rotated-key",
    ]
    key_file.unlink()
    with pytest.raises(DeliveryError, match="api_key_file") as failure:
        hook.send(notification())
    assert failure.value.retryable


def test_https_with_the_local_ca(ca: LocalCA) -> None:
    with FakeHTTPServer(accepted, ca.server_context) as fake:
        hook = opsgenie_integration(
            {"api_url": fake.url, "api_key": KEY, "http_config": {"tls_config": {"ca_file": ca.ca_file}}}, {}
        )
        hook.send(notification())
        assert fake.requests[0].path == "/v2/alerts"


# ---------------------------------------------------------------------------------------------------
# The default texts


def test_default_message_says_what_broke_and_where_in_one_short_line(opsgenie: FakeHTTPServer) -> None:
    firing = alert(labels={"instance": "web-1"})
    integration(opsgenie).send(
        notification(firing, group_labels={"alertname": "HighErrorRate", "service": "api"})
    )
    body = opsgenie.requests[0].json()
    assert body["message"] == "HighErrorRate: 5xx 3.2/s \u00b7 service=api instance=web-1"
    description = body["description"]
    for part in (
        "[FIRING:1] HighErrorRate api",
        "Severity: critical",
        "- 5xx 3.2/s (value 3.2)",
        "Runbook: https://runbooks.example/high-error-rate",
        "Silence: alerting silence add alertname=HighErrorRate service=api --duration 2h",
    ):
        assert part in description


def test_default_message_of_many_alerts_counts_them_and_fits(opsgenie: FakeHTTPServer) -> None:
    many = [alert(labels={"instance": f"web-{i}-" + "x" * 40}) for i in range(3)]
    integration(opsgenie).send(notification(*many))
    message = opsgenie.requests[0].json()["message"]
    assert message.startswith("HighErrorRate: 3 firing \u00b7 service=api")
    assert len(message) <= MESSAGE_LIMIT


def test_long_messages_are_cut_to_130_characters(opsgenie: FakeHTTPServer) -> None:
    integration(opsgenie, message="{{ .CommonAnnotations.summary }}").send(
        notification(alert(annotations={"summary": "\u00e9" * 200}))
    )
    assert opsgenie.requests[0].json()["message"] == "\u00e9" * (MESSAGE_LIMIT - 1) + "\u2026"


def test_the_default_template_names_give_our_defaults(opsgenie: FakeHTTPServer) -> None:
    integration(
        opsgenie,
        message='{{ template "opsgenie.default.message" . }}',
        description='{{ template "opsgenie.default.description" . }}',
        source='{{ template "opsgenie.default.source" . }}',
    ).send(notification())
    integration(opsgenie).send(notification())
    named, plain = (r.json() for r in opsgenie.requests)
    assert named == plain


def test_a_template_rendering_nothing_still_sends_a_message(opsgenie: FakeHTTPServer) -> None:
    integration(opsgenie, message="{{ .CommonLabels.nothere }}").send(notification())
    assert opsgenie.requests[0].json()["message"].startswith("HighErrorRate")


# ---------------------------------------------------------------------------------------------------
# Opsgenie's answers


test_answers_are_classified_and_never_show_the_key = receivers.classification_test(
    "opsgenie",
    lambda service: integration(service).send(notification()),
    [
        (
            Reply(429, {"message": "You are making too many requests!"}, {"Retry-After": "7"}),
            True,
            7.0,
            "too many",
        ),
        (Reply(500, {"message": "Internal Server Error"}), True, None, "Internal Server Error"),
        (Reply(503, "<html>unavailable</html>", {"Retry-After": "3"}), True, 3.0, "503"),
        (
            Reply(422, {"message": "Request body is not processable", "errors": {"message": "required"}}),
            False,
            None,
            "not processable",
        ),
        (Reply(401, {"message": f"Key {KEY} is not valid"}), False, None, "not valid"),
        (Reply(403, {"message": "Forbidden"}), False, None, "Forbidden"),
    ],
    KEY,
)


def test_an_unreachable_api_is_retryable() -> None:
    hook = opsgenie_integration({"api_url": "http://127.0.0.1:9/", "api_key": KEY}, {})
    with pytest.raises(DeliveryError) as failure:
        hook.send(notification())
    assert failure.value.retryable and KEY not in str(failure.value) and KEY not in repr(hook)


# ---------------------------------------------------------------------------------------------------
# Configuration


write_config = receivers.config_writer("opsgenie_configs", "ops", with_global=True)


test_bad_entries_are_rejected_at_their_position = receivers.rejection_test(
    write_config,
    [
        (
            "api_key: k\nmesage: hi",
            'unknown field "mesage" in opsgenie_configs (did you mean "message"?)',
            "mesage",
        ),
        ("api_key: k\napi_key_file: /dev/null", "set at most one of api_key and api_key_file", "/dev/null"),
        ("message: hi", "api_key (or api_key_file) is required", "message"),
        ("api_key: k\napi_url: ftp://x", "api_url must be an http(s) URL", "ftp://x"),
        ("api_key: k\nresponders: [{type: team}]", "a responder needs an id, a name or a username", "{type"),
        ("api_key: k\nresponders: [{name: a, type: squad}]", "responder type must be one of", "squad"),
        ("api_key: k\nresponders: [{name: a, typ: team}]", 'unknown field "typ"', "typ:"),
        ("api_key: k\ndetails: [a]", "details must be a mapping", "[a]"),
        ("api_key: k\ntags: '{{ .Status'", "tags: template", "'{{"),
        ("api_key: k\nupdate_alerts: yes please", "update_alerts must be true or false", "yes please"),
    ],
)


def test_a_direct_call_raises_config_errors_and_accepts_a_templated_type() -> None:
    with pytest.raises(ConfigError, match="api_key"):
        opsgenie_integration({}, {})
    hook = opsgenie_integration({"api_key": KEY, "responders": [{"name": "x", "type": "{{ .Status }}"}]}, {})
    assert hook.api_url == "https://api.opsgenie.com/"


def test_unset_key_variable_prints_to_the_console_with_a_warning(tmp_path: Path) -> None:
    path = write_config(tmp_path, "api_key: ${OPSGENIE_API_KEY}")
    warning = receivers.assert_console_until_set(path, "ops", "opsgenie_configs", "OPSGENIE_API_KEY", KEY)
    assert "ops/opsgenie_configs[0]" in warning


def test_unset_global_key_variable_prints_to_the_console(tmp_path: Path) -> None:
    path = write_config(tmp_path, "priority: P2", "opsgenie_api_key: ${OPSGENIE_API_KEY}")
    config = load_routing_config(path, env={})
    (built,) = config.receivers["ops"].integrations
    assert built.kind == "console" and "OPSGENIE_API_KEY" in config.warnings[0]


# ---------------------------------------------------------------------------------------------------
# Beside Alertmanager 0.25

DIFF_RECEIVERS = """
receivers:
  - name: main
    opsgenie_configs:
      - api_url: BASE/
        api_key: "KEY"
        update_alerts: true
        message: '{{ .CommonLabels.alertname }}: {{ range .Alerts }}{{ .Annotations.summary }} {{ end }}'
        description: |-
          {{ range .Alerts }}{{ .Labels.instance }} {{ .Annotations.summary }} {{ .GeneratorURL }}
          {{ end }}{{ .Status }} {{ len .Alerts.Firing }}
        source: prometheus
        entity: '{{ .CommonLabels.service }}'
        priority: '{{ if eq .CommonLabels.severity "critical" }}P1{{ else }}P3{{ end }}'
        note: note for {{ .GroupLabels.alertname }}
        tags: '{{ .CommonLabels.service }},prod,, spaced'
        actions: 'restart,page'
        details:
          team: '{{ .CommonLabels.service }}-oncall'
          severity: overridden
        responders:
          - name: '{{ .CommonLabels.service }}-team,db'
            type: teams
          - username: jane@example.com
            type: user
          - id: '{{ .CommonLabels.nothere }}'
            name: '{{ .CommonLabels.nothere }}'
            type: '{{ .CommonLabels.nothere }}'
          - id: 4513b7ea-3b91-438f-b7e4-e3e54af9147c
            type: Schedule
"""

DIFF_ALERTS = [
    {
        "labels": {
            "alertname": "Quoting",
            "service": "api",
            "severity": "critical",
            "instance": 'web<1>&"a"',
        },
        "annotations": {"summary": '5 < 7 & it\'s "bad" ' + "\u00e9" * 150},
    },
    {
        "labels": {"alertname": "Quoting", "service": "api", "severity": "critical", "instance": "web-2"},
        "annotations": {"summary": "plain"},
    },
]


def test_same_requests_as_alertmanager(tmp_path: Path) -> None:
    with FakeHTTPServer(accepted) as fake:
        theirs, mine = run_both(
            tmp_path, fake, DIFF_RECEIVERS.replace("KEY", KEY), DIFF_ALERTS, expect=4, resolve=True
        )
    assert len(theirs) == len(mine) == 4
    for a, b in zip(theirs, mine, strict=True):
        assert a.method == b.method
        assert unprefixed(a) == unprefixed(b)
        assert a.query == b.query
        for header in ("authorization", "content-type"):
            assert a.headers[header] == b.headers[header], header
        assert a.json() == b.json(), unprefixed(a)
    create = mine[0].json()
    assert len(create["message"]) == MESSAGE_LIMIT and create["message"].endswith("\u2026")
    assert [r.method for r in mine] == ["POST", "PUT", "PUT", "POST"]
