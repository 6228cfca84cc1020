"""Recording rules under faults, with the real worker evaluating every second and writing by remote
write, through a TCP proxy the test cuts, to a real Prometheus that also scrapes an exporter the test
drives (queries go to it directly, so only the write path breaks).

One worker and one Prometheus serve the whole file: the outage and the stale marker are steps of one
story, each waiting on what Prometheus holds, what the worker logs or what a webhook receives.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import redis
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.support.exporter import Exporter
from tests.support.faultkit import write_rules
from tests.support.net import REDIS_URL, free_port, wait_until
from tests.support.prometheus import PrometheusServer
from tests.support.tcpproxy import TCPProxy
from tests.support.webhook import WebhookRecorder
from tests.support.worker import Worker, worker_env

pytestmark = pytest.mark.faults

RECORD = "probe:value:sum"
NOT_WRITTEN = f"reads {RECORD}, recorded this tick but not written (remote write failed)"


@dataclass
class Setup:
    """The running pieces, and what the tests read off them."""

    worker: Worker
    prom: PrometheusServer
    proxy: TCPProxy
    exporter: Exporter
    hook: WebhookRecorder
    api: str  # the worker's HTTP API
    prefix: str  # the worker's Redis key prefix

    def raw(self, selector: str, since: float) -> dict[str, list[float]]:
        """Raw sample times of ``selector`` since ``since``, per series (by its ``target``)."""
        window = max(1, int(time.time() - since) + 2)
        data = self.prom.get("/api/v1/query", query=f"{selector}[{window}s]", time=f"{time.time():.3f}")
        return {
            s["metric"]["target"]: [float(t) for t, _ in s["values"] if float(t) >= since]
            for s in data["result"]
        }

    def instant(self, selector: str) -> list[dict[str, Any]]:
        return list(self.prom.get("/api/v1/query", query=selector)["result"])

    def firing(self) -> set[str]:
        """Targets whose ``RecordedProbe`` the worker holds firing."""
        alerts = httpx.get(f"{self.api}/api/v1/alerts", timeout=10).json()["data"]["alerts"]
        return {
            a["labels"]["target"]
            for a in alerts
            if a["labels"]["alertname"] == "RecordedProbe" and a["state"] == "firing"
        }

    def evaluated_slots(self, since: float) -> list[float]:
        return sorted(
            e["slot"] for e in self.worker.events("group.evaluated", group="recorded") if e["slot"] >= since
        )

    def metric(self, name: str, **labels: str) -> float | None:
        """A sample of the worker's ``/metrics`` (None when it has none with these labels)."""
        for family in text_string_to_metric_families(httpx.get(f"{self.api}/metrics", timeout=10).text):
            for sample in family.samples:
                if sample.name == name and sample.labels == labels:
                    return float(sample.value)
        return None

    def retries(self) -> int:
        return len(self.worker.events("remote_write.retry"))

    def queued(self) -> int:
        """Writes queued in Redis for the target."""
        client = redis.Redis.from_url(REDIS_URL)
        try:
            return int(client.llen(f"{self.prefix}:remotewrite:proxied:queue"))
        finally:
            client.close()


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    tmp_path = tmp_path_factory.mktemp("recording")
    rules = write_rules(
        tmp_path / "rules" / "recorded.yml",
        [
            {
                "name": "recorded",
                "interval": "1s",
                "rules": [
                    {"record": RECORD, "expr": "sum by (target) (probe_value)"},
                    # reads what the rule above records this tick: it is evaluated once that is written
                    {"alert": "RecordedProbe", "expr": f"{RECORD} > 0", "labels": {"severity": "page"}},
                ],
            }
        ],
    )
    port, prefix = free_port(), f"recfaults-{time.monotonic_ns()}"
    with (
        Exporter() as exporter,
        WebhookRecorder() as hook,
    ):
        exporter.values.update({'probe_value{target="a"}': 1.0, 'probe_value{target="b"}': 2.0})
        with (
            # No out-of-order window: Prometheus refuses a sample older than its series' latest, so
            # every outage tick arriving shows the worker's processes send one queue in order.
            PrometheusServer(scrape_targets=[exporter.target], remote_write_receiver=True) as prom,
            TCPProxy("127.0.0.1", prom.port) as proxy,
        ):
            config = tmp_path / "alerting.yml"
            config.write_text(
                yaml.safe_dump(
                    {
                        "route": {
                            "receiver": "hook",
                            "group_by": ["alertname"],
                            "group_wait": "0s",
                            "group_interval": "1s",
                            "repeat_interval": "1h",
                        },
                        "receivers": [
                            {
                                "name": "hook",
                                "webhook_configs": [{"url": f"{hook.url}/hook", "send_resolved": True}],
                            }
                        ],
                        "datasources": {"prometheus": {"type": "prometheus", "url": prom.url}},
                        "remote_write": [
                            {
                                "url": f"http://127.0.0.1:{proxy.port}/api/v1/write",
                                "name": "proxied",
                                # a rule waiting for its group's write waits this long, once per tick
                                "remote_timeout": "1s",
                                "queue_config": {
                                    "batch_send_deadline": "200ms",
                                    "min_backoff": "50ms",
                                    "max_backoff": "500ms",
                                },
                            }
                        ],
                    }
                )
            )
            env = worker_env(
                tmp_path,
                rules=rules,
                config=config,
                prefix=prefix,
                prometheus_url=prom.url,
                ALERTING_EVALUATION_INTERVAL="1s",
                ALERTING_HTTP_ADDR=f"127.0.0.1:{port}",
            )
            with Worker(env) as worker:
                yield Setup(worker, prom, proxy, exporter, hook, f"http://127.0.0.1:{port}", prefix)
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


