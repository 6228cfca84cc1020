"""What is written: a series' labels, one sample, and Prometheus's stale marker."""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass

__all__ = ["Labels", "Series", "STALE_NAN", "STALE_NAN_BITS", "is_stale", "labels_of"]

# Sorted by name, ``("__name__", name)`` included: the order the wire format wants.
Labels = tuple[tuple[str, str], ...]

# Prometheus marks a series that stopped existing with this one NaN (its value.StaleNaN); every other
# NaN is an ordinary sample value. Python keeps a NaN's payload through float operations we do here
# (struct packing, protobuf doubles), so the bits survive the trip to the receiver.
STALE_NAN_BITS = 0x7FF0000000000002
STALE_NAN: float = struct.unpack("<d", struct.pack("<Q", STALE_NAN_BITS))[0]


def is_stale(value: float) -> bool:
    """True for Prometheus's stale marker only, not for any other NaN."""
    return math.isnan(value) and struct.unpack("<Q", struct.pack("<d", value))[0] == STALE_NAN_BITS


def labels_of(name: str, labels: dict[str, str] | None = None) -> Labels:
    """The sorted label tuple of metric ``name`` with ``labels`` (empty values left out, as in Prometheus)."""
    merged = {k: v for k, v in (labels or {}).items() if v != ""}
    merged["__name__"] = name
    return tuple(sorted(merged.items()))


@dataclass(frozen=True)
class Series:
    """One sample of one series: ``labels`` sorted by name, ``timestamp_ms`` in Unix milliseconds."""

    labels: Labels
    value: float
    timestamp_ms: int
