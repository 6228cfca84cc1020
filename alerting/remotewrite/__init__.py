"""Prometheus remote write (1.0): the ``remote_write:`` section, relabeling, the wire format and
the writer that sends recorded samples to each target."""

from alerting.remotewrite.config import QueueConfig, RemoteWriteTarget, parse_remote_write
from alerting.remotewrite.relabel import RelabelConfig, parse_relabel_configs, relabel
from alerting.remotewrite.series import STALE_NAN, Labels, Series, is_stale, labels_of
from alerting.remotewrite.wire import decode, encode
from alerting.remotewrite.writer import RemoteWriter

__all__ = [
    "Labels",
    "Series",
    "STALE_NAN",
    "is_stale",
    "labels_of",
    "RemoteWriteTarget",
    "QueueConfig",
    "parse_remote_write",
    "RelabelConfig",
    "parse_relabel_configs",
    "relabel",
    "encode",
    "decode",
    "RemoteWriter",
]
