"""The notification pipeline against real Redis and a real HTTP receiver, on a simulated clock."""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import redis

from alerting import durable
from alerting.core import fingerprint
from alerting.notify import pipeline
from alerting.notify.base import DeliveryError, Notification, NotifyAlert
from alerting.notify.pipeline import Job, deliver, fallback_jobs, flush_due, ingest
from alerting.notify.receivers.console import ConsoleIntegration
from alerting.notify.store import Held, NotifyStore, OutboxWrite, Taking
from alerting.routing.matchers import parse_matchers
from alerting.routing.silences import expire, new_silence
from tests.support.httpfake import FakeHTTPServer, Reply, Request
from tests.support.redis_server import RedisServer
from tests.support.routing_harness import T0, Harness, alert, load_config
from tests.support.routing_redis import REDIS_URL, isolated_redis
from tests.support.webhook import WebhookRecorder

CONFIG = """
route:
  receiver: team
  group_by: [alertname]
  group_wait: 30s
  group_interval: 5m
  repeat_interval: 1h
  routes:
    - matchers: ['severity="critical"']
      receiver: pager
      continue: true
    - matchers: ['quiet="yes"']
      receiver: quiet
    - matchers: ['nightly="yes"']
      receiver: team
      mute_time_intervals: [night]
inhibit_rules:
  - source_matchers: ['severity="critical"']
    target_matchers: ['severity="warning"']
    equal: [alertname, instance]
time_intervals:
  - name: night
    time_intervals:
      - times:
          - start_time: "22:00"
            end_time: "24:00"
receivers:
  - name: team
    webhook_configs:
      - url: {url}/team
  - name: pager
    fallback: team
    webhook_configs:
      - url: {url}/pager
        max_alerts: 1
        http_config:
          basic_auth:
            username: pd
            password: s3cret
  - name: quiet
    webhook_configs:
      - url: {url}/quiet
        send_resolved: false
        http_config:
          authorization:
            credentials: tok
"""


def statuses(recorder: WebhookRecorder, path: str) -> list[dict[str, str]]:
    """Per notification: alert instance -> status."""
    return [
        {a["labels"].get("instance", a["labels"]["alertname"]): a["status"] for a in d.body["alerts"]}
        for d in recorder.at(path)
    ]


def test_first_notification_waits_for_group_wait_and_batches(env: Harness, recorder: WebhookRecorder) -> None:
    env.ingest(T0, alert("Down", instance="a"))
    env.ingest(T0 + 10, alert("Down", starts_at=T0 + 10, instance="b"))
    assert env.tick(T0 + 29.9) == []
    (job,) = env.tick(T0 + 30)
    assert statuses(recorder, "/team") == [{"a": "firing", "b": "firing"}]
    body = recorder.at("/team")[0].body
    assert body["version"] == "4" and body["status"] == "firing" and body["receiver"] == "team"
    assert body["groupKey"] == '{}:{alertname="Down"}' and body["groupLabels"] == {"alertname": "Down"}
    assert body["commonLabels"] == {"alertname": "Down"} and body["truncatedAlerts"] == 0
    first = body["alerts"][0]
    assert first["fingerprint"] == fingerprint({"alertname": "Down", "instance": "a"})
    assert first["startsAt"] == "2023-11-14T22:13:20Z" and first["endsAt"] == "0001-01-01T00:00:00Z"
    assert job.reason == "first notification"


def test_new_alerts_wait_for_group_interval_and_nothing_repeats_early(
    env: Harness, recorder: WebhookRecorder
) -> None:
    env.ingest(T0, alert("Down", instance="a"))
    env.tick(T0 + 30)
    env.ingest(T0 + 60, alert("Down", starts_at=T0 + 60, instance="b"))
    assert env.tick(T0 + 329) == []
    env.tick(T0 + 330)
    # Unchanged group: the next flushes stay quiet until the repeat interval has passed since the
    # last notification (T0+330), strictly, so at the first flush after T0+3930.
    for t in range(630, 4230, 300):
        assert env.tick(T0 + t) == [], t
    (job,) = env.tick(T0 + 4230)
    assert job.reason == "repeat interval elapsed"
    assert statuses(recorder, "/team") == [{"a": "firing"}, {"a": "firing", "b": "firing"}] * 1 + [
        {"a": "firing", "b": "firing"}
    ]


def test_annotation_changes_alone_never_renotify(env: Harness, recorder: WebhookRecorder) -> None:
    env.ingest(T0, alert("Down", instance="a", annotations={"summary": "value 1"}))
    env.tick(T0 + 30)
    env.ingest(T0 + 100, alert("Down", instance="a", annotations={"summary": "value 2"}))
    assert env.tick(T0 + 330) == []
    assert len(recorder.at("/team")) == 1


