"""Our additions to ``alerting.yml`` for escalation: a route's ``escalate`` steps and the top-level
``acknowledgements:`` section (how long an acknowledgement lasts, the Slack reaction that makes one,
the PagerDuty REST API that reports one). Both are optional, so an Alertmanager file loads unchanged.

Values are kept as written (``${ENV}`` unexpanded); the worker expands the PagerDuty token when it
builds the acknowledgement sources.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from typing import Any

from alerting.config.yamlfile import Mapping, Sequence, suggest, type_name
from alerting.durations import parse_duration
from alerting.errors import ConfigError, DurationError, Position
from alerting.routing.escalation import DEFAULT_ACK_DURATION, EscalationStep
from alerting.transport import HTTPConfig, parse_http_config

DEFAULT_EMOJI = "eyes"
DEFAULT_PAGERDUTY_API_URL = "https://api.pagerduty.com"
_FIELDS = ("default_duration", "slack", "pagerduty")
_SLACK_FIELDS = ("emoji",)
_PAGERDUTY_FIELDS = ("api_token", "api_token_file", "api_url", "http_config")
_STEP_FIELDS = ("after", "receiver")


@dataclass(frozen=True)
class AcknowledgementsSection:
    """The ``acknowledgements:`` section (defaults where not written)."""

    default_duration: float = DEFAULT_ACK_DURATION
    slack_emoji: str = DEFAULT_EMOJI
    pagerduty_api_token: str | None = None  # as written: may hold ${ENV}
    pagerduty_api_token_file: str | None = None
    pagerduty_api_url: str = DEFAULT_PAGERDUTY_API_URL
    pagerduty_http_config: HTTPConfig = field(default_factory=HTTPConfig)


@cache
def emoji_names() -> frozenset[str]:
    """Every standard emoji name Slack knows a reaction by (``eyes``, ``white_check_mark``, ``+1``)."""
    import emoji

    names = {"+1", "-1"}
    for data in emoji.EMOJI_DATA.values():
        names.add(str(data["en"]).strip(":"))
        names.update(str(alias).strip(":") for alias in data.get("alias", ()))
    return frozenset(names)


def _duration(raw: Mapping, key: str, what: str) -> float | None:
    try:
        value = parse_duration(str(raw[key]))
    except DurationError as exc:
        raise ConfigError(f"{what}: {exc}", raw.at(key)) from None
    if value <= 0:
        raise ConfigError(f"{what} must be positive, got {raw[key]}", raw.at(key))
    return value


def _fields(raw: Any, pos: Position, allowed: tuple[str, ...], what: str) -> Mapping:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{what} must be a mapping, got {type_name(raw)}", pos)
    for key in raw:
        if key not in allowed:
            raise ConfigError(f'unknown field "{key}" in {what}{suggest(key, allowed)}', raw.key_pos[key])
    return raw


def acknowledgements_section(top: Mapping) -> tuple[AcknowledgementsSection, list[ConfigError]]:
    """The optional ``acknowledgements:`` section; its first problem."""
    if top.get("acknowledgements") is None:
        return AcknowledgementsSection(), []
    try:
        raw = _fields(top["acknowledgements"], top.at("acknowledgements"), _FIELDS, "acknowledgements")
        values: dict[str, Any] = {}
        if raw.get("default_duration") is not None:
            values["default_duration"] = _duration(
                raw, "default_duration", "acknowledgements.default_duration"
            )
        if raw.get("slack") is not None:
            slack = _fields(raw["slack"], raw.at("slack"), _SLACK_FIELDS, "acknowledgements.slack")
            if slack.get("emoji") is not None:
                name = str(slack["emoji"]).strip(":")
                if name not in emoji_names():
                    raise ConfigError(
                        f'acknowledgements.slack.emoji: unknown emoji name "{name}"'
                        f"{suggest(name, emoji_names())}",
                        slack.at("emoji"),
                    )
                values["slack_emoji"] = name
        if raw.get("pagerduty") is not None:
            pd = _fields(
                raw["pagerduty"], raw.at("pagerduty"), _PAGERDUTY_FIELDS, "acknowledgements.pagerduty"
            )
            if pd.get("api_token") and pd.get("api_token_file"):
                raise ConfigError(
                    "acknowledgements.pagerduty: at most one of api_token & api_token_file "
                    "must be configured",
                    pd.key_pos["api_token_file"],
                )
            for key in ("api_token", "api_token_file", "api_url"):
                if pd.get(key) is not None:
                    values[f"pagerduty_{key}"] = str(pd[key])
            if pd.get("http_config") is not None:
                values["pagerduty_http_config"] = parse_http_config(
                    pd["http_config"], "acknowledgements.pagerduty.http_config", pd.at("http_config")
                )
    except ConfigError as exc:
        return AcknowledgementsSection(), [exc]
    return AcknowledgementsSection(**values), []


def escalation_steps(raw: Any, pos: Position) -> tuple[tuple[EscalationStep, ...], list[ConfigError]]:
    """A route's ``escalate`` list: ``after`` positive and strictly increasing, ``receiver`` a name
    (whether it is defined is checked with the other receiver references)."""
    if raw is None:
        return (), []
    if not isinstance(raw, Sequence):
        return (), [ConfigError(f"escalate must be a list, got {type_name(raw)}", pos)]
    steps: list[EscalationStep] = []
    problems: list[ConfigError] = []
    for item, item_pos in zip(raw, raw.item_pos, strict=True):
        try:
            entry = _fields(item, item_pos, _STEP_FIELDS, "escalate step")
            for key in _STEP_FIELDS:
                if entry.get(key) is None:
                    raise ConfigError(f"escalate step needs {key}", item_pos)
            after = _duration(entry, "after", "escalate: after")
            assert after is not None
            receiver = entry["receiver"]
            if not isinstance(receiver, str) or not receiver:
                raise ConfigError("escalate: receiver must be a receiver's name", entry.at("receiver"))
            if steps and after <= steps[-1].after:
                raise ConfigError(
                    f"escalate: after must increase from step to step ({entry['after']} is not after "
                    f"the previous step's)",
                    entry.at("after"),
                )
        except ConfigError as exc:
            problems.append(exc)
            continue
        steps.append(EscalationStep(after, receiver, entry.at("receiver")))
    return tuple(steps), problems
