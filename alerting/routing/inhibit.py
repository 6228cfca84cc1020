"""Inhibition: an unresolved source alert mutes target alerts that share its ``equal`` labels."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from alerting.errors import Position
from alerting.routing.matchers import Matcher, matches_all


@dataclass(frozen=True)
class InhibitRule:
    source_matchers: tuple[Matcher, ...]
    target_matchers: tuple[Matcher, ...]
    equal: tuple[str, ...] = ()
    pos: Position | None = None

    def equal_values(self, labels: Mapping[str, str]) -> tuple[str, ...]:
        # A label absent on both sides counts as equal, as "" == "".
        return tuple(labels.get(name, "") for name in self.equal)


@dataclass(frozen=True)
class _Bucket:
    first: Mapping[str, str]  # any source with these equal-label values
    first_source_only: Mapping[str, str] | None  # one that does not also match the target side


class Inhibitor:
    """The inhibition rules applied to one snapshot of firing alerts.

    Sources are indexed by their ``equal`` label values once, so checking a target costs one lookup
    per rule instead of a scan over every firing alert.
    """

    def __init__(self, rules: Iterable[InhibitRule], sources: Iterable[Mapping[str, str]]) -> None:
        self.rules = tuple(rules)
        self._buckets: list[dict[tuple[str, ...], _Bucket]] = [{} for _ in self.rules]
        for source in sources:
            for rule, buckets in zip(self.rules, self._buckets, strict=True):
                if not matches_all(rule.source_matchers, source):
                    continue
                key = rule.equal_values(source)
                found = buckets.get(key)
                source_only = None if matches_all(rule.target_matchers, source) else source
                if found is None:
                    buckets[key] = _Bucket(source, source_only)
                elif found.first_source_only is None and source_only is not None:
                    buckets[key] = _Bucket(found.first, source_only)

    def inhibited_by(self, labels: Mapping[str, str]) -> Mapping[str, str] | None:
        """The source alert that mutes ``labels``, or None."""
        for rule, buckets in zip(self.rules, self._buckets, strict=True):
            if not buckets or not matches_all(rule.target_matchers, labels):
                continue
            bucket = buckets.get(rule.equal_values(labels))
            if bucket is None:
                continue
            # An alert matching both sides is not muted by another that matches both sides,
            # otherwise two such alerts would silence each other.
            if matches_all(rule.source_matchers, labels):
                if bucket.first_source_only is not None:
                    return bucket.first_source_only
                continue
            return bucket.first
        return None


def inhibiting_source(
    rules: Iterable[InhibitRule], labels: Mapping[str, str], sources: Sequence[Mapping[str, str]]
) -> Mapping[str, str] | None:
    """The source alert that inhibits ``labels`` under any rule, or None."""
    return Inhibitor(rules, sources).inhibited_by(labels)
