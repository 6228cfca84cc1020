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

    def inhibited_by(
        self, labels: Mapping[str, str], sources: Iterable[Mapping[str, str]]
    ) -> Mapping[str, str] | None:
        """The first active source that mutes ``labels`` under this rule, or None.

        ``sources`` are the label sets of every alert firing now, whatever their route or silences.
        """
        if not matches_all(self.target_matchers, labels):
            return None
        # An alert matching both sides must not be muted by another alert matching both sides,
        # otherwise two such alerts would silence each other.
        target_is_source = matches_all(self.source_matchers, labels)
        for source in sources:
            if not matches_all(self.source_matchers, source):
                continue
            if any(source.get(name, "") != labels.get(name, "") for name in self.equal):
                continue
            if target_is_source and matches_all(self.target_matchers, source):
                continue
            return source
        return None


def inhibiting_source(
    rules: Iterable[InhibitRule], labels: Mapping[str, str], sources: Sequence[Mapping[str, str]]
) -> Mapping[str, str] | None:
    """The source alert that inhibits ``labels`` under any rule, or None."""
    for rule in rules:
        found = rule.inhibited_by(labels, sources)
        if found is not None:
            return found
    return None
