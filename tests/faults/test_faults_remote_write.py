"""Remote write under faults: the target down, its queue overflowing, 5xx and 429 answers, and a real
Prometheus refusing out-of-order samples. Waits are on what the receiver or the metrics show."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from alerting.ops import metrics
from alerting.remotewrite import RemoteWriter, Series, labels_of, parse_remote_write
from tests.support.httpfake import Reply
from tests.support.net import wait_until
from tests.support.prometheus import PrometheusServer
from tests.support.remotewrite import WriteReceiver
from tests.support.tcpproxy import TCPProxy

pytestmark = pytest.mark.faults


def metric(name: str, **labels: str) -> float:
    inner = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    return metrics.snapshot(metrics.registry()).get(f"{name}{{{inner}}}", 0.0)


def writer(url: str, **queue: Any) -> tuple[RemoteWriter, str]:
    """A writer to ``url`` under a name of its own, so its metrics are this test's alone."""
    name = f"rw-{uuid.uuid4().hex[:8]}"
    queue = {"min_backoff": "50ms", "max_backoff": "500ms", "batch_send_deadline": "50ms", **queue}
    targets = parse_remote_write([{"url": url, "name": name, "queue_config": queue}], None)
    return RemoteWriter(targets), name


def samples(metric_name: str, count: int, start_ms: int, **labels: str) -> list[Series]:
    return [Series(labels_of(metric_name, labels), float(i), start_ms + i * 1000) for i in range(count)]


@pytest.fixture
def receiver() -> Iterator[WriteReceiver]:
    with WriteReceiver() as rw:
        yield rw


def test_a_target_down_for_several_seconds_gets_everything_queued_once_it_is_back(
    receiver: WriteReceiver,
) -> None:
    with TCPProxy("127.0.0.1", receiver.server.port) as proxy:
        rw, name = writer(
            f"http://127.0.0.1:{proxy.port}/api/v1/write", capacity=1000, max_samples_per_send=40
        )
        with rw:
            proxy.cut()
            now = int(time.time() * 1000)
            sent = [s for n in range(5) for s in samples("rw_outage", 60, now, n=str(n))]
            for i in range(0, len(sent), 50):  # several writes, as several evaluations would make
                assert rw.write(sent[i : i + 50])
            # Backoff doubles from 50ms to 500ms: ten retries keep the target away for some 4 seconds.
            wait_until(
                lambda: metric("alerting_remote_write_retries_total", remote=name) >= 6, what="retries"
            )
            assert metric("alerting_remote_write_pending_samples", remote=name) == len(sent)
            assert receiver.samples() == []
            proxy.restore()
            wait_until(lambda: len(receiver.samples()) >= len(sent), what="the queued samples")
            assert rw.flush(30)
    got = receiver.samples()
    assert sorted(got, key=lambda s: (s.labels, s.timestamp_ms)) == sorted(
        sent, key=lambda s: (s.labels, s.timestamp_ms)
    )
    for n in range(5):  # each series arrives in the order it was written
        stamps = [s.timestamp_ms for s in got if dict(s.labels)["n"] == str(n)]
        assert stamps == sorted(stamps)
    assert metric("alerting_remote_write_samples_total", remote=name, outcome="sent") == len(sent)
    assert metric("alerting_remote_write_samples_dropped_total", remote=name, reason="queue_full") == 0
    assert metric("alerting_remote_write_pending_samples", remote=name) == 0
    assert metric("alerting_remote_write_last_success_timestamp_seconds", remote=name) > 0


def test_past_capacity_new_samples_are_dropped_and_counted(receiver: WriteReceiver) -> None:
    with TCPProxy("127.0.0.1", receiver.server.port) as proxy:
        rw, name = writer(f"http://127.0.0.1:{proxy.port}/api/v1/write", capacity=30, max_samples_per_send=10)
        with rw:
            proxy.cut()
            now = int(time.time() * 1000)
            first = samples("rw_overflow", 30, now)
            assert rw.write(first)
            assert not rw.write(samples("rw_overflow", 25, now + 30_000))  # nothing fits
            assert not rw.write(samples("rw_overflow", 5, now + 60_000), wait=5)
            assert metric("alerting_remote_write_pending_samples", remote=name) == 30  # memory stays bounded
            assert (
                metric("alerting_remote_write_samples_dropped_total", remote=name, reason="queue_full") == 30
            )
            assert metric("alerting_remote_write_samples_total", remote=name, outcome="dropped") == 30
            proxy.restore()
            assert rw.flush(30)
    assert receiver.samples() == first


