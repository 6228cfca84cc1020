"""The per-process flusher: groups flushed by their timer (woken by ingest, no beat running),
deliveries in flight per process, each notification once across processes, jobs of a dead process
taken over from the outbox, and a receiver's Retry-After holding every send to it."""

from __future__ import annotations

import gc
import json
import math
import threading
import time
import weakref
from collections.abc import Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import redis

from alerting.config.settings import Settings
from alerting.core import fingerprint
from alerting.notify.base import NotifyAlert
from alerting.notify.pipeline import Job, _alert_at, flush_due, ingest
from alerting.notify.store import NotifyStore, OutboxWrite
from alerting.ops.heap import settle_heap
from alerting.worker import flusher as flusher_module
from alerting.worker.flusher import _entry, attempt
from alerting.worker.runtime import Runtime
from tests.support.httpfake import Reply, Request
from tests.support.net import wait_until
from tests.support.routing_harness import alert
from tests.support.routing_redis import REDIS_URL, isolated_redis
from tests.support.webhook import WebhookRecorder

CONFIG = """
route:
  receiver: hook
  group_by: [alertname]
  group_wait: {group_wait}
  group_interval: 1h
  repeat_interval: 4h
receivers:
  - name: hook
    webhook_configs:
      - url: {url}/hook
        send_resolved: true
"""


@pytest.fixture
def shared(tmp_path: Path, recorder: WebhookRecorder) -> Iterator[tuple[redis.Redis, Settings]]:
    """A Redis prefix and the settings of worker processes sharing it (their flushers not started)."""
    config = tmp_path / "alerting.yml"
    config.write_text(CONFIG.format(url=recorder.url, group_wait="1s"))
    with isolated_redis() as (client, prefix):
        yield (
            client,
            Settings(
                redis_url=REDIS_URL,
                prefix=prefix,
                rules=(str(tmp_path / "rules"),),
                config_path=str(config),
                history_url=f"sqlite:///{tmp_path / 'history.db'}",
                notify_concurrency=4,
            ),
        )


@pytest.fixture
def processes(shared: tuple[redis.Redis, Settings]) -> Iterator[list[Runtime]]:
    """Two worker processes' runtimes; whatever flushers a test starts are stopped after it."""
    runtimes = [Runtime(shared[1]), Runtime(shared[1])]
    yield runtimes
    for runtime in runtimes:
        runtime.close()


def hand_over(client: redis.Redis, runtime: Runtime, *names: str) -> None:
    """What an evaluation hands over: one firing alert per name, each its own group."""
    now = time.time()
    ingest(client, runtime.prefix, runtime.routing(), [alert(n, starts_at=now) for n in names], now)


def next_message(listener: Any) -> Any:
    found: list[Any] = []

    def arrived() -> bool:
        message = listener.get_message(timeout=0.2)
        if message is not None and message["type"] == "message":
            found.append(message["data"])
        return bool(found)

    wait_until(arrived, timeout=10, what="a message on the wake-up channel")
    return found[0]


def test_ingest_announces_a_new_groups_timer_on_the_wake_up_channel(
    shared: tuple[redis.Redis, Settings], processes: list[Runtime]
) -> None:
    client, settings = shared
    store = NotifyStore(client, settings.prefix)
    listener = client.pubsub(ignore_subscribe_messages=True)
    listener.subscribe(store.wake_channel)
    try:
        wait_until(lambda: client.pubsub_numsub(store.wake_channel)[0][1] == 1, timeout=10, what="subscribed")
        before = time.time()
        hand_over(client, processes[0], "Down")
        due = float(next_message(listener))
        assert due == pytest.approx(store.next_due(), abs=1e-5) and due >= before + 1
        # The same group again: its timer is unchanged, so nothing is announced before our marker.
        hand_over(client, processes[0], "Down")
        # A new group whose timer comes after Down's: a flusher sleeping until Down's finds it then.
        hand_over(client, processes[0], "Later")
        client.publish(store.wake_channel, "marker")
        assert next_message(listener) == b"marker"
    finally:
        listener.close()


def test_groups_whose_timers_were_not_announced_are_flushed_when_due(
    shared: tuple[redis.Redis, Settings], processes: list[Runtime], recorder: WebhookRecorder
) -> None:
    """Only a timer earlier than every other is announced: the flushers, asleep until the earliest,
    go on to each later one as it comes due, none of them early."""
    client, _ = shared
    for runtime in processes:
        runtime.flusher().start()
    handed: dict[str, float] = {}
    for name in ("First", "Second", "Third"):
        handed[name] = time.time()
        hand_over(client, processes[0], name)
        time.sleep(0.3)  # a later timer for each
    wait_until(lambda: len(recorder.delivered()) >= len(handed), timeout=30, what="every notification")
    recorder.settle(quiet=1.5)
    delivered = recorder.delivered()
    assert sorted(r.group for r in delivered) == sorted(handed)
    for request in delivered:
        assert request.at >= handed[request.group] + 1.0  # not before its group_wait


