"""The wire format: snappy block format around Prometheus's WriteRequest, and the stale marker."""

from __future__ import annotations

import math
import struct

import cramjam
import pytest

from alerting.remotewrite import STALE_NAN, Series, decode, encode, is_stale, labels_of
from alerting.remotewrite.wire import HEADERS, WireError, WriteRequest, decode_message, encode_message


def bits(value: float) -> int:
    return int(struct.unpack("<Q", struct.pack("<d", value))[0])


def test_the_stale_marker_is_prometheus_s_nan_and_no_other() -> None:
    assert bits(STALE_NAN) == 0x7FF0000000000002
    assert is_stale(STALE_NAN)
    assert (
        not is_stale(math.nan) and not is_stale(float("nan")) and not is_stale(1.0) and not is_stale(math.inf)
    )


def test_a_round_trip_keeps_labels_values_timestamps_and_the_stale_marker_bits() -> None:
    a = labels_of("job:up:sum", {"job": "api", "zone": "eu-1"})
    b = labels_of("job:up:sum", {"job": "db"})
    written = [
        Series(a, 1.5, 1_700_000_000_123),
        Series(b, -0.0, 1_700_000_000_123),
        Series(a, math.inf, 1_700_000_015_123),
        Series(a, STALE_NAN, 1_700_000_030_123),
        Series(b, math.nan, -5),
    ]
    read = decode(encode(written))
    # Samples come back grouped by series, each series' samples in the order written.
    assert [(s.labels, s.timestamp_ms) for s in read] == [
        (a, 1_700_000_000_123),
        (a, 1_700_000_015_123),
        (a, 1_700_000_030_123),
        (b, 1_700_000_000_123),
        (b, -5),
    ]
    assert [bits(s.value) for s in read] == [bits(v) for v in (1.5, math.inf, STALE_NAN, -0.0, math.nan)]


def test_labels_are_sorted_by_name_with_the_metric_name_among_them() -> None:
    message = WriteRequest()
    message.ParseFromString(encode_message([Series((("zone", "z"), ("__name__", "m"), ("a", "1")), 1.0, 7)]))
    (series,) = message.timeseries
    assert [(label.name, label.value) for label in series.labels] == [
        ("__name__", "m"),
        ("a", "1"),
        ("zone", "z"),
    ]
    assert [(s.value, s.timestamp) for s in series.samples] == [(1.0, 7)]
    assert labels_of("m", {"b": "", "a": "x"}) == (("__name__", "m"), ("a", "x"))


def test_the_body_is_snappy_block_format_not_the_framed_stream() -> None:
    body = encode([Series(labels_of("m"), 1.0, 1)])
    assert bytes(cramjam.snappy.decompress_raw(body)) == encode_message([Series(labels_of("m"), 1.0, 1)])
    assert HEADERS == {
        "Content-Encoding": "snappy",
        "Content-Type": "application/x-protobuf",
        "X-Prometheus-Remote-Write-Version": "0.1.0",
    }


@pytest.mark.parametrize("body", [b"not snappy", bytes(cramjam.snappy.compress(b"framed"))])
def test_a_body_that_is_not_a_write_request_is_refused(body: bytes) -> None:
    with pytest.raises(WireError):
        decode(body)


def test_garbage_inside_valid_snappy_is_refused() -> None:
    with pytest.raises(WireError):
        decode_message(b"\xff\xff\xff")


def test_an_empty_write_is_an_empty_request() -> None:
    assert encode_message([]) == b"" and decode(encode([])) == []
