"""Recording-rule benchmark: our tick, written and accepted by remote write, beside Prometheus's own
evaluation of the same rules.

N recording rules in groups of RULES_PER_GROUP, rule I being ``sum by (series, rule)
(bench_value{rule="rI"})`` over SERIES_PER_RULE series of a local exporter (a ``series`` label
apiece: an exported ``instance`` would be renamed by the scrape), so each rule records
SERIES_PER_RULE series and a tick N x SERIES_PER_RULE samples. A real Prometheus scrapes the exporter
and evaluates the same file: the sum of its groups' ``evaluationTime`` (best of ``--rounds``) is the
reference, measured in the same run on the same data. Its rule evaluation is then switched off and it
only answers our queries.

    python -m bench.record_bench --rules 1000 --workers 1 2
    python -m bench.record_bench --rules 100               # the smallest case, well under a minute

A tick is every group evaluated once through ``Evaluator.tick`` (query, record, Redis state saved),
the groups split round-robin across ``--workers`` processes, each with a real ``RemoteWriter``
writing to a second Prometheus started with ``--web.enable-remote-write-receiver``; a process's tick
ends when its writer has flushed what the tick recorded, so what is timed is written and accepted.
After the run the second Prometheus must hold every recorded series (else INVALID is printed).
Prints our seconds per tick (best of ``--ticks``), Prometheus's, the ratio, the cost per recorded
sample and the peak RSS of a worker process.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import redis
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from alerting.ops import metrics  # noqa: E402
from alerting.remotewrite import RemoteWriter, parse_remote_write  # noqa: E402
from alerting.rules import load_paths  # noqa: E402
from alerting.rules.model import Group  # noqa: E402
from alerting.rules.state import StateStore  # noqa: E402
from alerting.rules.tick import Evaluator  # noqa: E402
from alerting.sources.prometheus import PrometheusSource  # noqa: E402
from bench.eval_bench import (  # noqa: E402
    REDIS_URL,
    RULES_PER_GROUP,
    SERIES_PER_RULE,
    _cleanup,
    own_process_name,
    peak_rss_kib,
    prometheus_reference,
    reference_line,
    timed_ticks,
)
from tests.support.exporter import Exporter  # noqa: E402
from tests.support.prometheus import PrometheusServer  # noqa: E402

RECORD = "rec:bench_value:sum"
REMOTE = "bench"
FLUSH_TIMEOUT = 300.0


def write_rules(path: Path, rules: int, interval: str) -> None:
    """N recording rules in groups of RULES_PER_GROUP, each recording SERIES_PER_RULE series."""
    groups = []
    for g in range(0, rules, RULES_PER_GROUP):
        groups.append(
            {
                "name": f"record-{g // RULES_PER_GROUP}",
                "interval": interval,
                "rules": [
                    {"record": RECORD, "expr": f'sum by (series, rule) (bench_value{{rule="r{i}"}})'}
                    for i in range(g, min(g + RULES_PER_GROUP, rules))
                ],
            }
        )
    path.write_text(yaml.safe_dump({"groups": groups}))


# --- our side -----------------------------------------------------------------------------------

_groups: list[Group] = []
_evaluator: Evaluator | None = None
_writer: RemoteWriter | None = None


def _init_worker(
    rules_file: str, prom_url: str, write_url: str, prefix: str, concurrency: int, queue: dict[str, Any]
) -> None:
    """Once per worker process, as a real worker does at start: rules loaded, clients opened, the
    writer and the evaluator built (without a sink: nothing here notifies)."""
    global _groups, _evaluator, _writer
    _groups = load_paths([rules_file]).groups
    store = StateStore(redis.Redis.from_url(REDIS_URL), prefix)
    source = PrometheusSource("prometheus", {"url": prom_url, "timeout": "60s"})
    _writer = RemoteWriter(
        parse_remote_write([{"url": write_url, "name": REMOTE, "queue_config": queue}], None)
    )
    _evaluator = Evaluator(
        store, lambda _rule: source, owner="bench", concurrency=concurrency, writer=_writer
    )


@dataclass(frozen=True)
class Share:
    """One worker's part of a tick."""

    recorded: int  # samples the tick's rules recorded
    sent: int  # samples the target accepted during the tick
    dropped: int
    flushed: bool
    cpu: float
    rss_kib: int
    errors: int
    first_error: str


def _sent_and_dropped() -> tuple[float, float]:
    """This process's accepted and dropped samples so far (a spawned process has its own metrics)."""
    snapshot = metrics.snapshot(metrics.registry())
    key = 'alerting_remote_write_samples_total{outcome="%s",remote="' + REMOTE + '"}'
    return snapshot.get(key % "sent", 0.0), snapshot.get(key % "dropped", 0.0)


def _tick(args: tuple[list[int], float]) -> Share:
    """Evaluate this worker's share of the groups at ``at`` and flush what they recorded."""
    indexes, at = args
    assert _evaluator is not None and _writer is not None
    sent, dropped = _sent_and_dropped()
    cpu = time.process_time()
    recorded, errors, first_error = 0, 0, ""
    for index in indexes:
        outcome = _evaluator.tick(_groups[index], at, claim=False)
        for item in outcome.recorded:
            recorded += len(item.series)
            if item.health.error:
                errors += 1
                first_error = first_error or item.health.error
    flushed = _writer.flush(FLUSH_TIMEOUT)
    cpu = time.process_time() - cpu
    sent_after, dropped_after = _sent_and_dropped()
    usage = peak_rss_kib()
    return Share(
        recorded,
        round(sent_after - sent),
        round(dropped_after - dropped),
        flushed,
        cpu,
        usage,
        errors,
        first_error,
    )


