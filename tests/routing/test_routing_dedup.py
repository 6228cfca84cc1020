"""Every branch of Alertmanager's needs-update decision, as a table."""

from __future__ import annotations

import pytest

from alerting.routing.dedup import LogEntry, needs_update

NOW = 10_000.0
REPEAT = 3600.0


def entry(firing: set[str], resolved: set[str] = frozenset(), age: float = 60.0) -> LogEntry:  # type: ignore[assignment]
    return LogEntry(frozenset(firing), frozenset(resolved), NOW - age)


@pytest.mark.parametrize(
    ("name", "last", "firing", "resolved", "send_resolved", "expected"),
    [
        ("first notification with firing alerts", None, {"a"}, set(), True, True),
        ("never notified, only resolved alerts", None, set(), {"a"}, True, False),
        ("never notified, nothing at all", None, set(), set(), True, False),
        ("firing set gained an alert", entry({"a"}), {"a", "b"}, set(), False, True),
        ("firing alert replaced by another", entry({"a"}), {"b"}, {"a"}, False, True),
        ("same firing set, within repeat interval", entry({"a", "b"}), {"a", "b"}, set(), True, False),
        ("firing set shrank, send_resolved off", entry({"a", "b"}), {"a"}, {"b"}, False, False),
        ("firing set shrank, send_resolved on", entry({"a", "b"}), {"a"}, {"b"}, True, True),
        ("resolved already told, send_resolved on", entry({"a"}, {"b"}), {"a"}, {"b"}, True, False),
        ("all resolved, send_resolved on", entry({"a"}), set(), {"a"}, True, True),
        ("all resolved, send_resolved off still updates the log", entry({"a"}), set(), {"a"}, False, True),
        ("all resolved and already told", entry(set(), {"a"}), set(), {"a"}, True, False),
        ("fired and resolved between notifications", entry(set(), {"x"}), set(), {"a"}, True, False),
        ("repeat interval elapsed", entry({"a"}, age=REPEAT + 1), {"a"}, set(), False, True),
        ("repeat interval exactly elapsed is not yet", entry({"a"}, age=REPEAT), {"a"}, set(), False, False),
        (
            "repeat interval elapsed but nothing firing",
            entry(set(), age=REPEAT * 2),
            set(),
            {"a"},
            True,
            False,
        ),
        ("resolved alerts only matter with send_resolved", entry({"a"}), {"a"}, {"z"}, False, False),
    ],
)
def test_needs_update(
    name: str,
    last: LogEntry | None,
    firing: set[str],
    resolved: set[str],
    send_resolved: bool,
    expected: bool,
) -> None:
    decision, reason = needs_update(last, firing, resolved, send_resolved, REPEAT, NOW)
    assert decision is expected, f"{name}: {reason}"
    assert reason


def test_annotation_changes_are_invisible_to_dedup() -> None:
    # The log holds fingerprints of label sets only; an alert whose annotations changed is the same alert.
    decision, _ = needs_update(entry({"fp1"}), {"fp1"}, set(), True, REPEAT, NOW)
    assert decision is False


def test_log_entry_round_trips() -> None:
    e = LogEntry(frozenset({"a"}), frozenset({"b"}), 12.5, 7.0)
    assert LogEntry.from_dict(e.to_dict()) == e