def test_due_groups_are_delivered_by_the_flushers_alone_each_once(
    shared: tuple[redis.Redis, Settings], processes: list[Runtime], recorder: WebhookRecorder
) -> None:
    client, _ = shared
    for runtime in processes:
        runtime.flusher().start()
    names = [f"Storm{i}" for i in range(12)]
    hand_over(client, processes[0], *names)
    wait_until(lambda: len(recorder.delivered()) >= len(names), timeout=30, what="every group's notification")
    recorder.settle(quiet=1.5)
    assert sorted(r.group for r in recorder.delivered()) == sorted(names)
    assert NotifyStore(client, processes[0].prefix).outbox_next() is None  # nothing left undelivered


def test_a_job_whose_process_died_is_taken_over_from_the_outbox_and_sent_once(
    shared: tuple[redis.Redis, Settings], processes: list[Runtime], recorder: WebhookRecorder
) -> None:
    client, settings = shared
    dead, alive = processes
    hand_over(client, dead, "Orphan")
    # The dead process had flushed the group and recorded the job, then stopped renewing its lease.
    (job,) = flush_due(client, settings.prefix, dead.routing(), time.time() + 2)
    store = NotifyStore(client, settings.prefix)
    store.outbox_put({job.job_id: _entry(job, 0)}, time.time() - 1, 60)
    alive.flusher().start()
    wait_until(lambda: recorder.delivered(), timeout=30, what="the taken-over notification")
    recorder.settle(quiet=1.5)
    assert [r.group for r in recorder.delivered()] == ["Orphan"]
    assert store.outbox_next() is None


def test_a_receivers_retry_after_defers_every_send_to_that_integration(
    shared: tuple[redis.Redis, Settings], processes: list[Runtime], recorder: WebhookRecorder
) -> None:
    client, settings = shared
    runtime = processes[0]
    hand_over(client, runtime, "First", "Second")
    first, second = sorted(
        flush_due(client, settings.prefix, runtime.routing(), time.time() + 2), key=lambda j: j.group_key
    )
    recorder.fail("/hook", 429, headers={"Retry-After": "30"})
    refused = attempt(runtime, runtime.routing(), first, 0)
    assert refused.retry_in is not None and refused.retry_in >= 30 and refused.error is not None
    deferred = attempt(runtime, runtime.routing(), second, 0)
    assert deferred.retry_in is not None and 25 < deferred.retry_in <= 30 and deferred.error is None
    assert len(recorder.received) == 1  # the second job never reached the receiver


def test_the_alert_index_is_cleaned_when_no_send_is_starting(
    shared: tuple[redis.Redis, Settings], processes: list[Runtime], recorder: WebhookRecorder
) -> None:
    """Cleaning the index reads every alert in it: a flush that starts sends leaves it for the
    next quiet flush (one that starts none), which forgets alerts resolved long ago."""
    client, settings = shared
    flusher = processes[0].flusher()
    store = NotifyStore(client, settings.prefix)
    long_ago = time.time() - 3600
    gone = alert("Gone", starts_at=long_ago - 60, ends_at=long_ago)
    ingest(client, settings.prefix, processes[0].routing(), [gone], long_ago)
    hand_over(client, processes[0], "Busy")
    assert len(store.index_get([fingerprint(gone.labels)])) == 1
    assert flusher.flush(time.time() + 2) == 1  # "Busy" goes out
    assert len(store.index_get([fingerprint(gone.labels)])) == 1
    wait_until(lambda: recorder.delivered(), timeout=30, what="the notification")
    wait_until(lambda: not flusher._held, timeout=30, what="the send to finish")
    assert flusher.flush(time.time() + 2) == 0
    assert store.index_get([fingerprint(gone.labels)]) == {}
    flusher.stop()


def test_a_started_flusher_has_its_delivery_threads_before_anything_is_due(processes: list[Runtime]) -> None:
    """A storm's first sends do not each start a thread: they are all there once the flusher starts."""
    flusher = processes[0].flusher()
    flusher.start()
    try:
        wait_until(
            lambda: len(flusher._pool._threads) == processes[0].settings.notify_concurrency,
            timeout=10,
            what="every delivery thread started",
        )
    finally:
        flusher.stop()


