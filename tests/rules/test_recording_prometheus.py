"""Recording rules against real Prometheus 2.42 servers.

* Differential: one Prometheus evaluates a rule file itself; a second, scraping the same exporter,
  receives what the worker's evaluator records from the same file by remote write, at the instants
  the first one evaluated. Every recorded series must carry the same labels and values at the same
  timestamps, in both, and a rule Prometheus fails must fail here with the same error.
* A real rule file from the conformance corpus (Sloth's SLO rules: recording rules feeding
  recording rules in one group, and alerting rules in another group reading them), moved from
  Prometheus to the worker: the real worker evaluates it against the second Prometheus, writing
  there, and the same alerts fire as where Prometheus evaluates the file.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from alerting.remotewrite import RemoteWriter, parse_remote_write
from alerting.rules import load_paths
from alerting.rules.backtest import MemoryStore
from alerting.rules.tick import Evaluator
from alerting.sources.prometheus import PrometheusSource
from tests.conformance.conftest import conformance_dir
from tests.support.exporter import Exporter
from tests.support.httpfake import Reply, Request
from tests.support.net import wait_until
from tests.support.prometheus import PrometheusServer
from tests.support.webhook import WebhookRecorder
from tests.support.worker import Worker, worker_env


def receiving(**options: Any) -> PrometheusServer:
    """A Prometheus that also accepts remote writes (``/api/v1/write``)."""
    return PrometheusServer(remote_write_receiver=True, **options)


def write_url(prom: PrometheusServer) -> str:
    return f"{prom.url}/api/v1/write"


RULES = """\
groups:
  - name: recorded
    interval: 1s
    rules:
      - record: kind:g:sum
        expr: sum by (kind) (g)
      - record: g:doubled
        expr: g * 2
        labels: {team: core}
      - record: g:total
        expr: sum(kind:g:sum)
      - record: g:over_zero
        expr: sum(g) / sum(h)
      - record: g:nan
        expr: sum(h) / sum(h)
      - record: g:scalar
        expr: scalar(sum(g))
      - record: g:no_shard
        expr: g
        labels: {shard: ""}