def test_5xx_answers_are_retried_until_the_target_accepts(receiver: WriteReceiver) -> None:
    receiver.server.fail_next(Reply(503, "overloaded"), times=2)
    receiver.server.fail_next(Reply(500, "oops"))
    rw, name = writer(receiver.url)
    sent = samples("rw_retried", 3, int(time.time() * 1000))
    with rw:
        assert rw.write(sent, wait=30)
    bodies = [r.body for r in receiver.server.requests]
    assert len(bodies) == 4 and len(set(bodies)) == 1  # the same batch, sent again as it was
    assert receiver.samples() == sent
    assert metric("alerting_remote_write_retries_total", remote=name) == 3


def test_a_request_that_times_out_is_sent_again(receiver: WriteReceiver) -> None:
    receiver.server.fail_next(Reply(204, delay=3.0))  # answered, but after remote_timeout
    targets = parse_remote_write(
        [
            {
                "url": receiver.url,
                "name": "rw-timeout",
                "remote_timeout": "300ms",
                "queue_config": {"min_backoff": "10ms"},
            }
        ],
        None,
    )
    before = metric("alerting_remote_write_retries_total", remote="rw-timeout")
    sent = samples("rw_timed_out", 2, int(time.time() * 1000))
    with RemoteWriter(targets) as rw:
        assert rw.write(sent, wait=30)
    assert len(receiver.server.requests) == 2 and receiver.samples() == sent
    assert metric("alerting_remote_write_retries_total", remote="rw-timeout") == before + 1


def test_a_429_with_retry_after_pauses_the_target_that_long(receiver: WriteReceiver) -> None:
    receiver.server.fail_next(Reply(429, "slow down", headers={"Retry-After": "2"}))
    rw, name = writer(receiver.url, min_backoff="10ms", max_backoff="10ms")
    sent = samples("rw_rate_limited", 2, int(time.time() * 1000))
    with rw:
        assert rw.write(sent, wait=30)
    refused, accepted = receiver.server.requests
    assert accepted.at - refused.at >= 2.0  # as the target asked, not the 10ms backoff
    assert receiver.samples() == sent
    assert metric("alerting_remote_write_retries_total", remote=name) == 1


def test_a_429_is_final_when_retry_on_http_429_is_off(receiver: WriteReceiver) -> None:
    receiver.server.fail_next(Reply(429, "slow down"))
    rw, name = writer(receiver.url, retry_on_http_429=False)
    now = int(time.time() * 1000)
    with rw:
        assert not rw.write(samples("rw_429_final", 2, now), wait=30)
        assert rw.write(samples("rw_429_final", 2, now + 5000), wait=30)
    assert metric("alerting_remote_write_samples_dropped_total", remote=name, reason="rejected") == 2


def test_samples_past_the_age_limit_are_dropped_not_sent(receiver: WriteReceiver) -> None:
    rw, name = writer(receiver.url, sample_age_limit="1m")
    now = int(time.time() * 1000)
    fresh = samples("rw_aged", 2, now)
    with rw:
        assert not rw.write(samples("rw_aged", 2, now - 120_000) + fresh, wait=30)
    assert receiver.samples() == fresh
    assert metric("alerting_remote_write_samples_dropped_total", remote=name, reason="too_old") == 2


def test_prometheus_refusing_out_of_order_samples_drops_that_batch_and_takes_the_next() -> None:
    with PrometheusServer(remote_write_receiver=True) as prom:
        rw, name = writer(prom.write_url)
        t = int(time.time() * 1000) // 1000 * 1000 - 60_000
        labels = labels_of("rw_out_of_order", {"job": "api"})
        with rw:
            assert rw.write([Series(labels, 1.0, t)], wait=30)
            assert not rw.write([Series(labels, 2.0, t - 30_000)], wait=30)  # older than what is stored
            assert rw.write([Series(labels, 3.0, t + 15_000)], wait=30)
        (stored,) = prom.get("/api/v1/query", query="rw_out_of_order[5m]", time=(t + 20_000) / 1000)["result"]
        assert [(round(ts * 1000), float(v)) for ts, v in stored["values"]] == [(t, 1.0), (t + 15_000, 3.0)]
    assert metric("alerting_remote_write_samples_dropped_total", remote=name, reason="rejected") == 1
    assert metric("alerting_remote_write_samples_total", remote=name, outcome="sent") == 2
