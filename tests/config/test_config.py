"""Settings from the environment and the evaluation section of alerting.yml."""

from __future__ import annotations

from pathlib import Path

import pytest

from alerting.config.settings import Settings, seconds_env
from alerting.errors import ConfigError


def test_defaults_need_no_configuration(tmp_path: Path) -> None:
    settings = Settings.from_env({"ALERTING_CONFIG": str(tmp_path / "none.yml")})
    assert (settings.default_interval, settings.outage_tolerance, settings.query_concurrency) == (
        300.0,
        3600.0,
        8,
    )
    assert settings.rules == ("rules",) and settings.broker_url == settings.redis_url


@pytest.mark.parametrize(
    "env,message",
    [
        ({"ALERTING_EVALUATION_INTERVAL": "5 minutes"}, "ALERTING_EVALUATION_INTERVAL: not a valid"),
        ({"ALERTING_QUERY_CONCURRENCY": "many"}, "ALERTING_QUERY_CONCURRENCY: expected a whole number"),
        ({"ALERTING_QUERY_CONCURRENCY": "0"}, "ALERTING_QUERY_CONCURRENCY: must be at least 1"),
        ({"LOG_FORMAT": "xml"}, 'LOG_FORMAT: expected "json" or "console"'),
        ({"ALERTING_BEAT_LEASE": "soon"}, r"ALERTING_BEAT_LEASE: expected seconds \(15, 0.5\) or a duration"),
        ({"ALERTING_NOTIFY_LOCK_TTL": "0"}, "ALERTING_NOTIFY_LOCK_TTL: must be more than 0 seconds"),
        ({"ALERTING_NOTIFY_BACKOFF_CAP": "-5"}, "ALERTING_NOTIFY_BACKOFF_CAP: must be more than 0 seconds"),
        (
            {"ALERTING_NOTIFY_BACKOFF_BASE": "nan"},
            "ALERTING_NOTIFY_BACKOFF_BASE: must be more than 0 seconds",
        ),
    ],
)
def test_bad_environment_values_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings.from_env(env)


def test_evaluation_section_sets_defaults_and_environment_wins(tmp_path: Path) -> None:
    config = tmp_path / "alerting.yml"
    config.write_text(
        "evaluation:\n  interval: 1m\n  outage_tolerance: 2h\n"
        "  query_concurrency: 3\n  external_url: https://alerts.example\n"
    )
    from_file = Settings.from_env({"ALERTING_CONFIG": str(config)})
    assert (
        from_file.default_interval,
        from_file.outage_tolerance,
        from_file.query_concurrency,
        from_file.external_url,
    ) == (60.0, 7200.0, 3, "https://alerts.example")
    env_wins = Settings.from_env({"ALERTING_CONFIG": str(config), "ALERTING_EVALUATION_INTERVAL": "30s"})
    assert env_wins.default_interval == 30.0


def test_alert_series_are_off_unless_the_file_or_the_environment_asks(tmp_path: Path) -> None:
    config = tmp_path / "alerting.yml"
    assert Settings.from_env({"ALERTING_CONFIG": str(config)}).write_alert_series is False
    config.write_text("evaluation:\n  write_alert_series: true\n")
    assert Settings.from_env({"ALERTING_CONFIG": str(config)}).write_alert_series is True
    env = {"ALERTING_CONFIG": str(config), "ALERTING_WRITE_ALERT_SERIES": "false"}
    assert Settings.from_env(env).write_alert_series is False
    with pytest.raises(ConfigError, match="ALERTING_WRITE_ALERT_SERIES: expected true or false"):
        Settings.from_env({"ALERTING_WRITE_ALERT_SERIES": "maybe"})
    config.write_text("evaluation:\n  write_alert_series: sometimes\n")
    with pytest.raises(ConfigError, match=r"alerting.yml:2:23: evaluation.write_alert_series must be true"):
        Settings.from_env({"ALERTING_CONFIG": str(config)})


def test_bad_evaluation_section_points_at_the_value(tmp_path: Path) -> None:
    config = tmp_path / "alerting.yml"
    config.write_text("evaluation:\n  interval: soon\n")
    with pytest.raises(ConfigError, match=r"alerting.yml:2:13: evaluation.interval: not a valid"):
        Settings.from_env({"ALERTING_CONFIG": str(config)})


@pytest.mark.parametrize(("text", "seconds"), [("15", 15.0), ("0.5", 0.5), ("15s", 15.0), ("500ms", 0.5)])
def test_timer_settings_take_seconds_or_a_duration(text: str, seconds: float) -> None:
    assert seconds_env("ALERTING_NOTIFY_LOCK_TTL", {"ALERTING_NOTIFY_LOCK_TTL": text}) == seconds
    assert seconds_env("ALERTING_NOTIFY_LOCK_TTL", {}) == 15.0  # unset: the default
