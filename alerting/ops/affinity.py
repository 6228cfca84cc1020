"""Which CPU a worker's pool process runs on (``ALERTING_CPU_AFFINITY``).

A pool process runs Python on one CPU at a time (the interpreter lock), yet in an alert storm its
threads (the flusher, the delivery threads) hand that lock to one another thousands of times a
second: each send and each Redis round trip lets it go while waiting and takes it back. Left to the
operating system, those threads are spread over every CPU: each hand-over wakes a thread on
another CPU, and what the next thread works on sits in the other CPU's caches. With every thread
of the process on one CPU, a hand-over wakes a thread where the lock was let go of, and the
process's data stays in one CPU's caches.

``auto`` (the default) gives each pool process one CPU of those the worker may use (its affinity
as started, e.g. a container's cpuset), in turn by the process's index in the pool: two processes
on two CPUs get one each, and more processes than CPUs share them evenly. The worker's main process
and its beat are left alone (they do little). ``off`` leaves every thread to the operating system,
for a machine where something else busy is pinned to the same CPUs. Nothing is pinned where the
worker may use only one CPU, or where the system has no per-thread affinity (outside Linux).

Measured with ``bench.notify_cpu`` (one process flushing 10,000 alerts in 100 groups on a 2-CPU
machine): see ``bench/README.md``, "Notification: a pool process on one CPU".
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from alerting.errors import ConfigError

CHOICES = ("auto", "off")


def parse(value: str, name: str = "ALERTING_CPU_AFFINITY") -> str:
    """The setting as given (``auto`` or ``off``, any case), or a ConfigError naming it."""
    choice = value.strip().lower()
    if choice not in CHOICES:
        raise ConfigError(f'{name}: expected "auto" or "off", got {value!r}')
    return choice


def choose(allowed: Iterable[int], index: int) -> int | None:
    """The CPU for pool process ``index`` among ``allowed`` (None: fewer than two to choose from)."""
    cpus = sorted(allowed)
    if len(cpus) < 2:
        return None
    return cpus[index % len(cpus)]


def _threads() -> list[int]:
    try:
        return [int(tid) for tid in os.listdir("/proc/self/task")]
    except OSError:  # no /proc: this thread alone, which those it starts follow
        return [0]


def pin_process(setting: str, index: int | None) -> int | None:
    """Put every thread of this process (and so the threads it starts later, which take their
    creator's affinity) on the CPU ``choose`` gives pool process ``index``; returns that CPU, or
    None when nothing was pinned (``off``, no index, one CPU, no per-thread affinity)."""
    if setting == "off" or index is None or not hasattr(os, "sched_setaffinity"):
        return None
    cpu = choose(os.sched_getaffinity(0), index)
    if cpu is None:
        return None
    for tid in _threads():
        try:
            os.sched_setaffinity(tid, {cpu})
        except OSError:  # a thread that ended meanwhile
            continue
    return cpu
