"""Silences: matchers plus a time window; an active silence mutes every alert it matches."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from alerting.errors import AlertingError
from alerting.routing.matchers import Matcher, matches_all, matches_empty

PENDING, ACTIVE, EXPIRED = "pending", "active", "expired"


class SilenceError(AlertingError):
    """A silence that cannot be created or changed as asked."""


@dataclass(frozen=True)
class Silence:
    id: str
    matchers: tuple[Matcher, ...]
    starts_at: float
    ends_at: float
    created_by: str
    comment: str
    updated_at: float

    def state(self, now: float) -> str:
        if now < self.starts_at:
            return PENDING
        if now < self.ends_at:
            return ACTIVE
        return EXPIRED

    def mutes(self, labels: Mapping[str, str], now: float) -> bool:
        return self.state(now) == ACTIVE and matches_all(self.matchers, labels)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "matchers": [{"name": m.name, "op": m.op, "value": m.value} for m in self.matchers],
            "starts_at": self.starts_at,
            "ends_at": self.ends_at,
            "created_by": self.created_by,
            "comment": self.comment,
            "updated_at": self.updated_at,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Silence:
        return cls(
            id=data["id"],
            matchers=tuple(Matcher(m["name"], m["op"], m["value"]) for m in data["matchers"]),
            starts_at=float(data["starts_at"]),
            ends_at=float(data["ends_at"]),
            created_by=data.get("created_by", ""),
            comment=data.get("comment", ""),
            updated_at=float(data.get("updated_at", data["starts_at"])),
        )


def new_silence(
    matchers: list[Matcher],
    starts_at: float,
    ends_at: float,
    created_by: str,
    comment: str,
    now: float,
) -> Silence:
    """Validate and build a silence, with Alertmanager's rules for what may be silenced."""
    if not matchers:
        raise SilenceError("a silence needs at least one matcher")
    if all(matches_empty(m) for m in matchers):
        raise SilenceError(
            "at least one matcher must not match the empty string, or the silence would mute everything"
        )
    if ends_at <= now:
        raise SilenceError("a silence must end in the future")
    if ends_at <= starts_at:
        raise SilenceError("a silence must end after it starts")
    if not comment.strip():
        raise SilenceError("a silence needs a comment saying why")
    if not created_by.strip():
        raise SilenceError("a silence needs an author")
    return Silence(
        id=str(uuid.uuid4()),
        matchers=tuple(matchers),
        starts_at=max(starts_at, now),  # a silence cannot start in the past
        ends_at=ends_at,
        created_by=created_by,
        comment=comment,
        updated_at=now,
    )


def expire(silence: Silence, now: float) -> Silence:
    """End a silence now; a pending one ends before it ever started."""
    state = silence.state(now)
    if state == EXPIRED:
        raise SilenceError(f"silence {silence.id} has already expired")
    if state == PENDING:
        return replace(silence, starts_at=now, ends_at=now, updated_at=now)
    return replace(silence, ends_at=now, updated_at=now)
