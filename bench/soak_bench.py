"""Soak benchmark: the real worker for N minutes under churn, watching what grows and what is lost.

A real ``celery -A alerting worker -B`` evaluates one rule group every 5 s against a stand-in
Prometheus whose thousands of series flap (each one firing and clearing in turn, at its own phase),
while silences on random groups come and go, and the webhook receiver answers 429 or 5xx a third
of the time. Redis (state store and broker) is a private server, so its figures are the worker's.

    python -m bench.soak_bench --minutes 30 --alerts 3000 --groups 50

Prints at start, middle and end: Redis keys and memory, the worker's resident memory (every
process of it), and notifications accepted per minute. At the end the flapping stops, silences are
expired and every series fires; once each group's last accepted notification shows all its alerts
firing (or a bound passes) it prints the totals: notifications delivered and refused, duplicates
(a notification accepted twice: the same Idempotency-Key) and lost alerts (missing from their
group's last notification).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from alerting import redisconn  # noqa: E402
from alerting.durations import parse_duration  # noqa: E402
from alerting.notify.store import NotifyStore  # noqa: E402
from alerting.routing.matchers import parse_matcher  # noqa: E402
from alerting.routing.silences import ACTIVE, expire, new_silence  # noqa: E402
from tests.support.httpfake import FakeHTTPServer, Reply, Request  # noqa: E402
from tests.support.promapi import PromAPI  # noqa: E402
from tests.support.redis_server import RedisServer  # noqa: E402
from tests.support.worker import Worker, worker_env  # noqa: E402

QUERY = "soak_metric > 0"
PREFIX = "soak"


class Flapper:
    """Series ``i`` fires for ``period`` seconds, then clears for as long, shifted by its own phase."""

    def __init__(self, prom: PromAPI, alerts: int, groups: int, period: float) -> None:
        self.prom, self.alerts, self.groups, self.period = prom, alerts, groups, period
        self.phases = [random.uniform(0, 2 * period) for _ in range(alerts)]
        self.steady = False
        self.stop = threading.Event()

    def labels(self, i: int) -> dict[str, str]:
        return {"instance": f"host-{i}", "shard": str(i % self.groups)}

    def update(self) -> None:
        now = time.time()
        self.prom.vectors[QUERY] = [
            (self.labels(i), 1.0)
            for i in range(self.alerts)
            if self.steady or int((now + self.phases[i]) / self.period) % 2 == 0
        ]

    def run(self) -> None:
        while not self.stop.wait(1.0):
            self.update()


@dataclass
class Receiver:
    """A webhook that refuses a third of the requests (429 with Retry-After, or 500/502/503) and
    remembers, of what it accepted, only what the figures need."""

    failure_rate: float
    accepted_at: list[float] = field(default_factory=list)
    keys: Counter[str] = field(default_factory=Counter)
    refused: Counter[int] = field(default_factory=Counter)
    last: dict[str, set[str]] = field(default_factory=dict)  # group -> instances firing in its last
    lock: threading.Lock = field(default_factory=threading.Lock)

    def handle(self, request: Request) -> Reply:
        if random.random() < self.failure_rate:
            status = random.choice((429, 500, 502, 503))
            with self.lock:
                self.refused[status] += 1
            headers = {"Retry-After": "1"} if status == 429 else {}
            return Reply(status, "try again", headers)
        body = request.json()
        group = body.get("groupLabels", {}).get("shard", "")
        firing = {a["labels"]["instance"] for a in body["alerts"] if a["status"] == "firing"}
        with self.lock:
            self.accepted_at.append(time.time())
            self.keys[request.headers.get("idempotency-key", "")] += 1
            self.last[group] = firing
        return Reply(200, "ok")

    def per_minute(self, now: float) -> int:
        with self.lock:
            return sum(1 for t in self.accepted_at if now - 60 <= t <= now)

    def duplicates(self) -> int:
        with self.lock:
            return sum(n - 1 for n in self.keys.values() if n > 1)


class SilenceChurn:
    """Every ``every`` seconds a silence on a random group, for three times that; now and then one
    is expired early."""

    def __init__(self, store: NotifyStore, groups: int, every: float) -> None:
        self.store, self.groups, self.every = store, groups, every
        self.stop = threading.Event()
        self.added = self.expired = 0

    def run(self) -> None:
        while not self.stop.wait(self.every):
            now = time.time()
            try:
                shard = random.randrange(self.groups)
                matchers = [parse_matcher("alertname=SoakFlap"), parse_matcher(f'shard="{shard}"')]
                self.store.put_silence(new_silence(matchers, now, now + 3 * self.every, "soak", "churn", now))
                self.added += 1
                active = [s for s in self.store.silences(now) if s.state(now) == ACTIVE]
                if len(active) > 2 and random.random() < 0.5:
                    self.store.put_silence(expire(random.choice(active), now))
                    self.expired += 1
            except Exception as exc:  # a soak keeps going; the figures will show the trouble
                print(f"silence churn: {exc}", file=sys.stderr)

    def expire_all(self) -> None:
        now = time.time()
        for silence in self.store.silences(now):
            if silence.state(now) == ACTIVE:
                self.store.put_silence(expire(silence, now))


def rss_mib(root_pid: int) -> float:
    """Resident memory of ``root_pid``'s process group (the worker and its pool), in MiB."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            pgid = int(stat.rsplit(")", 1)[1].split()[2])
            if pgid != root_pid:
                continue
            for line in (entry / "status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except (OSError, ValueError, IndexError):
            continue
    return total / 1024


def write_files(directory: Path, hook_url: str, interval: str) -> tuple[Path, Path]:
    rules = directory / "rules" / "soak.yml"
    rules.parent.mkdir(parents=True)
    rule = {"alert": "SoakFlap", "expr": QUERY, "labels": {"severity": "warning"}}
    rules.write_text(yaml.safe_dump({"groups": [{"name": "soak", "interval": interval, "rules": [rule]}]}))
    config = directory / "alerting.yml"
    route = {
        "receiver": "hook",
        "group_by": ["alertname", "shard"],
        "group_wait": "1s",
        "group_interval": interval,
        "repeat_interval": "1h",
    }
    hook = {"url": hook_url, "send_resolved": True}
    config.write_text(
        yaml.safe_dump({"route": route, "receivers": [{"name": "hook", "webhook_configs": [hook]}]})
    )
    return rules, config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--alerts", type=int, default=3000)
    parser.add_argument("--groups", type=int, default=50)
    parser.add_argument("--interval", default="5s", help="evaluation interval and group_interval")
    parser.add_argument("--flap-period", default="60s", help="how long a series fires, then clears")
    parser.add_argument("--silence-every", default="10s")
    parser.add_argument("--failure-rate", type=float, default=1 / 3)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--converge-timeout", default="120s")
    args = parser.parse_args(argv)
    duration = args.minutes * 60
    random.seed(1)

    receiver = Receiver(args.failure_rate)
    with (
        tempfile.TemporaryDirectory(prefix="soak-") as tmp,
        RedisServer(appendonly=False) as redis_server,
        PromAPI() as prom,
        FakeHTTPServer(receiver.handle) as hook,
    ):
        directory = Path(tmp)
        rules, config = write_files(directory, f"{hook.url}/hook", args.interval)
        flapper = Flapper(prom, args.alerts, args.groups, parse_duration(args.flap_period))
        flapper.update()
        env = worker_env(
            directory,
            rules=rules,
            config=config,
            prefix=PREFIX,
            redis_url=redis_server.url,
            prometheus_url=prom.url,
            CELERY_BROKER_URL=redis_server.url,
            ALERTING_NOTIFY_BACKOFF_CAP="5",
            LOG_LEVEL="WARNING",
        )
        client = redisconn.connect(redis_server.url)
        churn = SilenceChurn(NotifyStore(client, PREFIX), args.groups, parse_duration(args.silence_every))
        print(
            f"soak: {args.minutes:g} min, {args.alerts} flapping alerts (period {args.flap_period}) in "
            f"{args.groups} groups, interval {args.interval}, a silence every {args.silence_every}, "
            f"receiver refuses {args.failure_rate:.0%}"
        )
        print(
            f"{'when':<8}{'elapsed':>9}{'redis_keys':>12}{'redis_memory':>14}{'worker_rss':>12}{'notif/min':>11}"
        )
        worker = Worker(env, concurrency=args.concurrency).start()
        threads = [threading.Thread(target=t.run, daemon=True) for t in (flapper, churn)]
        try:
            # A worker that never evaluates would make every figure below meaningless.
            deadline = time.time() + 120
            while not receiver.accepted_at and time.time() < deadline:
                time.sleep(0.5)
            if not receiver.accepted_at:
                print("no notification within 120 s: the worker is not working", file=sys.stderr)
                return 1
            for thread in threads:
                thread.start()
            started = time.time()

            def report(when: str) -> None:
                now = time.time()
                info = client.info("memory")
                print(
                    f"{when:<8}{_clock(now - started):>9}{client.dbsize():>12}"
                    f"{int(info['used_memory']) / 2**20:>10.1f} MiB{rss_mib(worker.process.pid):>8.1f} MiB"  # type: ignore[union-attr]
                    f"{receiver.per_minute(now):>11}",
                    flush=True,
                )
                hook.requests.clear()  # the fake keeps every request; the figures need none of them

            report("start")
            for when, at in (("middle", duration / 2), ("end", duration)):
                while time.time() - started < at:
                    time.sleep(min(5.0, max(0.1, at - (time.time() - started))))
                    hook.requests.clear()
                report(when)

            # Converge: no more flapping, no silences, everything firing.
            churn.stop.set()
            flapper.steady = True
            flapper.stop.set()
            for thread in threads:
                thread.join()
            churn.expire_all()
            flapper.update()
            expected = {str(g): set() for g in range(args.groups)}  # type: dict[str, set[str]]
            for i in range(args.alerts):
                labels = flapper.labels(i)
                expected[labels["shard"]].add(labels["instance"])
            converge_started = time.time()
            limit = parse_duration(args.converge_timeout)

            def missing() -> int:
                with receiver.lock:
                    return sum(len(want - receiver.last.get(g, set())) for g, want in expected.items())

            while missing() and time.time() - converge_started < limit:
                time.sleep(0.5)
            converged = time.time() - converge_started
            lost = missing()
            refused = sum(receiver.refused.values())
            by_kind = ", ".join(f"{status}: {n}" for status, n in sorted(receiver.refused.items()))
            print(
                f"delivered={len(receiver.accepted_at)} refused={refused} ({by_kind}) "
                f"silences added={churn.added} expired early={churn.expired}"
            )
            print(
                f"duplicates={receiver.duplicates()} lost={lost} "
                f"(converged {'in' if not lost else 'not within'} {converged:.1f} s)"
            )
            errors = [line for line in worker.lines if '"level": "ERROR"' in line or "CRITICAL" in line]
            if errors:
                print(f"worker errors: {len(errors)}; first: {json.loads(errors[0]).get('msg', '')[:200]}")
            return 0 if not lost and not receiver.duplicates() else 2
        finally:
            churn.stop.set()
            flapper.stop.set()
            worker.stop()
            client.close()


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}:{secs:02d}"


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    raise SystemExit(main())
