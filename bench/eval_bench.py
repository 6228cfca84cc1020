"""Evaluation benchmark: our tick time beside Prometheus's own evaluation of the same rules.

N alerting rules, each selecting SERIES_PER_RULE live series of a local exporter scraped by a real
Prometheus, every series above the threshold, so every tick holds N x SERIES_PER_RULE firing alerts.
The same rule file is loaded into that Prometheus; the sum of its groups' ``evaluationTime`` (from
/api/v1/rules, best of several rounds) is the reference, measured in the same run on the same data.
Then Prometheus's own rule evaluation is switched off (config reload without the rule file) so that
it does not compete for the CPU with our ticks, and it only answers our queries.

    python -m bench.eval_bench --rules 1000              # one worker
    python -m bench.eval_bench --rules 10000 --workers 2
    python -m bench.eval_bench --rules 1000 --workers 1 2  # scale-out, printed side by side

A tick is every group evaluated once through ``Evaluator.tick`` (query, state machine, templates,
Redis state saved), the groups split round-robin across ``--workers`` processes. Prints our
seconds per tick (best of ``--ticks``), Prometheus's, the ratio, the overhead per alert instance and
the peak RSS of a worker process. ``--profile`` adds a cProfile of one single-process tick.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import multiprocessing
import os
import pstats
import resource
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import redis
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import tests.support.prometheus  # noqa: E402
from alerting.config.settings import Settings  # noqa: E402
from alerting.durations import parse_duration  # noqa: E402
from alerting.ops import affinity  # noqa: E402
from alerting.ops.heap import settle_heap  # noqa: E402
from alerting.rules import load_paths  # noqa: E402
from alerting.rules.model import Group  # noqa: E402
from alerting.rules.state import StateStore  # noqa: E402
from alerting.rules.tick import Evaluator  # noqa: E402
from alerting.sources.prometheus import PrometheusSource  # noqa: E402
from tests.support.exporter import Exporter  # noqa: E402
from tests.support.net import wait_until  # noqa: E402
from tests.support.prometheus import PrometheusServer  # noqa: E402
from tests.support.routing_redis import delete_matching  # noqa: E402

SERIES_PER_RULE = 10
RULES_PER_GROUP = 100
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")


def write_rules(path: Path, rules: int, interval: str) -> None:
    """N rules in groups of RULES_PER_GROUP, each with a templated annotation, as rule packs have."""
    groups = []
    for g in range(0, rules, RULES_PER_GROUP):
        groups.append(
            {
                "name": f"bench-{g // RULES_PER_GROUP}",
                "interval": interval,
                "rules": [
                    {
                        "alert": f"Bench{i}",
                        "expr": f'bench_value{{rule="r{i}"}} > 0',
                        "labels": {"severity": "warning"},
                        "annotations": {"summary": "{{ $labels.instance }} at {{ $value }}"},
                    }
                    for i in range(g, min(g + RULES_PER_GROUP, rules))
                ],
            }
        )
    path.write_text(yaml.safe_dump({"groups": groups}))


# --- Prometheus's side --------------------------------------------------------------------------


def own_process_name(directory: Path) -> None:
    """Run Prometheus under a name of its own (a symlink), so that setup scripts on a shared machine
    that stop stray ``prometheus`` daemons by name (``pkill -x prometheus``) leave this one alone."""
    link = directory / "bench-prometheus"
    if not link.exists():
        link.symlink_to(tests.support.prometheus.PROMETHEUS)
    tests.support.prometheus.PROMETHEUS = str(link)


def prometheus_rounds(url: str, rounds: int, timeout: float, poll: float) -> list[float]:
    """Sums of the groups' ``evaluationTime`` over ``rounds`` complete rounds of evaluation.

    Every group's evaluations are recorded as they happen (polling ``lastEvaluation``); round k is the
    k-th evaluation of every group. The first one seen is skipped: it may predate the first scrape.
    """
    seen: dict[str, list[tuple[str, float]]] = {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for group in httpx.get(f"{url}/api/v1/rules", timeout=60).json()["data"]["groups"]:
            history = seen.setdefault(group["name"], [])
            last = group.get("lastEvaluation", "")
            if last > "2000" and (not history or history[-1][0] != last):
                history.append((last, float(group["evaluationTime"])))
        if seen and all(len(h) > rounds for h in seen.values()):
            return [sum(h[k][1] for h in seen.values()) for k in range(1, rounds + 1)]
        time.sleep(poll)
    raise TimeoutError(f"Prometheus did not complete {rounds} rounds of rule evaluation in {timeout:.0f}s")


def prometheus_reference(prom: PrometheusServer, series: int, interval: str, rounds: int) -> list[float]:
    """Prometheus's own evaluation of its rule file, once all ``series`` are scraped (the sums of
    ``rounds`` rounds); then its rule evaluation is switched off, so it only answers our queries."""
    wait_until(lambda: _count(prom.url) == series, timeout=300, interval=1, what="the first complete scrape")
    seconds = parse_duration(interval)
    theirs = prometheus_rounds(
        prom.url, rounds, timeout=120 + 5 * seconds * rounds, poll=min(2.0, seconds / 2)
    )
    stop_rule_evaluation(prom)
    time.sleep(min(10.0, seconds))  # let Prometheus finish whatever evaluation was in flight
    return theirs


def reference_line(theirs: list[float]) -> str:
    return (
        f"prometheus: {min(theirs):.3f} s/tick (sum of groups' evaluationTime, best of "
        f"{len(theirs)} rounds: {', '.join(f'{t:.3f}' for t in theirs)})"
    )


def stop_rule_evaluation(prom: PrometheusServer) -> None:
    """Reload Prometheus without rule files: it keeps scraping and answering queries only."""
    config_path = prom.dir / "prometheus.yml"
    config = yaml.safe_load(config_path.read_text())
    config["rule_files"] = []
    config_path.write_text(yaml.safe_dump(config))
    httpx.post(f"{prom.url}/-/reload", timeout=60).raise_for_status()
    wait_until(
        lambda: not httpx.get(f"{prom.url}/api/v1/rules", timeout=60).json()["data"]["groups"],
        timeout=60,
        what="Prometheus to drop its rules",
    )


# --- our side -----------------------------------------------------------------------------------

_groups: list[Group] = []
_evaluator: Evaluator | None = None


def _init_worker(
    rules_file: str,
    prom_url: str,
    prefix: str,
    concurrency: int,
    cpu_affinity: str = "off",
    slots: Any = None,
) -> None:
    """Once per worker process, as a real worker does at start: put on one CPU (``slots`` counts the
    processes started, as a pool's index), rules loaded, clients opened, the evaluator built (without
    a sink: the hand-off to notifications is not measured here)."""
    global _groups, _evaluator
    if slots is not None:
        with slots.get_lock():
            index, slots.value = slots.value, slots.value + 1
        affinity.pin_process(cpu_affinity, index)
    _groups = load_paths([rules_file]).groups
    store = StateStore(redis.Redis.from_url(REDIS_URL), prefix)
    source = PrometheusSource("prometheus", {"url": prom_url, "timeout": "60s"})
    _evaluator = Evaluator(store, lambda _rule: source, owner="bench", concurrency=concurrency)
    settle_heap()  # as a worker process does once it is set up


@dataclass(frozen=True)
class Share:
    """One worker's part of a tick."""

    alerts: int
    cpu: float
    rss_kib: int
    errors: int
    first_error: str


