"""The notification benchmark command of the README runs end to end (a smoke run, no timing)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.e2e


def test_notify_bench_delivers_every_notification_without_duplicates() -> None:
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
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    lines = result.stdout.splitlines()
    ours = next(line for line in lines if line.startswith("ours"))
    reference = next(line for line in lines if line.startswith("alertmanager"))
    assert "notifications=4 duplicates=0" in ours and "notifications=4 duplicates=0" in reference
