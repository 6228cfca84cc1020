"""Faults around PromQL evaluation, with the real worker, a real Prometheus scraping an exporter the
test drives, and a webhook recorder standing for the on-call: Prometheus going away, a rule file
broken while the worker hot-reloads, and a flapping series."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from tests.conftest import REDIS_URL
from tests.support.exporter import Exporter
from tests.support.faultkit import WebhookRecorder, alert_rule, worker_env, write_routing, write_rules
from tests.support.net import wait_until
from tests.support.prometheus import PrometheusServer
from tests.support.worker import Worker

pytestmark = pytest.mark.faults


def evaluations(worker: Worker, group: str) -> list[dict]:
    return [e for e in worker.events("group.evaluated") if e.get("group") == group]


def wait_ticks(worker: Worker, group: str, count: int, **where: object) -> None:
    """Wait until ``count`` more evaluations of ``group`` matching ``where`` have been logged."""

    def matching() -> int:
        return sum(all(e.get(k) == v for k, v in where.items()) for e in evaluations(worker, group))

    start = matching()
    wait_until(
        lambda: matching() >= start + count, timeout=60, what=f"{count} evaluations of {group} {where}"
    )


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
    with Exporter() as exporter, WebhookRecorder() as hook:
        exporter.values["fault_metric"] = 1
        config = write_routing(tmp_path / "alerting.yml", hook.url)
        prom = PrometheusServer(scrape_targets=[exporter.target])
        with prom:
            env = worker_env(tmp_path, rules=rules, config=config, redis_url=REDIS_URL, prefix=prefix)
            env["PROMETHEUS_URL"] = prom.url
            with Worker(env) as worker:
                wait_until(lambda: hook.statuses("OutageProbe"), timeout=60, what="the firing notification")
                prom.stop()
                wait_ticks(worker, "outage", 3, datasources_down=["prometheus"])
                wait_until(
                    lambda: hook.statuses("AlertingDatasourceDown"), timeout=30, what="the datasource alert"
                )
                wait_ticks(worker, "outage", 2, datasources_down=["prometheus"])
                prom.start()  # same port, same data directory
                wait_until(
                    lambda: "resolved" in hook.statuses("AlertingDatasourceDown"),
                    timeout=60,
                    what="the datasource alert to resolve",
                )
                wait_ticks(worker, "outage", 4, datasources_down=[])
                time.sleep(3)  # more than a group_interval: any re-notification would be out by now
                firing = [e for e in worker.events("alert.firing") if e["alertname"] == "OutageProbe"]
                resolved = [e for e in worker.events("alert.resolved") if e["alertname"] == "OutageProbe"]
                errors = [e for e in worker.events("rule.error") if e.get("rule") == "OutageProbe"]

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
    with Exporter() as exporter, WebhookRecorder() as hook:
        exporter.values["fault_metric"] = 1
        config = write_routing(tmp_path / "alerting.yml", hook.url)
        with PrometheusServer(scrape_targets=[exporter.target]) as prom:
            env = worker_env(
                tmp_path,
                rules=rules,
                config=config,
                redis_url=REDIS_URL,
                prefix=prefix,
                PROMETHEUS_URL=prom.url,
            )
            with Worker(env) as worker:
                wait_until(lambda: hook.statuses("ReloadProbe"), timeout=60, what="the firing notification")
                # Broken mid-edit: a YAML syntax error, then a file that parses but has a bad rule.
                rules.write_text("groups:\n  - name: reload\n    rules: [\n")
                wait_until(lambda: worker.events("rules.invalid"), timeout=30, what="the reload error")
                wait_ticks(worker, "reload", 3)
                write_rules(rules, [{**good[0], "rules": [{"alert": "ReloadProbe", "exprr": "up"}]}])
                wait_until(lambda: len(worker.events("rules.invalid")) >= 2, timeout=30, what="second error")
                wait_ticks(worker, "reload", 3)
                time.sleep(3)
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
    with Exporter() as exporter, WebhookRecorder() as hook:
        exporter.values["flap_metric"] = 0
        config = write_routing(tmp_path / "alerting.yml", hook.url)
        with PrometheusServer(scrape_targets=[exporter.target]) as prom:
            env = worker_env(
                tmp_path,
                rules=rules,
                config=config,
                redis_url=REDIS_URL,
                prefix=prefix,
                PROMETHEUS_URL=prom.url,
            )
            with Worker(env) as worker:
                wait_ticks(worker, "flap", 1)
                stop = threading.Event()

                def flap() -> None:
                    while not stop.wait(1.3):
                        exporter.values["flap_metric"] = 1 - exporter.values["flap_metric"]

                exporter.values["flap_metric"] = 1
                flipper = threading.Thread(target=flap, daemon=True)
                flipper.start()
                started = time.monotonic()
                wait_until(lambda: time.monotonic() - started >= flap_for, timeout=60, interval=0.5)
                stop.set()
                flipper.join()
                exporter.values["flap_metric"] = 0
                wait_until(
                    lambda: "resolved" in hook.statuses("FlapHeld"), timeout=60, what="FlapHeld to resolve"
                )
                time.sleep(3)
                transitions = [e for e in worker.events("alert.resolved") if e["alertname"] == "FlapBare"]

    # The bare rule really flapped (several resolves at evaluation level) ...
    assert len(transitions) >= 3
    # ... yet the receiver heard at most once per group_interval (2s) over the whole episode.
    bare = hook.statuses("FlapBare")
    assert bare and bare[0] == "firing" and bare[-1] == "resolved"
    assert len(bare) <= (flap_for + 8) / 2 + 1
    # keep_firing_for holds the alert through every flap: one firing, one resolve.
    assert hook.statuses("FlapHeld") == ["firing", "resolved"]
