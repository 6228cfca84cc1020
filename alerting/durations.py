"""The one place durations are parsed and printed, exactly as Prometheus does (``1h30m``, ``0``)."""

from __future__ import annotations

import re

from alerting.errors import DurationError

_UNITS = (
    ("y", 365 * 86400_000),
    ("w", 7 * 86400_000),
    ("d", 86400_000),
    ("h", 3600_000),
    ("m", 60_000),
    ("s", 1000),
    ("ms", 1),
)
# Units must appear at most once each, largest first, with integer counts (Prometheus's model.ParseDuration).
_PATTERN = re.compile("^" + "".join(rf"(?:(\d+){u})?" for u, _ in _UNITS) + "$")


def parse_duration(text: str) -> float:
    """Parse a Prometheus duration into seconds. ``"0"`` is zero; ``1.5h``, ``30m1h``, ``-5m`` fail."""
    if not isinstance(text, str):
        raise DurationError(f"duration must be a string like 5m, got {text!r}")
    if text == "0":
        return 0.0
    match = _PATTERN.match(text) if text else None
    if match is None or not any(match.groups()):
        raise DurationError(f'not a valid duration string: "{text}"')
    millis = 0
    for (_, factor), count in zip(_UNITS, match.groups(), strict=True):
        if count:
            millis += int(count) * factor
    if millis > 2**63 // 1_000_000:  # Go's time.Duration overflows past ~292 years
        raise DurationError(f'duration out of range: "{text}"')
    return millis / 1000.0


def format_duration(seconds: float) -> str:
    """Print seconds the way Prometheus prints a model.Duration (``1h30m``, ``0s``)."""
    millis = round(seconds * 1000)
    if millis == 0:
        return "0s"
    sign = "-" if millis < 0 else ""
    millis = abs(millis)
    parts = []
    for unit, factor in _UNITS:
        count, millis = divmod(millis, factor)
        if count:
            parts.append(f"{count}{unit}")
    return sign + "".join(parts)