def test_resolve_is_sent_with_send_resolved_and_only_logged_without(
    env: Harness, recorder: WebhookRecorder
) -> None:
    loud = alert("Loud", instance="a")
    quiet = alert("Quiet", instance="a", quiet="yes")
    env.ingest(T0, loud, quiet)
    env.tick(T0 + 30)
    env.ingest(T0 + 100, alert("Loud", ends_at=T0 + 100, instance="a"))
    env.ingest(T0 + 100, alert("Quiet", ends_at=T0 + 100, instance="a", quiet="yes"))
    env.tick(T0 + 330)
    assert statuses(recorder, "/team") == [{"a": "firing"}, {"a": "resolved"}]
    assert statuses(recorder, "/quiet") == [{"a": "firing"}]
    assert recorder.at("/quiet")[0].headers["authorization"] == "Bearer tok"
    # After the all-resolved log entry, the same alert firing again is news for both receivers.
    env.ingest(T0 + 400, alert("Loud", starts_at=T0 + 400, instance="a"))
    env.ingest(T0 + 400, alert("Quiet", starts_at=T0 + 400, instance="a", quiet="yes"))
    env.tick(T0 + 430)
    assert len(recorder.at("/team")) == 3 and len(recorder.at("/quiet")) == 2


def test_resolved_alert_reported_again_does_not_reopen_its_group(
    env: Harness, recorder: WebhookRecorder
) -> None:
    env.ingest(T0, alert("Down", instance="a"))
    env.tick(T0 + 30)
    gone = alert("Down", ends_at=T0 + 60, instance="a")
    env.ingest(T0 + 60, gone)
    env.tick(T0 + 330)
    store = NotifyStore(env.client, env.prefix)
    assert store.group_count() == 0  # emptied by the resolve notification
    for t in range(360, 1200, 60):  # the evaluator re-reports it for 15 minutes
        env.ingest(T0 + t, gone)
        assert env.tick(T0 + t + 1) == []
    assert store.group_count() == 0
    assert statuses(recorder, "/team") == [{"a": "firing"}, {"a": "resolved"}]


def test_alert_older_than_group_wait_flushes_a_new_group_at_once(
    env: Harness, recorder: WebhookRecorder
) -> None:
    env.ingest(T0 + 100, alert("Old", starts_at=T0, instance="a"))
    assert len(env.tick(T0 + 100)) == 1


def test_max_alerts_truncates_and_basic_auth_is_sent(env: Harness, recorder: WebhookRecorder) -> None:
    env.ingest(T0, *(alert("Crit", severity="critical", instance=i) for i in "abc"))
    env.tick(T0 + 30)
    (pager,) = recorder.at("/pager")
    assert [a["labels"]["instance"] for a in pager.body["alerts"]] == ["a"]
    assert pager.body["truncatedAlerts"] == 2
    assert pager.headers["authorization"] == "Basic cGQ6czNjcmV0"
    assert recorder.at("/team") == []  # continue, but no later sibling matched: the root does not take it


def test_inhibited_target_is_removed_while_its_source_fires(env: Harness, recorder: WebhookRecorder) -> None:
    env.ingest(T0, alert("Disk", severity="critical", instance="a"))
    env.ingest(
        T0, alert("Disk", severity="warning", instance="a"), alert("Disk", severity="warning", instance="b")
    )
    env.tick(T0 + 30)
    assert statuses(recorder, "/team") == [{"b": "firing"}]
    assert statuses(recorder, "/pager") == [{"a": "firing"}]
    # The source resolves: the target is no longer inhibited and is news to the receiver.
    env.ingest(T0 + 60, alert("Disk", ends_at=T0 + 60, severity="critical", instance="a"))
    env.tick(T0 + 330)
    assert statuses(recorder, "/team") == [{"b": "firing"}, {"a": "firing", "b": "firing"}]
    assert statuses(recorder, "/pager") == [{"a": "firing"}, {"a": "resolved"}]


def test_silence_mutes_until_it_ends_then_the_alert_notifies(env: Harness, recorder: WebhookRecorder) -> None:
    store = NotifyStore(env.client, env.prefix)
    silence = new_silence(parse_matchers('alertname="Down", instance="a"'), T0, T0 + 600, "ops", "deploy", T0)
    store.put_silence(silence)
    env.ingest(T0, alert("Down", instance="a"), alert("Down", instance="b"))
    env.tick(T0 + 30)
    assert statuses(recorder, "/team") == [{"b": "firing"}]
    env.tick(T0 + 330)  # still silenced
    assert len(recorder.at("/team")) == 1
    env.tick(T0 + 630)  # the silence ended at T0+600
    assert statuses(recorder, "/team")[-1] == {"a": "firing", "b": "firing"}


