"""Notification CPU: what one worker process spends to flush and deliver K alerts in G groups.

One process's flusher (the worker's own ``Flusher``, with its delivery threads, outbox, locks and
notification log, against real Redis) flushes every group at once and delivers each notification
to the Slack and PagerDuty fakes of ``notify_bench``, which run in another process so that the CPU
counted (``os.times`` of this process, from the flush until the outbox is empty) is the
pipeline's alone. No reference: ``notify_bench`` compares with Alertmanager; this one says where a
change moves our CPU per notification, with less noise than the end-to-end time.

    python -m bench.notify_cpu --alerts 10000 --groups 100 --rounds 4
"""

from __future__ import annotations

import argparse
import dataclasses
import multiprocessing
import os
import sys
import tempfile
import time
import uuid
from multiprocessing.connection import Connection
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from alerting.config.settings import Settings  # noqa: E402
from alerting.notify.pipeline import ingest  # noqa: E402
from alerting.ops import affinity  # noqa: E402
from alerting.ops.heap import settle_heap  # noqa: E402
from alerting.ops.logs import configure_logging  # noqa: E402
from alerting.worker.runtime import Runtime  # noqa: E402
from bench.notify_bench import REDIS_URL, evaluated_alert, routing_file  # noqa: E402
from tests.support.fakes import PagerDutyFake, SlackFake, make_ca  # noqa: E402
from tests.support.routing_redis import delete_matching  # noqa: E402


def _serve(workdir: Path, conn: Connection) -> None:
    """The fakes, in a process of their own, until told to stop."""
    ca = make_ca(workdir)
    slack, pagerduty = SlackFake(ca.server_context), PagerDutyFake(ca.server_context)
    with slack.server, pagerduty.server:
        routing_file(workdir / "alerting.yml", slack, pagerduty, ca, "1s")
        conn.send("ready")
        conn.recv()


def _round(base: Settings, alerts: int, groups: int, client: redis.Redis) -> tuple[int, float, float, float]:
    """One flush of every group: (notifications logged, seconds, user and system CPU seconds of
    this process)."""
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    runtime = Runtime(dataclasses.replace(base, prefix=prefix))
    try:
        config = runtime.routing()
        flusher = runtime.flusher()
        flusher._warm()  # as the worker does when its flusher starts
        settle_heap()  # as the worker does once its process is set up
        now = time.time()
        batch = [evaluated_alert(i, alerts, groups, now) for i in range(alerts)]
        for start in range(0, alerts, 100):
            ingest(client, prefix, config, batch[start : start + 100], now)
        started, before = time.perf_counter(), os.times()
        flusher.flush(now + 2)  # every group's timer has fired
        while flusher._held or flusher.store.outbox_next() is not None:
            time.sleep(0.005)
        elapsed, after = time.perf_counter() - started, os.times()
        sent = sum(1 for _ in client.scan_iter(match=f"{prefix}:notify:nflog:*", count=10000))
        flusher.stop()
        return sent, elapsed, after.user - before.user, after.system - before.system
    finally:
        runtime.close()
        delete_matching(client, f"{prefix}:*")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=10000)
    parser.add_argument("--groups", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=4, help="flushes measured, each on a fresh prefix")
    parser.add_argument(
        "--affinity",
        choices=affinity.CHOICES,
        default=Settings.cpu_affinity,
        help="this process's threads on one CPU, as the worker's pool processes (ALERTING_CPU_AFFINITY)",
    )
    args = parser.parse_args(argv)

    configure_logging("WARNING", "console")
    workdir = Path(tempfile.mkdtemp(prefix="notify-cpu-"))
    here, there = multiprocessing.Pipe()
    fakes = multiprocessing.get_context("spawn").Process(target=_serve, args=(workdir, there))
    fakes.start()
    try:
        here.recv()
        # On one CPU, as a pool process of the worker (the fakes' process, started before, is not).
        cpu = affinity.pin_process(args.affinity, 1)
        base = Settings(
            redis_url=REDIS_URL,
            rules=(str(workdir / "no-rules"),),
            config_path=str(workdir / "alerting.yml"),
            history_url=f"sqlite:///{workdir / 'history.db'}",
        )
        client = redis.Redis.from_url(REDIS_URL)
        print(
            f"alerts={args.alerts} groups={args.groups} notifications_expected={2 * args.groups} "
            f"cpus={os.cpu_count()} loadavg={os.getloadavg()[0]:.2f} "
            f"pinned={'no' if cpu is None else f'CPU {cpu}'}"
        )
        for _ in range(args.rounds):
            sent, elapsed, user, system = _round(base, args.alerts, args.groups, client)
            cpu = user + system
            print(
                f"flush and delivery of {sent} notifications: {elapsed:.3f} s, CPU {cpu:.3f} s (user "
                f"{user:.3f}, system {system:.3f}) = {1000 * cpu / max(sent, 1):.2f} ms per notification"
            )
    finally:
        here.send("stop")
        fakes.join(10)


if __name__ == "__main__":
    main()
