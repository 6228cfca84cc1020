"""Evaluation benchmark: our tick time beside Prometheus's own evaluation of the same rules.

N alerting rules over N x SERIES_PER_RULE live series (a local exporter scraped by a real
Prometheus). The same rule file is loaded into that Prometheus; its groups' ``evaluationTime``
(from /api/v1/rules) is the reference, measured in the same run on the same data.

    python -m bench.eval_bench --rules 1000            # one worker
    python -m bench.eval_bench --rules 10000 --workers 2

Prints our seconds per tick, Prometheus's, the ratio, per-alert overhead and peak RSS.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import redis
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from alerting.engine import evaluate_group  # noqa: E402
from alerting.rules import load_paths  # noqa: E402
from alerting.sources.prometheus import PrometheusSource  # noqa: E402
from alerting.state import StateStore  # noqa: E402
from tests.support.exporter import Exporter  # noqa: E402
from tests.support.net import wait_until  # noqa: E402
from tests.support.prometheus import PrometheusServer  # noqa: E402

SERIES_PER_RULE = 10
RULES_PER_GROUP = 100


def write_rules(path: Path, rules: int) -> None:
    groups = []
    for g in range(0, rules, RULES_PER_GROUP):
        groups.append(
            {
                "name": f"bench-{g // RULES_PER_GROUP}",
                "interval": "1m",
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


def prometheus_eval_seconds(url: str) -> float:
    groups = httpx.get(f"{url}/api/v1/rules", timeout=30).json()["data"]["groups"]
    return sum(g["evaluationTime"] for g in groups)


def _worker(args: tuple[str, str, str, list[int], float]) -> tuple[float, int, int]:
    rules_file, prom_url, prefix, indexes, at = args
    groups = load_paths([rules_file]).groups
    store = StateStore(
        redis.Redis.from_url(os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")), prefix
    )
    source = PrometheusSource("prometheus", {"url": prom_url, "timeout": "60s"})
    started, alerts = time.perf_counter(), 0
    for index in indexes:
        outcome = evaluate_group(
            store, groups[index], at, lambda _r: source, owner="bench", concurrency=8, claim=False
        )
        alerts += sum(len(e.alerts) for e in outcome.rules)
    elapsed = time.perf_counter() - started
    return elapsed, alerts, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rules", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--ticks", type=int, default=3)
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench-"))
    rules_file = tmp / "rules.yml"
    write_rules(rules_file, args.rules)
    n_groups = len(load_paths([rules_file]).groups)
    series = args.rules * SERIES_PER_RULE
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    client = redis.Redis.from_url(os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"))
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
            scrape_interval="15s",
            evaluation_interval="15s",
        ) as prom:
            wait_until(
                lambda: httpx.get(f"{prom.url}/api/v1/query", params={"query": "count(bench_value)"}).json()[
                    "data"
                ]["result"],
                timeout=300,
                what="first scrape",
            )
            wait_until(
                lambda: all(
                    g["lastEvaluation"] > "2000" and g["evaluationTime"] > 0
                    for g in httpx.get(f"{prom.url}/api/v1/rules").json()["data"]["groups"]
                ),
                timeout=300,
                what="rule evaluation",
            )
            ours, theirs, alerts, rss = [], [], 0, 0
            shares = [list(range(w, n_groups, args.workers)) for w in range(args.workers)]
            with multiprocessing.get_context("fork").Pool(args.workers) as pool:
                for _tick in range(args.ticks):
                    at = time.time()
                    started = time.perf_counter()
                    results = pool.map(
                        _worker, [(str(rules_file), prom.url, prefix, share, at) for share in shares]
                    )
                    ours.append(time.perf_counter() - started)
                    alerts = sum(r[1] for r in results)
                    rss = max(rss, *(r[2] for r in results))
                    theirs.append(prometheus_eval_seconds(prom.url))
                    time.sleep(1)
    for key in client.scan_iter(match=f"{prefix}:*", count=10000):
        client.delete(key)
    ours_s, theirs_s = min(ours), min(theirs)
    print(
        f"rules={args.rules} series={series} groups={n_groups} workers={args.workers} "
        f"alerts_per_tick={alerts}"
    )
    print(f"ours:       {ours_s:.3f} s/tick (best of {args.ticks}: {', '.join(f'{t:.3f}' for t in ours)})")
    print(f"prometheus: {theirs_s:.3f} s/tick (sum of groups' evaluationTime, best of {args.ticks})")
    print(f"ratio:      {ours_s / theirs_s:.2f}x")
    print(f"per alert:  {1e6 * ours_s / max(alerts, 1):.1f} us")
    print(f"peak RSS:   {rss / 1024:.0f} MiB per worker process")


if __name__ == "__main__":
    main()