def test_expired_silence_stops_muting(env: Harness, recorder: WebhookRecorder) -> None:
    store = NotifyStore(env.client, env.prefix)
    silence = new_silence(parse_matchers("alertname=Down"), T0, T0 + 6000, "ops", "deploy", T0)
    store.put_silence(silence)
    env.ingest(T0, alert("Down", instance="a"))
    assert env.tick(T0 + 30) == []
    store.put_silence(expire(silence, T0 + 100))
    assert len(env.tick(T0 + 330)) == 1


def test_mute_time_interval_holds_notifications_and_drops_resolved_alerts(
    env: Harness, recorder: WebhookRecorder
) -> None:
    night = 1_700_000_000.0 - (1_700_000_000 % 86400) + 22 * 3600  # 22:00 UTC that day
    env.ingest(night, alert("Batch", starts_at=night, nightly="yes", instance="a"))
    assert env.tick(night + 30) == []
    env.ingest(night + 60, alert("Batch", starts_at=night, ends_at=night + 60, nightly="yes", instance="a"))
    env.ingest(night + 60, alert("Batch", starts_at=night + 60, nightly="yes", instance="b"))
    assert env.tick(night + 330) == []
    morning = night + 2 * 3600 + 30  # 00:00:30 next day, outside the interval
    env.ingest(morning - 30, alert("Batch", starts_at=night + 60, nightly="yes", instance="b"))
    jobs = env.tick(night + 7200 + 30)
    jobs += env.tick(night + 7500 + 30)
    assert statuses(recorder, "/team") == [{"b": "firing"}]
    assert len(jobs) == 1


def test_restart_mid_group_continues_timers_without_resending(
    tmp_path: Path, recorder: WebhookRecorder
) -> None:
    with isolated_redis() as (client, prefix):
        first = Harness(client, prefix, load_config(tmp_path, CONFIG, url=recorder.url))
        first.ingest(T0, alert("Down", instance="a"))
        first.tick(T0 + 30)
        first.ingest(T0 + 100, alert("Down", starts_at=T0 + 100, instance="b"))
        # The worker restarts: new connection, config re-read, nothing kept in memory.
        client2 = redis.Redis.from_url(REDIS_URL)
        second = Harness(client2, prefix, load_config(tmp_path, CONFIG, url=recorder.url))
        assert second.tick(T0 + 329) == []  # the group's interval timer was not restarted
        assert len(second.tick(T0 + 330)) == 1
        assert second.tick(T0 + 630) == []
        assert statuses(recorder, "/team") == [{"a": "firing"}, {"a": "firing", "b": "firing"}]
        client2.close()


def test_two_concurrent_flushers_notify_each_group_once(env: Harness, recorder: WebhookRecorder) -> None:
    env.ingest(T0, *(alert(f"Alert{i}", instance="a") for i in range(60)))
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def worker() -> None:
        client = redis.Redis.from_url(REDIS_URL)
        try:
            barrier.wait()
            for now in (T0 + 30, T0 + 30.5, T0 + 31):
                for job in flush_due(client, env.prefix, env.config, now):
                    deliver(client, env.prefix, env.config, job, now)
        except BaseException as exc:  # surfaced below
            errors.append(exc)
        finally:
            client.close()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    keys = [d.body["groupKey"] for d in recorder.at("/team")]
    assert len(keys) == 60 and len(set(keys)) == 60


