"""Escalation steps and acknowledgements as pure decisions: times in, notifications out; and the
``escalate`` and ``acknowledgements`` configuration with its mistakes at file:line:col."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from alerting.config.alertmanager import read_config
from alerting.routing.dedup import LogEntry
from alerting.routing.escalation import (
    REASON_ESCALATION,
    Acknowledgement,
    EscalationStep,
    decide,
    next_step_at,
)

STEPS = (EscalationStep(900.0, "lead"), EscalationStep(1800.0, "incident"))
REPEAT = 3600.0


@dataclass
class Timeline:
    """The pipeline's bookkeeping around :func:`decide`, for one group with receivers page (the
    route's own), lead and incident, each with send_resolved on."""

    log: dict[str, LogEntry] = field(default_factory=dict)
    since: float | None = None
    ack: Acknowledgement | None = None

    def flush(self, now: float, firing: set[str], resolved: set[str] = frozenset()) -> list[str]:  # type: ignore[assignment]
        if self.ack is not None and not self.ack.covers(firing, now):
            if firing - self.ack.firing:
                self.since = None  # a new alert: the escalation starts over
            self.ack = None
        told = []
        for receiver, step in [("page", None), *((s.receiver, s) for s in STEPS)]:
            needed, why = decide(
                step,
                self.log.get(receiver),
                firing,
                resolved,
                True,
                REPEAT,
                now,
                since=self.since,
                acknowledged=self.ack is not None,
            )
            if not needed:
                continue
            self.log[receiver] = LogEntry(frozenset(firing), frozenset(resolved), now)
            if step is None:
                self.since = (self.since or now) if firing else None
            told.append(f"{receiver}:{'firing' if firing else 'resolved'}:{why}")
        return told

    def acknowledge(self, now: float, firing: set[str], duration: float = 86400.0) -> None:
        self.ack = Acknowledgement("{}:{}", frozenset(firing), "alice", now, now + duration)


# Each case: a list of (time, action, firing set, expected notifications at that flush).
Event = tuple[float, str, set[str], Sequence[str]]

CASES: dict[str, list[Event]] = {
    "a critical alert pages now, the lead after 15m, the incident channel after 30m": [
        (0, "flush", {"a"}, ["page:firing:first notification"]),
        (600, "flush", {"a"}, []),
        (900, "flush", {"a"}, [f"lead:firing:{REASON_ESCALATION}"]),
        (1200, "flush", {"a"}, []),
        (1800, "flush", {"a"}, [f"incident:firing:{REASON_ESCALATION}"]),
        (2400, "flush", {"a"}, []),
    ],
    "the resolve reaches every receiver that was told it fired": [
        (0, "flush", {"a"}, ["page:firing:first notification"]),
        (900, "flush", {"a"}, [f"lead:firing:{REASON_ESCALATION}"]),
        (1000, "flush", set(), ["page:resolved:all alerts resolved", "lead:resolved:all alerts resolved"]),
        (2000, "flush", set(), []),
    ],
    "resolved before the first step: nobody else hears of it": [
        (0, "flush", {"a"}, ["page:firing:first notification"]),
        (600, "flush", set(), ["page:resolved:all alerts resolved"]),
        (1800, "flush", set(), []),
    ],
    "repeat_interval applies to a step's receiver as to the first": [
        (0, "flush", {"a"}, ["page:firing:first notification"]),
        (900, "flush", {"a"}, [f"lead:firing:{REASON_ESCALATION}"]),
        (1800, "flush", {"a"}, [f"incident:firing:{REASON_ESCALATION}"]),
        (3601, "flush", {"a"}, ["page:firing:repeat interval elapsed"]),
        (4501, "flush", {"a"}, ["lead:firing:repeat interval elapsed"]),
    ],
    "acknowledged before the first step: no step, no repeat": [
        (0, "flush", {"a"}, ["page:firing:first notification"]),
        (300, "ack", {"a"}, []),
        (900, "flush", {"a"}, []),
        (1800, "flush", {"a"}, []),
        (7200, "flush", {"a"}, []),
    ],
    "a new alert after the acknowledgement notifies and escalates again": [
        (0, "flush", {"a"}, ["page:firing:first notification"]),
        (300, "ack", {"a"}, []),
        (1000, "flush", {"a", "b"}, ["page:firing:new firing alerts"]),
        (1800, "flush", {"a", "b"}, []),
        (1900, "flush", {"a", "b"}, [f"lead:firing:{REASON_ESCALATION}"]),
    ],
    "acknowledged after the first step: the lead still hears the resolve": [
        (0, "flush", {"a"}, ["page:firing:first notification"]),
        (900, "flush", {"a"}, [f"lead:firing:{REASON_ESCALATION}"]),
        (1000, "ack", {"a"}, []),
        (1800, "flush", {"a"}, []),
        (2000, "flush", set(), ["page:resolved:all alerts resolved", "lead:resolved:all alerts resolved"]),
    ],
    "an alert resolving out of an acknowledged group is still told": [
        (0, "flush", {"a", "b"}, ["page:firing:first notification"]),
        (100, "ack", {"a", "b"}, []),
        (900, "flush", {"a"}, ["page:firing:new resolved alerts"]),
        (1800, "flush", {"a"}, []),
    ],
    "an expired acknowledgement lets the escalation resume": [
        (0, "flush", {"a"}, ["page:firing:first notification"]),
        (100, "ack-short", {"a"}, []),
        (900, "flush", {"a"}, []),
        (1300, "flush", {"a"}, [f"lead:firing:{REASON_ESCALATION}"]),
    ],
}


