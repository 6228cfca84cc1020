"""Settings from the environment, and our sections (``datasources:``, ``evaluation:``) of alerting.yml.

Every setting has a default that works on one machine with Redis and Prometheus on their usual
ports, so ``celery -A alerting worker -B`` runs with no configuration at all.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from alerting.config.alertmanager import AlertingConfig, read_config
from alerting.config.env import expand
from alerting.config.yamlfile import Mapping as PosMapping
from alerting.durations import parse_duration
from alerting.errors import ConfigError, DurationError
from alerting.ops import affinity
from alerting.redisconn import parse_redis_url


def environment() -> Mapping[str, str]:
    """The process environment: read here, and only here."""
    return os.environ


MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def metrics_dir() -> str | None:
    """prometheus_client's multiprocess directory, as the environment says now."""
    return os.environ.get(MULTIPROC_ENV) or None


def export_metrics_dir(path: str) -> None:
    """Write the multiprocess directory into the environment.

    prometheus_client reads it from there (not from an argument), and the pool's forked children
    must inherit it: this is the one place the project writes to the environment.
    """
    os.environ[MULTIPROC_ENV] = path


def _duration_env(env: Mapping[str, str], name: str, default: str) -> float:
    try:
        return parse_duration(env.get(name, default))
    except DurationError as exc:
        raise ConfigError(f"{name}: {exc}") from None


# Timers of the worker's own machinery: Settings fields, read where they are used from the runtime's
# settings; a bad value stops the worker at start with a message instead of a traceback.
SECONDS_SETTINGS = {
    "ALERTING_BEAT_LEASE": 30.0,
    "ALERTING_NOTIFY_LOCK_TTL": 15.0,
    "ALERTING_NOTIFY_BACKOFF_BASE": 2.0,
    "ALERTING_NOTIFY_BACKOFF_CAP": 300.0,
    "ALERTING_REDIS_WAIT_TIMEOUT": 1.0,
}


def seconds_env(name: str, env: Mapping[str, str]) -> float:
    """One of SECONDS_SETTINGS: a positive number of seconds ("15", "0.5") or a duration ("15s")."""
    text = env.get(name, "").strip()
    if not text:
        return SECONDS_SETTINGS[name]
    try:
        value = float(text)
    except ValueError:
        try:
            value = parse_duration(text)
        except DurationError:
            raise ConfigError(
                f"{name}: expected seconds (15, 0.5) or a duration (15s), got {text!r}"
            ) from None
    if not 0 < value < float("inf"):
        raise ConfigError(f"{name}: must be more than 0 seconds, got {text!r}")
    return value


def _int_env(env: Mapping[str, str], name: str, default: int) -> int:
    text = env.get(name, str(default))
    try:
        value = int(text)
    except ValueError:
        raise ConfigError(f"{name}: expected a whole number, got {text!r}") from None
    if value < 1:
        raise ConfigError(f"{name}: must be at least 1, got {value}")
    return value


def _bool_env(env: Mapping[str, str], name: str) -> bool:
    text = env.get(name, "").strip().lower()
    if text in ("", "0", "false", "no"):
        return False
    if text in ("1", "true", "yes"):
        return True
    raise ConfigError(f"{name}: expected true or false, got {text!r}")