def test_redelivered_job_sends_once(env: Harness, recorder: WebhookRecorder) -> None:
    env.ingest(T0, alert("Down", instance="a"))
    (job,) = env.flush(T0 + 30)
    copy = Job.from_dict(json.loads(json.dumps(job.to_dict())))  # as it travels through the broker
    results: list[BaseException | None] = []

    def send(j: Job) -> None:
        client = redis.Redis.from_url(REDIS_URL)
        try:
            deliver(client, env.prefix, env.config, j, T0 + 31)
            results.append(None)
        except DeliveryError as exc:  # the lock holder is still sending: retried later
            results.append(exc)
        finally:
            client.close()

    threads = [threading.Thread(target=send, args=(j,)) for j in (job, copy, job)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    for j in (job, copy):  # the retries of the ones that found the lock taken
        deliver(env.client, env.prefix, env.config, j, T0 + 32)
    assert len(recorder.at("/team")) == 1


def test_failed_send_keeps_the_log_untouched_and_retry_delivers_once(
    env: Harness, recorder: WebhookRecorder
) -> None:
    recorder.fail("/team", 503, times=2, headers={"Retry-After": "7"})
    env.ingest(T0, alert("Down", instance="a"))
    (job,) = env.flush(T0 + 30)
    for _ in range(2):
        with pytest.raises(DeliveryError) as failure:
            deliver(env.client, env.prefix, env.config, job, T0 + 31)
        assert failure.value.retryable and failure.value.retry_after == 7.0
    store = NotifyStore(env.client, env.prefix)
    assert store.nflog_get(job.nflog_id, job.integration) is None
    deliver(env.client, env.prefix, env.config, job, T0 + 40)
    deliver(env.client, env.prefix, env.config, job, T0 + 41)
    assert len(recorder.at("/team")) == 1
    assert env.tick(T0 + 330) == []


def _failed_then_flushed_again(env: Harness, recorder: WebhookRecorder, later: NotifyAlert) -> Job:
    """The group's first notification fails; ``later`` comes in, and the group's next flush issues
    a job (returned) before the failed one's retry comes round (and is dropped: superseded)."""
    recorder.fail("/team", 500)
    env.ingest(T0, alert("Down", instance="a"))
    (old,) = env.flush(T0 + 30)
    with pytest.raises(DeliveryError):
        deliver(env.client, env.prefix, env.config, old, T0 + 31)
    env.ingest(T0 + 100, later)
    (new,) = env.flush(T0 + 330)
    assert not deliver(env.client, env.prefix, env.config, old, T0 + 331)
    return new


def test_newer_flush_supersedes_a_queued_retry(env: Harness, recorder: WebhookRecorder) -> None:
    new = _failed_then_flushed_again(env, recorder, alert("Down", starts_at=T0 + 100, instance="b"))
    deliver(env.client, env.prefix, env.config, new, T0 + 331)
    assert statuses(recorder, "/team") == [{"a": "firing", "b": "firing"}]


def test_a_send_whose_outcome_is_unknown_is_followed_by_its_resolve(
    env: Harness, recorder: WebhookRecorder
) -> None:
    """The firing notification's send began and nothing was logged (the receiver failed it here; a
    worker that died mid-send leaves the same trace). When the alert resolves before a retry got
    through, the receiver still hears that it resolved, rather than keep a page that never clears."""
    resolved = _failed_then_flushed_again(env, recorder, alert("Down", ends_at=T0 + 100, instance="a"))
    assert env.deliver(resolved, T0 + 332)
    assert statuses(recorder, "/team") == [{"a": "resolved"}]


def test_a_delivery_that_sent_nothing_leaves_no_trace_of_an_attempt(
    env: Harness, recorder: WebhookRecorder
) -> None:
    """A queued notification superseded before it went out sent nothing: when its alert resolves
    without ever having been announced, the receiver hears nothing about it."""
    env.ingest(T0, alert("Down", instance="a"))
    (firing,) = env.flush(T0 + 30)
    env.ingest(T0 + 100, alert("Down", ends_at=T0 + 100, instance="a"))
    (resolved,) = env.flush(T0 + 330)
    assert not deliver(env.client, env.prefix, env.config, firing, T0 + 331)
    assert not env.deliver(resolved, T0 + 332)
    assert recorder.at("/team") == []


def test_permanent_failure_goes_to_the_fallback_receiver(env: Harness, recorder: WebhookRecorder) -> None:
    recorder.fail("/pager", 400)
    env.ingest(T0, alert("Crit", severity="critical", instance="a"))
    jobs = env.flush(T0 + 30)
    (pager,) = [j for j in jobs if j.receiver == "pager"]
    with pytest.raises(DeliveryError) as failure:
        deliver(env.client, env.prefix, env.config, pager, T0 + 31)
    assert not failure.value.retryable
    (fb,) = fallback_jobs(env.config, pager)
    assert fb.receiver == "team" and fb.fallback_for == pager.integration
    deliver(env.client, env.prefix, env.config, fb, T0 + 32)
    deliver(env.client, env.prefix, env.config, fb, T0 + 33)  # redelivered: not sent twice
    assert len(recorder.at("/team")) == 1 and recorder.at("/team")[0].body["groupKey"] == pager.group_key


def test_config_reload_that_moves_routes_does_not_resend(tmp_path: Path, recorder: WebhookRecorder) -> None:
    reordered = CONFIG.replace(
        "  routes:\n", "  routes:\n    - matchers: ['team=\"other\"']\n      receiver: quiet\n", 1
    )
    with isolated_redis() as (client, prefix):
        before = Harness(client, prefix, load_config(tmp_path, CONFIG, url=recorder.url))
        before.ingest(T0, alert("Down", instance="a"))
        before.tick(T0 + 30)
        after = Harness(client, prefix, load_config(tmp_path, reordered, url=recorder.url))
        assert after.tick(T0 + 330) == []  # the old group's route is gone: dropped
        after.ingest(T0 + 340, alert("Down", instance="a"))
        assert after.tick(T0 + 400) == []  # new group, but the log (by group key) says nothing changed
        assert len(recorder.at("/team")) == 1


def test_ingest_and_flush_leave_keys_only_under_the_prefix(env: Harness) -> None:
    env.ingest(T0, alert("Down", instance="a"))
    env.tick(T0 + 30)
    keys = [k.decode() for k in env.client.scan_iter(match=f"{env.prefix}:*")]
    assert keys and all(k.startswith(f"{env.prefix}:notify:") for k in keys)


def test_console_prints_readable_lines() -> None:
    out = io.StringIO()
    console = ConsoleIntegration(stream=out)
    firing = alert("HighErrorRate", instance="api-1", severity="P1")
    gone = alert("HighErrorRate", ends_at=T0 + 60, instance="api-2", severity="P1")
    console.send(
        Notification(
            receiver="default",
            group_key="k",
            group_labels={"alertname": "HighErrorRate"},
            alerts=(firing, gone),
        )
    )
    lines = out.getvalue().splitlines()
    assert lines[0] == "[FIRING:1] HighErrorRate (P1)"
    assert "receiver  default" in lines[1] and "group     alertname=HighErrorRate" in lines[2]
    firing = next(i for i, line in enumerate(lines) if line.strip().startswith("FIRING"))
    resolved = next(i for i, line in enumerate(lines) if line.strip().startswith("RESOLVED"))
    assert firing < resolved and "HighErrorRate is happening" in lines[firing]
    assert "instance=api-1" in "\n".join(lines[firing:resolved])
    assert "resolved 2023-11-14 22:14:20 UTC" in "\n".join(lines[resolved:])
    assert lines[-2].strip().startswith("silence   alerting silence add alertname=HighErrorRate")
    assert "\x1b[" not in out.getvalue()  # not a terminal: no colour


def test_ingest_of_nothing_is_a_no_op(env: Harness) -> None:
    ingest(env.client, env.prefix, env.config, [], T0)
    assert NotifyStore(env.client, env.prefix).group_count() == 0


def test_a_burst_of_due_groups_is_flushed_in_one_call(env: Harness, recorder: WebhookRecorder) -> None:
    env.ingest(T0, *(alert(f"Burst{i}", instance="a") for i in range(20)))
    jobs = flush_due(env.client, env.prefix, env.config, T0 + 30, batch=7)
    assert len({j.group_key for j in jobs}) == 20
    assert flush_due(env.client, env.prefix, env.config, T0 + 31, batch=7) == []


def test_a_burst_is_claimed_in_shares_that_shrink_as_it_runs_out(
    env: Harness, recorder: WebhookRecorder
) -> None:
    """With ``share``, each claim takes a share of the groups still due (never more than
    ``batch``, never fewer than ``least`` while as many are due): a burst's last claims are small,
    so processes flushing it at once run out of work together. Every group is flushed once."""
    env.ingest(T0, *(alert(f"Burst{i:02d}", instance="a") for i in range(50)))
    claimed: list[int] = []
    jobs = flush_due(
        env.client,
        env.prefix,
        env.config,
        T0 + 30,
        batch=10,
        share=4,
        least=3,
        on_jobs=lambda batch: claimed.append(len({j.group_key for j in batch})),
    )
    # 50 due: 10 (the batch), then a quarter of 40, 30, 22, 16 and 12, then 3 of 9, 6 and 3.
    assert claimed == [10, 10, 8, 6, 4, 3, 3, 3, 3]
    assert sorted(j.group_key for j in jobs) == [f'{{}}:{{alertname="Burst{i:02d}"}}' for i in range(50)]
    assert flush_due(env.client, env.prefix, env.config, T0 + 31, batch=10, share=4, least=3) == []


def test_a_flush_that_fails_gives_its_groups_back_at_once_and_loses_nothing(
    env: Harness, recorder: WebhookRecorder
) -> None:
    """A flush that fails halfway (here: writing its jobs to the outbox) leaves the groups holding
    their alerts, due again a second later instead of when the claim's lease ends; a flush whose
    outbox write succeeds finds the jobs there when their sends start."""

    def broken(_jobs: list[Job], _stored: Mapping[str, bytes]) -> OutboxWrite:
        raise redis.ConnectionError("Redis went away mid-flush")

    env.ingest(T0, alert("Down", instance="a"))
    env.tick(T0 + 30)
    env.ingest(T0 + 40, alert("Down", ends_at=T0 + 40, instance="a"))
    with pytest.raises(redis.ConnectionError):
        flush_due(env.client, env.prefix, env.config, T0 + 330, outbox=broken)
    store = NotifyStore(env.client, env.prefix)
    assert store.next_due() == T0 + 331

    seen: list[bool] = []

    def outbox(jobs: list[Job], _stored: Mapping[str, bytes]) -> OutboxWrite:
        return OutboxWrite({j.job_id: json.dumps(j.to_dict()) for j in jobs}, T0 + 90, 3600)

    def started(jobs: list[Job]) -> None:
        seen.extend(env.client.exists(f"{env.prefix}:notify:job:{j.job_id}") == 1 for j in jobs)

    assert flush_due(env.client, env.prefix, env.config, T0 + 330.5, outbox=outbox) == []  # not yet
    (job,) = flush_due(env.client, env.prefix, env.config, T0 + 331, outbox=outbox, on_jobs=started)
    assert seen == [True]
    assert job.resolved == (fingerprint({"alertname": "Down", "instance": "a"}),)
    assert env.deliver(job, T0 + 331)
    assert statuses(recorder, "/team") == [{"a": "firing"}, {"a": "resolved"}]


def test_a_timer_left_without_its_group_is_dropped_by_the_next_flush(env: Harness) -> None:
    store = NotifyStore(env.client, env.prefix)
    env.client.zadd(store.due_key, {"vanished": T0})
    env.ingest(T0, alert("Down", instance="a"))
    (job,) = env.flush(T0 + 30)
    assert job.firing and env.client.zscore(store.due_key, "vanished") is None
    assert env.client.exists(store.meta_key("vanished")) == 0


def test_alert_index_forgets_long_resolved_alerts(env: Harness) -> None:
    store = NotifyStore(env.client, env.prefix)
    env.ingest(T0, alert("Old", instance="a"), alert("Live", instance="b"))
    env.ingest(T0 + 60, alert("Old", ends_at=T0 + 60, instance="a"))
    assert len(store.index_get([fingerprint({"alertname": "Old", "instance": "a"})])) == 1
    store.collect_garbage(T0 + 60 + 15 * 60 + 1)
    assert store.index_get([fingerprint({"alertname": "Old", "instance": "a"})]) == {}
    assert len(store.index_get([fingerprint({"alertname": "Live", "instance": "b"})])) == 1


def test_resolve_pending_when_routes_change_is_still_sent(tmp_path: Path, recorder: WebhookRecorder) -> None:
    moved = CONFIG.replace(
        "  routes:\n", "  routes:\n    - matchers: ['team=\"other\"']\n      receiver: quiet\n", 1
    )
    with isolated_redis() as (client, prefix):
        before = Harness(client, prefix, load_config(tmp_path, CONFIG, url=recorder.url))
        before.ingest(T0, alert("Crit", severity="critical", instance="a"))
        before.tick(T0 + 30)
        gone = alert("Crit", ends_at=T0 + 100, severity="critical", instance="a")
        before.ingest(T0 + 100, gone)
        after = Harness(client, prefix, load_config(tmp_path, moved, url=recorder.url))
        assert after.tick(T0 + 330) == []  # the pager route moved in the tree: its group is dropped unflushed
        after.ingest(T0 + 340, gone)  # the evaluator keeps reporting the resolved alert
        after.tick(T0 + 400)
        assert statuses(recorder, "/pager") == [{"a": "firing"}, {"a": "resolved"}]


def test_a_slow_send_keeps_its_lock_and_a_dead_holders_lock_lapses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pipeline, "LOCK_TTL", 0.6)
    arrived = threading.Event()

    def slow(_request: Request) -> Reply:
        first = not arrived.is_set()
        arrived.set()
        return Reply(200, "ok", delay=2.0 if first else 0.0)  # the first takes 3x the lock's lifetime

    text = "route: {{receiver: hook, group_by: [alertname]}}\nreceivers:\n  - name: hook\n"
    text += "    webhook_configs: [{{url: '{url}/hook'}}]\n"
    with FakeHTTPServer(slow) as receiver, isolated_redis() as (client, prefix):
        env = Harness(client, prefix, load_config(tmp_path, text, url=receiver.url))
        env.ingest(T0, alert("Down", instance="a"))
        (job,) = env.flush(T0 + 30)
        other_worker = redis.Redis.from_url(REDIS_URL)
        first = threading.Thread(target=deliver, args=(other_worker, prefix, env.config, job, T0 + 31))
        first.start()
        assert arrived.wait(10)
        time.sleep(1.0)  # past the lock's TTL: only renewal keeps it
        with pytest.raises(DeliveryError, match="in progress"):
            deliver(client, prefix, env.config, job, T0 + 32)  # a redelivered copy of the same job
        first.join(10)
        other_worker.close()
        deliver(client, prefix, env.config, job, T0 + 33)  # now it finds the first one logged
        assert len([r for r in receiver.requests if r.path == "/hook"]) == 1

        # A worker killed mid-send never releases its lock: the next delivery waits one TTL at most.
        store = NotifyStore(client, prefix)
        assert store.acquire(job.nflog_id, job.integration, pipeline.LOCK_TTL) is not None
        env.ingest(T0 + 40, alert("Down", instance="b"))
        (second,) = env.flush(T0 + 330)
        with pytest.raises(DeliveryError, match="in progress"):
            deliver(client, prefix, env.config, second, T0 + 331)
        time.sleep(pipeline.LOCK_TTL + 0.2)
        deliver(client, prefix, env.config, second, T0 + 332)
        assert len([r for r in receiver.requests if r.path == "/hook"]) == 2


