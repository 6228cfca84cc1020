"""Faults around PromQL evaluation, with the real worker, a real Prometheus scraping an exporter the
test drives, and a webhook recorder standing for the on-call: Prometheus going away, a rule file
broken while the worker hot-reloads, and a flapping series."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from tests.support.faultkit import alert_rule, scraped, webhook_env, write_rules
from tests.support.net import wait_until
from tests.support.webhook import WebhookRecorder
from tests.support.worker import Worker

pytestmark = pytest.mark.faults


def test_prometheus_down_for_several_ticks_freezes_alerts_and_pages_once_about_the_datasource(
    tmp_path: Path, prefix: str
) -> None:
    rules = write_rules(
        tmp_path / "rules" / "outage.yml",
        [
            {
                "name": "outage",
                "interval": "1s",
                "rules": [alert_rule("OutageProbe", "fault_metric > 0", **{"for": "2s"})],
            }
        ],
    )
    with WebhookRecorder() as hook, scraped(fault_metric=1) as (_, prom):
        env = webhook_env(tmp_path, hook, rules=rules, prefix=prefix, prometheus_url=prom.url)
        with Worker(env) as worker:
            hook.wait_for("OutageProbe")
            prom.stop()
            worker.wait_for_evaluations(3, group="outage", datasources_down=["prometheus"])
            hook.wait_for("AlertingDatasourceDown", timeout=30)
            worker.wait_for_evaluations(2, group="outage", datasources_down=["prometheus"])
            prom.start()  # same port, same data directory
            hook.wait_for("AlertingDatasourceDown", "resolved")
            worker.wait_for_evaluations(4, group="outage", datasources_down=[])
            time.sleep(3)  # more than a group_interval: any re-notification would be out by now
            firing = worker.events("alert.firing", alertname="OutageProbe")
            resolved = worker.events("alert.resolved", alertname="OutageProbe")
            errors = worker.events("rule.error", rule="OutageProbe")

    # The on-call heard once about the alert, never a false resolve, and once about Prometheus.
    assert hook.statuses("OutageProbe") == ["firing"]
    assert hook.statuses("AlertingDatasourceDown") == ["firing", "resolved"]
    down = hook.delivered("AlertingDatasourceDown")[0].body["alerts"][0]
    assert down["labels"]["datasource"] == "prometheus"
    # The alert itself went pending -> firing once and stayed firing through the outage.
    assert len(firing) == 1 and resolved == []
    assert errors, "the rule's health should have said why it was frozen"


def test_a_rule_file_broken_during_hot_reload_keeps_the_last_good_rules_evaluating(
    tmp_path: Path, prefix: str
) -> None:
    good = [
        {
            "name": "reload",
            "interval": "1s",
            "rules": [alert_rule("ReloadProbe", "fault_metric > 0", **{"for": "2s"})],
        }
    ]
    rules = write_rules(tmp_path / "rules" / "reload.yml", good)
    with WebhookRecorder() as hook, scraped(fault_metric=1) as (_, prom):
        env = webhook_env(tmp_path, hook, rules=rules, prefix=prefix, prometheus_url=prom.url)
        with Worker(env) as worker:
            hook.wait_for("ReloadProbe")
            # Broken mid-edit: a YAML syntax error, then a file that parses but has a bad rule.
            rules.write_text("groups:\n  - name: reload\n    rules: [\n")
            worker.wait_for("rules.invalid", timeout=30)
            worker.wait_for_evaluations(3, group="reload")
            write_rules(rules, [{**good[0], "rules": [{"alert": "ReloadProbe", "exprr": "up"}]}])
            wait_until(lambda: len(worker.events("rules.invalid")) >= 2, timeout=30, what="second error")
            worker.wait_for_evaluations(3, group="reload")
            time.sleep(3)  # more than a group_interval: a resolve would be out by now
            invalid = worker.events("rules.invalid")
            resolved = worker.events("alert.resolved")

    assert hook.statuses("ReloadProbe") == ["firing"]
    assert resolved == []
    assert all(e["kept_previous"] for e in invalid)
    assert str(rules) in invalid[0]["msg"] and str(rules) in invalid[-1]["msg"]


def test_a_flapping_series_does_not_storm_the_receiver(tmp_path: Path, prefix: str) -> None:
    """The series flips every scrape-ish period for a while. Without ``keep_firing_for`` the group's
    timers bound what is sent; with it, the on-call hears once."""
    rules = write_rules(
        tmp_path / "rules" / "flap.yml",
        [
            {
                "name": "flap",
                "interval": "1s",
                "rules": [
                    alert_rule("FlapBare", "flap_metric > 0"),
                    alert_rule("FlapHeld", "flap_metric > 0", keep_firing_for="10s"),
                ],
            }
        ],
    )
    flap_for = 16.0
    with WebhookRecorder() as hook, scraped(flap_metric=0) as (exporter, prom):
        env = webhook_env(tmp_path, hook, rules=rules, prefix=prefix, prometheus_url=prom.url)
        with Worker(env) as worker:
            worker.wait_for_evaluations(1, group="flap")
            stop = threading.Event()

            def flap() -> None:
                while not stop.wait(1.3):
                    exporter.values["flap_metric"] = 1 - exporter.values["flap_metric"]

            exporter.values["flap_metric"] = 1
            flipper = threading.Thread(target=flap, daemon=True)
            flipper.start()
            time.sleep(flap_for)  # the flapping episode
            stop.set()
            flipper.join()
            exporter.values["flap_metric"] = 0
            hook.wait_for("FlapHeld", "resolved")
            hook.wait_for("FlapBare", "resolved")
            hook.settle(quiet=3)
            transitions = worker.events("alert.resolved", alertname="FlapBare")

    # The bare rule really flapped (several resolves at evaluation level) ...
    assert len(transitions) >= 3
    # ... yet the receiver heard at most once per group_interval (2s) over the whole episode.
    bare = hook.statuses("FlapBare")
    assert bare and bare[0] == "firing" and bare[-1] == "resolved"
    assert len(bare) <= (flap_for + 8) / 2 + 1
    # keep_firing_for holds the alert through every flap: one firing, one resolve.
    assert hook.statuses("FlapHeld") == ["firing", "resolved"]
