"""Writes that must survive a failover wait for a replica: skipped without replicas, counted and
logged when the replica does not answer in time."""

from __future__ import annotations

import signal
from collections.abc import Iterator

import pytest
import redis

from alerting import durable
from alerting.ops import metrics
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