class InFlight:
    """A webhook answer that counts the requests under way at once: each is held until ``until``
    requests have been under way together (at most 10 s), then ``hold`` seconds more."""

    def __init__(self, until: int, hold: float = 0.0) -> None:
        self.hold, self.until = hold, until
        self.now = self.most = 0
        self._lock = threading.Lock()
        self._together = threading.Event()

    def __call__(self, request: Request) -> Reply:
        with self._lock:
            self.now += 1
            self.most = max(self.most, self.now)
            if self.now >= self.until:
                self._together.set()
        self._together.wait(10)
        time.sleep(self.hold)
        with self._lock:
            self.now -= 1
        return Reply(200, "ok")


def storm_to(
    recorder: WebhookRecorder, settings: Settings, answer: InFlight, groups: int, concurrency: int
) -> None:
    """``groups`` groups flushed at once by a process allowed ``concurrency`` deliveries, each
    answered by ``answer``, until every one was accepted."""
    recorder.answer = answer
    runtime = Runtime(replace(settings, notify_concurrency=concurrency))
    try:
        names = [f"Down{i:02d}" for i in range(groups)]
        hand_over(runtime.redis, runtime, *names)
        assert runtime.flusher().flush(time.time() + 2) == groups
        wait_until(lambda: len(recorder.delivered()) == groups, timeout=60, what="every notification")
    finally:
        runtime.close()


def test_a_receiver_that_keeps_its_sends_waiting_gets_as_many_at_once_as_allowed(
    shared: tuple[redis.Redis, Settings], recorder: WebhookRecorder
) -> None:
    """Sends that take a while (a receiver far away, or slow) are not held to the few a prompt
    receiver gets: once the oldest has waited a moment with the process idle, more start."""
    answer = InFlight(until=16)
    storm_to(recorder, shared[1], answer, groups=24, concurrency=16)
    assert answer.most == 16