def test_every_attempt_at_one_notification_carries_the_same_idempotency_key(tmp_path: Path) -> None:
    answers = iter([Reply(503, "busy"), Reply(200, "ok"), Reply(200, "ok"), Reply(200, "ok")])
    text = "route: {{receiver: hook, group_by: [alertname], group_interval: 5m, repeat_interval: 1h}}\n"
    text += "receivers:\n"
    text += "  - name: hook\n    webhook_configs: [{{url: '{url}/hook'}}]\n"
    with FakeHTTPServer(lambda _request: next(answers)) as receiver, isolated_redis() as (client, prefix):
        env = Harness(client, prefix, load_config(tmp_path, text, url=receiver.url))
        env.ingest(T0, alert("Down", instance="a"))
        (job,) = env.flush(T0 + 30)
        with pytest.raises(DeliveryError):
            deliver(client, prefix, env.config, job, T0 + 31)
        deliver(client, prefix, env.config, job, T0 + 32)  # the retry
        env.ingest(T0 + 40, alert("Down", instance="b"))
        assert len(env.tick(T0 + 330)) == 1  # the next notification of the group
        for later in range(630, 330 + 3600 + 300 + 1, 300):  # still firing, re-reported every 5 minutes
            env.ingest(T0 + later - 30, alert("Down", instance="a"), alert("Down", instance="b"))
            env.tick(T0 + later)  # the last of these sends the hourly reminder
    keys = [r.headers["idempotency-key"] for r in receiver.requests]
    assert len(keys) == 4 and keys[0] == keys[1] and len({keys[0], keys[2], keys[3]}) == 3


