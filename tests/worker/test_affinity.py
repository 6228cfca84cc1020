"""ALERTING_CPU_AFFINITY: each pool process's threads on one CPU, the worker's own processes left alone."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from alerting.config.settings import Settings
from alerting.errors import ConfigError
from alerting.ops import affinity
from tests.support.net import wait_until
from tests.support.worker import ROOT, Worker, worker_env

ALLOWED = sorted(os.sched_getaffinity(0))


def _threads_allowed(pid: int) -> list[set[int]]:
    """The CPUs each thread of ``pid`` may run on, for the threads still there once listed."""
    out = []
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            out.append(os.sched_getaffinity(int(tid)))
        except ProcessLookupError:  # the thread ended in between
            continue
    return out


@pytest.mark.pure
def test_pool_processes_take_the_allowed_cpus_in_turn() -> None:
    assert [affinity.choose({4, 2, 7}, i) for i in range(5)] == [2, 4, 7, 2, 4]
    assert affinity.choose({3}, 0) is None  # one CPU: nothing to choose, nothing pinned
    assert affinity.choose(set(), 1) is None


@pytest.mark.pure
def test_the_setting_takes_auto_or_off_and_names_itself_otherwise() -> None:
    assert Settings.from_env({}).cpu_affinity == "auto"
    assert Settings.from_env({"ALERTING_CPU_AFFINITY": " Off "}).cpu_affinity == "off"
    with pytest.raises(ConfigError, match=r'ALERTING_CPU_AFFINITY: expected "auto" or "off", got \'cpu0\''):
        Settings.from_env({"ALERTING_CPU_AFFINITY": "cpu0"})


_PIN = """
import json, os, sys, threading
from alerting.ops import affinity

def allowed():
    return {tid: sorted(os.sched_getaffinity(int(tid))) for tid in os.listdir("/proc/self/task")}

stop = threading.Event()
before = threading.Thread(target=stop.wait)  # started before the pinning
before.start()
cpu = affinity.pin_process(sys.argv[1], int(sys.argv[2]))
after = threading.Thread(target=stop.wait)  # started after it
after.start()
print(json.dumps({"cpu": cpu, "threads": allowed()}))
stop.set()
"""


@pytest.mark.parametrize("index", [0, 1])
def test_pinning_puts_every_thread_of_the_process_and_those_it_starts_on_one_cpu(index: int) -> None:
    out = subprocess.run(
        [sys.executable, "-c", _PIN, "auto", str(index)], cwd=ROOT, capture_output=True, text=True, check=True
    )
    seen = json.loads(out.stdout)
    expected = affinity.choose(ALLOWED, index)
    assert seen["cpu"] == expected
    assert len(seen["threads"]) == 3
    want = [expected] if expected is not None else ALLOWED
    assert all(cpus == want for cpus in seen["threads"].values()), seen


def test_off_leaves_every_thread_where_the_system_puts_it() -> None:
    out = subprocess.run(
        [sys.executable, "-c", _PIN, "off", "1"], cwd=ROOT, capture_output=True, text=True, check=True
    )
    seen = json.loads(out.stdout)
    assert seen["cpu"] is None
    assert all(cpus == ALLOWED for cpus in seen["threads"].values()), seen


def _started(tmp_path: Path, **extra: str) -> dict[str, str]:
    rules = tmp_path / "rules"
    rules.mkdir()
    return worker_env(
        tmp_path, rules=rules, config=tmp_path / "none.yml", prefix=f"affinity-{tmp_path.name}", **extra
    )


@pytest.mark.e2e
def test_the_worker_puts_each_pool_process_on_its_own_cpu_and_leaves_its_main_process_alone(
    tmp_path: Path,
) -> None:
    # The flusher starts its delivery threads (this many) at once, after the pinning.
    with Worker(_started(tmp_path, ALERTING_NOTIFY_CONCURRENCY="8"), concurrency=2) as worker:
        worker.wait_for("worker.ready", timeout=60)
        expected = sorted(
            cpu for cpu in (affinity.choose(ALLOWED, 0), affinity.choose(ALLOWED, 1)) if cpu is not None
        )
        wait_until(
            lambda: len(worker.events("worker.pinned")) >= len(expected),
            timeout=60,
            what="pool processes pinned",
        )
        pinned = worker.events("worker.pinned")
        assert sorted(event["cpu"] for event in pinned) == expected
        for event in pinned:
            pid = event["pid"]
            wait_until(lambda: len(os.listdir(f"/proc/{pid}/task")) > 8, timeout=30, what="delivery threads")  # noqa: B023
            # Every thread: the flusher's and the delivery threads too.
            assert all(cpus == {event["cpu"]} for cpus in _threads_allowed(pid))
        assert worker.process is not None
        assert all(cpus == set(ALLOWED) for cpus in _threads_allowed(worker.process.pid))
