"""Notification benchmark: K alerts firing at once across G groups, until Slack and PagerDuty have them.

Ours: the alerts go through the real pipeline: ``ingest`` into Redis (as the evaluator hands them
over, one rule group's worth at a time), then real ``celery -A alerting worker -B`` processes on a
private queue and key prefix flush the aggregation groups (``flush_due``) and deliver each
notification (``deliver``) to local fake Slack (incoming webhook) and PagerDuty (Events API v2)
servers speaking their wire protocols over TLS.

Reference, in the same run: a real Alertmanager (Debian's 0.25) with the very same route and
receivers file, sending to its own pair of fakes; the alerts are posted to its API in batches of
64, as Prometheus posts them.

    python -m bench.notify_bench --alerts 10000 --groups 100   # group_wait 5s, best of 2 turns each

Prints, for each side, the seconds from the first alert handed over until the fakes had accepted a
notification for every group on both receivers carrying every alert, the part of it after
``group_wait`` (what the pipeline itself takes) and its ratio to Alertmanager's, the CPU each side
spent in that part and its ratio, the number of duplicate notifications (a group notified twice on
one receiver) seen a few seconds after that, and the peak resident memory of each side (for ours,
every process of the worker together).

    python -m bench.notify_bench --alerts 100000 --groups 1000 --repeat 1   # the storm case
    python -m bench.notify_bench --answer-delay 0.2   # receivers 0.2 s away (most are, on the internet)
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import redis
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from alerting.core import fingerprint, rfc3339  # noqa: E402
from alerting.durations import parse_duration  # noqa: E402
from alerting.notify.base import NotifyAlert  # noqa: E402
from alerting.notify.pipeline import ingest  # noqa: E402
from alerting.ops.logs import configure_logging  # noqa: E402
from alerting.worker.compose import load_routing_config  # noqa: E402
from tests.support.fakes import (  # noqa: E402
    PAGERDUTY_KEY,
    SLACK_WEBHOOK_PATH,
    LocalCA,
    PagerDutyFake,
    SlackFake,
    make_ca,
)
from tests.support.httpfake import Handler  # noqa: E402
from tests.support.routing_alertmanager import Alertmanager  # noqa: E402
from tests.support.routing_redis import delete_matching  # noqa: E402
from tests.support.worker import Worker  # noqa: E402

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
INGEST_BATCH = 100  # alerts per ingest call: one rule group's evaluation
AM_BATCH = 64  # alerts per POST to Alertmanager: Prometheus's batch size
SETTLE = 5.0  # seconds to keep watching for duplicates after the last notification arrived


def routing_file(
    path: Path, slack: SlackFake, pagerduty: PagerDutyFake, ca: LocalCA, group_wait: str
) -> None:
    """Alertmanager's format, read unchanged by both sides: one route grouping by service, one
    receiver with a Slack webhook and a PagerDuty integration."""
    http_config = {"tls_config": {"ca_file": ca.ca_file}}
    config = {
        "route": {
            "receiver": "oncall",
            "group_by": ["service"],
            "group_wait": group_wait,
            "group_interval": "5m",
            "repeat_interval": "4h",
        },
        "receivers": [
            {
                "name": "oncall",
                "slack_configs": [
                    {
                        "api_url": slack.server.url + SLACK_WEBHOOK_PATH,
                        "channel": "#alerts",
                        "send_resolved": True,
                        "http_config": http_config,
                    }
                ],
                "pagerduty_configs": [
                    {
                        "routing_key": PAGERDUTY_KEY,
                        "url": pagerduty.server.url + "/v2/enqueue",
                        "send_resolved": True,
                        "http_config": http_config,
                    }
                ],
            }
        ],
    }
    path.write_text(yaml.safe_dump(config))


def alert_labels(i: int, alerts: int, groups: int) -> dict[str, str]:
    # A group's alerts are handed over together, as one rule's alerts come out of one evaluation.
    return {
        "alertname": f"BenchAlert{i % 20}",
        "service": f"svc-{i * groups // alerts:05d}",
        "instance": f"host-{i:06d}:9100",
        "severity": "critical",
    }


def annotations(i: int) -> dict[str, str]:
    return {"summary": f"host-{i:06d} is down", "description": "Instance has not answered for 5 minutes."}


def evaluated_alert(i: int, alerts: int, groups: int, now: float) -> NotifyAlert:
    """Alert ``i`` as the evaluator hands it to ``ingest``: with the fingerprint its evaluation keyed
    its state by (computed then, as part of evaluating the rule, so not part of the hand-over)."""
    labels = alert_labels(i, alerts, groups)
    return NotifyAlert(
        status="firing",
        labels=labels,
        annotations=annotations(i),
        starts_at=now,
        generator_url="http://prometheus.example/graph",
        fingerprint=fingerprint(labels),
    )


# --- counting what the fakes accepted -----------------------------------------------------------

_SERVICE = re.compile(r"svc-\d{5}")
_FIRING = re.compile(r"\[FIRING:(\d+)\]")


@dataclass(frozen=True)
class Tally:
    """What the fakes have accepted so far."""

    slack: Counter[str]  # service -> notifications
    slack_alerts: dict[str, int]  # service -> firing alerts in its latest notification
    pagerduty: Counter[str]  # dedup_key -> trigger events
    pagerduty_alerts: dict[str, int]  # dedup_key -> firing alerts in its latest event

    def complete(self, groups: int, alerts: int) -> bool:
        return (
            len(self.slack) == groups
            and len(self.pagerduty) == groups
            and sum(self.slack_alerts.values()) == alerts
            and sum(self.pagerduty_alerts.values()) == alerts
        )

    @property
    def duplicates(self) -> int:
        return sum(n - 1 for n in self.slack.values()) + sum(n - 1 for n in self.pagerduty.values())

    @property
    def notifications(self) -> int:
        return sum(self.slack.values()) + sum(self.pagerduty.values())


class Tallier:
    """Counts what the fakes accepted, reading each request once: the watcher must not take the
    CPU the fake receivers need (re-reading every body every 50 ms grew with the storm)."""

    def __init__(self, slack: SlackFake, pagerduty: PagerDutyFake) -> None:
        self.slack, self.pagerduty = slack, pagerduty
        self._seen = {"slack": 0, "pagerduty": 0}
        self.current = Tally(Counter(), {}, Counter(), {})
        self.last_at = 0.0  # time.monotonic() when the fakes had read the latest notification counted

    def __call__(self) -> Tally:
        t = self.current
        requests = list(self.slack.server.requests)
        for request in requests[self._seen["slack"] :]:
            if request.path != SLACK_WEBHOOK_PATH:
                continue
            text = request.body.decode()
            services = set(_SERVICE.findall(text))
            if len(services) != 1:
                raise AssertionError(f"a Slack message names {len(services)} services: {text[:300]}")
            service = services.pop()
            t.slack[service] += 1
            firing = _FIRING.search(text)
            t.slack_alerts[service] = int(firing.group(1)) if firing else 0
            self.last_at = max(self.last_at, request.at)
        self._seen["slack"] = len(requests)
        requests = list(self.pagerduty.server.requests)
        for request in requests[self._seen["pagerduty"] :]:
            if request.path != "/v2/enqueue":
                continue
            event = request.json()
            if event.get("event_action") != "trigger":
                continue
            key = event["dedup_key"]
            t.pagerduty[key] += 1
            t.pagerduty_alerts[key] = int(event["payload"]["custom_details"]["num_firing"])
            self.last_at = max(self.last_at, request.at)
        self._seen["pagerduty"] = len(requests)
        return t


@dataclass(frozen=True)
class Delivered:
    """What ``wait_delivered`` saw."""

    elapsed: float | None  # seconds until every notification was read (None: not within the timeout)
    tally: Tally  # what the fakes had accepted a while after that
    cpu: float | None  # CPU seconds the side spent from just before group_wait ended until then


def wait_delivered(
    slack: SlackFake, pagerduty: PagerDutyFake, args: argparse.Namespace, started: float, pid: int
) -> Delivered:
    """Watch the fakes until every one of ``args.groups`` groups reached both receivers with all
    ``args.alerts`` alerts (given ``started``, ``time.monotonic()`` at the first alert handed over;
    at most ``args.timeout`` seconds), then SETTLE seconds more.

    The end is when the fakes read the notification that completed it (their own timestamp), not
    when this loop, looking every 50 ms, noticed. The CPU is that of process ``pid`` and every
    process below it, from a tenth of a second before ``group_wait`` ended until the loop noticed
    the end: what the side spent on the notifications themselves, less noisy than the time."""
    groups, alerts, deadline = args.groups, args.alerts, started + args.timeout
    group_wait = parse_duration(args.group_wait)
    time.sleep(max(0.0, started + group_wait - 0.1 - time.monotonic()))  # nothing is due before
    cpu_before = cpu_seconds(pid)
    elapsed: float | None = None
    cpu: float | None = None
    tally = Tallier(slack, pagerduty)
    while time.monotonic() < deadline:
        if tally().complete(groups, alerts):
            cpu = cpu_seconds(pid) - cpu_before
            elapsed = tally.last_at - started
            break
        time.sleep(0.05)
    time.sleep(SETTLE)
    return Delivered(elapsed, tally(), cpu)


# --- memory ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PeakRSS:
    """Peak resident memory of a process and its descendants (each process's VmHWM), in MiB."""

    total: float
    largest: float
    processes: int

    def describe(self) -> str:
        if self.processes == 1:
            return f"peak RSS {self.total:.0f} MiB"
        return f"peak RSS {self.total:.0f} MiB ({self.processes} processes, largest {self.largest:.0f} MiB)"


def _tree(pid: int) -> list[int]:
    """``pid`` and every process below it, as they are now."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            ppid = int(stat[stat.rindex(")") + 2 :].split()[1])  # the field after the state
            children.setdefault(ppid, []).append(int(entry.name))
    todo, found = [pid], []
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def peak_rss(pid: int) -> PeakRSS:
    """Read while the processes still run (a process's high-water mark goes with it)."""
    sizes = []
    for current in _tree(pid):
        try:
            found = re.search(r"^VmHWM:\s+(\d+) kB", Path(f"/proc/{current}/status").read_text(), re.M)
        except OSError:
            continue
        if found:
            sizes.append(int(found.group(1)) / 1024)
    return PeakRSS(sum(sizes), max(sizes, default=0.0), len(sizes))


def cpu_seconds(pid: int) -> float:
    """User and system CPU seconds spent so far by ``pid`` and every process below it."""
    total = 0
    for current in _tree(pid):
        try:
            stat = Path(f"/proc/{current}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        total += int(fields[11]) + int(fields[12])  # utime and stime, in clock ticks
    return total / os.sysconf("SC_CLK_TCK")


# --- the two sides ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Result:
    """One run of one side."""

    delivered: Delivered
    handed_over: float  # seconds to hand every alert to the pipeline (ingest / POST)
    rss: PeakRSS

    @property
    def elapsed(self) -> float | None:  # None: not every alert reached both receivers in time
        return self.delivered.elapsed

    @property
    def seen(self) -> Tally:
        return self.delivered.tally

    def describe(self, groups: int, alerts: int) -> str:
        if self.elapsed is not None:
            return f"{self.elapsed:.2f}"
        return (
            f"INCOMPLETE (Slack {len(self.seen.slack)}/{groups} groups, "
            f"{sum(self.seen.slack_alerts.values())}/{alerts} alerts; PagerDuty "
            f"{len(self.seen.pagerduty)}/{groups} groups, {sum(self.seen.pagerduty_alerts.values())} alerts)"
        )


def fakes(ca: LocalCA, answer_delay: float) -> tuple[SlackFake, PagerDutyFake]:
    """A fresh pair of fakes, each holding every answer back ``answer_delay`` seconds (a receiver
    that far away). They still note a notification as accepted when they have read it."""
    slack, pagerduty = SlackFake(ca.server_context), PagerDutyFake(ca.server_context)
    if answer_delay > 0:
        for fake in (slack.server, pagerduty.server):
            fake.handler = _held_back(fake.handler, answer_delay)
    return slack, pagerduty


def _held_back(answer: Handler, delay: float) -> Handler:
    return lambda request: replace(answer(request), delay=delay)


def run_ours(args: argparse.Namespace, workdir: Path, ca: LocalCA) -> Result:
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    queue = f"bench-q-{uuid.uuid4().hex[:8]}"
    client = redis.Redis.from_url(REDIS_URL)
    rules = workdir / "no-rules"
    rules.mkdir(exist_ok=True)
    slack, pagerduty = fakes(ca, args.answer_delay)
    with slack.server, pagerduty.server:
        config_path = workdir / "alerting.yml"
        routing_file(config_path, slack, pagerduty, ca, args.group_wait)
        config = load_routing_config(config_path)
        env = {
            "ALERTING_RULES": str(rules),
            "ALERTING_CONFIG": str(config_path),
            "ALERTING_REDIS_URL": REDIS_URL,
            "ALERTING_REDIS_PREFIX": prefix,
            "ALERTING_CELERY_QUEUE": queue,
            "ALERTING_HTTP_ADDR": "off",
            "LOG_LEVEL": "WARNING",
        }
        try:
            with Worker(env, concurrency=args.concurrency) as worker:
                _wait(lambda: client.exists(f"{prefix}:beat:leader"), 60, "the worker's beat", worker)
                time.sleep(2)  # a first flush has run: the pool is warm
                now = time.time()
                alerts = [evaluated_alert(i, args.alerts, args.groups, now) for i in range(args.alerts)]
                started = time.monotonic()
                for start in range(0, len(alerts), INGEST_BATCH):
                    ingest(client, prefix, config, alerts[start : start + INGEST_BATCH], time.time())
                handed_over = time.monotonic() - started
                assert worker.process is not None
                seen = wait_delivered(slack, pagerduty, args, started, worker.process.pid)
                rss = peak_rss(worker.process.pid)
                errors = [e for e in worker.events() if e.get("level") in ("ERROR", "CRITICAL")]
                if errors:
                    print(f"worker errors: {errors[:3]}", file=sys.stderr)
        finally:
            _cleanup(client, prefix, queue)
    return Result(seen, handed_over, rss)


def run_alertmanager(args: argparse.Namespace, workdir: Path, ca: LocalCA) -> Result:
    am_dir = workdir / f"alertmanager-{uuid.uuid4().hex[:8]}"
    am_dir.mkdir()
    slack, pagerduty = fakes(ca, args.answer_delay)
    with slack.server, pagerduty.server:
        config_path = am_dir / "alertmanager.yml"
        routing_file(config_path, slack, pagerduty, ca, args.group_wait)
        with Alertmanager(config_path, am_dir) as am:
            # To the millisecond, as our side's starts_at is: truncated to the second, an alert could
            # look older than the group_wait at once, and Alertmanager flushes such a group at once.
            now = rfc3339(time.time())
            alerts = [
                {
                    "labels": alert_labels(i, args.alerts, args.groups),
                    "annotations": annotations(i),
                    "startsAt": now,
                    "generatorURL": "http://prometheus.example/graph",
                }
                for i in range(args.alerts)
            ]
            batches = [alerts[s : s + AM_BATCH] for s in range(0, len(alerts), AM_BATCH)]
            with httpx.Client(base_url=am.url, timeout=30) as http, ThreadPoolExecutor(4) as pool:
                started = time.monotonic()
                # Prometheus keeps several batches in flight, one per Alertmanager; four is generous.
                list(pool.map(lambda b: http.post("/api/v2/alerts", json=b).raise_for_status(), batches))
                handed_over = time.monotonic() - started
                assert am.process is not None
                seen = wait_delivered(slack, pagerduty, args, started, am.process.pid)
                rss = peak_rss(am.process.pid)
    return Result(seen, handed_over, rss)


def _wait(predicate: Callable[[], Any], timeout: float, what: str, worker: Worker) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            tail = "\n".join(worker.lines[-20:])
            raise TimeoutError(f"timed out waiting for {what}; worker output:\n{tail}")
        time.sleep(0.2)


def _cleanup(client: redis.Redis, prefix: str, queue: str) -> None:
    delete_matching(client, f"{prefix}:*", f"*{queue}*")


# --- the run ------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=10000)
    parser.add_argument("--groups", type=int, default=100)
    # Alertmanager starts a group's timer at its first alert and takes a while to take in 10,000
    # alerts: with a 1s group_wait its first notifications miss alerts that were already posted.
    parser.add_argument("--group-wait", default="5s", help="the route's group_wait, on both sides")
    parser.add_argument("--concurrency", type=int, default=2, help="worker processes (prefork children)")
    parser.add_argument("--repeat", type=int, default=2, help="runs of each side (best is reported)")
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument(
        "--answer-delay",
        type=float,
        default=0.0,
        help="seconds both sides' fakes hold each answer back (receivers that far away)",
    )
    parser.add_argument("--no-alertmanager", action="store_true", help="skip the reference")
    args = parser.parse_args(argv)

    configure_logging("WARNING", "console")
    workdir = Path(tempfile.mkdtemp(prefix="notify-bench-"))
    ca = make_ca(workdir)
    # The two sides take turns, so that whatever else this machine does drifts over both alike.
    ours: list[Result] = []
    theirs: list[Result] = []
    for _ in range(args.repeat):
        ours.append(run_ours(args, workdir, ca))
        if not args.no_alertmanager:
            theirs.append(run_alertmanager(args, workdir, ca))
    print(
        f"alerts={args.alerts} groups={args.groups} group_wait={args.group_wait} "
        f"notifications_expected={2 * args.groups} worker_concurrency={args.concurrency} "
        f"answer_delay={args.answer_delay:g}s "
        f"cpus={os.cpu_count()} loadavg={os.getloadavg()[0]:.2f}"
    )
    best_ours, cpu_ours = _report("ours (celery worker)", ours, args)
    if theirs:
        best_theirs, cpu_theirs = _report("alertmanager 0.25", theirs, args)
        if best_ours and best_theirs:
            wait = parse_duration(args.group_wait)
            print(
                f"ratio after group_wait: {(best_ours - wait) / (best_theirs - wait):.2f}x  "
                f"ratio including group_wait: {best_ours / best_theirs:.2f}x"
            )
        if cpu_ours and cpu_theirs:
            print(f"CPU ratio after group_wait: {cpu_ours / cpu_theirs:.2f}x")


def _report(name: str, runs: list[Result], args: argparse.Namespace) -> tuple[float | None, float | None]:
    """Print one side's runs; return its best time and its least CPU after group_wait (None when
    no run completed)."""
    done = [r.elapsed for r in runs if r.elapsed is not None]
    best = min(done) if done else None
    wait = parse_duration(args.group_wait)
    after = f" = group_wait + {best - wait:.2f}" if best is not None else ""
    print(
        f"{name}: {f'{best:.2f}' if best is not None else 'never'}{after} s until every notification "
        "was accepted "
        f"(runs: {', '.join(r.describe(args.groups, args.alerts) for r in runs)}; alerts handed over in "
        f"{min(r.handed_over for r in runs):.2f} s)  notifications={max(r.seen.notifications for r in runs)} "
        f"duplicates={max(r.seen.duplicates for r in runs)}  "
        f"{max(runs, key=lambda r: r.rss.total).rss.describe()}"
    )
    cpus = [r.delivered.cpu for r in runs if r.delivered.cpu is not None]
    if best is not None:
        spent = f"; CPU {min(cpus):.2f} s (runs: {', '.join(f'{c:.2f}' for c in cpus)})" if cpus else ""
        print(f"  after group_wait: {best - wait:.2f} s{spent}")
    return best, min(cpus) if cpus else None


if __name__ == "__main__":
    main()
