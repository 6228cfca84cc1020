"""The benchmark commands of the README run end to end (smoke runs on small inputs, no timing)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("answer_delay", ["0", "0.3"], ids=["prompt receivers", "receivers far away"])
def test_notify_bench_delivers_every_notification_without_duplicates(answer_delay: str) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.notify_bench",
            "--alerts",
            "20",
            "--groups",
            "2",
            "--repeat",
            "1",
            "--group-wait",
            "1s",
            "--answer-delay",
            answer_delay,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    lines = result.stdout.splitlines()
    assert f"answer_delay={float(answer_delay):g}s" in lines[0], lines[0]
    ours = next(line for line in lines if line.startswith("ours"))
    reference = next(line for line in lines if line.startswith("alertmanager"))
    assert "notifications=4 duplicates=0" in ours and "notifications=4 duplicates=0" in reference
    assert "peak RSS" in ours and "peak RSS" in reference
    assert re.search(r"^ratio after group_wait: \d+\.\d+x", result.stdout, re.M), result.stdout
    # Each side's CPU after group_wait (ours flushed and sent: some clock ticks at least; four
    # notifications can take Alertmanager less than one), and their ratio when both have one.
    spent = [float(c) for c in re.findall(r"^  after group_wait: .*; CPU (\d+\.\d+) s", result.stdout, re.M)]
    assert len(spent) == 2 and spent[0] > 0, result.stdout
    ratio = re.search(r"^CPU ratio after group_wait: \d+\.\d+x", result.stdout, re.M)
    assert (ratio is not None) == (spent[1] > 0), result.stdout


def test_notify_cpu_delivers_every_notification_of_one_process() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bench.notify_cpu", "--alerts", "20", "--groups", "2", "--rounds", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert re.search(
        r"^flush and delivery of 4 notifications: \d+\.\d+ s, CPU \d+\.\d+ s "
        r"\(user \d+\.\d+, system \d+\.\d+\) = \d+\.\d+ ms per notification",
        result.stdout,
        re.M,
    ), result.stdout


def test_eval_bench_evaluates_every_alert_beside_prometheus_with_one_and_two_workers() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bench.eval_bench", "--rules", "20", "--workers", "1", "2"]
        + ["--ticks", "1", "--rounds", "1", "--interval", "2s"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    out = result.stdout
    assert "rules=20 series=200 groups=1 alerts_per_tick=200" in out, out
    assert re.search(r"^prometheus: \d+\.\d+ s/tick", out, re.M), out
    for workers in (1, 2):
        assert re.search(
            rf"^ours, {workers} worker\(s\): \d+\.\d+ s/tick .* ratio \d+\.\d+x .* peak RSS \d+ MiB/process",
            out,
            re.M,
        ), out
    assert "scale-out: 1 worker(s) 1.00x" in out and "INVALID" not in out, out


def test_soak_bench_reports_growth_figures_and_neither_duplicates_nor_losses() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bench.soak_bench", "--minutes", "0.1", "--alerts", "60", "--groups", "4"]
        + ["--interval", "2s", "--flap-period", "4s", "--silence-every", "2s", "--converge-timeout", "60s"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    out = result.stdout
    for when in ("start", "middle", "end"):
        assert re.search(rf"^{when} +\d+:\d\d +\d+ +\d+\.\d MiB +\d+\.\d MiB +\d+$", out, re.M), out
    assert re.search(r"^duplicates=0 lost=0 \(converged in \d+\.\d s\)$", out, re.M), out


def test_record_bench_writes_every_recorded_series_beside_prometheus() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bench.record_bench", "--rules", "100", "--workers", "1", "2"]
        + ["--ticks", "1", "--rounds", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    out = result.stdout
    assert "rules=100 series=1000 groups=1 samples_per_tick=1000" in out, out
    assert re.search(r"^prometheus: \d+\.\d+ s/tick", out, re.M), out
    for workers in (1, 2):
        assert re.search(
            rf"^ours, {workers} worker\(s\): \d+\.\d+ s/tick written .* ratio \d+\.\d+x "
            r"+per recorded sample \d+\.\d+ us +peak RSS \d+ MiB/process$",
            out,
            re.M,
        ), out
    assert "written: 1000 recorded series in the remote-write target (expected 1000)" in out, out
    assert "INVALID" not in out, out
