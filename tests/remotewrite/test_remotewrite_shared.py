"""Writers over one Redis share each target's queue: one sender, in the order written, waits that
span processes, one capacity, and a queue that outlives its writer. Two writers in one test stand
for two worker processes; the receiver is a local fake, Redis is real."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import redis

from alerting.ops import metrics
from alerting.remotewrite import STALE_NAN, RemoteWriter, Series, is_stale, labels_of, parse_remote_write
from tests.support.httpfake import Reply, Request
from tests.support.logs import json_log
from tests.support.net import REDIS_URL, wait_until
from tests.support.remotewrite import WriteReceiver

T0 = 1_700_000_000_000


@dataclass
class Shared:
    """A receiver that can be taken down, and what every writer of the test shares."""

    receiver: WriteReceiver
    down: threading.Event
    client: redis.Redis
    prefix: str
    name: str

    def writer(self, **queue: Any) -> RemoteWriter:
        queue = {"min_backoff": "10ms", "max_backoff": "100ms", "batch_send_deadline": "50ms", **queue}
        targets = parse_remote_write(
            [{"url": self.receiver.url, "name": self.name, "queue_config": queue}], None
        )
        return RemoteWriter(targets, redis=self.client, prefix=self.prefix)

    def queued(self) -> int:
        """Entries in the target's list in Redis."""
        return int(self.client.llen(f"{self.prefix}:remotewrite:{self.name}:queue"))

    def metric(self, name: str, **labels: str) -> float:
        inner = ",".join(f'{k}="{v}"' for k, v in sorted({"remote": self.name, **labels}.items()))
        return metrics.snapshot(metrics.registry()).get(f"{name}{{{inner}}}", 0.0)


@pytest.fixture
def shared() -> Iterator[Shared]:
    down = threading.Event()

    def answer(_: Request) -> Reply | None:
        return Reply(503, "down") if down.is_set() else None

    client = redis.Redis.from_url(REDIS_URL)
    prefix = f"test-rw-{uuid.uuid4().hex[:12]}"
    try:
        with WriteReceiver(answer) as receiver:
            yield Shared(receiver, down, client, prefix, f"rw-{uuid.uuid4().hex[:8]}")
    finally:
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()


def tick(i: int, *series: str) -> list[Series]:
    return [Series(labels_of("rw_shared", {"s": s}), float(i), T0 + i * 1000) for s in series]


def test_writes_from_two_writers_arrive_in_the_order_written_through_one_sender(shared: Shared) -> None:
    shared.down.set()
    with json_log() as log, shared.writer(max_samples_per_send=7) as a, shared.writer() as b:
        # A group's ticks land in whichever process is free: here they alternate.
        for i in range(20):
            assert (a if i % 2 else b).write(tick(i, "x", "y", "z"))
        wait_until(lambda: len(shared.receiver.server.requests) >= 3, what="the target refusing")
        shared.down.clear()
        wait_until(lambda: len(shared.receiver.samples()) >= 60, what="every sample")
        senders = log.records("remote_write.sending")
    got = shared.receiver.samples()
    for s in ("x", "y", "z"):
        stamps = [one.timestamp_ms for one in got if dict(one.labels)["s"] == s]
        assert stamps == [T0 + i * 1000 for i in range(20)]
    assert len(senders) == 1  # one process sent all along: the other never took the lease
    assert shared.queued() == 0


def test_a_waiting_write_returns_once_the_other_writer_s_sender_settled_it(shared: Shared) -> None:
    with json_log() as log, shared.writer(batch_send_deadline="1h") as a:
        wait_until(lambda: log.records("remote_write.sending"), what="a to take the lease")
        with shared.writer(batch_send_deadline="1h") as b:
            # Sent at once although the batch deadline is an hour away, by a's sender.
            assert b.write(tick(1, "x"), wait=30)
            assert shared.receiver.samples() == tick(1, "x")
            shared.receiver.server.fail_next(Reply(400, "out of bounds"))
            assert not b.write(tick(2, "x"), wait=30)
            assert b.write(tick(3, "x"), wait=30)
            assert a.write(tick(4, "x"), wait=30)
        assert len(log.records("remote_write.sending")) == 1
    assert shared.receiver.samples() == tick(1, "x") + tick(3, "x") + tick(4, "x")


