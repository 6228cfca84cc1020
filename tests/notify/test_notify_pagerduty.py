"""PagerDuty receiver against a local HTTPS server speaking the Events API v2."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from alerting.errors import ConfigError
from alerting.notify.base import DeliveryError
from alerting.notify.receivers import INTEGRATIONS
from alerting.notify.receivers.pagerduty import PagerDuty, dedup_key, pagerduty_integration
from tests.support.differential import run_both, unprefixed
from tests.support.fakes import PAGERDUTY_KEY, LocalCA, PagerDutyFake
from tests.support.httpfake import Reply, Request
from tests.support.notifications import SEVERITY_LEVELS, alert, notification


def integration(pagerduty: PagerDutyFake, ca: LocalCA, **extra: Any) -> PagerDuty:
    config = {
        "routing_key": PAGERDUTY_KEY,
        "url": pagerduty.server.url + "/v2/enqueue",
        "http_config": {"tls_config": {"ca_file": ca.ca_file}},
        **extra,
    }
    return pagerduty_integration(config, {})


def test_registered_under_alertmanager_config_key() -> None:
    assert INTEGRATIONS["pagerduty_configs"] is pagerduty_integration


def test_trigger_event_carries_every_field(pagerduty: PagerDutyFake, ca: LocalCA) -> None:
    n = notification(
        alert(labels={"instance": "api-1:8080"}, value=3.2),
        alert(labels={"instance": "api-2:8080"}, value=4.5),
    )
    integration(pagerduty, ca).send(n)

    (event,) = pagerduty.events
    assert event["routing_key"] == PAGERDUTY_KEY
    assert event["event_action"] == "trigger"
    assert event["dedup_key"] == hashlib.sha256(n.group_key.encode()).hexdigest()
    assert event["client"] == "alerting"
    assert event["client_url"] == "http://alerting.example:8080"
    payload = event["payload"]
    assert payload["summary"] == "[FIRING:2] HighErrorRate (api critical)"
    assert payload["severity"] == "critical"
    assert payload["source"] == "api"  # instance differs between alerts; job absent; service is common
    assert payload["component"] == "api"
    assert payload["class"] == "HighErrorRate"
    assert payload["timestamp"] == "2026-01-01T00:00:00+00:00"
    details = payload["custom_details"]
    assert details["num_firing"] == 2 and details["num_resolved"] == 0
    assert details["common_labels"] == {
        "alertname": "HighErrorRate",
        "service": "api",
        "severity": "critical",
    }
    assert [a["labels"]["instance"] for a in details["firing"]] == ["api-1:8080", "api-2:8080"]
    assert [a["value"] for a in details["firing"]] == [3.2, 4.5]
    assert details["firing"][0]["annotations"]["summary"] == "5xx 3.2/s"
    assert details["silence"] == "alerting silence add alertname=HighErrorRate --duration 2h --comment ..."
    assert event["links"] == [
        {"href": "https://runbooks.example/high-error-rate", "text": "Runbook"},
        {"href": n.alerts[0].generator_url, "text": "Query in Prometheus"},
    ]
    assert pagerduty.server.requests[0].headers["content-type"] == "application/json"


def test_resolve_closes_the_incident_the_trigger_opened(pagerduty: PagerDutyFake, ca: LocalCA) -> None:
    pd = integration(pagerduty, ca)
    pd.send(notification(alert()))
    pd.send(notification(alert(), alert(labels={"instance": "b"})))  # the group grows: same incident
    pd.send(notification(alert("resolved"), alert("resolved", labels={"instance": "b"})))

    keys = {e["dedup_key"] for e in pagerduty.events}
    assert len(keys) == 1
    assert [e["event_action"] for e in pagerduty.events] == ["trigger", "trigger", "resolve"]
    assert pagerduty.incidents == {keys.pop(): "resolved"}
    assert set(pagerduty.events[2]) == {"routing_key", "event_action", "dedup_key"}


def test_a_cookie_the_events_api_sets_is_not_sent_back(pagerduty: PagerDutyFake, ca: LocalCA) -> None:
    n = notification(alert())
    accepted = {"status": "success", "message": "Event processed", "dedup_key": dedup_key(n.group_key)}
    pagerduty.server.fail_next(Reply(202, accepted, {"Set-Cookie": "AWSALB=abc; Path=/"}))
    pd = integration(pagerduty, ca)
    pd.send(n)
    pd.send(n)
    assert [r.headers.get("cookie") for r in pagerduty.server.requests] == [None, None]


def test_dedup_key_is_stable_and_distinct_per_group() -> None:
    a, b = '{}:{alertname="A"}', '{}:{alertname="B"}'
    assert dedup_key(a) == dedup_key(a)
    assert dedup_key(a) != dedup_key(b)
    assert len(dedup_key(a)) == 64


@pytest.mark.parametrize(("severity", "expected"), SEVERITY_LEVELS)
def test_severity_label_maps_to_pagerduty_severity(
    pagerduty: PagerDutyFake, ca: LocalCA, severity: str, expected: str
) -> None:
    integration(pagerduty, ca).send(notification(alert(labels={"severity": severity})))
    assert pagerduty.events[0]["payload"]["severity"] == expected


def test_most_urgent_alert_decides_the_group_severity(pagerduty: PagerDutyFake, ca: LocalCA) -> None:
    n = notification(
        alert(labels={"severity": "warning", "i": "1"}), alert(labels={"severity": "P1", "i": "2"})
    )
    integration(pagerduty, ca).send(n)
    assert pagerduty.events[0]["payload"]["severity"] == "critical"


def test_summary_is_cut_to_1024_characters(pagerduty: PagerDutyFake, ca: LocalCA) -> None:
    integration(pagerduty, ca).send(notification(alert(labels={"service": "x" * 3000})))
    summary = pagerduty.events[0]["payload"]["summary"]
    assert len(summary) == 1024 and summary.endswith("…")


def test_configured_fields_override_defaults(pagerduty: PagerDutyFake, ca: LocalCA) -> None:
    pd = integration(
        pagerduty,
        ca,
        client="prod-alerting",
        client_url="https://alerting.prod.example",
        description="Checkout is failing",
        severity="warning",
        source="checkout-lb",
        component="checkout",
        group="payments",
        **{"class": "http"},
        details={"team": "payments"},
        links=[{"href": "https://grafana.example/d/checkout", "text": "Grafana"}],
        images=[{"src": "https://grafana.example/render.png", "alt": "graph"}],
    )
    pd.send(notification())
    event = pagerduty.events[0]
    assert event["client"] == "prod-alerting"
    assert event["client_url"] == "https://alerting.prod.example"
    assert event["payload"]["summary"] == "Checkout is failing"
    assert event["payload"]["severity"] == "warning"
    assert (event["payload"]["source"], event["payload"]["component"]) == ("checkout-lb", "checkout")
    assert (event["payload"]["group"], event["payload"]["class"]) == ("payments", "http")
    details = event["payload"]["custom_details"]
    assert details["team"] == "payments" and details["num_firing"] == 1  # added to the defaults
    assert event["links"][-1] == {"href": "https://grafana.example/d/checkout", "text": "Grafana"}
    assert event["images"] == [{"src": "https://grafana.example/render.png", "alt": "graph"}]


def test_alertmanager_style_templates_fill_the_event(pagerduty: PagerDutyFake, ca: LocalCA) -> None:
    pd = integration(
        pagerduty,
        ca,
        description='{{ template "pagerduty.default.description" . }} on {{ .CommonLabels.service }}',
        severity="{{ .CommonLabels.severity }}",
        component="{{ .GroupLabels.alertname | toLower }}",
        details={
            "firing": "{{ range .Alerts.Firing }}{{ .Labels.instance }} {{ end }}",
            "count": "{{ len .Alerts }}",
        },
        links=[
            {"href": "https://grafana.example/d/{{ .CommonLabels.service }}", "text": "{{ .Receiver }} board"}
        ],
    )
    pd.send(notification(alert(labels={"instance": "a"}), alert(labels={"instance": "b"})))
    event = pagerduty.events[0]
    assert event["payload"]["summary"] == "[FIRING:2] HighErrorRate (api critical) on api"
    assert event["payload"]["severity"] == "critical"
    assert event["payload"]["component"] == "higherrorrate"
    assert event["payload"]["custom_details"]["firing"] == "a b "  # as written, as Alertmanager sends it
    assert event["payload"]["custom_details"]["count"] == "2"
    assert event["links"][-1] == {"href": "https://grafana.example/d/api", "text": "oncall board"}


def test_failing_template_falls_back_to_the_default_summary(pagerduty: PagerDutyFake, ca: LocalCA) -> None:
    pd = integration(pagerduty, ca, description="{{ index .Alerts 5 }}")  # parses, fails when executed
    pd.send(notification())
    assert pagerduty.events[0]["payload"]["summary"] == "[FIRING:1] HighErrorRate (api critical)"


def test_template_that_does_not_parse_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"description: template: description:1: unclosed action"):
        pagerduty_integration({"routing_key": PAGERDUTY_KEY, "description": "{{ .Status "}, {})


def test_resolved_notification_is_not_sent_when_send_resolved_is_off(
    pagerduty: PagerDutyFake, ca: LocalCA
) -> None:
    integration(pagerduty, ca, send_resolved=False).send(notification(alert("resolved")))
    assert pagerduty.events == []


@pytest.mark.parametrize(
    ("reply", "retry_after"),
    [
        (
            Reply(
                429,
                {"status": "throttle event", "message": "Requests for this service are arriving too quickly"},
                {"Retry-After": "30"},
            ),
            30.0,
        ),
        (Reply(500, "internal error"), None),
        (Reply(503, {"status": "unavailable"}), None),
    ],
)
def test_throttling_and_server_errors_are_retryable_after_one_bounded_retry(
    pagerduty: PagerDutyFake, ca: LocalCA, reply: Reply, retry_after: float | None
) -> None:
    pagerduty.server.fail_next(reply, times=5)
    with pytest.raises(DeliveryError) as caught:
        integration(pagerduty, ca).send(notification())
    assert caught.value.retryable is True
    assert caught.value.retry_after == retry_after
    assert len(pagerduty.server.requests) == 2  # the client's one retry, never its unbounded loop


def test_one_transient_failure_is_absorbed_by_the_single_retry(pagerduty: PagerDutyFake, ca: LocalCA) -> None:
    pagerduty.server.fail_next(Reply(502, "bad gateway"))
    integration(pagerduty, ca).send(notification())
    assert len(pagerduty.server.requests) == 2
    assert list(pagerduty.incidents.values()) == ["triggered"]


def test_unknown_routing_key_is_permanent_and_names_the_problem(
    pagerduty: PagerDutyFake, ca: LocalCA
) -> None:
    pd = integration(pagerduty, ca, routing_key="x" * 32)
    with pytest.raises(DeliveryError) as caught:
        pd.send(notification())
    assert caught.value.retryable is False
    assert "not a known integration key" in str(caught.value)
    assert "x" * 32 not in str(caught.value)
    assert len(pagerduty.server.requests) == 1


def test_unreachable_pagerduty_is_retryable(ca: LocalCA) -> None:
    pagerduty = PagerDutyFake(ca.server_context)
    with pagerduty.server:
        url = pagerduty.server.url
    pd = pagerduty_integration(
        {"routing_key": PAGERDUTY_KEY, "url": url, "http_config": {"tls_config": {"ca_file": ca.ca_file}}}, {}
    )
    with pytest.raises(DeliveryError) as caught:
        pd.send(notification())
    assert caught.value.retryable is True


def test_untrusted_certificate_is_refused(pagerduty: PagerDutyFake) -> None:
    pd = pagerduty_integration({"routing_key": PAGERDUTY_KEY, "url": pagerduty.server.url}, {})
    with pytest.raises(DeliveryError):
        pd.send(notification())
    assert pagerduty.events == []


def test_routing_key_is_read_from_file(pagerduty: PagerDutyFake, ca: LocalCA, tmp_path: Path) -> None:
    key_file = tmp_path / "pd-key"
    key_file.write_text(PAGERDUTY_KEY + "\n")
    pd = pagerduty_integration(
        {
            "routing_key_file": str(key_file),
            "url": pagerduty.server.url,
            "http_config": {"tls_config": {"ca_file": ca.ca_file}},
        },
        {},
    )
    pd.send(notification())
    assert pagerduty.events[0]["routing_key"] == PAGERDUTY_KEY


def test_global_pagerduty_url_is_the_default(pagerduty: PagerDutyFake, ca: LocalCA) -> None:
    config = {"routing_key": PAGERDUTY_KEY, "http_config": {"tls_config": {"ca_file": ca.ca_file}}}
    pagerduty_integration(config, {"pagerduty_url": pagerduty.server.url + "/v2/enqueue"}).send(
        notification()
    )
    assert len(pagerduty.events) == 1


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({}, "routing_key or routing_key_file is required"),
        ({"service_key": "abc", "timeout": "ten"}, "timeout"),
        ({"routing_key": "k", "url": "http://pd.example/v2/enqueue"}, "url must use https://"),
        (
            {"routing_key": "k", "routing_keyy": "k"},
            'unknown field "routing_keyy" in pagerduty_configs (did you mean',
        ),
        (
            {"routing_key": "k", "routing_key_file": "/x"},
            "set at most one of routing_key and routing_key_file",
        ),
        ({"routing_key": "k", "send_resolved": "yes"}, "send_resolved must be true or false"),
        ({"routing_key": "k", "links": [{"text": "no href"}]}, "every link needs an href"),
        ({"routing_key": "k", "timeout": "ten"}, "timeout"),
        ({"routing_key_file": "/nonexistent/pd"}, "cannot read routing_key_file /nonexistent/pd"),
    ],
)
def test_bad_config_is_a_config_error(config: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=None) as caught:
        pagerduty_integration(config, {})
    assert message in str(caught.value)


# ---------------------------------------------------------------------------------------------------
# Beside Alertmanager 0.25: both post to one local Events API v2 over HTTPS

# Every text field is a template here, set the same for both: our defaults say more than
# Alertmanager's (the value, the key labels, the silence command in custom_details; runbook and
# query links). Deliberate differences that remain and are checked below: we add those default
# links ahead of the configured ones, custom_details also carries our own keys beside the configured
# ones, the trigger has a timestamp, and a resolve event carries no payload (PagerDuty ignores it).
DIFF_RECEIVERS = """
receivers:
  - name: main
    pagerduty_configs:
      - routing_key: KEY
        url: BASE/v2/enqueue
        http_config:
          tls_config:
            ca_file: CA_FILE
        client: 'alerting {{ .GroupLabels.alertname }}'
        client_url: 'https://alerting.example/#/groups/{{ .GroupLabels.alertname }}'
        description: '[{{ .Status | toUpper }}:{{ len .Alerts.Firing }}] {{ .CommonAnnotations.summary }}'
        severity: '{{ .CommonLabels.severity }}'
        source: '{{ .CommonLabels.job }}'
        class: '{{ .GroupLabels.alertname }}'
        component: '{{ .CommonLabels.service }}'
        group: payments
        details:
          firing: '{{ range .Alerts.Firing }}{{ .Labels.instance }} {{ end }}'
          resolved: '{{ range .Alerts.Resolved }}{{ .Labels.instance }} {{ end }}'
          num_firing: '{{ .Alerts.Firing | len }}'
          num_resolved: '{{ .Alerts.Resolved | len }}'
          team: '{{ .CommonLabels.team }}'
        links:
          - href: 'https://grafana.example/d/{{ .CommonLabels.service }}'
            text: 'Dashboard for {{ .CommonLabels.service }}'
        images:
          - src: 'https://grafana.example/render/{{ .CommonLabels.service }}.png'
            alt: 'error rate'
            href: 'https://grafana.example/d/{{ .CommonLabels.service }}'
