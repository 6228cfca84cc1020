"""Escalation and acknowledgement with the real worker: a critical alert pages, then the lead, then
the incident channel; an acknowledgement (CLI, Slack reaction, PagerDuty) stops steps and repeats
until a new alert joins the group; a silence stops the escalation; mistakes in the steps are refused
at check time and at hot reload. Each receiver is a path of one webhook recorder (seconds, not minutes)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from alerting.notify.receivers.pagerduty import dedup_key
from tests.support.escalation import TIERS, fire, last, setup, told, wait_told
from tests.support.fakes import (
    PAGERDUTY_API_TOKEN,
    PAGERDUTY_KEY,
    SLACK_TOKEN,
    LocalCA,
    PagerDutyFake,
    PagerDutyRestFake,
    SlackFake,
)
from tests.support.faultkit import FakePrometheus
from tests.support.net import wait_until
from tests.support.webhook import WebhookRecorder
from tests.support.worker import Worker, alerting

pytestmark = pytest.mark.faults


def broken_variants(doc: dict[str, Any]) -> list[tuple[dict[str, Any], str]]:
    """Copies of a good routing document, each with one mistake, and what the mistake is called."""

    def variant(step: int, key: str, value: str) -> dict[str, Any]:
        copy = yaml.safe_load(yaml.safe_dump(doc))
        copy["route"]["routes"][0]["escalate"][step][key] = value
        return copy

    emoji = {**yaml.safe_load(yaml.safe_dump(doc)), "acknowledgements": {"slack": {"emoji": "eyess"}}}
    return [
        (variant(1, "receiver", "incidents"), 'undefined receiver "incidents" used in escalate'),
        (variant(1, "after", "3s"), "escalate: after must increase from step to step"),
        (variant(0, "after", "-4s"), 'escalate: after: not a valid duration string: "-4s"'),
        (emoji, 'unknown emoji name "eyess"'),
    ]


def test_a_critical_alert_pages_then_the_lead_then_the_incident_channel_and_all_hear_the_resolve(
    tmp_path: Path, prefix: str
) -> None:
    with FakePrometheus() as prom, WebhookRecorder() as hook:
        env = setup(tmp_path, prefix, hook, prom, "DiskFull")
        config = Path(env["ALERTING_CONFIG"])
        good = config.read_text()
        with Worker(env) as worker:
            worker.wait_for("group.evaluated")
            # A mistake is reported where it is, by `alerting check` and by the worker at hot reload
            # (which keeps the last good configuration).
            for doc, mistake in broken_variants(yaml.safe_load(good)):
                config.write_text(yaml.safe_dump(doc, sort_keys=False))
                checked = alerting("check", str(config), env=env)
                assert checked.returncode != 0
                (problem,) = [
                    line
                    for line in checked.stdout.splitlines() + checked.stderr.splitlines()
                    if mistake in line
                ]
                assert problem.startswith(f"{config}:"), problem
                worker.wait_for("config.invalid", msg=problem.removeprefix("error: "))
            config.write_text(good)
            fire(prom, "DiskFull", "db1")
            wait_told(hook, "DiskFull", "incident")
            status = alerting("status", "--format", "json", env=env)
            history = alerting("history", "--kind", "notification", "--format", "json", env=env)
            fire(prom, "DiskFull")
            for receiver in TIERS:
                wait_told(hook, "DiskFull", receiver, "resolved")
            hook.settle()
            escalated = worker.events("notify.escalated")

    sequence = told(hook, "DiskFull")
    assert sequence[:3] == [("page", "firing"), ("lead", "firing"), ("incident", "firing")]
    assert sorted(sequence[3:]) == [("incident", "resolved"), ("lead", "resolved"), ("page", "resolved")]
    page, lead, incident = (last(hook, "DiskFull", r) for r in TIERS)
    assert lead.body["alerts"][0]["labels"]["instance"] == "db1"
    first, lead_first, incident_first = (hook.at(f"/{r}")[0] for r in TIERS)
    # No step comes before its "after" has passed since the first page.
    assert lead_first.at - first.at >= 4 - 0.5
    assert incident_first.at - first.at >= 8 - 0.5
    assert [e["receiver"] for e in escalated] == ["lead", "incident"]
    assert status.returncode == 0, status.stderr
    recorded = [
        (e["receiver"], e["outcome"]) for e in json.loads(history.stdout) if e["outcome"] == "escalated"
    ]
    assert recorded == [("lead", "escalated"), ("incident", "escalated")]
    report = yaml.safe_load(status.stdout)
    (episode,) = report["escalations"]
    assert episode["group_labels"] == {"alertname": "DiskFull"}
    assert sorted(episode["steps"]) == ["incident", "lead"]
    assert {page.body["receiver"], lead.body["receiver"], incident.body["receiver"]} == set(TIERS)


def test_acknowledged_group_neither_escalates_nor_repeats_until_a_new_alert_and_a_silence_stops_escalation(
    tmp_path: Path, prefix: str
) -> None:
    with FakePrometheus() as prom, WebhookRecorder() as hook:
        env = setup(
            tmp_path, prefix, hook, prom, "AckMe", "Control", "Hush", steps=("10s", "20s"), repeat="5s"
        )
        with Worker(env) as worker:
            for name in ("AckMe", "Control", "Hush"):
                fire(prom, name, "a")
            wait_told(hook, "AckMe", "page")
            acked = alerting("ack", "alertname=AckMe", "--comment", "on it", "--author", "tester", env=env)
            assert acked.returncode == 0, acked.stderr
            listed = alerting("ack", "list", "--format", "json", env=env)
            wait_told(hook, "Hush", "lead")
            silenced = alerting("silence", "add", "alertname=Hush", "--comment", "maintenance", env=env)
            assert silenced.returncode == 0, silenced.stderr
            worker.wait_for("notify.stage_removed", stage="silence")
            at_silence = told(hook, "Hush")
            # Control is neither acknowledged nor silenced: by the time it reached its last step and
            # was repeated after that, AckMe's and Hush's next steps and repeats were due too.
            wait_told(hook, "Control", "incident")
            repeats = told(hook, "Control").count(("page", "firing"))
            wait_told(hook, "Control", "page", count=repeats + 1)
            quiet = {name: told(hook, name) for name in ("AckMe", "Hush")}
            fire(prom, "AckMe", "a", "b")
            wait_told(hook, "AckMe", "page", count=2)
            wait_told(hook, "AckMe", "lead")

    assert quiet["AckMe"] == [("page", "firing")]
    assert quiet["Hush"] == at_silence
    assert ("lead", "firing") in at_silence and ("incident", "firing") not in at_silence
    # The new alert is notified at once, and the escalation starts over from that notification.
    assert told(hook, "AckMe")[:2] == [("page", "firing"), ("page", "firing")]
    assert ("lead", "firing") in told(hook, "AckMe")[2:]
    assert ("lead", "firing") in told(hook, "Control")
    (ack,) = yaml.safe_load(listed.stdout)
    assert (ack["by"], ack["comment"], ack["group_labels"]) == ("tester", "on it", {"alertname": "AckMe"})
    # The notification after the acknowledgement says who made it and when.
    new = hook.at("/page")
    new_page = [r for r in new if r.group == "AckMe"][1]
    notes = {a["annotations"].get("acknowledged", "") for a in new_page.body["alerts"]}
    assert len(new_page.body["alerts"]) == 2
    assert all(n.startswith("acknowledged by tester via cli at ") and n.endswith("(on it)") for n in notes), (
        notes
    )


def test_a_slack_reaction_or_a_pagerduty_acknowledgement_stops_the_escalation(
    tmp_path: Path, prefix: str, ca: LocalCA, slack: SlackFake, pagerduty: PagerDutyFake
) -> None:
    tls = {"tls_config": {"ca_file": ca.ca_file}}
    rest = PagerDutyRestFake(pagerduty, ca.server_context)
    with FakePrometheus() as prom, WebhookRecorder() as hook, rest.server:
        env = setup(tmp_path, prefix, hook, prom, "SlackAck", "PagerAck", "Control", steps=("6s", "10s"))
        routing = yaml.safe_load(Path(env["ALERTING_CONFIG"]).read_text())
        page = routing["receivers"][0]
        page["slack_configs"] = [
            {"token": SLACK_TOKEN, "api_url": slack.api_url, "channel": "#pages", "http_config": tls}
        ]
        page["pagerduty_configs"] = [
            {"routing_key": PAGERDUTY_KEY, "url": pagerduty.server.url + "/v2/enqueue", "http_config": tls}
        ]
        routing["acknowledgements"] = {
            "slack": {"emoji": "white_check_mark"},
            "pagerduty": {"api_token": "${PD_API_TOKEN}", "api_url": rest.server.url, "http_config": tls},
        }
        Path(env["ALERTING_CONFIG"]).write_text(yaml.safe_dump(routing, sort_keys=False))
        env["PD_API_TOKEN"] = PAGERDUTY_API_TOKEN
        with Worker(env):
            for name in ("SlackAck", "PagerAck", "Control"):
                fire(prom, name, "a")
            for name in ("SlackAck", "PagerAck", "Control"):
                wait_told(hook, name, "page")
            wait_until(lambda: len(pagerduty.incidents) == 3, timeout=30, what="three PagerDuty incidents")
            channel, ts = slack.first_message("SlackAck")
            slack.react(channel, ts, "eyes", "U0SOMEONE")  # not the configured emoji
            slack.react(channel, ts, "white_check_mark", "U0ALICE")
            rest.acknowledge(dedup_key(hook.delivered("PagerAck")[0].body["groupKey"]), "Bob Responder")
            wait_told(hook, "Control", "incident")
            listed = alerting("ack", "list", "--format", "json", env=env)

    assert told(hook, "SlackAck") == [("page", "firing")]
    assert told(hook, "PagerAck") == [("page", "firing")]
    assert ("lead", "firing") in told(hook, "Control")
    by = {a["group_labels"]["alertname"]: (a["by"], a["source"]) for a in yaml.safe_load(listed.stdout)}
    assert by == {
        "SlackAck": ("slack:U0ALICE", "slack"),
        "PagerAck": ("pagerduty:Bob Responder", "pagerduty"),
    }