@dataclass(frozen=True)
class Settings:
    """Process-wide settings, read once from the environment."""

    redis_url: str = "redis://localhost:6379/0"
    prefix: str = "alerting"
    rules: tuple[str, ...] = ("rules",)
    config_path: str = "alerting.yml"
    default_interval: float = 300.0
    outage_tolerance: float = 3600.0
    query_concurrency: int = 8
    # Deliveries each worker process keeps in flight at most: sends wait on receivers, not on the
    # CPU. Alertmanager sends every group's notification at once; a storm's hundred groups per
    # process to receivers a few tenths of a second away go out in one wave.
    notify_concurrency: int = 128
    # ALERTING_CPU_AFFINITY: "auto" puts each pool process's threads on one CPU (alerting/ops/affinity.py)
    cpu_affinity: str = "auto"
    # ALERTS and ALERTS_FOR_STATE sent to the remote_write targets, as Prometheus keeps them
    write_alert_series: bool = False
    broker_url: str = "redis://localhost:6379/0"
    queue: str = "alerting"
    external_url: str = ""
    prometheus: Mapping[str, Any] = field(default_factory=dict)
    database_url: str = "sqlite:///var/app.db"
    log_level: str = "INFO"
    log_format: str = "json"
    beat_lease: float = SECONDS_SETTINGS["ALERTING_BEAT_LEASE"]
    notify_lock_ttl: float = SECONDS_SETTINGS["ALERTING_NOTIFY_LOCK_TTL"]
    notify_backoff_base: float = SECONDS_SETTINGS["ALERTING_NOTIFY_BACKOFF_BASE"]
    notify_backoff_cap: float = SECONDS_SETTINGS["ALERTING_NOTIFY_BACKOFF_CAP"]
    # How long a write that must survive a failover waits for a replica (see alerting/durable.py).
    redis_wait_timeout: float = SECONDS_SETTINGS["ALERTING_REDIS_WAIT_TIMEOUT"]
    # Checked by their owners (History, the HTTP server), which report them as ConfigErrors.
    history_url: str = "sqlite:///var/history.db"
    history_retention: str = "30d"
    http_addr: str = "127.0.0.1:9464"
    web_config: str = ""  # ALERTING_WEB_CONFIG: TLS and basic auth for the HTTP endpoints
    # Where ``${NAME}`` references in alerting.yml are looked up: the process environment by default.
    environ: Mapping[str, str] = field(default_factory=lambda: environment(), repr=False, compare=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = environment() if env is None else env
        redis_url = env.get("ALERTING_REDIS_URL", cls.redis_url)
        broker_url = env.get("CELERY_BROKER_URL", redis_url)
        # Both take the sentinel form too; a malformed one stops the worker here, naming it.
        parse_redis_url(redis_url, "ALERTING_REDIS_URL")
        if broker_url.split("://", 1)[0].endswith("+sentinel"):
            parse_redis_url(broker_url, "CELERY_BROKER_URL")
        prometheus: dict[str, Any] = {
            "url": env.get("PROMETHEUS_URL", "http://localhost:9090"),
            "timeout": env.get("PROMETHEUS_TIMEOUT", "30s"),
        }
        if env.get("PROMETHEUS_USERNAME"):
            prometheus["basic_auth"] = {
                "username": env["PROMETHEUS_USERNAME"],
                "password": env.get("PROMETHEUS_PASSWORD", ""),
                "password_file": env.get("PROMETHEUS_PASSWORD_FILE", ""),
            }
        for key in ("bearer_token", "bearer_token_file"):
            if env.get(f"PROMETHEUS_{key.upper()}"):
                prometheus[key] = env[f"PROMETHEUS_{key.upper()}"]
        tls: dict[str, Any] = {
            k: env[f"PROMETHEUS_{k.upper()}"]
            for k in ("ca_file", "cert_file", "key_file")
            if env.get(f"PROMETHEUS_{k.upper()}")
        }
        if env.get("PROMETHEUS_INSECURE_SKIP_VERIFY", "").lower() in ("1", "true", "yes"):
            tls["insecure_skip_verify"] = True
        if tls:
            prometheus["tls_config"] = tls
        # A person at a terminal reads lines; anything else (a file, a collector) gets JSON.
        log_format = env.get("LOG_FORMAT") or ("console" if sys.stdout.isatty() else "json")
        if log_format not in ("json", "console"):
            raise ConfigError(f'LOG_FORMAT: expected "json" or "console", got {log_format!r}')
        settings = cls(
            redis_url=redis_url,
            prefix=env.get("ALERTING_REDIS_PREFIX", cls.prefix),
            rules=tuple(p for p in re.split(r"[,:]", env.get("ALERTING_RULES", "rules")) if p),
            config_path=env.get("ALERTING_CONFIG", cls.config_path),
            default_interval=_duration_env(env, "ALERTING_EVALUATION_INTERVAL", "5m"),
            outage_tolerance=_duration_env(env, "ALERTING_OUTAGE_TOLERANCE", "1h"),
            query_concurrency=_int_env(env, "ALERTING_QUERY_CONCURRENCY", 8),
            notify_concurrency=_int_env(env, "ALERTING_NOTIFY_CONCURRENCY", 128),
            cpu_affinity=affinity.parse(env.get("ALERTING_CPU_AFFINITY", cls.cpu_affinity)),
            write_alert_series=_bool_env(env, "ALERTING_WRITE_ALERT_SERIES"),
            broker_url=broker_url,
            queue=env.get("ALERTING_CELERY_QUEUE", cls.queue),
            external_url=env.get("ALERTING_EXTERNAL_URL", ""),
            prometheus=prometheus,
            database_url=env.get("DATABASE_URL", cls.database_url),
            log_level=env.get("LOG_LEVEL", "INFO").upper(),
            log_format=log_format,
            beat_lease=seconds_env("ALERTING_BEAT_LEASE", env),
            notify_lock_ttl=seconds_env("ALERTING_NOTIFY_LOCK_TTL", env),
            notify_backoff_base=seconds_env("ALERTING_NOTIFY_BACKOFF_BASE", env),
            notify_backoff_cap=seconds_env("ALERTING_NOTIFY_BACKOFF_CAP", env),
            redis_wait_timeout=seconds_env("ALERTING_REDIS_WAIT_TIMEOUT", env),
            history_url=env.get("ALERTING_HISTORY_URL", cls.history_url),
            history_retention=env.get("ALERTING_HISTORY_RETENTION", cls.history_retention),
            http_addr=env.get("ALERTING_HTTP_ADDR", cls.http_addr),
            web_config=env.get("ALERTING_WEB_CONFIG", ""),
            environ=env,
        )
        return settings.with_evaluation_section(env)

    def with_evaluation_section(self, env: Mapping[str, str]) -> Settings:
        """Defaults from the ``evaluation:`` section of alerting.yml; environment variables win."""
        path = Path(self.config_path)
        if not path.is_file():
            return self
        config = read_config(path)
        if config.file_problems or not isinstance(config.evaluation_section, PosMapping):
            return self  # reported by `alerting check` and by the routing loader
        if config.evaluation_problems:
            raise config.evaluation_problems[0]
        section = config.evaluation
        changes: dict[str, Any] = {}
        if section.interval is not None and "ALERTING_EVALUATION_INTERVAL" not in env:
            changes["default_interval"] = section.interval
        if section.outage_tolerance is not None and "ALERTING_OUTAGE_TOLERANCE" not in env:
            changes["outage_tolerance"] = section.outage_tolerance
        if section.query_concurrency_pos is not None and "ALERTING_QUERY_CONCURRENCY" not in env:
            value = section.query_concurrency
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(
                    "evaluation.query_concurrency must be a whole number >= 1", section.query_concurrency_pos
                )
            changes["query_concurrency"] = value
        if section.external_url is not None and "ALERTING_EXTERNAL_URL" not in env:
            changes["external_url"] = section.external_url
        if section.write_alert_series is not None and "ALERTING_WRITE_ALERT_SERIES" not in env:
            changes["write_alert_series"] = section.write_alert_series
        return replace(self, **changes) if changes else self


@dataclass(frozen=True)
class DatasourceConfig:
    """A datasource ready to open: its kind and its options, ``${ENV}`` references expanded."""

    name: str
    kind: str
    options: Mapping[str, Any]


def default_datasources(settings: Settings) -> dict[str, DatasourceConfig]:
    """The datasources that exist without any alerting.yml."""
    return {
        "prometheus": DatasourceConfig("prometheus", "promql", settings.prometheus),
        "db": DatasourceConfig("db", "sql", {"url": settings.database_url}),
        "probe": DatasourceConfig("probe", "probe", {}),
        "celery": DatasourceConfig("celery", "celery", {"broker_url": settings.broker_url}),
    }


def load_datasources(
    settings: Settings, env: Mapping[str, str] | None = None, *, config: AlertingConfig | None = None
) -> dict[str, DatasourceConfig]:
    """Defaults overlaid with the ``datasources:`` section of alerting.yml (if the file exists).

    A reference to an unset variable in a datasource's options is a ConfigError naming it.
    ``config`` is the parsed file when the caller has it already.
    """
    sources = default_datasources(settings)
    if config is None:
        path = Path(settings.config_path)
        if not path.exists():
            return sources
        config = read_config(path)
    for problem in (*config.file_problems, *config.datasource_problems):
        raise problem
    env = settings.environ if env is None else env
    for name, spec in config.datasources.items():
        expansion = expand(spec.options, env, spec.pos)
        if expansion.missing:
            first = next(u for u in expansion.unset if u.default is None)
            raise ConfigError(f"environment variable {first.name} is not set", first.pos)
        # The expanded mapping keeps its YAML positions, so a source's errors say file:line:col.
        options = expansion.value
        if spec.kind == "celery":
            options.setdefault("broker_url", settings.broker_url)
        sources[name] = DatasourceConfig(name, spec.kind, options)
    return sources