"""


def raw_samples(prom: PrometheusServer, name: str, at: float) -> dict[tuple[Any, ...], str]:
    """Every raw sample of ``name`` in the minute before ``at``: (labels, ms timestamp) -> value."""
    data = prom.get("/api/v1/query", query=f"{name}[1m]", time=f"{at:.3f}")
    out = {}
    for series in data["result"]:
        labels = tuple(sorted(series["metric"].items()))
        for t, value in series["values"]:
            out[(labels, round(float(t) * 1000))] = value
    return out


def count(prom: PrometheusServer, expr: str) -> int:
    result = prom.get("/api/v1/query", query=f"count({expr})")["result"]
    return int(result[0]["value"][1]) if result else 0


def test_what_the_worker_records_is_what_prometheus_records(tmp_path: Path) -> None:
    rules = tmp_path / "recorded.yml"
    rules.write_text(RULES)
    with Exporter() as exporter:
        exporter.values.update(
            {
                'g{kind="a",shard="1"}': 1.0,
                'g{kind="a",shard="2"}': 2.5,
                'g{kind="b",shard="1"}': 4.0,
                "h": 0.0,
            }
        )
        with (
            PrometheusServer(scrape_targets=[exporter.target], rule_files=[rules]) as reference,
            receiving(scrape_targets=[exporter.target]) as target,
        ):
            wait_until(lambda: count(target, "g") == 3, timeout=60, what="the target to scrape")
            since = time.time()
            # Instants the reference evaluated at, once the target had data too.
            wait_until(
                lambda: len(_instants(reference, since)) >= 4,
                timeout=60,
                what="four evaluations by Prometheus",
            )
            instants = _instants(reference, since)[:4]
            (group,) = load_paths([rules]).groups
            source = PrometheusSource("prometheus", {"url": target.url})
            writer = RemoteWriter(parse_remote_write([{"url": write_url(target)}], None))
            errors: dict[str, str | None] = {}
            try:
                with Evaluator(MemoryStore(), lambda _rule: source, owner="t", writer=writer) as evaluator:
                    for at in instants:
                        outcome = evaluator.tick(group, at, claim=False)
                        errors.update({r.rule.record: r.health.error for r in outcome.recorded})
                assert writer.flush(timeout=30)
            finally:
                writer.close()
                source.close()
            end = instants[-1] + 0.001
            names = [r.record for r in group.recording]
            wanted = {round(t * 1000) for t in instants}
            for name in names:
                theirs = {k: v for k, v in raw_samples(reference, name, end).items() if k[1] in wanted}
                ours = raw_samples(target, name, end)
                assert ours == theirs, name
            assert raw_samples(target, "g:total", end)  # the chained rule saw this tick's value
            assert "g:no_shard" not in {
                n for (labels, _t) in raw_samples(target, "g:no_shard", end) for n in labels
            }
            their_errors = {
                rule["name"]: rule.get("lastError")
                for g in reference.get("/api/v1/rules")["groups"]
                for rule in g["rules"]
            }
    assert errors == their_errors
    assert errors["g:no_shard"] == "vector contains metrics with the same labelset after applying rule labels"


def _instants(prom: PrometheusServer, since: float) -> list[float]:
    """The times Prometheus evaluated the group at since ``since`` (from what it recorded)."""
    data = prom.get("/api/v1/query", query="g:total[1m]", time=f"{time.time():.3f}")
    return sorted(float(t) for series in data["result"] for t, _ in series["values"] if float(t) > since + 1)


# --- a real mixin file moved from Prometheus to the worker -------------------------------------------

SLOTH = "slok__sloth__examples___gen__getting-started.yml"


class Requests(Exporter):
    """``http_request_duration_seconds_count`` counters growing with time: 10% of requests fail.
    Scraped as job ``myservice``, the job the file's rules select."""

    def __init__(self) -> None:
        super().__init__()
        self.started = time.time()

    def _metrics(self, _: Request) -> Reply:
        elapsed = time.time() - self.started
        lines = [
            f'http_request_duration_seconds_count{{code="500"}} {elapsed * 1.0!r}',
            f'http_request_duration_seconds_count{{code="200"}} {elapsed * 9.0!r}',
        ]
        return Reply(200, "\n".join(lines) + "\n", headers={"Content-Type": "text/plain; version=0.0.4"})


@pytest.fixture
def requests_exporter() -> Iterator[Requests]:
    with Requests() as exporter:
        yield exporter  # type: ignore[misc]


def firing(alerts: list[dict[str, Any]]) -> set[tuple[tuple[str, str], ...]]:
    """Label sets of firing alerts: Prometheus's API says ``state``, a webhook says ``status``."""
    return {tuple(sorted(a["labels"].items())) for a in alerts if a.get("state", a.get("status")) == "firing"}


def test_a_mixin_file_fires_the_same_alerts_when_the_worker_evaluates_it(
    tmp_path: Path, requests_exporter: Requests
) -> None:
    path = conformance_dir() / "rules" / SLOTH
    exporter = requests_exporter
    with (
        PrometheusServer(
            scrape_targets=[exporter.target], rule_files=[path], job_name="myservice"
        ) as reference,
        receiving(scrape_targets=[exporter.target], job_name="myservice") as target,
        WebhookRecorder() as hook,
    ):
        wait_until(
            lambda: firing(reference.get("/api/v1/alerts")["alerts"]),
            timeout=90,
            what="Prometheus to fire the file's alerts",
        )
        config = tmp_path / "alerting.yml"
        config.write_text(
            yaml.safe_dump(
                {
                    "route": {
                        "receiver": "hook",
                        "group_by": ["..."],
                        "group_wait": "0s",
                        "group_interval": "1s",
                        "repeat_interval": "1h",
                    },
                    "receivers": [{"name": "hook", "webhook_configs": [{"url": f"{hook.url}/hook"}]}],
                    "datasources": {"prometheus": {"type": "prometheus", "url": target.url}},
                    "remote_write": [
                        {"url": write_url(target), "queue_config": {"batch_send_deadline": "200ms"}}
                    ],
                }
            )
        )
        env = worker_env(
            tmp_path,
            rules=path,
            config=config,
            prefix=f"mixin-{time.monotonic_ns()}",
            prometheus_url=target.url,
            ALERTING_EVALUATION_INTERVAL="1s",
        )
        with Worker(env) as worker:
            expected = firing(reference.get("/api/v1/alerts")["alerts"])
            wait_until(
                lambda: firing([a for r in hook.delivered() for a in r.body["alerts"]]) >= expected,
                timeout=90,
                what="the worker to fire the same alerts",
            )
            # the budget series is recorded from two series recorded before it in its group
            wait_until(
                lambda: count(target, "slo:period_error_budget_remaining:ratio") == 1,
                timeout=30,
                what="the chained recording rule's series",
            )
            # the worker's log says how much each tick recorded: the SLI group, 8 series
            sli = "sloth-slo-sli-recordings-myservice-requests-availability"
            assert {e["recorded"] for e in worker.events("group.evaluated", group=sli)} >= {8}
    ours = firing([a for r in hook.delivered() for a in r.body["alerts"]])
    assert ours == expected
    assert len(expected) == 2  # the page and the ticket of the SLO
    assert {dict(a)["sloth_severity"] for a in ours} == {"page", "ticket"}


