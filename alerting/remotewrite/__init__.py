"""Placeholder for the remote-write package (replaced when it lands): the series type only."""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass

Labels = tuple[tuple[str, str], ...]

STALE_NAN: float = struct.unpack("<d", struct.pack("<Q", 0x7FF0000000000002))[0]


def is_stale(value: float) -> bool:
    return math.isnan(value) and struct.pack("<d", value) == struct.pack("<d", STALE_NAN)


@dataclass(frozen=True)
class Series:
    labels: Labels
    value: float
    timestamp_ms: int