def test_scripts_redis_lost_are_loaded_again(tmp_path: Path, recorder: WebhookRecorder) -> None:
    """Redis forgets its scripts when it restarts or fails over to a replica that never ran them:
    the pipelines that call them (ingest, a flush's bookkeeping, a delivery's release) load them
    again and carry on, and the lock a delivery took is released. (On a Redis server of its own:
    SCRIPT FLUSH empties the whole server's script cache, under the tests running beside it.)"""
    with RedisServer(appendonly=False) as server:
        client = server.client()
        env = Harness(client, "scripts", load_config(tmp_path, CONFIG, url=recorder.url))
        client.script_flush()
        env.ingest(T0, alert("Down", instance="a"))
        client.script_flush()
        (job,) = env.flush(T0 + 30)
        client.script_flush()
        assert env.deliver(job, T0 + 30)
        assert statuses(recorder, "/team") == [{"a": "firing"}]
        assert client.keys("scripts:notify:lock:*") == []
        client.script_flush()
        env.ingest(T0 + 60, alert("Down", starts_at=T0 + 60, instance="b"))
        assert [j.reason for j in env.tick(T0 + 330)] == ["new firing alerts"]
        assert statuses(recorder, "/team")[-1] == {"a": "firing", "b": "firing"}
        client.close()


