"""``POST /api/v2/alerts``: alerts from Prometheus, amtool or any other client enter the notification
pipeline exactly where the worker's own evaluations put theirs (:func:`alerting.notify.pipeline.ingest`),
so they are routed, grouped, inhibited, silenced and deduplicated the same way.

The body is checked as Alertmanager 0.25 checks it: first as its OpenAPI document's ``postableAlerts``
(a malformed body is refused whole, 400 or 422), then alert by alert (valid alerts are kept, and the
invalid ones are named in one 400). An alert sent without ``endsAt`` resolves ``resolve_timeout``
after it was last received, unless it is sent again.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from alerting.notify.base import NotifyAlert
from alerting.routing.matchers import LABEL_NAME

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
_FRACTION = re.compile(r"(\.\d{6})\d+")
GO_ZERO_TIME = datetime(1, 1, 1, tzinfo=UTC)


class Refused(Exception):
    """The body as a whole is refused: ``status`` and the JSON ``body`` to answer with."""

    def __init__(self, status: int, body: Any) -> None:
        super().__init__(f"{status}: {body}")
        self.status = status
        self.body = body


@dataclass(frozen=True)
class Posted:
    """A received alert: ``timeout`` when it came without an end, which then is a guess."""

    alert: NotifyAlert
    timeout: bool = False

    def to_json(self) -> str:
        return json.dumps([self.alert.starts_at, self.alert.ends_at, self.timeout])

    @staticmethod
    def times(text: str | bytes) -> tuple[float, float, bool]:
        starts, ends, timeout = json.loads(text)
        return float(starts), float(ends), bool(timeout)


@dataclass(frozen=True)
class Received:
    """What a POST brought: the alerts to ingest and the reasons others were dropped."""

    posted: list[Posted]
    problems: list[str]

    @property
    def alerts(self) -> list[NotifyAlert]:
        return [p.alert for p in self.posted]


def merge(previous: tuple[float, float, bool] | None, new: Posted, now: float) -> Posted:
    """The alert as Alertmanager keeps it when it is sent again: if the two overlap in time, the
    earliest start, and an end the sender stated (not a timeout's guess) that is later than the new
    one wins; otherwise the new one replaces the old."""
    if previous is None:
        return new
    starts, ends, timeout = previous
    alert = new.alert
    merged_ends = alert.ends_at if alert.ends_at is not None else now
    if not (starts < merged_ends < ends or starts < alert.starts_at < ends):
        return new
    if merged_ends <= now:  # resolved now: the latest resolution of the two
        if now >= ends > merged_ends:
            merged_ends = ends
    elif ends > merged_ends and not timeout:
        merged_ends = ends
    merged = replace(
        alert,
        starts_at=min(starts, alert.starts_at),
        ends_at=merged_ends,
        status="firing" if merged_ends > now else "resolved",
    )
    return Posted(merged, new.timeout)


def _parse_failure(reason: str) -> Refused:
    return Refused(400, {"code": 400, "message": f'parsing alerts body from "" failed, because {reason}'})


def _time(value: Any, where: str) -> float | None:
    """A ``date-time`` as go-openapi reads it: RFC 3339, a zone-less time counting as UTC."""
    if value is None:
        return None
    if not isinstance(value, str):
        kind = "number" if isinstance(value, int | float) else type(value).__name__
        raise _parse_failure(f"json: cannot unmarshal {kind} into Go struct field .{where} of type string")
    text = _FRACTION.sub(r"\1", value.strip().replace("z", "Z"))
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise _parse_failure(f'parsing time "{value}": not an RFC 3339 date-time') from None
    if "T" not in text.upper() and " " not in text:
        raise _parse_failure(f'parsing time "{value}": a date without a time of day')
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    if parsed == GO_ZERO_TIME:  # Go clients (amtool) write an unset time as its zero value
        return None
    return parsed.timestamp()


def _is_uri(text: str) -> bool:
    """go-openapi's ``uri`` format: an absolute URI or an absolute path, nothing blank inside."""
    if any(c.isspace() or ord(c) < 0x20 for c in text):
        return False
    return text.startswith("/") or bool(_SCHEME.match(text))


def _string_map(value: Any, field: str) -> dict[str, str]:
    if not isinstance(value, dict):
        kind = "array" if isinstance(value, list) else type(value).__name__
        raise _parse_failure(f"json: cannot unmarshal {kind} into Go struct field Alert.{field} of type map")
    for item in value.values():
        if not isinstance(item, str):
            kind = "number" if isinstance(item, int | float) else type(item).__name__
            raise _parse_failure(
                f"json: cannot unmarshal {kind} into Go struct field Alert.{field} of type string"
            )
    return value


def _invalid_names(pairs: dict[str, str]) -> str | None:
    for name in sorted(pairs):
        if not LABEL_NAME.match(name):
            return f"invalid name {json.dumps(name)}"
    return None


def parse_alerts(body: bytes, now: float, resolve_timeout: float) -> Received:
    """The alerts of a ``postableAlerts`` body, received at ``now``; raises :class:`Refused`."""
    if not body.strip():
        raise Refused(422, {"code": 602, "message": "alerts in body is required"})
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise _parse_failure(str(exc)) from None
    if doc is None:
        return Received([], [])
    if not isinstance(doc, list):
        kind = "object" if isinstance(doc, dict) else type(doc).__name__
        raise _parse_failure(f"json: cannot unmarshal {kind} into Go value of type models.PostableAlerts")
    raw: list[tuple[dict[str, str], dict[str, str], float | None, float | None, str]] = []
    for i, item in enumerate(doc):
        if not isinstance(item, dict):
            raise Refused(422, {"code": 602, "message": f"{i} in body is required"})
        labels = item.get("labels")
        if labels is None:
            raise Refused(422, {"code": 602, "message": f"{i}.labels in body is required"})
        labels = _string_map(labels, "labels")
        annotations = _string_map(item.get("annotations") or {}, "annotations")
        starts, ends = _time(item.get("startsAt"), "startsAt"), _time(item.get("endsAt"), "endsAt")
        url = item.get("generatorURL") or ""
        if not isinstance(url, str):
            raise _parse_failure("json: cannot unmarshal generatorURL into Go value of type strfmt.URI")
        if url and not _is_uri(url):
            raise Refused(
                422,
                {"code": 601, "message": f"{i}.generatorURL in body must be of type uri: {json.dumps(url)}"},
            )
        raw.append((labels, annotations, starts, ends, url))

    posted: list[Posted] = []
    problems: list[str] = []
    for labels, annotations, starts, ends, url in raw:
        if starts is None:
            starts = now if ends is None else ends
        timeout = ends is None
        if ends is None:  # Alertmanager's timeout: resolved unless it is sent again
            ends = now + resolve_timeout
        labels = {k: v for k, v in labels.items() if v != ""}
        if ends < starts:
            problems.append("start time must be before end time")
        elif (bad := _invalid_names(labels)) is not None:
            problems.append(f"invalid label set: {bad}")
        elif not labels:
            problems.append("at least one label pair required")
        elif (bad := _invalid_names(annotations)) is not None:
            problems.append(f"invalid annotations: {bad}")
        else:
            alert = NotifyAlert(
                status="firing" if ends > now else "resolved",
                labels=labels,
                annotations=annotations,
                starts_at=starts,
                ends_at=ends,
                generator_url=url,
            )
            posted.append(Posted(alert, timeout))
    return Received(posted, problems)
