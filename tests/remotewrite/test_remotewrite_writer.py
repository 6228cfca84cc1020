"""The writer's promises: batches, deadlines, waiting writes, no targets, and a fork."""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from typing import Any

import pytest

from alerting.remotewrite import RemoteWriter, Series, labels_of, parse_remote_write
from tests.support.httpfake import Reply
from tests.support.logs import json_log
from tests.support.net import wait_until
from tests.support.remotewrite import WriteReceiver


@pytest.fixture
def receiver() -> Iterator[WriteReceiver]:
    with WriteReceiver() as rw:
        yield rw


def writer(*urls: str, **queue: Any) -> RemoteWriter:
    return RemoteWriter(parse_remote_write([{"url": url, "queue_config": queue} for url in urls], None))


def samples(count: int, start_ms: int = 1_700_000_000_000, name: str = "rw_writer") -> list[Series]:
    return [Series(labels_of(name, {"i": str(i % 3)}), float(i), start_ms + i) for i in range(count)]


def test_a_writer_without_targets_accepts_everything_and_sends_nothing() -> None:
    with RemoteWriter([]) as rw:
        assert rw.targets == ()
        assert rw.write(samples(10)) and rw.write(samples(10), wait=0) and rw.flush(0)


def test_full_batches_go_out_at_once_and_the_rest_after_the_deadline(receiver: WriteReceiver) -> None:
    with writer(receiver.url, max_samples_per_send=4, batch_send_deadline="300ms") as rw:
        assert rw.write(samples(10))
        wait_until(lambda: len(receiver.accepted) == 3, what="three requests")
    assert [len(batch) for _, batch in receiver.accepted] == [4, 4, 2]
    assert sorted(receiver.samples(), key=lambda s: s.timestamp_ms) == samples(10)


def test_a_waiting_write_is_sent_without_waiting_for_the_batch_deadline(receiver: WriteReceiver) -> None:
    with writer(receiver.url, batch_send_deadline="1h") as rw:
        assert rw.write(samples(3), wait=30)  # would block an hour on the deadline otherwise
        assert receiver.samples() == samples(3)


def test_a_waiting_write_is_true_only_when_every_target_accepted(receiver: WriteReceiver) -> None:
    with WriteReceiver() as other, writer(receiver.url, other.url) as rw:
        assert rw.write(samples(2), wait=30)
        assert receiver.samples() == other.samples() == samples(2)
        other.server.fail_next(Reply(400, "out of bounds"))
        assert not rw.write(samples(2, 1_800_000_000_000), wait=30)
        assert receiver.samples()[2:] == samples(2, 1_800_000_000_000)


def test_a_waiting_write_gives_up_when_its_time_is_up(receiver: WriteReceiver) -> None:
    receiver.server.fail_next(Reply(503), times=1000)
    with writer(receiver.url, min_backoff="10ms", max_backoff="10ms") as rw:
        assert not rw.write(samples(1), wait=0.2)
        wait_until(lambda: len(receiver.server.requests) >= 3, what="retries")  # still trying after it


def test_requests_carry_the_configured_headers_and_credentials(receiver: WriteReceiver) -> None:
    targets = parse_remote_write(
        [
            {
                "url": receiver.url,
                "headers": {"X-Scope-OrgID": "team-a"},
                "basic_auth": {"username": "u", "password": "p"},
            }
        ],
        None,
    )
    with RemoteWriter(targets) as rw:
        assert rw.write(samples(1), wait=30)
    (request,) = receiver.server.requests
    assert request.headers["x-scope-orgid"] == "team-a" and request.basic_auth() == ("u", "p")
    assert request.headers["content-encoding"] == "snappy"


def _write_in_child(rw: RemoteWriter, result: Any) -> None:
    result.put(rw.write(samples(2, 1_900_000_000_000), wait=30))


def test_a_writer_built_before_a_fork_sends_from_the_child(receiver: WriteReceiver) -> None:
    with writer(receiver.url) as rw:
        assert rw.write(samples(1), wait=30)  # the parent's sender thread is running
        context = multiprocessing.get_context("fork")
        result = context.Queue()
        child = context.Process(target=_write_in_child, args=(rw, result))
        child.start()
        assert result.get(timeout=60) is True
        child.join(30)
    assert receiver.samples() == samples(1) + samples(2, 1_900_000_000_000)


def test_a_refusal_is_logged_with_the_answer_and_without_the_url_s_credentials(
    receiver: WriteReceiver,
) -> None:
    receiver.server.fail_next(Reply(400, "out of order sample"))
    receiver.server.fail_next(Reply(503, "busy"))
    url = receiver.url.replace("http://", "http://writer:s3cr3t-pw@")
    with json_log() as log, writer(url, min_backoff="10ms") as rw:
        assert not rw.write(samples(1), wait=30)
        assert rw.write(samples(1, 1_800_000_000_000), wait=30)
    (refused,) = log.records("remote_write.rejected")
    assert "out of order sample" in refused["msg"] and refused["status"] == 400
    assert "127.0.0.1" in refused["msg"]
    (retry,) = log.records("remote_write.retry")
    assert "HTTP 503: busy" in retry["msg"]
    assert "s3cr3t-pw" not in log.stream.getvalue()
    assert receiver.server.requests[0].basic_auth() == ("writer", "s3cr3t-pw")  # still sent, as credentials
