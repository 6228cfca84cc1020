"""Samples written to a real Prometheus 2.42 (its remote-write receiver) read back exactly."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from typing import Any

import pytest

from alerting.remotewrite import STALE_NAN, RemoteWriter, Series, labels_of, parse_remote_write
from tests.support.prometheus import PrometheusServer


@pytest.fixture(scope="module")
def prom() -> Iterator[PrometheusServer]:
    with PrometheusServer(remote_write_receiver=True) as server:
        yield server


def writer_for(prom: PrometheusServer, **queue: Any) -> RemoteWriter:
    return RemoteWriter(parse_remote_write([{"url": prom.write_url, "queue_config": queue}], None))


def points(prom: PrometheusServer, query: str, at_ms: int) -> list[tuple[int, float]]:
    """The samples a range selector returns at ``at_ms``, as (ms timestamp, value)."""
    (series,) = prom.get("/api/v1/query", query=query, time=at_ms / 1000)["result"]
    return [(round(t * 1000), float(v)) for t, v in series["values"]]


def test_samples_written_at_chosen_timestamps_read_back_exactly(prom: PrometheusServer) -> None:
    now_ms = int(time.time() * 1000) // 1000 * 1000
    labels = labels_of("rw:recorded:sum", {"job": "api", "zone": "eu-1"})
    written = [(now_ms - 240_000 + i * 15_000 + 123, i * 1.5 - 3) for i in range(16)]
    with writer_for(prom, max_samples_per_send=5) as writer:
        assert writer.write([Series(labels, v, t) for t, v in written], wait=30)
    assert points(prom, 'rw:recorded:sum{job="api",zone="eu-1"}[5m]', now_ms) == written


def test_queued_samples_are_delivered_by_flush(prom: PrometheusServer) -> None:
    now_ms = int(time.time() * 1000)
    with writer_for(prom, batch_send_deadline="1h") as writer:
        for i in range(3):
            assert writer.write(
                [
                    Series(labels_of("rw_flushed", {"n": str(n)}), n + i, now_ms - 3000 + i * 1000)
                    for n in range(4)
                ]
            )
        assert writer.flush(30)
    for n in range(4):
        assert points(prom, f'rw_flushed{{n="{n}"}}[1m]', now_ms) == [
            (now_ms - 3000 + i * 1000, float(n + i)) for i in range(3)
        ]


def test_a_stale_marker_ends_the_series_for_instant_queries(prom: PrometheusServer) -> None:
    t0 = int(time.time() * 1000) - 60_000
    labels = labels_of("rw_goes_stale", {"job": "api"})
    with writer_for(prom) as writer:
        assert writer.write([Series(labels, 7.0, t0), Series(labels, STALE_NAN, t0 + 15_000)], wait=30)

    def instant(at_ms: int) -> list[Any]:
        return list(prom.get("/api/v1/query", query="rw_goes_stale", time=at_ms / 1000)["result"])

    (before,) = instant(t0 + 10_000)
    assert float(before["value"][1]) == 7.0
    assert instant(t0 + 20_000) == []  # without the marker the 5m lookback would still return 7
    # The marker is stored as a sample: a range selector skips it, the instant value is gone.
    assert points(prom, "rw_goes_stale[1m]", t0 + 30_000) == [(t0, 7.0)]
    assert not math.isnan(points(prom, "rw_goes_stale[1m]", t0 + 30_000)[0][1])


def test_write_relabel_configs_apply_before_sending(prom: PrometheusServer) -> None:
    now_ms = int(time.time() * 1000)
    targets = parse_remote_write(
        [
            {
                "url": prom.write_url,
                "write_relabel_configs": [
                    {"source_labels": ["__name__"], "regex": "rw_relabel_keep", "action": "keep"},
                    {"source_labels": ["team"], "target_label": "owner"},
                    {"action": "labeldrop", "regex": "team"},
                ],
            }
        ],
        None,
    )
    with RemoteWriter(targets) as writer:
        assert writer.write(
            [
                Series(labels_of("rw_relabel_keep", {"team": "core"}), 1.0, now_ms),
                Series(labels_of("rw_relabel_drop", {"team": "core"}), 1.0, now_ms),
            ],
            wait=30,
        )
    result = prom.get("/api/v1/query", query='{__name__=~"rw_relabel_.*"}', time=now_ms / 1000)["result"]
    assert [r["metric"] for r in result] == [{"__name__": "rw_relabel_keep", "owner": "core"}]
