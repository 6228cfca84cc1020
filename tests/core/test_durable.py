"""Writes that must survive a failover wait for a replica: skipped without replicas, counted and
logged when the replica does not answer in time."""

from __future__ import annotations

import signal
from collections.abc import Iterator

import pytest
import redis

from alerting import durable
from alerting.notify.store import NotifyStore
from alerting.ops import metrics
from alerting.routing.dedup import LogEntry
from tests.support.logs import json_log
from tests.support.net import wait_until
from tests.support.sentinel import RedisNode


@pytest.fixture(scope="module")
def primary_and_replica() -> Iterator[tuple[RedisNode, RedisNode]]:
    with RedisNode() as primary:
        replica = RedisNode()
        replica.replica_of = primary.port
        with replica:
            client = primary.client()
            wait_until(
                lambda: client.info("replication").get("slave0", {}).get("state") == "online",
                what="the replica in sync",
            )
            client.close()
            yield primary, replica


def unreplicated(what: str) -> float:
    return metrics.snapshot(metrics.registry()).get(
        f'alerting_redis_unreplicated_writes_total{{what="{what}"}}', 0
    )


def test_without_replicas_a_durable_write_does_not_wait(redis_client: redis.Redis, prefix: str) -> None:
    alone = RedisNode()
    with alone:
        pipe = durable.pipeline(alone.client(), "test-alone")
        pipe.set(f"{prefix}:k", "v")

        assert pipe.execute() == [True] and pipe.acked is None and pipe.replicas == 0


def test_a_durable_write_returns_once_the_replica_has_it(
    primary_and_replica: tuple[RedisNode, RedisNode],
) -> None:
    primary, replica = primary_and_replica
    pipe = durable.pipeline(primary.client(), "test-ok")
    pipe.hset("silences", "s1", "{}")
    pipe.set("nflog", "entry")
    pipe.execute()

    assert pipe.acked == 1
    assert replica.client().get("nflog") == b"entry"


def test_a_replica_that_does_not_answer_in_time_is_counted_and_logged(
    primary_and_replica: tuple[RedisNode, RedisNode],
) -> None:
    primary, replica = primary_and_replica
    client = primary.client()
    durable.forget_replicas(client)
    before = unreplicated("test-slow")
    assert replica.process is not None
    replica.process.send_signal(signal.SIGSTOP)  # alive, connected, and silent
    durable.configure(0.2)
    try:
        with json_log() as log:
            pipe = durable.pipeline(client, "test-slow", transaction=False)
            pipe.set("claim", "running")
            assert pipe.execute() == [True]
    finally:
        durable.configure(durable.DEFAULT_TIMEOUT)
        replica.process.send_signal(signal.SIGCONT)

    assert pipe.acked == 0
    assert unreplicated("test-slow") == before + 1
    assert [r["what"] for r in log.records("redis.not_replicated")] == ["test-slow"]


def test_a_delivery_marks_its_attempt_and_logs_its_notification_on_the_replica_before_going_on(
    primary_and_replica: tuple[RedisNode, RedisNode],
) -> None:
    """The attempt mark made as a delivery's lock is taken, and the log entry written as it is
    released, are each on the replica when the call returns (a failover then keeps them)."""
    primary, replica = primary_and_replica
    store, copy = NotifyStore(primary.client(), "durable"), NotifyStore(replica.client(), "durable")
    held = store.acquire_and_read("nid", "team/webhook/0", 30.0, mark="digest", repeat_interval=30.0)
    assert held is not None and held.mark is not None
    assert copy.r.get(store._nf("attempt", "nid", "team/webhook/0")) == held.mark.encode()

    entry = LogEntry(frozenset({"fp"}), frozenset(), 1000.0, 1.0)
    store.settle("nid", "team/webhook/0", held.token, entry=entry, repeat_interval=3600.0)
    assert copy.nflog_get("nid", "team/webhook/0") == entry


def test_a_delivery_whose_replica_is_silent_is_counted_for_its_mark_and_its_log_entry(
    primary_and_replica: tuple[RedisNode, RedisNode],
) -> None:
    primary, replica = primary_and_replica
    client = primary.client()
    store = NotifyStore(client, "silent")
    durable.forget_replicas(client)
    before = unreplicated("attempt"), unreplicated("nflog")
    assert replica.process is not None
    replica.process.send_signal(signal.SIGSTOP)
    durable.configure(0.2)
    try:
        held = store.acquire_and_read("nid", "team/webhook/0", 30.0, mark="digest", repeat_interval=30.0)
        assert held is not None
        entry = LogEntry(frozenset({"fp"}), frozenset(), 1000.0, 1.0)
        store.settle("nid", "team/webhook/0", held.token, entry=entry, repeat_interval=3600.0)
    finally:
        durable.configure(durable.DEFAULT_TIMEOUT)
        replica.process.send_signal(signal.SIGCONT)

    assert (unreplicated("attempt"), unreplicated("nflog")) == (before[0] + 1, before[1] + 1)
    assert store.nflog_get("nid", "team/webhook/0") == entry