def test_a_prompt_receiver_gets_a_few_sends_at_a_time(
    shared: tuple[redis.Redis, Settings], recorder: WebhookRecorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While sends come back before the oldest has waited its patience (30 s here, so that a slow
    test machine changes nothing), a process keeps PROMPT_DELIVERIES of them running, not all it may."""
    monkeypatch.setattr(flusher_module, "PROMPT_PATIENCE", 30.0)
    answer = InFlight(until=flusher_module.PROMPT_DELIVERIES, hold=0.05)
    storm_to(recorder, shared[1], answer, groups=24, concurrency=16)
    assert answer.most == flusher_module.PROMPT_DELIVERIES


class Held:
    """A webhook answer held until ``gate`` opens, counting the requests that came meanwhile."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.came = 0
        self._lock = threading.Lock()

    def __call__(self, request: Request) -> Reply:
        with self._lock:
            self.came += 1
        self.gate.wait(30)
        return Reply(200, "ok")


def test_a_process_with_sends_backed_up_leaves_the_groups_still_due_to_other_processes(
    shared: tuple[redis.Redis, Settings], recorder: WebhookRecorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A process claims due groups a batch at a time, and the next batch only once fewer than
    PACE_BACKLOG of its sends wait to start: what it could not start soon, another process takes."""
    monkeypatch.setattr(flusher_module, "PROMPT_PATIENCE", 30.0)  # no more sends at once than steady
    monkeypatch.setattr(flusher_module, "PACE_MOST", 30.0)
    monkeypatch.setattr(flusher_module, "CLAIM_SHARE", 1)  # whole batches, whatever is due
    answer = Held()
    recorder.answer = answer
    client, settings = shared
    store = NotifyStore(client, settings.prefix)
    first, second = (Runtime(replace(settings, notify_concurrency=16)) for _ in range(2))
    flushes: list[threading.Thread] = []
    try:
        names = [f"Down{i:02d}" for i in range(3 * flusher_module.FLUSH_GROUPS)]
        hand_over(client, first, *names)
        due = time.time() + 2
        started: list[int] = []

        def still_due() -> int:
            return int(client.zcount(store.due_key, "-inf", repr(due)))

        for runtime, left in ((first, 2), (second, 1)):
            flush = threading.Thread(target=lambda r=runtime: started.append(r.flusher().flush(due)))
            flush.start()
            flushes.append(flush)
            wait_until(
                lambda left=left: still_due() == left * flusher_module.FLUSH_GROUPS,
                timeout=10,
                what=f"{left} batches of groups left due",
            )
        # Each process holds one batch, its first sends held by the receiver; the third stays due
        # for whichever can start it first.
        wait_until(lambda: answer.came == 2 * flusher_module.PROMPT_DELIVERIES, timeout=10, what="sends")
        assert still_due() == flusher_module.FLUSH_GROUPS
        answer.gate.set()
        for flush in flushes:
            flush.join(30)
        assert len(started) == 2 and sum(started) == len(names)
        wait_until(lambda: len(recorder.delivered()) == len(names), timeout=60, what="every notification")
        recorder.settle(quiet=1.0)
        assert sorted(r.group for r in recorder.delivered()) == sorted(names)
    finally:
        answer.gate.set()
        first.close()
        second.close()


def test_a_notification_handed_on_by_a_delivery_starts_without_waiting_for_the_backlog(
    shared: tuple[redis.Redis, Settings], recorder: WebhookRecorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only a flush waits for fewer sends to be waiting before it goes on: a delivery that hands
    its notification on (to the fallback receiver, after a permanent failure) goes on at once."""
    monkeypatch.setattr(flusher_module, "PROMPT_PATIENCE", 30.0)
    monkeypatch.setattr(flusher_module, "PACE_MOST", 30.0)
    answer = Held()
    recorder.answer = answer
    client, settings = shared
    runtime = Runtime(replace(settings, notify_concurrency=16))
    try:
        names = [f"Down{i:02d}" for i in range(flusher_module.FLUSH_GROUPS)]
        hand_over(client, runtime, *names)
        flusher = runtime.flusher()
        flush = threading.Thread(target=flusher.flush, args=(time.time() + 2,))
        flush.start()
        wait_until(lambda: answer.came == flusher_module.PROMPT_DELIVERIES, timeout=10, what="sends")
        assert flush.is_alive()  # waiting for its backlog: the rest of the batch waits to start
        handed_on = Job(
            job_id="nf-handed-on",
            group_id="g",
            group_key='{}:{alertname="HandedOn"}',
            nflog_id="n",
            receiver="hook",
            integration="hook/webhook/0",
            seq=time.time(),
            group_labels={"alertname": "HandedOn"},
            alerts=(alert("HandedOn", starts_at=time.time()),),
            firing=(alert("HandedOn").fingerprint,),
            resolved=(),
            repeat_interval=3600.0,
            reason="first notification",
        )
        dispatch = threading.Thread(target=flusher._dispatch, args=([handed_on],))
        dispatch.start()
        dispatch.join(3)  # the held sends time out after 10 s; nothing else frees a slot before
        assert not dispatch.is_alive()
        answer.gate.set()
        flush.join(30)
        wait_until(lambda: len(recorder.delivered()) == len(names) + 1, timeout=60, what="every notification")
    finally:
        answer.gate.set()
        runtime.close()


def test_a_stopping_process_gives_back_at_once_the_jobs_it_had_not_started(
    shared: tuple[redis.Redis, Settings],
    processes: list[Runtime],
    recorder: WebhookRecorder,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A warm shutdown finishes the sends under way and hands the jobs still waiting their turn to
    the other processes, which send them; each group is told once."""
    monkeypatch.setattr(flusher_module, "PROMPT_PATIENCE", 30.0)  # no more than the steady few start
    client, settings = shared
    arrived: list[str] = []
    release = threading.Event()

    def answer(request: Request) -> Reply:
        arrived.append(request.path)
        release.wait(30)
        return Reply(200, "ok")

    recorder.answer = answer
    stopping = Runtime(replace(settings, notify_concurrency=16))
    try:
        names = [f"Down{i:02d}" for i in range(24)]
        hand_over(client, stopping, *names)
        flusher = stopping.flusher()
        assert flusher.flush(time.time() + 2) == 24
        steady = flusher_module.PROMPT_DELIVERIES
        wait_until(lambda: len(arrived) == steady, timeout=30, what="the first sends under way")
        stop = threading.Thread(target=flusher.stop, kwargs={"timeout": 30})
        stop.start()
        release.set()
        stop.join(60)
        assert not stop.is_alive()
        assert processes[1].flusher().flush(time.time()) == len(names) - steady
        wait_until(lambda: len(recorder.delivered()) == len(names), timeout=60, what="every notification")
        recorder.settle(quiet=2.0)
        assert sorted(r.group for r in recorder.delivered()) == names
    finally:
        release.set()
        stopping.close()


def test_outbox_entries_read_back_as_the_jobs_they_were_written_from() -> None:
    """An outbox entry reads back as the job it was written from, in either form: a job read back
    (no stored alerts) is written out, and a value JSON cannot hold natively takes the general way."""
    alerts = tuple(
        NotifyAlert(
            status="firing" if i else "resolved",
            labels={"alertname": "Down", "instance": f"host-{i}"},
            annotations={"summary": f"host-{i} is down"},
            starts_at=1700000000.0 + i,
            ends_at=None if i else 1700000100.5,
            generator_url="http://prometheus.example/graph",
            fingerprint=f"{i:016x}",
            value=float(i),
        )
        for i in range(3)
    )
    slack = Job(
        job_id="nf-1",
        group_id="g",
        group_key='{}:{alertname="Down"}',
        nflog_id="n",
        receiver="oncall",
        integration="oncall/slack/0",
        seq=1700000030.25,
        group_labels={"alertname": "Down"},
        alerts=alerts,
        firing=("0000000000000001", "0000000000000002"),
        resolved=("0000000000000000",),
        repeat_interval=14400.0,
        reason="first notification",
        extra={"external_url": "http://alerting.example", "step": 0},
    )
    entry = json.loads(_entry(slack, 2))
    assert entry["retries"] == 2 and Job.from_dict(entry["job"]) == slack
    nan = replace(slack, job_id="nf-3", alerts=(replace(alerts[1], value=math.nan),))
    back = Job.from_dict(json.loads(_entry(nan, 0))["job"])
    assert math.isnan(back.alerts[0].value or 0.0) and replace(back, alerts=nan.alerts) == nan


def test_a_flushed_jobs_entry_carries_its_alerts_as_stored_and_reads_back_as_the_job(
    shared: tuple[redis.Redis, Settings], processes: list[Runtime]
) -> None:
    """The jobs a flush makes go in the outbox with their alerts as the group stored them (not
    encoded again): each entry reads back as its job, with the flush's order, a resolved alert and
    a value only the standard JSON decoder reads (NaN)."""
    client, _ = shared
    runtime = processes[0]
    now = time.time()
    handed = [
        replace(alert("Down", instance="b", starts_at=now - 5), value=math.nan),
        replace(alert("Down", instance="a", starts_at=now - 9), value=2.5),
        replace(alert("Down", instance="c", starts_at=now - 20, ends_at=now - 1), value=1.0),
    ]
    ingest(client, runtime.prefix, runtime.routing(), handed, now)
    made: list[Job] = []

    def outbox(jobs: list[Job], stored: Mapping[str, bytes]) -> OutboxWrite:
        made.extend(jobs)
        return OutboxWrite({job.job_id: _entry(job, 0, stored[job.group_id]) for job in jobs}, now + 60, 600)

    flush_due(client, runtime.prefix, runtime.routing(), now + 2, outbox=outbox)
    (job,) = made
    statuses = [(a.labels["instance"], a.status) for a in job.alerts]
    assert statuses == [("a", "firing"), ("b", "firing"), ("c", "resolved")]
    written = NotifyStore(client, runtime.prefix).outbox_take(now + 61, now + 120, 10)[job.job_id]
    entry = json.loads(written)
    assert "stored" in entry["job"] and "alerts" not in entry["job"]
    back = Job.from_dict(entry["job"])
    assert math.isnan(back.alerts[1].value or 0.0)
    assert replace(back, alerts=job.alerts) == job  # every other field as it was
    assert [replace(a, value=0.0) for a in back.alerts] == [replace(a, value=0.0) for a in job.alerts]


def test_a_settled_heap_keeps_no_garbage_and_sets_the_rest_aside() -> None:
    """What a worker process does once it is set up: garbage collected first (a cycle nothing
    refers to is gone), the rest set aside, so that full collections in a storm skip it."""

    class Node:
        pass

    a, b = Node(), Node()
    a.other, b.other = b, a  # type: ignore[attr-defined]
    dropped = weakref.ref(a)
    del a, b
    thresholds = gc.get_threshold()
    try:
        settle_heap()
        assert dropped() is None
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)


def test_a_storms_alerts_held_in_a_settled_process_bring_about_no_full_collection() -> None:
    """Alerts decoded in a flush live until delivered: in a settled process, holding a hundred
    thousand of them costs no full collection (each would walk every alert held so far)."""
    thresholds = gc.get_threshold()
    try:
        settle_heap()
        full = gc.get_stats()[2]["collections"]
        held = [
            _alert_at({"labels": {"instance": str(i)}, "starts_at": 1.0, "fingerprint": str(i)}, 2.0)
            for i in range(100_000)
        ]
        assert len(held) == 100_000 and gc.get_stats()[2]["collections"] == full
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)
