"""Identities and values shared from evaluation to logs: group ids, fingerprints, samples, rule
health, evaluation slots and RFC 3339 times. One definition each, so every layer names things alike.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

# --- group ids ----------------------------------------------------------------------------------------


def group_id(file: str, name: str) -> str:
    """A rule group's identity across reloads and workers (and its Redis key part): ``file:name``."""
    return f"{file}:{name}"


def parse_group_id(gid: str) -> tuple[str, str]:
    """``(file, name)`` of a group id. Group names may contain ':' (``kube:apps``), file paths do not
    in practice, so the first ':' separates them; an id without one is a bare name."""
    file, sep, name = gid.partition(":")
    return (file, name) if sep else ("", gid)


def group_name(gid: str) -> str:
    """The group's name alone, as logs and metrics label it."""
    return parse_group_id(gid)[1]


# --- label sets ---------------------------------------------------------------------------------------

_FNV_OFFSET = 14695981039346656037
_FNV_PRIME = 1099511628211
_MASK = (1 << 64) - 1
_NUL = "\x00"


def fingerprint(labels: Mapping[str, str] | Iterable[tuple[str, str]]) -> str:
    """Alertmanager's fingerprint of a label set (FNV-1a 64 over names and values sorted by name,
    each followed by a 0xff byte), as 16 hex digits: the same id from evaluation to notification,
    in logs, webhooks and the API."""
    pairs = sorted(
        labels if type(labels) is tuple else labels.items() if isinstance(labels, Mapping) else labels
    )
    # The cache is keyed by the very bytes FNV runs over (0xff never occurs in UTF-8, so different
    # label sets give different keys): a flat bytes object is a third of the memory of a tuple of
    # pairs, and a worker evaluating 100,000 alerts keeps one per alert.
    try:
        # Every alert of a tick comes here: the text joined at NULs and encoded once, the NULs then
        # made 0xff, when no name or value holds a NUL of its own (then there is one per join).
        text = _NUL.join(map(_NUL.join, pairs))
        if text.count(_NUL) == 2 * len(pairs) - 1:
            return _fnv(text.encode().replace(b"\x00", b"\xff") + b"\xff")
    except (TypeError, UnicodeEncodeError):
        pass  # not text, or not encodable: the general form below raises as it always did
    parts = [part.encode() for pair in pairs for part in pair]
    return _fnv(b"\xff".join(parts) + b"\xff" if parts else b"")


@functools.lru_cache(maxsize=1 << 17)
def _fnv(data: bytes) -> str:
    # Cached: a rule reports the same label sets tick after tick, and FNV runs byte by byte here.
    h = _FNV_OFFSET
    for byte in data:
        h = ((h ^ byte) * _FNV_PRIME) & _MASK
    return f"{h:016x}"


# --- query results and rule health ---------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    """One element of a query result: a label set and a value."""

    labels: Mapping[str, str]
    value: float


@dataclass(frozen=True)
class RuleHealth:
    """How a rule's last evaluation went, as Prometheus reports it (``ok``, ``err``, ``unknown``)."""

    health: str
    error: str | None
    last_slot: float | None
    duration: float


# --- time ---------------------------------------------------------------------------------------------


def slot_at(t: float, interval: float, offset: float) -> float:
    """The latest slot at or before ``t`` on the grid ``offset + k * interval`` (unix seconds)."""
    adjusted = t - offset
    return adjusted - (adjusted % interval) + offset


def rfc3339(t: float, *, trim_zero_millis: bool = False) -> str:
    """``2025-06-23T19:02:11.123Z``: UTC with milliseconds; ``trim_zero_millis`` writes whole
    seconds as ``2025-06-23T19:02:11Z``."""
    seconds = int(t // 1)
    millis = int(round((t - seconds) * 1000))
    if millis == 1000:
        seconds, millis = seconds + 1, 0
    tm = time.gmtime(seconds)
    # Four-digit years always (strftime writes year 213 as "213", which is not RFC 3339).
    text = f"{tm.tm_year:04d}-" + time.strftime("%m-%dT%H:%M:%S", tm)
    if trim_zero_millis and millis == 0:
        return text + "Z"
    return f"{text}.{millis:03d}Z"
