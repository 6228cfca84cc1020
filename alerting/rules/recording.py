"""Recording rules, pure: what a rule records from its query result, what goes stale, and the
order a group's rules are evaluated in.

Prometheus's semantics: each sample of the result keeps its labels minus ``__name__``, takes the
rule's labels (an empty value removes the label) and is named by ``record``. Two samples ending up
with one label set, or more series than the group's ``limit``, make the rule fail and record
nothing. A series recorded last time and not this time gets a stale marker, unless the query failed:
a failed query records nothing and marks nothing stale.

Ordering is where we do more than Prometheus's sequential loop needs to: our queries run side by
side, so a rule that reads a series an earlier recording rule of its group records is put in a later
stage, evaluated only once that series has been written.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import promql_parser
import re2

from alerting.core import Sample
from alerting.rules.model import Labels, RecordingRule

_RECORD = "__name__"


@dataclass(frozen=True)
class Recorded:
    """One recording rule's outcome in a tick: its series (labels with ``__name__``, value), or
    the error that kept it from recording anything."""

    series: tuple[tuple[Labels, float], ...] = ()
    error: str | None = None


def record(rule: RecordingRule, samples: Sequence[Sample], limit: int = 0) -> Recorded:
    """The series ``rule`` records from a successful query's ``samples``."""
    extra = dict(rule.labels)
    out: dict[Labels, float] = {}
    for sample in samples:
        labels = {k: v for k, v in sample.labels.items() if k != _RECORD}
        labels[_RECORD] = rule.record
        for name, value in extra.items():
            if value:
                labels[name] = value
            else:
                labels.pop(name, None)
        key = tuple(sorted(labels.items()))
        if key in out:
            return Recorded(error="vector contains metrics with the same labelset after applying rule labels")
        out[key] = sample.value
    if limit and len(out) > limit:
        return Recorded(error=f"exceeded limit of {limit} with {len(out)} series")
    return Recorded(tuple(out.items()))


def gone(previous: Iterable[Labels], now: Iterable[tuple[Labels, float]]) -> list[Labels]:
    """The series recorded last time and not this time: each gets a stale marker."""
    present = {labels for labels, _ in now}
    return [labels for labels in previous if labels not in present]


# --- evaluation order -------------------------------------------------------------------------
def selectors(expr: str) -> list[tuple[str | None, list[tuple[str, str]]]]:
    """Every vector selector of ``expr``: its metric name (None when it has none) and the
    ``__name__`` matchers (operator, value) it carries."""
    found: list[tuple[str | None, list[tuple[str, str]]]] = []

    def visit(node: object) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            matchers = [
                (str(m.op).rsplit(".", 1)[-1], m.value) for m in node.matchers.matchers if m.name == _RECORD
            ]
            found.append((node.name, matchers))

    promql_parser.walk(promql_parser.parse(expr), visit)
    return found


_MATCH = {
    "Equal": lambda value, name: name == value,
    "NotEqual": lambda value, name: name != value,
    "Re": lambda value, name: re2.fullmatch(value, name) is not None,
    "NotRe": lambda value, name: re2.fullmatch(value, name) is None,
}


def reads(expr: str, metric: str) -> bool:
    """Whether ``expr`` may select series named ``metric`` (a selector without a name selects any)."""
    for name, matchers in selectors(expr):
        if name is not None and name != metric:
            continue
        if all(_MATCH.get(op, lambda *_: True)(value, metric) for op, value in matchers):
            return True
    return False


def stages(exprs: Sequence[str | None], records: Sequence[str | None]) -> list[int]:
    """The stage of each rule of a group, in file order: ``exprs[i]`` is the rule's PromQL (None
    for a rule that is not PromQL), ``records[i]`` the name it records (None for an alerting rule).

    A rule reading what an earlier recording rule records comes one stage after it; a rule reading
    only what a later one records sees the previous tick's value, as in Prometheus.
    """
    out: list[int] = []
    for i, expr in enumerate(exprs):
        stage = 0
        if expr is not None:
            for j in range(i):
                name = records[j]
                if name is not None and reads(expr, name):
                    stage = max(stage, out[j] + 1)
        out.append(stage)
    return out