"""

DIFF_ALERTS = [
    {
        "labels": {
            "alertname": "CheckoutErrors",
            "severity": "critical",
            "job": "checkout",
            "service": "checkout",
            "team": "payments",
            "instance": f"web-{i}",
        },
        "annotations": {"summary": "checkout answers 5xx"},
    }
    for i in (1, 2)
]
CONFIGURED_DETAILS = {"firing", "resolved", "num_firing", "num_resolved", "team"}


def test_same_events_as_alertmanager(tmp_path: Path, ca: LocalCA) -> None:
    fake = PagerDutyFake(ca.server_context)
    fake.server.handler = _any_prefix(fake)
    with fake.server:
        receivers_text = DIFF_RECEIVERS.replace("KEY", PAGERDUTY_KEY).replace("CA_FILE", ca.ca_file)
        theirs, mine = run_both(tmp_path, fake.server, receivers_text, DIFF_ALERTS, expect=2, resolve=True)
    assert [unprefixed(r) for r in theirs] == [unprefixed(r) for r in mine] == ["/v2/enqueue"] * 2
    (am_trigger, am_resolve), (our_trigger, our_resolve) = (
        [r.json() for r in theirs],
        [r.json() for r in mine],
    )
    for field in ("routing_key", "event_action", "dedup_key", "client", "client_url", "images"):
        assert am_trigger[field] == our_trigger[field], field
    assert our_trigger["links"][-1:] == am_trigger["links"]
    am_payload, our_payload = am_trigger["payload"], our_trigger["payload"]
    for field in ("summary", "severity", "source", "class", "component", "group"):
        assert am_payload[field] == our_payload[field], field
    assert set(am_payload["custom_details"]) == CONFIGURED_DETAILS
    assert {k: our_payload["custom_details"][k] for k in CONFIGURED_DETAILS} == am_payload["custom_details"]
    assert am_trigger["dedup_key"] == dedup_key('{}:{alertname="CheckoutErrors"}')
    for field in ("routing_key", "event_action", "dedup_key"):
        assert am_resolve[field] == our_resolve[field], field
    assert our_resolve["event_action"] == "resolve"
    assert our_payload["summary"] == "[FIRING:2] checkout answers 5xx"


def _any_prefix(fake: PagerDutyFake) -> Callable[[Request], Reply]:
    """The fake's Events API under each side's prefix (``/am/v2/enqueue``, ``/ours/v2/enqueue``)."""

    def handle(request: Request) -> Reply:
        return fake._handle(replace(request, path=unprefixed(request)))

    return handle


def test_the_global_http_config_credentials_reach_the_events_api(
    pagerduty: PagerDutyFake, ca: LocalCA
) -> None:
    global_config = {
        "http_config": {
            "basic_auth": {"username": "egress", "password": "s3cret"},
            "tls_config": {"ca_file": ca.ca_file},
        }
    }
    config = {"routing_key": PAGERDUTY_KEY, "url": pagerduty.server.url + "/v2/enqueue"}
    pagerduty_integration(config, global_config).send(notification())
    request = pagerduty.server.requests[-1]
    assert request.basic_auth() == ("egress", "s3cret")
    assert request.json()["routing_key"] == PAGERDUTY_KEY