def test_a_thousand_alerts_handed_over_at_once_all_reach_the_group_and_the_index(
    env: Harness, recorder: WebhookRecorder
) -> None:
    """One rule's evaluation can report thousands of alerts of one group in one call: every one is
    stored (the ingest script sets them a few hundred at a time) and indexed."""
    env.ingest(T0, *(alert("Down", instance=f"host-{i:04d}") for i in range(1001)))
    env.tick(T0 + 30)
    (body,) = [d.body for d in recorder.at("/team")]
    assert sorted(a["labels"]["instance"] for a in body["alerts"]) == [f"host-{i:04d}" for i in range(1001)]
    store = NotifyStore(env.client, env.prefix)
    prints = [fingerprint({"alertname": "Down", "instance": f"host-{i:04d}"}) for i in range(1001)]
    assert len(store.index_get(prints)) == 1001


class _CountingConnection(redis.Connection):
    """A connection that counts what it sends at once: one per round trip (a pipeline sends its
    commands together)."""

    sent = 0

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        type(self).sent += 1
        super().send_packed_command(command, check_health)


class _NextOnThisThread:
    """A delivery thread's side of ``pipeline.Handoff``: it delivers ``jobs`` one after another."""

    def __init__(self, jobs: list[Job]) -> None:
        self.waiting = list(jobs)
        self.held: dict[str, Held | None] = {}

    def next_job(self) -> Job | None:
        return self.waiting.pop(0) if self.waiting else None

    def prepare(self, job: Job, held: Held | None) -> None:
        self.held[job.job_id] = held

    def prepared(self, job: Job) -> Held | None:
        return self.held.pop(job.job_id, None)