def test_capacity_bounds_what_every_writer_queues_together(shared: Shared) -> None:
    shared.down.set()
    with shared.writer(capacity=30) as a, shared.writer(capacity=30) as b:
        first = [s for i in range(9) for s in tick(i, "x", "y", "z")]
        assert a.write(first)
        assert not b.write(tick(9, "x", "y", "z", "w", "v"))  # what fits is kept: 3 of 5
        assert not b.write(tick(10, "x"))
        assert not b.write(tick(11, "x"), wait=5)
        assert shared.metric("alerting_remote_write_samples_dropped_total", reason="queue_full") == 4
        shared.down.clear()
        wait_until(lambda: shared.queued() == 0, what="the queue sent")
        assert b.write(tick(12, "x"), wait=30)
    assert sorted(shared.receiver.samples(), key=lambda s: (s.timestamp_ms, s.labels)) == sorted(
        [*first, *tick(9, "x", "y", "z"), *tick(12, "x")], key=lambda s: (s.timestamp_ms, s.labels)
    )


def test_what_a_stopped_writer_left_queued_is_sent_by_the_next_one(shared: Shared) -> None:
    shared.down.set()
    with shared.writer() as gone:
        assert gone.write(tick(1, "x")) and gone.write(tick(2, "x"))
        wait_until(lambda: len(shared.receiver.server.requests) >= 2, what="the target refusing")
    assert shared.queued() == 2  # closing neither sent nor dropped them
    shared.down.clear()
    with shared.writer():  # writes nothing: it sends what is queued all the same
        wait_until(lambda: len(shared.receiver.samples()) == 2, what="the queued samples")
        wait_until(lambda: shared.queued() == 0, what="the queue emptied")
    assert shared.receiver.samples() == tick(1, "x") + tick(2, "x")


def test_a_flush_has_the_queue_sent_now_and_hands_the_lease_over(shared: Shared) -> None:
    with json_log() as log, shared.writer(batch_send_deadline="1h") as a:
        wait_until(lambda: log.records("remote_write.sending"), what="a to take the lease")
        with shared.writer(batch_send_deadline="1h") as b:
            assert b.write(tick(1, "x"))
            assert a.flush(30)  # not an hour later
            assert shared.receiver.samples() == tick(1, "x")
            wait_until(lambda: len(log.records("remote_write.sending")) == 2, what="b to take the lease")
            assert b.write(tick(2, "x"), wait=30)
    assert shared.receiver.samples() == tick(1, "x") + tick(2, "x")


def test_a_stale_marker_keeps_its_bits_through_the_queue(shared: Shared) -> None:
    labels = labels_of("rw_shared", {"s": "x"})
    with shared.writer() as rw:
        assert rw.write([Series(labels, 1.0, T0), Series(labels, STALE_NAN, T0 + 1000)], wait=30)
    first, marker = shared.receiver.samples()
    assert first == Series(labels, 1.0, T0) and is_stale(marker.value) and marker.timestamp_ms == T0 + 1000


def test_a_sender_that_vanished_without_a_word_is_replaced_when_its_lease_lapses(shared: Shared) -> None:
    lease = f"{shared.prefix}:remotewrite:{shared.name}:sender"
    shared.client.set(lease, "a-process-killed-while-sending", px=1500)
    with json_log() as log, shared.writer() as rw:
        assert rw.write(tick(1, "x"))
        wait_until(lambda: log.records("remote_write.sending"), what="the lease taken over")
        wait_until(lambda: shared.receiver.samples() == tick(1, "x"), what="the queued sample")
    assert shared.client.get(lease) is None  # given up again on close
