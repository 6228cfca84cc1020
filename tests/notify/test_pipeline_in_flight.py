"""A notification still in flight (a slow receiver, a retry, a failover) when its group flushes
again: what changed meanwhile is still told, once, after it; nothing is told twice."""

from __future__ import annotations

import threading

from alerting.notify.pipeline import REASON_IN_FLIGHT
from tests.support.httpfake import Reply, Request
from tests.support.routing_harness import T0, Harness, alert
from tests.support.webhook import WebhookRecorder

CONFIG = """
route:
  receiver: team
  group_by: [alertname]
  group_wait: 30s
  group_interval: 5m
  repeat_interval: 1h
receivers:
  - name: team
    webhook_configs:
      - url: {url}/team
        send_resolved: true
"""


def told(recorder: WebhookRecorder) -> list[dict[str, str]]:
    return [{a["labels"]["instance"]: a["status"] for a in d.body["alerts"]} for d in recorder.at("/team")]


def test_a_resolve_while_the_first_notification_is_in_flight_is_told_after_it(
    env: Harness, recorder: WebhookRecorder
) -> None:
    env.ingest(T0, alert("Down", instance="a"))
    (first,) = env.flush(T0 + 30)
    entered, answer = threading.Event(), threading.Event()

    def slow(_: Request) -> Reply:
        entered.set()
        answer.wait(30)
        return Reply(200, "ok")

    recorder.answer = slow
    sending = threading.Thread(target=env.deliver, args=(first, T0 + 31))
    sending.start()
    assert entered.wait(30)  # the first notification is on the wire, its receiver slow to answer
    env.ingest(T0 + 60, alert("Down", instance="a", ends_at=T0 + 60))
    later = env.flush(T0 + 330)  # the group's next flush hands the resolve on meanwhile
    assert [job.reason for job in later] == [REASON_IN_FLIGHT]
    recorder.answer = lambda _: Reply(200, "ok")
    answer.set()
    sending.join(30)
    for job in later:
        env.deliver(job, T0 + 332)
    assert told(recorder) == [{"a": "firing"}, {"a": "resolved"}]


def test_a_first_notification_not_out_before_the_next_flush_gives_way_to_it(
    env: Harness, recorder: WebhookRecorder
) -> None:
    """As in Alertmanager, where a flush's notification has until the next flush to get through: an
    alert that fired and resolved meanwhile, never told, is not told at all."""
    env.ingest(T0, alert("Down", instance="a"))
    (first,) = env.flush(T0 + 30)  # waiting to be retried, say
    env.ingest(T0 + 60, alert("Down", instance="a", ends_at=T0 + 60))
    later = env.flush(T0 + 330)
    for job in [first, *later]:
        env.deliver(job, T0 + 331)
    assert told(recorder) == []
    env.ingest(T0 + 400, alert("Down", instance="a", starts_at=T0 + 400))  # and when it fires again
    for job in env.flush(T0 + 630):
        env.deliver(job, T0 + 631)
    assert told(recorder) == [{"a": "firing"}]


def test_the_same_news_in_flight_twice_is_sent_once(env: Harness, recorder: WebhookRecorder) -> None:
    env.ingest(T0, alert("Down", instance="a"))
    (first,) = env.flush(T0 + 30)
    again = env.flush(T0 + 330)  # nothing new, but the first is still out: issued again
    for job in [first, *again, first]:  # in any order, redelivered too
        env.deliver(job, T0 + 331)
    assert told(recorder) == [{"a": "firing"}]


def test_a_resolve_after_a_notification_whose_log_write_was_lost_is_still_told(
    env: Harness, recorder: WebhookRecorder
) -> None:
    """The receiver accepted the first notification, then the worker died (or Redis failed over)
    before the notification log was written: the resolve still goes out."""
    env.ingest(T0, alert("Down", instance="a"))
    (first,) = env.flush(T0 + 30)
    assert env.deliver(first, T0 + 31)
    for key in env.client.scan_iter(f"{env.prefix}:notify:nflog:*"):
        env.client.delete(key)  # the log write that never happened
    env.ingest(T0 + 60, alert("Down", instance="a", ends_at=T0 + 60))
    for job in env.flush(T0 + 330):
        env.deliver(job, T0 + 331)
    assert told(recorder) == [{"a": "firing"}, {"a": "resolved"}]