@pytest.mark.parametrize("name", list(CASES))
def test_escalation_timeline(name: str) -> None:
    timeline = Timeline()
    for at, action, firing, expected in CASES[name]:
        if action == "ack":
            timeline.acknowledge(at, firing)
            continue
        if action == "ack-short":
            timeline.acknowledge(at, firing, duration=1000.0)
            continue
        resolved = {"a", "b"} - firing
        assert timeline.flush(at, firing, resolved) == list(expected), f"{name} at {at}s"


@pytest.mark.parametrize(
    ("since", "now", "firing", "acknowledged", "expected"),
    [
        (None, 100.0, True, False, None),  # not notified yet: no clock
        (0.0, 100.0, True, False, 900.0),
        (0.0, 900.0, True, False, 1800.0),
        (0.0, 1800.0, True, False, None),  # every step reached
        (0.0, 100.0, False, False, None),  # nothing firing
        (0.0, 100.0, True, True, None),  # acknowledged
    ],
)
def test_next_step_time(
    since: float | None, now: float, firing: bool, acknowledged: bool, expected: float | None
) -> None:
    assert next_step_at(STEPS, since, now, firing=firing, acknowledged=acknowledged) == expected


def test_acknowledgement_never_covers_a_new_alert_and_round_trips() -> None:
    ack = Acknowledgement("{}:{}", frozenset({"a", "b"}), "alice", 10.0, 100.0, "looking", "slack")
    assert ack.covers({"a"}, 50.0)
    assert not ack.covers({"a", "c"}, 50.0)
    assert not ack.covers({"a"}, 100.0)
    assert Acknowledgement.from_dict(ack.to_dict()) == ack
    assert ack.describe("T") == "acknowledged by alice via slack at T (looking)"


# --- configuration ---------------------------------------------------------------------------------

RECEIVERS = """
receivers:
  - name: page
  - name: lead
  - name: incident
"""


def load(tmp_path: Path, text: str) -> tuple[object, list[str]]:
    path = tmp_path / "alerting.yml"
    path.write_text(textwrap.dedent(text).lstrip() + RECEIVERS)
    config = read_config(path)
    return config, [str(p).replace(str(path), "alerting.yml") for p in config.problems]


