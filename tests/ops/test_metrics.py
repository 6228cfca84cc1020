"""Self-metrics: correct across forked pool processes, alert state read from Redis at scrape time,
and the whole /metrics page scraped by a real Prometheus that answers every dashboard query."""

from __future__ import annotations

import json
import multiprocessing
import os
import re
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest
import redis

from alerting.api.health import HealthServer, Readiness
from alerting.notify.base import DeliveryError
from alerting.ops import metrics
from alerting.rules import Group, load_paths
from alerting.rules.state import StateStore
from alerting.rules.tick import Evaluator, GroupOutcome
from alerting.sources.prometheus import PrometheusSource
from tests.support.logs import json_log
from tests.support.net import REDIS_URL, celery_queue, free_port, wait_until
from tests.support.promapi import PromAPI
from tests.support.prometheus import PrometheusServer

ROOT = Path(__file__).resolve().parents[2]
T0 = 1767225600.0


def make_group(tmp_path: Path, body: str, name: str | None = None) -> Group:
    """A one-group rule file under a unique group name (metrics are process-wide)."""
    name = name or f"g{uuid.uuid4().hex[:8]}"
    path = tmp_path / f"{name}.yml"
    path.write_text(f"groups:\n  - name: {name}\n    interval: 1m\n    rules:\n{body}")
    result = load_paths([path])
    assert not result.problems, result.problems
    return result.groups[0]


RULES = """\
      - alert: Up
        expr: x > 0
        for: 2m
        labels: {severity: warning}
"""


def tick(store: StateStore, group: Group, url: str, t: float, datasource: str = "prometheus") -> GroupOutcome:
    source = metrics.timed(PrometheusSource(datasource, {"url": url, "timeout": "2s"}))
    return Evaluator(store, lambda rule: source, owner="test", concurrency=1).tick(group, t)


def sample(name: str, **labels: str) -> float | None:
    """The current value of one series, from every process's files merged."""
    inner = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    return metrics.snapshot(metrics.registry()).get(f"{name}{{{inner}}}" if inner else name)


def _child_evaluates(group: Group, url: str, prefix: str, slot: float, done, release) -> None:  # noqa: ANN001
    store = StateStore(redis.Redis.from_url(REDIS_URL), prefix)
    metrics.observe_group(tick(store, group, url, slot))
    metrics.observe_notification(f"recv-{group.name}", "sent", integration="slack", duration=0.2)
    done.put(os.getpid())
    release.wait(30)


def test_counters_from_forked_pool_processes_add_up_and_dead_processes_leave_no_live_gauge(
    tmp_path: Path, prom_api: PromAPI, prefix: str
) -> None:
    metrics.setup()  # the worker's main process does this before the pool forks
    metrics.observe_reload(True)  # this process writes metrics too
    group = make_group(tmp_path, RULES)
    ctx = multiprocessing.get_context("fork")
    done, release = ctx.Queue(), ctx.Event()
    children = [
        ctx.Process(target=_child_evaluates, args=(group, prom_api.url, prefix, T0 + 60 * i, done, release))
        for i in range(3)
    ]
    pids = set()
    for child in children:  # one slot after the other, as beat sends them; all stay alive
        child.start()
        pids.add(done.get(timeout=60))
    assert len(pids) == 3
    labels = {"group": group.name, "file": group.file}
    assert sample("alerting_worker_processes") == 4  # three children and this process, all alive
    release.set()
    for child in children:
        child.join(30)
    assert sample("alerting_group_evaluations_total", **labels) == 3
    assert sample("alerting_group_evaluation_duration_seconds_count", **labels) == 3
    assert sample("alerting_last_evaluation_timestamp_seconds", **labels) == T0 + 120
    assert (
        sample("alerting_notifications_sent_total", receiver=f"recv-{group.name}", integration="slack") == 3
    )
    # the children's counters stay (counters never go down), their "live" gauge went with them
    assert sample("alerting_worker_processes") == 1