@dataclass(frozen=True)
class Run:
    workers: int
    ticks: list[float]
    cpu: list[float]
    recorded: list[int]  # per tick
    sent: list[int]  # per tick
    problems: list[str]
    rss_kib: int

    @property
    def best(self) -> float:
        return min(self.ticks)


def run_ours(
    rules_file: Path,
    prom_url: str,
    write_url: str,
    workers: int,
    ticks: int,
    concurrency: int,
    queue: dict[str, Any],
    groups: int,
) -> Run:
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    times: list[float] = []
    cpus: list[float] = []
    recorded: list[int] = []
    sent: list[int] = []
    problems: list[str] = []
    rss = 0
    try:
        initargs = (str(rules_file), prom_url, write_url, prefix, concurrency, queue)
        for seconds, results in timed_ticks(workers, _init_worker, initargs, _tick, groups, ticks):
            times.append(seconds)
            cpus.append(sum(r.cpu for r in results))
            recorded.append(sum(r.recorded for r in results))
            sent.append(sum(r.sent for r in results))
            rss = max(rss, *(r.rss_kib for r in results))
            for r in results:
                if r.errors:
                    problems.append(f"{r.errors} rule(s) failed; first error: {r.first_error}")
                if r.dropped or not r.flushed:
                    problems.append(f"{r.dropped} sample(s) dropped, flushed={r.flushed}")
    finally:
        _cleanup(prefix)
    return Run(workers, times, cpus, recorded, sent, problems, rss)


# --- the run ------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rules", type=int, default=1000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1], help="one or more worker counts")
    parser.add_argument("--ticks", type=int, default=3, help="our ticks per worker count (best is reported)")
    parser.add_argument("--rounds", type=int, default=3, help="Prometheus evaluation rounds (best is used)")
    parser.add_argument("--concurrency", type=int, default=8, help="queries of a group in flight at once")
    parser.add_argument(
        "--interval",
        default="5s",
        help="Prometheus's scrape and rule evaluation interval (5s: --rules 100 runs in under a minute)",
    )
    parser.add_argument(
        "--max-samples-per-send", type=int, default=500, help="remote write batch size (Prometheus's default)"
    )
    args = parser.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="bench-"))
    rules_file = tmp / "rules.yml"
    write_rules(rules_file, args.rules, args.interval)
    own_process_name(tmp)
    n_groups = len(load_paths([rules_file]).groups)
    series = args.rules * SERIES_PER_RULE
    expected = series  # recorded samples per tick: one per series
    # Room for a whole tick's samples: what is measured is writing them, not dropping them.
    queue = {"capacity": max(2500, 2 * expected), "max_samples_per_send": args.max_samples_per_send}
    started = time.monotonic()
    with Exporter() as exporter:
        exporter.values.update(
            {
                f'bench_value{{rule="r{i}",series="s{k}"}}': 1.0
                for i in range(args.rules)
                for k in range(SERIES_PER_RULE)
            }
        )
        with (
            PrometheusServer(
                scrape_targets=[exporter.target],
                rule_files=[rules_file],
                scrape_interval=args.interval,
                evaluation_interval=args.interval,
            ) as prom,
            PrometheusServer(remote_write_receiver=True) as target,
        ):
            theirs = prometheus_reference(prom, series, args.interval, args.rounds)
            runs = [
                run_ours(
                    rules_file, prom.url, target.write_url, w, args.ticks, args.concurrency, queue, n_groups
                )
                for w in args.workers
            ]
            stored = _stored(target.url)
    reference = min(theirs)
    print(
        f"rules={args.rules} series={series} groups={n_groups} samples_per_tick={expected} "
        f"query_concurrency={args.concurrency} max_samples_per_send={args.max_samples_per_send} "
        f"cpus={os.cpu_count()} loadavg={os.getloadavg()[0]:.2f} wall={time.monotonic() - started:.0f}s"
    )
    print(reference_line(theirs))
    for run in runs:
        print(
            f"ours, {run.workers} worker(s): {run.best:.3f} s/tick written (best of {len(run.ticks)}: "
            f"{', '.join(f'{t:.3f}' for t in run.ticks)}; CPU {min(run.cpu):.3f} s)  "
            f"ratio {run.best / reference:.2f}x  per recorded sample {1e6 * run.best / expected:.1f} us  "
            f"peak RSS {run.rss_kib / 1024:.0f} MiB/process"
        )
        if any(r != expected for r in run.recorded) or any(s != expected for s in run.sent) or run.problems:
            print(
                f"  INVALID: recorded per tick {run.recorded}, accepted per tick {run.sent} (expected "
                f"{expected}); {'; '.join(run.problems[:3])}"
            )
    print(f"written: {stored} recorded series in the remote-write target (expected {expected})")
    if stored != expected:
        print(f"  INVALID: the target holds {stored} recorded series, not {expected}")


def _stored(url: str) -> int:
    """Recorded series the remote-write target holds (any sample in the last hour)."""
    result: list[Any] = httpx.get(
        f"{url}/api/v1/query",
        params={"query": 'count(last_over_time({__name__=~"rec:.*"}[1h]))'},
        timeout=60,
    ).json()["data"]["result"]
    return int(result[0]["value"][1]) if result else 0


if __name__ == "__main__":
    main()