ALERT_RULES = """\
groups:
  - name: alerts
    interval: 1s
    rules:
      - alert: Steady
        expr: label_replace(vector(1), "service", "db", "", "")
        labels: {severity: page}
      - alert: Waiting
        expr: vector(2)
        for: 1h
      - alert: Flapping
        expr: vector(3) and on() (vector(time()) % 4 < 2)
        for: 1s
"""


def test_alert_series_are_the_ones_prometheus_keeps(tmp_path: Path) -> None:
    """``ALERTS`` and ``ALERTS_FOR_STATE`` written by the worker (``write_alert_series``) hold what
    Prometheus's own evaluation of the same rules keeps, instant by instant: states, labels, the
    alerts' start times, and series ending (stale) when an alert does."""
    rules = tmp_path / "alerts.yml"
    rules.write_text(ALERT_RULES)
    with (
        PrometheusServer(rule_files=[rules]) as reference,
        receiving() as target,
    ):

        def evaluated() -> list[float]:
            """The instants Prometheus evaluated at, from its first one: it writes no ALERTS for
            its first evaluations (until it has restored `for` state), but Steady's
            ALERTS_FOR_STATE holds the second that first evaluation was in."""
            data = reference.get("/api/v1/query", query='ALERTS_FOR_STATE{alertname="Steady"}[1m]')
            points = sorted((float(t), float(v)) for series in data["result"] for t, v in series["values"])
            if not points:
                return []
            first = points[0][0] - math.floor(points[0][0] - points[0][1])
            return [first + i for i in range(round(points[-1][0] - first) + 1)]

        wait_until(lambda: len(evaluated()) >= 8, timeout=60, what="eight evaluations by Prometheus")
        instants = evaluated()[:8]  # from its first evaluation on, so the alerts start alike
        (group,) = load_paths([rules]).groups
        source = PrometheusSource("prometheus", {"url": target.url})
        writer = RemoteWriter(parse_remote_write([{"url": write_url(target)}], None))
        try:
            with Evaluator(
                MemoryStore(), lambda _rule: source, owner="t", writer=writer, alert_series=True
            ) as evaluator:
                for at in instants:
                    evaluator.tick(group, at, claim=False)
            assert writer.flush(timeout=30)
        finally:
            writer.close()
            source.close()
        end = instants[-1] + 0.001
        # Compared from Prometheus's first written instant on (before it, it writes nothing).
        steady = raw_samples(reference, 'ALERTS{alertname="Steady"}', end)
        since = min(t for _labels, t in steady)
        wanted = {round(t * 1000) for t in instants if round(t * 1000) >= since}
        assert len(wanted) >= 4
        for name in ("ALERTS", "ALERTS_FOR_STATE"):
            theirs = {k: v for k, v in raw_samples(reference, name, end).items() if k[1] in wanted}
            ours = {k: v for k, v in raw_samples(target, name, end).items() if k[1] in wanted}
            assert ours == theirs, name
            states = {dict(labels).get("alertstate") for labels, _t in theirs}
            if name == "ALERTS":
                assert states == {"pending", "firing"}  # both states, and Flapping's ends, were seen