def _child_reports_broken_reload(done) -> None:  # noqa: ANN001
    metrics.observe_reload(False)
    done.put(True)


def test_reload_gauge_shows_the_most_recent_result_whichever_process_reported_it() -> None:
    metrics.observe_reload(True)
    assert sample("alerting_config_last_reload_successful") == 1
    ctx = multiprocessing.get_context("fork")
    done = ctx.Queue()
    child = ctx.Process(target=_child_reports_broken_reload, args=(done,))
    child.start()
    done.get(timeout=30)
    child.join(30)
    assert sample("alerting_config_last_reload_successful") == 0  # the child died; its news did not
    metrics.observe_reload(True, at=T0)
    assert sample("alerting_config_last_reload_successful") == 1
    assert sample("alerting_config_last_reload_success_timestamp_seconds") >= T0


def test_a_tick_counts_missed_slots_rule_failures_and_datasource_health(
    tmp_path: Path, prom_api: PromAPI, redis_client: redis.Redis, prefix: str
) -> None:
    store = StateStore(redis_client, prefix)
    datasource = f"prom-{uuid.uuid4().hex[:6]}"
    rules = RULES + "      - alert: Bad\n        expr: rejected > 0\n"
    group = make_group(
        tmp_path, rules.replace("        expr:", f"        datasource: {datasource}\n        expr:")
    )
    labels = {"group": group.name, "file": group.file}
    metrics.observe_group(tick(store, group, prom_api.url, T0, datasource))
    assert sample("alerting_datasource_up", datasource=datasource) == 1
    assert sample("alerting_rule_evaluation_failures_total", **labels) == 1
    assert sample("alerting_group_interval_seconds", **labels) == 60
    # three intervals later: two slots were missed
    metrics.observe_group(tick(store, group, prom_api.url, T0 + 180, datasource))
    assert sample("alerting_group_missed_slots_total", **labels) == 2
    prom_api.down = True
    metrics.observe_group(tick(store, group, prom_api.url, T0 + 240, datasource))
    assert sample("alerting_datasource_up", datasource=datasource) == 0
    assert sample("alerting_last_evaluation_timestamp_seconds", **labels) == T0 + 240
    # the same slot again is a duplicate tick: counted as skipped, not as an evaluation
    metrics.observe_group(tick(store, group, prom_api.url, T0 + 240, datasource))
    assert sample("alerting_group_evaluations_skipped_total", **labels, reason="claimed") == 1
    assert sample("alerting_group_evaluations_total", **labels) == 3
    # query outcomes and latency, per datasource, from the timed source
    assert sample("alerting_datasource_queries_total", datasource=datasource, outcome="success") == 2
    assert sample("alerting_datasource_queries_total", datasource=datasource, outcome="query_error") == 2
    assert sample("alerting_datasource_queries_total", datasource=datasource, outcome="datasource_error") == 2
    assert sample("alerting_datasource_query_duration_seconds_count", datasource=datasource) == 6
    metrics.observe_group_failure(group, "redis")
    assert sample("alerting_group_evaluation_failures_total", **labels, reason="redis") == 1


def test_recording_rules_count_what_they_recorded_and_their_failures(
    tmp_path: Path, prom_api: PromAPI, redis_client: redis.Redis, prefix: str
) -> None:
    store = StateStore(redis_client, prefix)
    rules = (
        "      - record: job:x:sum\n        expr: sum by (job) (x)\n"
        "      - record: job:bad:sum\n        expr: rejected_sum\n"
    )
    group = make_group(tmp_path, rules)
    labels = {"group": group.name, "file": group.file}
    prom_api.vectors["sum by (job) (x)"] = [({"job": "a"}, 1.0), ({"job": "b"}, 2.0)]
    metrics.observe_group(tick(store, group, prom_api.url, T0))
    assert sample("alerting_recorded_samples_total", **labels) == 2
    assert sample("alerting_rule_evaluation_failures_total", **labels) == 1
    prom_api.vectors["sum by (job) (x)"] = [({"job": "a"}, 1.5)]
    metrics.observe_group(tick(store, group, prom_api.url, T0 + 60))
    assert sample("alerting_recorded_samples_total", **labels) == 4  # one sample and one stale marker