def test_samples_recorded_while_the_target_is_down_arrive_once_it_is_back_and_the_reader_stays_firing(
    setup: Setup,
) -> None:
    hook, worker = setup.hook, setup.worker
    hook.wait_for("RecordedProbe", timeout=60)
    wait_until(lambda: setup.firing() == {"a", "b"}, timeout=30, what="both alerts firing")
    wait_until(lambda: len(setup.instant(RECORD)) == 2, timeout=30, what="the recorded series")
    retries_before = setup.retries()

    cut = time.time()
    setup.proxy.cut()
    # Several ticks during the outage, each failing the rule that reads this tick's recorded series.
    wait_until(
        lambda: len(worker.events("rule.error", rule="RecordedProbe", msg=NOT_WRITTEN)) >= 4,
        timeout=60,
        what="four ticks failing the reader",
    )
    assert setup.retries() > retries_before
    assert (setup.metric("alerting_remote_write_retries_total", remote="proxied") or 0) > 0
    assert setup.firing() == {"a", "b"}  # frozen, not resolved
    restored = time.time()
    setup.proxy.restore()

    outage = [s for s in setup.evaluated_slots(cut) if s < restored]
    assert len(outage) >= 4, outage

    def every_tick_arrived() -> bool:
        raw = setup.raw(RECORD, cut)
        return all(set(outage) <= set(raw.get(t, [])) for t in ("a", "b"))

    try:
        wait_until(every_tick_arrived, timeout=60, what="the samples recorded during the outage")
    except TimeoutError:
        raw = setup.raw(RECORD, cut)
        missing = {t: sorted(set(outage) - set(raw.get(t, []))) for t in ("a", "b")}
        rejected = [e["msg"][:300] for e in worker.events("remote_write.rejected")]
        raise AssertionError(f"outage ticks {outage}; missing {missing}; refused: {rejected}") from None
    # Written late, they carry their ticks' slots (on the group's 1s grid), not the time they arrived.
    raw = setup.raw(RECORD, cut)
    for target in ("a", "b"):
        during = [t for t in raw[target] if t < restored]
        assert all(abs((t - outage[0]) - round(t - outage[0])) < 0.002 for t in during), during

    # After the outage the reader reads again; a resolve made during it would have been sent by now
    # (group_interval is 1s, four ticks).
    worker.wait_for_evaluations(4, group="recorded", errors=0)
    assert setup.firing() == {"a", "b"}
    assert "resolved" not in hook.statuses("RecordedProbe")
    assert worker.events("rule.error", rule="RecordedProbe", msg=NOT_WRITTEN)
    assert not worker.events("remote_write.rejected")
    assert setup.metric("alerting_remote_write_samples_total", remote="proxied", outcome="sent")
    assert not setup.metric("alerting_remote_write_samples_total", remote="proxied", outcome="dropped")


