"""The rule-file domain: groups of alerting rules, as loaded from Prometheus-format files."""

from __future__ import annotations

import hashlib
import json
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from alerting.core import group_id, slot_at
from alerting.errors import Position

Labels = tuple[tuple[str, str], ...]

CONDITION_OPS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
}


@dataclass(frozen=True)
class Condition:
    """A threshold applied to a non-PromQL source's values (``condition: "> 50"``)."""

    op: str
    threshold: float

    def holds(self, value: float) -> bool:
        return CONDITION_OPS[self.op](value, self.threshold)

    def __str__(self) -> str:
        return f"{self.op} {self.threshold:g}"


@dataclass(frozen=True)
class Rule:
    """One alerting rule. ``kind`` names the source (``promql``, ``sql``, ``probe``, ``celery``)."""

    name: str
    kind: str
    query: Any
    datasource: str
    for_: float = 0.0
    keep_firing_for: float = 0.0
    labels: Labels = ()
    annotations: Labels = ()
    on_error: str = "freeze"
    condition: Condition | None = None
    pos: Position = field(default=Position("<memory>"), compare=False)
    key: str = ""

    # Evaluation order within the group: a rule reading a series that an earlier recording rule of
    # the group records is evaluated in a later stage, once that series is written (0: first).
    stage: int = field(default=0, compare=False)

    @property
    def query_text(self) -> str:
        """The query as a human reads it (PromQL or SQL text, or a short spec)."""
        if isinstance(self.query, str):
            return self.query
        return " ".join(f"{k}={v}" for k, v in sorted(dict(self.query).items()))


@dataclass(frozen=True)
class RecordingRule:
    """One recording rule: its PromQL result is written back, each series named ``record``.

    ``labels`` are the group's and the rule's (the rule's win); ``stage`` orders it as for
    :class:`Rule`.
    """

    record: str
    expr: str
    datasource: str
    labels: Labels = ()
    pos: Position = field(default=Position("<memory>"), compare=False)
    key: str = ""
    stage: int = field(default=0, compare=False)

    @property
    def name(self) -> str:
        return self.record

    @property
    def kind(self) -> str:
        return "promql"

    @property
    def query(self) -> str:
        return self.expr

    @property
    def query_text(self) -> str:
        return self.expr


@dataclass(frozen=True)
class Group:
    """A rule group: evaluated together, every ``interval``, at a stable offset on that grid."""

    name: str
    file: str
    interval: float
    rules: tuple[Rule, ...]
    query_offset: float = 0.0
    limit: int = 0
    labels: Labels = ()
    pos: Position = field(default=Position("<memory>"), compare=False)
    recording: tuple[RecordingRule, ...] = ()

    @property
    def stages(self) -> int:
        """How many stages a tick of the group runs in (1 unless rules read what others record)."""
        return 1 + max([r.stage for r in self.rules] + [r.stage for r in self.recording], default=0)

    @property
    def id(self) -> str:
        """Stable identity across reloads and workers: file and group name."""
        return group_id(self.file, self.name)

    @property
    def offset(self) -> float:
        """Stable per-group offset within the interval, so groups do not all query at once."""
        if self.interval <= 0:
            return 0.0
        digest = hashlib.sha256(self.id.encode()).digest()
        millis = int.from_bytes(digest[:8], "big") % int(self.interval * 1000)
        return millis / 1000.0

    def slot_at(self, t: float) -> float:
        """The latest evaluation slot at or before ``t`` (unix seconds)."""
        return slot_at(t, self.interval, self.offset)


_METRIC_LIKE = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")


def rule_key(name: str, labels: Labels, taken: set[str]) -> str:
    """Identity of a rule inside its group: name plus static labels, as Prometheus matches rules
    across reloads; a counter separates exact duplicates.

    A metric-like name keeps the plain form (``Down{severity=page}``), the Redis field saved state
    is under. Any other name (``Service Down``, ``Disk>80%``) is written quoted, values too
    (``"Disk>80%"{severity="page"}``), so that braces, commas or quotes in it cannot make two
    rules' keys equal; such a key starts with a quote, which a plain one never does.
    """
    if _METRIC_LIKE.match(name):
        base = name + "{" + ",".join(f"{k}={v}" for k, v in labels) + "}"
    else:
        base = json.dumps(name) + "{" + ",".join(f"{k}={json.dumps(v)}" for k, v in labels) + "}"
    key, n = base, 1
    while key in taken:
        n += 1
        key = f"{base}#{n}"
    taken.add(key)
    return key


AnyRule = Rule | RecordingRule