def test_alerts_by_state_are_read_from_redis_at_scrape_time(
    tmp_path: Path, prom_api: PromAPI, redis_client: redis.Redis, prefix: str
) -> None:
    store = StateStore(redis_client, prefix)
    group = make_group(tmp_path, RULES)
    reg = metrics.registry([metrics.StateCollector(store)])

    def alerts() -> dict[str, float]:
        return {k: v for k, v in metrics.snapshot(reg).items() if k.startswith("ALERTS")}

    prom_api.vectors["x > 0"] = [({"job": "api"}, 3.0)]
    tick(store, group, prom_api.url, T0)
    assert alerts() == {
        'ALERTS{alertname="Up",alertstate="pending",job="api",severity="warning"}': 1.0,
        'ALERTS_FOR_STATE{alertname="Up",job="api",severity="warning"}': T0,
    }
    tick(store, group, prom_api.url, T0 + 120)
    assert list(alerts()) == [
        'ALERTS{alertname="Up",alertstate="firing",job="api",severity="warning"}',
        'ALERTS_FOR_STATE{alertname="Up",job="api",severity="warning"}',
    ]
    prom_api.vectors["x > 0"] = []
    tick(store, group, prom_api.url, T0 + 180)
    assert alerts() == {}  # resolved: the series is gone, not stuck at its last value
    counts = metrics.snapshot(reg)
    assert counts[f'alerting_alerts{{file="{group.file}",group="{group.name}",state="resolved"}}'] == 1
    assert counts[f'alerting_alerts{{file="{group.file}",group="{group.name}",state="firing"}}'] == 0
    assert counts["alerting_state_up"] == 1


def test_scrape_answers_with_state_down_when_redis_is_unreachable() -> None:
    store = StateStore(redis.Redis(port=free_port(), socket_connect_timeout=1), "nowhere")
    values = metrics.snapshot(metrics.registry([metrics.StateCollector(store)]))
    assert values["alerting_state_up"] == 0
    assert not any(k.startswith("ALERTS") for k in values)


def test_queue_depth_counts_waiting_messages_including_priority_lists(redis_client: redis.Redis) -> None:
    queue = celery_queue("q-depth")
    try:
        redis_client.lpush(queue, "a", "b", "c")
        redis_client.lpush(f"{queue}\x06\x163", "d")
        reg = metrics.registry([metrics.QueueCollector(lambda: metrics.queue_depths(redis_client, [queue]))])
        assert metrics.snapshot(reg)[f'alerting_queue_depth{{queue="{queue}"}}'] == 4
    finally:
        redis_client.delete(queue, f"{queue}\x06\x163")


@pytest.mark.parametrize(
    ("exc", "reason"),
    [
        (DeliveryError("HTTP 500", retryable=True), "server_error"),
        (DeliveryError("HTTP 400 invalid_blocks", retryable=False), "client_error"),
        (httpx.ConnectTimeout("timed out"), "timeout"),
        (httpx.ConnectError("refused"), "connection"),
        (ValueError("bug"), "other"),
    ],
)
def test_failed_notifications_are_counted_per_receiver_and_reason(exc: Exception, reason: str) -> None:
    receiver = f"r-{uuid.uuid4().hex[:8]}"
    metrics.observe_notification(
        receiver, "failed", metrics.reason_for(exc), integration="slack", duration=0.1
    )
    metrics.observe_retry(receiver, "slack")
    metrics.observe_notification(receiver, "sent", integration="slack", duration=0.1)
    assert (
        sample("alerting_notifications_failed_total", receiver=receiver, integration="slack", reason=reason)
        == 1
    )
    assert sample("alerting_notifications_sent_total", receiver=receiver, integration="slack") == 1
    assert sample("alerting_notification_retries_total", receiver=receiver, integration="slack") == 1
    assert sample("alerting_notification_latency_seconds_count", receiver=receiver, integration="slack") == 2


