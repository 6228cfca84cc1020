"""What every ``alerting`` subcommand module shares: the settings, and reading times given on the
command line."""

from __future__ import annotations

from datetime import UTC, datetime

import click

from alerting.config.settings import Settings
from alerting.errors import ConfigError


def load_settings() -> Settings:
    """The settings from the environment; a bad one ends the command with its message."""
    try:
        return Settings.from_env()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


def parse_time(text: str) -> float:
    """RFC3339 (``2026-01-01T00:00:00Z``; no zone means UTC) or unix seconds, as unix seconds."""
    try:
        return float(text)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(text.replace("z", "Z").replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(
            f"{text!r} is neither RFC3339 (2026-01-01T00:00:00Z) nor unix seconds"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()