def test_steps_are_inherited_by_child_routes_and_acknowledgement_settings_read(tmp_path: Path) -> None:
    config, problems = load(
        tmp_path,
        """
        route:
          receiver: page
          escalate:
            - {after: 15m, receiver: lead}
            - {after: 30m, receiver: incident}
          routes:
            - matchers: ['team="db"']
            - matchers: ['team="web"']
              escalate: []
        acknowledgements:
          default_duration: 4h
          slack: {emoji: white_check_mark}
          pagerduty: {api_token: "${PD_TOKEN}", api_url: "http://127.0.0.1:9"}
        """,
    )
    assert problems == []
    root = config.route  # type: ignore[attr-defined]
    assert [(s.after, s.receiver) for s in root.routes[0].escalate] == [(900.0, "lead"), (1800.0, "incident")]
    assert root.routes[1].escalate == ()
    acks = config.acknowledgements  # type: ignore[attr-defined]
    assert (acks.default_duration, acks.slack_emoji) == (14400.0, "white_check_mark")
    assert (acks.pagerduty_api_token, acks.pagerduty_api_url) == ("${PD_TOKEN}", "http://127.0.0.1:9")


def test_alertmanager_file_without_our_keys_gets_the_defaults(tmp_path: Path) -> None:
    config, problems = load(tmp_path, "route: {receiver: page}\n")
    assert problems == []
    assert config.route.escalate == ()  # type: ignore[attr-defined]
    assert config.acknowledgements.slack_emoji == "eyes"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("steps", "message"),
    [
        ("- {after: 15m, receiver: leed}", 'alerting.yml:4:30: undefined receiver "leed" used in escalate'),
        (
            "- {after: -5m, receiver: lead}",
            'alerting.yml:4:15: escalate: after: not a valid duration string: "-5m"',
        ),
        ("- {after: 0s, receiver: lead}", "alerting.yml:4:15: escalate: after must be positive, got 0s"),
        (
            "- {after: 15m, receiver: lead}\n    - {after: 15m, receiver: incident}",
            "alerting.yml:5:15: escalate: after must increase from step to step",
        ),
        ("- {after: 15m}", "alerting.yml:4:7: escalate step needs receiver"),
        (
            "- {after: 15m, receiver: lead, wait: 1m}",
            'alerting.yml:4:36: unknown field "wait" in escalate step',
        ),
    ],
)
def test_bad_escalation_steps_are_rejected_at_their_position(
    tmp_path: Path, steps: str, message: str
) -> None:
    _, problems = load(tmp_path, f"route:\n  receiver: page\n  escalate:\n    {steps}\n")
    assert len(problems) == 1 and problems[0].startswith(message), problems


def test_unknown_emoji_name_is_rejected_with_a_suggestion(tmp_path: Path) -> None:
    _, problems = load(tmp_path, "route: {receiver: page}\nacknowledgements:\n  slack: {emoji: eyess}\n")
    assert problems == [
        'alerting.yml:3:18: acknowledgements.slack.emoji: unknown emoji name "eyess" (did you mean "eyes"?)'
    ]


def test_shipped_config_escalates_critical_pages_to_the_lead_then_the_incident_channel() -> None:
    config = read_config(Path(__file__).resolve().parents[2] / "alerting.yml")
    assert config.problems == ()
    (critical,) = [r for r in config.route.routes if r.receiver == "page"]
    assert [(s.after, s.receiver) for s in critical.escalate] == [(900.0, "lead"), (1800.0, "incident")]
    assert {"lead", "incident"} <= set(config.receivers)
    assert config.acknowledgements.slack_emoji == "eyes"


def test_default_texts_say_who_acknowledged_the_group() -> None:
    from alerting.notify import wording
    from alerting.notify.base import Notification, NotifyAlert

    note = "acknowledged by alice via slack at 2026-01-01T00:00:00.000Z"
    alert = NotifyAlert("firing", {"alertname": "X"}, {"summary": "disk full", "acknowledged": note}, 0.0)
    text = wording.default_text(Notification("page", "{}:{}", {"alertname": "X"}, (alert,)))
    assert "Acknowledged by alice via slack at 2026-01-01T00:00:00.000Z" in text
