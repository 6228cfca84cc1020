"""Escalation through the pipeline against real Redis on a simulated clock: when a step is due, that
a page that keeps failing still escalates, and that an acknowledgement ends with its group."""

from __future__ import annotations

import contextlib

from alerting.notify.acks import AckStore, acknowledge
from alerting.notify.base import DeliveryError
from alerting.notify.pipeline import deliver
from alerting.routing.matchers import parse_matchers
from tests.support.routing_harness import T0, Harness, alert
from tests.support.webhook import WebhookRecorder

CONFIG = """
route:
  receiver: page
  group_by: [alertname]
  group_wait: 0s
  group_interval: 5m
  repeat_interval: 4h
  escalate:
    - after: 15m
      receiver: lead
    - after: 30m
      receiver: incident
receivers:
  - name: page
    webhook_configs: [{{url: "{url}/page"}}]
  - name: lead
    webhook_configs: [{{url: "{url}/lead"}}]
  - name: incident
    webhook_configs: [{{url: "{url}/incident"}}]
"""


def tick(env: Harness, now: float) -> list[str]:
    """Flush at ``now`` and deliver; the receivers each job went to (failed ones included)."""
    out = []
    for job in env.flush(now):
        out.append(job.receiver)
        with contextlib.suppress(DeliveryError):
            deliver(env.client, env.prefix, env.config, job, now)
    return out


def test_each_step_is_flushed_when_its_after_has_passed_not_at_the_next_group_interval(env: Harness) -> None:
    env.ingest(T0, alert("DiskFull"))
    assert tick(env, T0) == ["page"]
    assert tick(env, T0 + 300) == []  # the group's interval: nothing new
    assert tick(env, T0 + 600) == []
    # The timer fires at the step's time (15m), not at the group interval after it (20m).
    assert tick(env, T0 + 899) == []
    assert tick(env, T0 + 900) == ["lead"]
    assert tick(env, T0 + 1800) == ["incident"]


def test_a_page_that_keeps_failing_still_escalates(env: Harness, recorder: WebhookRecorder) -> None:
    recorder.fail("/page", 400, times=100)  # refused for good: each flush tries again, in vain
    env.ingest(T0, alert("DiskFull"))
    assert tick(env, T0) == ["page"]
    assert "lead" in tick(env, T0 + 900)
    assert [r.path for r in recorder.delivered()] == ["/lead"]


def test_an_acknowledgement_ends_with_its_group(env: Harness) -> None:
    env.ingest(T0, alert("DiskFull"))
    tick(env, T0)
    made = acknowledge(
        env.client,
        env.prefix,
        parse_matchers("alertname=DiskFull"),
        by="alice",
        comment="",
        duration=86400.0,
        now=T0 + 60,
        source="cli",
    )
    assert len(made) == 1
    assert tick(env, T0 + 900) == []  # acknowledged: no step
    env.ingest(T0 + 1000, alert("DiskFull", ends_at=T0 + 1000))
    assert tick(env, T0 + 1200) == ["page"]  # the resolve
    assert AckStore(env.client, env.prefix).all(T0 + 1200) == []
    # The same alert firing again later is a new episode: it is paged and escalates again.
    env.ingest(T0 + 2000, alert("DiskFull", starts_at=T0 + 2000))
    assert tick(env, T0 + 2000) == ["page"]
    assert tick(env, T0 + 2900) == ["lead"]
