"""Prometheus's remote-write 1.0 wire format: a protobuf ``WriteRequest`` in snappy's block format.

The message descriptors are built here from a FileDescriptorProto (no generated code, no protoc):
only the fields 1.0 defines for samples (labels and float samples); exemplars, histograms and
metadata are fields we never write, and a decoder skips them as unknown fields.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import cramjam
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from alerting.remotewrite.series import Series

__all__ = ["HEADERS", "WireError", "encode", "decode", "encode_message", "decode_message"]

# What a 1.0 request carries besides its body (the remote-write spec's required headers).
HEADERS = {
    "Content-Encoding": "snappy",
    "Content-Type": "application/x-protobuf",
    "X-Prometheus-Remote-Write-Version": "0.1.0",
}

_F = descriptor_pb2.FieldDescriptorProto


def _file() -> descriptor_pb2.FileDescriptorProto:
    """prometheus/remote.proto and types.proto, reduced to what a 1.0 sample write needs; field
    numbers and names as Prometheus defines them, so its receiver reads what we write."""
    proto = descriptor_pb2.FileDescriptorProto(
        name="alerting/remotewrite/prometheus_write.proto", package="prometheus", syntax="proto3"
    )

    def message(name: str, *fields: tuple[str, int, Any, str]) -> None:
        msg = proto.message_type.add(name=name)
        for field_name, number, kind, type_name in fields:
            label = _F.LABEL_REPEATED if type_name else _F.LABEL_OPTIONAL
            entry = msg.field.add(name=field_name, number=number, type=kind, label=label)
            if type_name:
                entry.type_name = f".prometheus.{type_name}"

    message("Label", ("name", 1, _F.TYPE_STRING, ""), ("value", 2, _F.TYPE_STRING, ""))
    message("Sample", ("value", 1, _F.TYPE_DOUBLE, ""), ("timestamp", 2, _F.TYPE_INT64, ""))
    message("TimeSeries", ("labels", 1, _F.TYPE_MESSAGE, "Label"), ("samples", 2, _F.TYPE_MESSAGE, "Sample"))
    message("WriteRequest", ("timeseries", 1, _F.TYPE_MESSAGE, "TimeSeries"))
    return proto


# A private pool, so our descriptors never clash with another library's prometheus.* messages.
_POOL = descriptor_pool.DescriptorPool()
_POOL.Add(_file())
WriteRequest: Any = message_factory.GetMessageClass(_POOL.FindMessageTypeByName("prometheus.WriteRequest"))


class WireError(ValueError):
    """A body that is not a snappy-compressed WriteRequest."""


def encode_message(series: Iterable[Series]) -> bytes:
    """The uncompressed WriteRequest: one TimeSeries per label set, its samples in the given order."""
    request = WriteRequest()
    by_labels: dict[tuple[tuple[str, str], ...], Any] = {}
    for one in series:
        entry = by_labels.get(one.labels)
        if entry is None:
            entry = by_labels[one.labels] = request.timeseries.add()
            for name, value in sorted(one.labels):
                entry.labels.add(name=name, value=value)
        entry.samples.add(value=one.value, timestamp=one.timestamp_ms)
    return bytes(request.SerializeToString())


def encode(series: Iterable[Series]) -> bytes:
    """A request body: the WriteRequest of ``series`` in snappy's block format."""
    return bytes(cramjam.snappy.compress_raw(encode_message(series)))


def decode_message(data: bytes) -> list[Series]:
    """Every sample of an uncompressed WriteRequest, series by series, in order."""
    request = WriteRequest()
    try:
        request.ParseFromString(data)
    except Exception as exc:  # protobuf's DecodeError differs between its implementations
        raise WireError(f"not a WriteRequest: {exc}") from None
    out: list[Series] = []
    for entry in request.timeseries:
        labels = tuple(sorted((label.name, label.value) for label in entry.labels))
        out.extend(Series(labels, sample.value, sample.timestamp) for sample in entry.samples)
    return out


def decode(body: bytes) -> list[Series]:
    """Every sample of a request body (snappy block format around a WriteRequest)."""
    try:
        data = bytes(cramjam.snappy.decompress_raw(body))
    except Exception as exc:  # cramjam raises its own DecompressionError
        raise WireError(f"not snappy block format: {exc}") from None
    return decode_message(data)