def test_a_series_no_longer_recorded_gets_a_stale_marker_and_keeps_its_past(setup: Setup) -> None:
    b = f'{RECORD}{{target="b"}}'
    wait_until(lambda: len(setup.instant(b)) == 1, timeout=30, what="b recorded")
    dropped = time.time()
    setup.exporter.values.pop('probe_value{target="b"}')
    # Without a stale marker an instant query would keep returning b's last sample for 5 minutes.
    wait_until(lambda: not setup.instant(b), timeout=30, what="b to go stale")
    gone = time.time()
    assert len(setup.instant(f'{RECORD}{{target="a"}}')) == 1
    # A range query still shows its past, up to the tick that stopped recording it.
    data = setup.prom.get("/api/v1/query_range", query=b, start=dropped - 10, end=gone, step="1s")
    (series,) = data["result"]
    times = [float(t) for t, _ in series["values"]]
    assert min(times) <= dropped < max(times) + 1 and max(times) < gone, (dropped, gone, times)


def test_samples_queued_when_the_worker_is_killed_arrive_after_it_restarts_in_order(setup: Setup) -> None:
    worker = setup.worker
    a = f'{RECORD}{{target="a"}}'
    wait_until(lambda: len(setup.instant(a)) == 1, timeout=30, what="a recorded")
    cut = time.time()
    setup.proxy.cut()
    failing = len(worker.events("rule.error", rule="RecordedProbe", msg=NOT_WRITTEN))
    wait_until(
        lambda: len(worker.events("rule.error", rule="RecordedProbe", msg=NOT_WRITTEN)) >= failing + 3,
        timeout=60,
        what="three ticks failing the reader",
    )
    wait_until(lambda: setup.queued() >= 3, timeout=30, what="ticks queued in Redis")
    worker.stop(signal.SIGKILL)  # the whole process group: the pool, beat, the lease holder
    before_kill = setup.evaluated_slots(cut)
    assert len(before_kill) >= 3, before_kill
    assert setup.queued() >= 3  # what the killed worker queued is still there

    worker.start()
    # The restarted worker evaluates during the outage too, behind the killed worker's queue.
    started = len(worker.events("group.evaluated", group="recorded"))
    wait_until(
        lambda: len(worker.events("group.evaluated", group="recorded")) >= started + 2,
        timeout=60,
        what="two ticks of the restarted worker",
    )
    restored = time.time()
    setup.proxy.restore()
    outage = [s for s in setup.evaluated_slots(cut) if s < restored]
    assert set(before_kill) < set(outage)

    def every_tick_arrived() -> bool:
        return set(outage) <= set(setup.raw(a, cut).get("a", []))

    try:
        wait_until(every_tick_arrived, timeout=90, what="the samples queued before and after the kill")
    except TimeoutError:
        missing = sorted(set(outage) - set(setup.raw(a, cut).get("a", [])))
        rejected = [e["msg"][:300] for e in worker.events("remote_write.rejected")]
        raise AssertionError(f"outage ticks {outage}; missing {missing}; refused: {rejected}") from None
    assert not worker.events("remote_write.rejected")  # nothing arrived out of order
    wait_until(lambda: setup.queued() == 0, timeout=30, what="the queue emptied")