@pytest.mark.parametrize(
    "handoff", [False, True], ids=["each takes its lock", "the next lock taken in the release"]
)
def test_a_thread_delivering_one_job_after_another_takes_the_next_lock_as_it_releases_the_last(
    tmp_path: Path, recorder: WebhookRecorder, handoff: bool
) -> None:
    """One round trip fewer per delivery, and the same notifications, logs and locks."""
    text = "route: {{receiver: hook, group_by: [alertname]}}\nreceivers:\n  - name: hook\n"
    text += "    webhook_configs: [{{url: '{url}/hook'}}]\n"
    with isolated_redis() as (client, prefix):
        env = Harness(client, prefix, load_config(tmp_path, text, url=recorder.url))
        env.ingest(T0, alert("Down", instance="a"), alert("Full", instance="b"), alert("Slow", instance="c"))
        jobs = env.flush(T0 + 30)
        assert len(jobs) == 3
        pool = redis.ConnectionPool.from_url(REDIS_URL, connection_class=_CountingConnection)
        counting = redis.Redis(connection_pool=pool)
        counting.ping()
        durable.replica_count(counting)  # asked once per client: the scripts below are the only traffic
        _CountingConnection.sent = 0
        thread = _NextOnThisThread(jobs[1:]) if handoff else None
        for job in jobs:
            assert deliver(counting, prefix, env.config, job, T0 + 31, handoff=thread)
        round_trips = _CountingConnection.sent
        counting.close()
        pool.disconnect()
        store = NotifyStore(client, prefix)
        for job in jobs:
            assert store.nflog_get(job.nflog_id, job.integration) is not None
            assert client.exists(f"{prefix}:notify:lock:{job.nflog_id}:{job.integration}") == 0
    assert round_trips == (4 if handoff else 6)
    names = sorted(post.body["commonLabels"]["alertname"] for post in recorder.received)
    assert names == ["Down", "Full", "Slow"]


def test_a_lock_taken_for_the_next_job_is_none_when_another_holds_it(tmp_path: Path) -> None:
    with isolated_redis() as (client, prefix):
        store = NotifyStore(client, prefix)
        mine = store.acquire_and_read("n1", "hook/webhook/0", 15.0, mark="m1", repeat_interval=60)
        theirs = store.acquire_and_read("n2", "hook/webhook/0", 15.0, mark="m2", repeat_interval=60)
        assert mine is not None and theirs is not None
        after = store.settle(
            "n1", "hook/webhook/0", mine.token, then=Taking("n2", "hook/webhook/0", 15.0, "m2", 60)
        )
        assert after is None  # n2 is still theirs
        assert store.acquire_and_read("n1", "hook/webhook/0", 15.0) is not None  # n1 was released
        store.settle("n2", "hook/webhook/0", theirs.token)
        taken = store.settle(
            "n1", "hook/webhook/0", "not-the-token", then=Taking("n2", "hook/webhook/0", 15.0, "m2", 60)
        )
        assert (
            taken is not None and taken.mark is not None and taken.earlier
        )  # m2 was marked before, never logged