def _tick(args: tuple[list[int], float]) -> Share:
    """Evaluate this worker's share of the groups at ``at``."""
    indexes, at = args
    assert _evaluator is not None
    cpu = time.process_time()
    alerts, errors, first_error = 0, 0, ""
    for index in indexes:
        outcome = _evaluator.tick(_groups[index], at, claim=False)
        alerts += sum(len(e.alerts) for e in outcome.rules if e.rule.kind != "internal")
        for evaluated in outcome.rules:
            if evaluated.health.error:
                errors += 1
                first_error = first_error or evaluated.health.error
    return Share(alerts, time.process_time() - cpu, peak_rss_kib(), errors, first_error)


def peak_rss_kib() -> int:
    """This process's own peak resident memory (VmHWM). Not ``ru_maxrss``: Linux carries that over
    ``exec``, so a spawned worker reported the benchmark process it was forked from before
    exec-ing Python (with its exporter's series and the parsed rule file)."""
    try:
        status = Path("/proc/self/status").read_text()
        return int(status.split("VmHWM:")[1].split()[0])
    except (OSError, IndexError, ValueError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _pid(_: int) -> int:
    time.sleep(0.01)  # long enough that one process cannot take every task before the others start
    return os.getpid()


@dataclass(frozen=True)
class Run:
    workers: int
    ticks: list[float]
    cpu: list[float]
    alerts: list[int]  # per tick
    errors: list[int]  # rules that failed, per tick
    first_error: str
    rss_kib: int

    @property
    def best(self) -> float:
        return min(self.ticks)


def timed_ticks(
    workers: int,
    initializer: Callable[..., None],
    initargs: tuple[Any, ...],
    tick: Callable[[tuple[list[int], float]], Any],
    groups: int,
    ticks: int,
) -> list[tuple[float, list[Any]]]:
    """``ticks`` ticks, the groups split round-robin across ``workers`` processes: per tick, its
    wall time and each process's result of ``tick((its group indexes, at))``.

    The processes are spawned, not forked: a forked child would count the benchmark's own memory
    (the exporter's series, the parsed rule file) as its resident set, where a worker's pool process
    forks from a Celery main process holding neither."""
    shares = [list(range(w, groups, workers)) for w in range(workers)]
    out: list[tuple[float, list[Any]]] = []
    with multiprocessing.get_context("spawn").Pool(
        workers, initializer=initializer, initargs=initargs
    ) as pool:
        # Spawned processes take a while to start: time ticks only once every one is up.
        for _ in range(100):
            if len(set(pool.map(_pid, range(4 * workers), chunksize=1))) == workers:
                break
        for _ in range(ticks):
            at = time.time()
            started = time.perf_counter()
            results = pool.map(tick, [(share, at) for share in shares], chunksize=1)
            out.append((time.perf_counter() - started, results))
    return out


def run_ours(
    rules_file: Path,
    prom_url: str,
    workers: int,
    ticks: int,
    concurrency: int,
    groups: int,
    cpu_affinity: str,
) -> Run:
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    times, cpus, alerts, errors, first_error, rss = [], [], [], [], "", 0
    slots = multiprocessing.get_context("spawn").Value("i", 0)
    try:
        initargs = (str(rules_file), prom_url, prefix, concurrency, cpu_affinity, slots)
        for seconds, results in timed_ticks(workers, _init_worker, initargs, _tick, groups, ticks):
            times.append(seconds)
            cpus.append(sum(r.cpu for r in results))
            alerts.append(sum(r.alerts for r in results))
            errors.append(sum(r.errors for r in results))
            first_error = first_error or next((r.first_error for r in results if r.first_error), "")
            rss = max(rss, *(r.rss_kib for r in results))
    finally:
        _cleanup(prefix)
    return Run(workers, times, cpus, alerts, errors, first_error, rss)


def profile_tick(rules_file: Path, prom_url: str, concurrency: int, top: int = 30) -> str:
    """cProfile of one single-process tick after a warm-up tick (the main thread only: the query
    threads' HTTP work shows up as time waiting for their results)."""
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    try:
        _init_worker(str(rules_file), prom_url, prefix, concurrency)
        everything = list(range(len(_groups)))
        _tick((everything, time.time()))
        profiler = cProfile.Profile()
        profiler.enable()
        _tick((everything, time.time()))
        profiler.disable()
    finally:
        if _evaluator is not None:
            _evaluator.close()
        _cleanup(prefix)
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("cumulative").print_stats(top)
    stats.sort_stats("tottime").print_stats(top)
    return out.getvalue()


def _cleanup(prefix: str) -> None:
    delete_matching(redis.Redis.from_url(REDIS_URL), f"{prefix}:*")


# --- the run ------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rules", type=int, default=1000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1], help="one or more worker counts")
    parser.add_argument("--ticks", type=int, default=3, help="our ticks per worker count (best is reported)")
    parser.add_argument("--rounds", type=int, default=3, help="Prometheus evaluation rounds (best is used)")
    parser.add_argument("--concurrency", type=int, default=8, help="queries of a group in flight at once")
    parser.add_argument(
        "--interval", default="15s", help="Prometheus's scrape and rule evaluation interval (a duration)"
    )
    parser.add_argument("--profile", action="store_true", help="also print a cProfile of one tick")
    parser.add_argument(
        "--affinity",
        choices=affinity.CHOICES,
        default=Settings.cpu_affinity,
        help="each process's threads on one CPU, as the worker's pool processes (ALERTING_CPU_AFFINITY)",
    )
    args = parser.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="bench-"))
    rules_file = tmp / "rules.yml"
    write_rules(rules_file, args.rules, args.interval)
    own_process_name(tmp)
    n_groups = len(load_paths([rules_file]).groups)
    series = args.rules * SERIES_PER_RULE
    started = time.monotonic()
    with Exporter() as exporter:
        exporter.values.update(
            {
                f'bench_value{{rule="r{i}",instance="i{k}"}}': 1.0
                for i in range(args.rules)
                for k in range(SERIES_PER_RULE)
            }
        )
        with PrometheusServer(
            scrape_targets=[exporter.target],
            rule_files=[rules_file],
            scrape_interval=args.interval,
            evaluation_interval=args.interval,
        ) as prom:
            theirs = prometheus_reference(prom, series, args.interval, args.rounds)
            runs = [
                run_ours(rules_file, prom.url, w, args.ticks, args.concurrency, n_groups, args.affinity)
                for w in args.workers
            ]
            profile = profile_tick(rules_file, prom.url, args.concurrency) if args.profile else ""
    reference = min(theirs)
    expected = args.rules * SERIES_PER_RULE
    print(
        f"rules={args.rules} series={series} groups={n_groups} alerts_per_tick={expected} "
        f"query_concurrency={args.concurrency} affinity={args.affinity} cpus={os.cpu_count()} "
        f"loadavg={os.getloadavg()[0]:.2f} "
        f"wall={time.monotonic() - started:.0f}s"
    )
    print(reference_line(theirs))
    for run in runs:
        print(
            f"ours, {run.workers} worker(s): {run.best:.3f} s/tick (best of {len(run.ticks)}: "
            f"{', '.join(f'{t:.3f}' for t in run.ticks)}; CPU {min(run.cpu):.3f} s)  "
            f"ratio {run.best / reference:.2f}x  per alert {1e6 * run.best / expected:.1f} us  "
            f"peak RSS {run.rss_kib / 1024:.0f} MiB/process"
        )
        if any(a != expected for a in run.alerts) or any(run.errors):
            print(
                f"  INVALID: alerts per tick {run.alerts} (expected {expected}), failed rules per tick "
                f"{run.errors}; first error: {run.first_error}"
            )
    if len(runs) > 1:
        base = runs[0].best
        print("scale-out: " + "  ".join(f"{r.workers} worker(s) {base / r.best:.2f}x" for r in runs))
    if profile:
        print(profile)


def _count(url: str) -> int:
    result: list[Any] = httpx.get(
        f"{url}/api/v1/query", params={"query": "count(bench_value)"}, timeout=60
    ).json()["data"]["result"]
    return int(result[0]["value"][1]) if result else 0


if __name__ == "__main__":
    main()