def test_free_text_reasons_cannot_blow_up_label_cardinality() -> None:
    receiver = f"r-{uuid.uuid4().hex[:8]}"
    metrics.observe_notification(receiver, "failed", "HTTP 503: upstream said no (request id 8f2c)")
    assert (
        sample("alerting_notifications_failed_total", receiver=receiver, integration="", reason="other") == 1
    )


def _setup_in_subprocess(env: dict[str, str]) -> str:
    code = "from alerting.ops import metrics; print(metrics.setup(fresh=True))"
    result = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_a_users_multiproc_dir_is_used_and_wiped_at_start(tmp_path: Path) -> None:
    (tmp_path / "counter_99999.db").write_bytes(b"stale")
    (tmp_path / "keep.txt").write_text("not ours")
    assert _setup_in_subprocess({"PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}) == str(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]


def test_a_private_dir_inherited_by_an_unrelated_process_is_not_shared() -> None:
    ours = metrics.setup()
    theirs = _setup_in_subprocess({"PROMETHEUS_MULTIPROC_DIR": ours})
    assert theirs != ours
    assert not Path(theirs).exists()  # removed when that process exited
    assert Path(ours).exists()


def _dashboard_exprs() -> list[str]:
    dashboard = json.loads((ROOT / "observability" / "dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    return [
        e.replace("$__rate_interval", "1m").replace('"$job"', '".+"').replace('"$group"', '".*"')
        for e in exprs
    ]


# series this test produces, so the panels reading them must show data
PRODUCED = r"alerting_(group_evaluations_total|notifications_sent_total|queue_depth|beat_leader_present)\b"


def _self_monitoring_rules(tmp_path: Path) -> Path:
    """The shipped self-monitoring rules, with ``for`` removed so they fire at once."""
    block = (ROOT / "observability" / "prometheus-rules.yml").read_text()
    path = tmp_path / "self-monitoring.yml"
    path.write_text(re.sub(r"for: \w+", "for: 0s", block))
    return path


def test_a_real_prometheus_scrapes_metrics_and_answers_every_dashboard_query(
    tmp_path: Path, prom_api: PromAPI, redis_client: redis.Redis, prefix: str
) -> None:
    store = StateStore(redis_client, prefix)
    group = make_group(tmp_path, RULES)
    prom_api.vectors["x > 0"] = [({"job": "api"}, 1.0)]
    for i in range(3):
        metrics.observe_group(tick(store, group, prom_api.url, T0 + 60 * i))
    metrics.observe_notification("ops-slack", "sent", integration="slack", duration=0.3)
    metrics.observe_notification("ops-slack", "failed", "server_error", integration="slack", duration=0.3)
    metrics.observe_retry("ops-slack", "slack")
    metrics.observe_task_retry("tasks.send_notification")
    metrics.observe_suppressed("silenced", 2)
    metrics.observe_history_write("transition", True, 3)
    metrics.observe_reload(True)
    store.hold_leadership("test-leader", 30)
    readiness = Readiness(redis_url=REDIS_URL, broker_url=REDIS_URL, prefix=prefix)
    with HealthServer(("127.0.0.1", 0), readiness) as server:
        target = f"127.0.0.1:{server.port}"
        rules = _self_monitoring_rules(tmp_path)
        with PrometheusServer(scrape_targets=[target], rule_files=[rules]) as prom:

            def query(expr: str) -> list[dict]:
                answer = httpx.get(f"{prom.url}/api/v1/query", params={"query": expr}, timeout=10).json()
                assert answer["status"] == "success", (expr, answer)
                return answer["data"]["result"]

            selector = f'alerting_group_evaluations_total{{group="{group.name}"}}'
            wait_until(lambda: query(f"rate({selector}[1m])"), timeout=60, what="two scrapes of /metrics")
            assert query(f'up{{instance="{target}"}}')[0]["value"][1] == "1"
            assert query(selector)[0]["value"][1] == "3"
            firing = query('ALERTS{alertname="Up",alertstate="firing"}')
            assert [r["metric"]["job"] for r in firing] == ["test"]  # target label wins; ours is exported_job
            assert firing[0]["metric"]["exported_job"] == "api"
            for expr in _dashboard_exprs():
                query(expr)  # every panel's query parses and runs
            # the documented dead man's rule pages for a group whose last tick is long past (T0)
            stalled = (
                f'ALERTS{{alertname="AlertingEvaluatorStalled",alertstate="firing",group="{group.name}"}}'
            )
            wait_until(lambda: query(stalled), timeout=60, what="AlertingEvaluatorStalled to fire")
            assert not query('ALERTS{alertname="AlertingConfigReloadFailed"}')
            assert not query('ALERTS{alertname="AlertingWorkerAbsent"}')
            # panels whose series this test produced actually show data
            for expr in _dashboard_exprs():
                if re.search(PRODUCED, expr):
                    assert query(expr), expr


WORKER_APP = """\
from celery import signals

from alerting.api import health

from alerting.ops import metrics
from alerting.worker.app import app, settings
from alerting.ops.logs import prepare_celery_worker

metrics.setup(fresh=True)  # main process, before the pool forks


@signals.celeryd_init.connect
def _prepare(instance, **_):
    prepare_celery_worker(instance, settings.log_level, settings.log_format)


@signals.worker_ready.connect
def _serve(**_):
    health.start_server(settings)


@signals.worker_process_shutdown.connect
def _gone(pid, **_):
    metrics.process_exited(pid)


@app.task(name="probe.observe")
def observe(receiver):
    metrics.observe_notification(receiver, "sent", integration="probe")
"""


def test_a_real_prefork_worker_serves_what_its_recycled_children_counted(tmp_path: Path, prefix: str) -> None:
    from celery import Celery

    (tmp_path / "rules").mkdir()
    (tmp_path / "probeapp.py").write_text(WORKER_APP)
    port = free_port()
    queue = celery_queue("q-metrics")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])}
    env.pop(metrics.MULTIPROC_ENV, None)
    env.update(
        ALERTING_RULES=str(tmp_path / "rules"),
        ALERTING_REDIS_URL=REDIS_URL,
        ALERTING_REDIS_PREFIX=prefix,
        ALERTING_CELERY_QUEUE=queue,
        ALERTING_CONFIG=str(tmp_path / "none.yml"),
        ALERTING_HTTP_ADDR=f"127.0.0.1:{port}",
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "probeapp", "worker", "--concurrency=2",
         "--max-tasks-per-child=2", "--without-gossip", "--without-mingle", "--without-heartbeat",
         f"--hostname=metrics-{uuid.uuid4().hex[:6]}@%h"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"

    def scraped() -> dict[str, float]:
        text = httpx.get(f"{url}/metrics", timeout=5).text
        return {
            line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line and not line.startswith("#")
        }

    sent = 'alerting_notifications_sent_total{integration="probe",receiver="probe"}'
    try:
        wait_until(
            lambda: httpx.get(f"{url}/healthz", timeout=2).status_code == 200, timeout=60, what="/healthz"
        )
        client = Celery(broker=REDIS_URL)
        for _ in range(6):
            client.send_task("probe.observe", args=["probe"], queue=queue)
        client.close()
        wait_until(lambda: scraped().get(sent) == 6, timeout=60, what="six observations on /metrics")
        # each child ran two tasks and was replaced: the dead children's counts stay, but only the
        # main process is still a live writer (the fresh children have not written yet)
        processes = "alerting_worker_processes"
        wait_until(lambda: scraped().get(processes) == 1, timeout=30, what="dead children to drop out")
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


def test_a_metrics_failure_is_logged_and_never_reaches_the_caller() -> None:
    with json_log() as log:
        metrics.observe_group(object())  # type: ignore[arg-type] - not an outcome: counting fails
    (line,) = log.records()
    assert line["event"] == "metrics.failed" and "observe_group failed: AttributeError" in line["msg"]
