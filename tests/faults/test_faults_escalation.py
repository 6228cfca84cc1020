"""Escalation when workers fail: two ``-B`` workers escalate each step once, and ``kill -9`` of
every worker between two steps neither loses nor doubles the next one (the clock is in Redis)."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from tests.support.escalation import TIERS, fire, setup, told, wait_told
from tests.support.faultkit import FakePrometheus
from tests.support.webhook import WebhookRecorder
from tests.support.worker import Worker

pytestmark = pytest.mark.faults


def test_two_workers_escalate_once_and_a_kill_9_between_steps_neither_loses_nor_doubles_one(
    tmp_path: Path, prefix: str
) -> None:
    with FakePrometheus() as prom, WebhookRecorder() as hook:
        env = setup(tmp_path, prefix, hook, prom, "TwoWorkers", steps=("4s", "16s"))
        first, second = Worker(env).start(), Worker(env).start()
        try:
            fire(prom, "TwoWorkers", "a")
            wait_told(hook, "TwoWorkers", "lead")
            first.stop(signal.SIGKILL)
            second.stop(signal.SIGKILL)
            told_before_kill = told(hook, "TwoWorkers")
            first = Worker(env).start()
            wait_told(hook, "TwoWorkers", "incident")
            fire(prom, "TwoWorkers")
            for receiver in TIERS:
                wait_told(hook, "TwoWorkers", receiver, "resolved")
            hook.settle()
        finally:
            first.stop()
            second.stop()

    assert told_before_kill == [("page", "firing"), ("lead", "firing")]
    sequence = told(hook, "TwoWorkers")
    assert sequence[:3] == [("page", "firing"), ("lead", "firing"), ("incident", "firing")]
    assert sorted(sequence[3:]) == [("incident", "resolved"), ("lead", "resolved"), ("page", "resolved")]
