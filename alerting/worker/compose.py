"""The composition root: live objects built from the configuration data, in one place.

alerting.config parses alerting.yml into data; here its receivers become integrations (from the
table in alerting.notify.receivers), unconfigured ones become console stand-ins, and datasources
open through the table in alerting.sources.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import structlog

from alerting.config.alertmanager import (
    GLOBALS_USED,
    IntegrationConfig,
    read_config,
)
from alerting.config.env import expand, references
from alerting.config.settings import DatasourceConfig, Settings, environment, load_datasources
from alerting.errors import ConfigError, DatasourceError
from alerting.notify.base import Integration
from alerting.notify.live import CONSOLE, Receiver, ReceiverIntegration, RoutingConfig
from alerting.notify.receivers import INTEGRATIONS
from alerting.routing.route import DEFAULT_REPEAT_INTERVAL, Route
from alerting.sources import KINDS, Source

log = structlog.get_logger(__name__)


# --- receivers --------------------------------------------------------------------------------------


def expand_globals(
    raw: Mapping[str, Any], env: Mapping[str, str]
) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """The ``global`` section with ``${ENV}`` expanded, and per key the variables left empty.

    An unset global secret is absent: the integrations relying on it fall back to the console.
    """
    out: dict[str, Any] = {}
    unset: dict[str, list[str]] = {}
    for key, value in raw.items():
        expansion = expand(value, env)
        if expansion.unset:
            unset[key] = list(expansion.empty)
        if not expansion.missing:
            out[key] = expansion.value
    return out, unset


class _Integrations:
    """Builds each integration as the parser meets it, so its problems come in file order."""

    def __init__(self, env: Mapping[str, str], extra_global: Mapping[str, Any]) -> None:
        self.env = env
        self.extra_global = extra_global
        self.built: dict[tuple[str, str, int], ReceiverIntegration] = {}
        self.fallbacks: list[str] = []  # integrations printing to the console instead, and why
        self._globals: tuple[Mapping[str, Any], dict[str, Any], dict[str, list[str]]] | None = None

    def globals(self, raw: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, list[str]]]:
        if self._globals is None or self._globals[0] is not raw:
            self._globals = (raw, *expand_globals(raw, self.env))
        return self._globals[1], self._globals[2]

    def check(self, entry: IntegrationConfig, global_raw: Mapping[str, Any]) -> list[ConfigError]:
        global_config, global_unset = self.globals(global_raw)
        built, problem = self.build(entry, global_config, global_unset)
        if built is not None:
            self.built[(entry.receiver, entry.key, entry.index)] = built
        return [problem] if problem is not None else []

    def build(
        self, entry: IntegrationConfig, global_config: dict[str, Any], global_unset: dict[str, list[str]]
    ) -> tuple[ReceiverIntegration | None, ConfigError | None]:
        raw = entry.fields
        expansion = expand(raw, self.env)
        expanded = expansion.value
        missing = list(expansion.missing)
        unreadable: list[str] = []
        key, what = entry.key, entry.name
        # A secret file that is not there (a laptop without /run/secrets, say) makes the entry print
        # to the console, with the start-up warning naming the file: never read by `alerting check`
        # as an error, and never a reason to reject the file. The global ones count where the kind
        # falls back on them.
        used = GLOBALS_USED.get(key, ("http_config",))
        files = [*raw.items(), *((k, v) for k, v in global_config.items() if k.startswith(used))]
        for file_key, value in files:
            is_path = isinstance(value, str) and value and "${" not in value
            if file_key.endswith("_file") and is_path and not os.access(value, os.R_OK):
                unreadable.append(f"{file_key} {value} unreadable")
        factory = INTEGRATIONS.get(key)
        if factory is None:
            self.fallbacks.append(f"{what} (no {key.removesuffix('_configs')} integration installed)")
            return console_stand_in(entry, expanded, global_config), None
        if missing or unreadable:
            why = [f"{', '.join(missing)} not set"] if missing else []
            self.fallbacks.append(f"{what} ({'; '.join([*why, *unreadable])})")
            return console_stand_in(entry, expanded, global_config), None
        try:
            integration = factory(expanded, {**global_config, **self.extra_global})
        except ConfigError as exc:
            # Empty because a variable is unset (in this entry or a global it uses): not configured yet.
            names = list(expansion.empty) + [
                name
                for global_key, names in global_unset.items()
                if global_key.startswith(GLOBALS_USED.get(key, ("http_config",)))
                for name in names
            ]
            if names and not exc.message.startswith("unknown field"):
                self.fallbacks.append(f"{what} ({', '.join(dict.fromkeys(names))} not set)")
                return console_stand_in(entry, expanded, global_config), None
            return None, exc if exc.pos else ConfigError(f"{what}: {exc.message}", entry.pos)
        except (ValueError, TypeError, KeyError) as exc:
            return None, ConfigError(f"{what}: {exc}", entry.pos)
        return ReceiverIntegration(entry.receiver, key, entry.index, integration), None


def console_stand_in(
    entry: IntegrationConfig, fields: Mapping[str, Any], global_config: Mapping[str, Any]
) -> ReceiverIntegration:
    """A console integration printing what ``entry`` would send, until it is configured."""
    resolved_off = ("slack_configs", "email_configs", "wechat_configs", "rocketchat_configs")
    default = entry.key not in resolved_off  # Alertmanager's defaults
    settings = {"send_resolved": fields.get("send_resolved", default), "stands_for": entry.name}
    console = INTEGRATIONS[CONSOLE](settings, global_config)
    return ReceiverIntegration(entry.receiver, CONSOLE, entry.index, console, stands_for=entry.key)


def _merge_stand_ins(
    integrations: list[ReceiverIntegration], global_config: Mapping[str, Any]
) -> tuple[ReceiverIntegration, ...]:
    """One console line per notification, however many integrations of the receiver it stands in for."""
    stand_ins = [i for i in integrations if i.stands_for]
    if len(stand_ins) < 2:
        return tuple(integrations)
    receiver = stand_ins[0].receiver
    names = ", ".join(f"{i.stands_for}" for i in stand_ins)
    settings = {
        "send_resolved": any(i.send_resolved for i in stand_ins),
        "stands_for": f"{receiver}/{{{names}}}",
    }
    merged = ReceiverIntegration(
        receiver, CONSOLE, 0, INTEGRATIONS[CONSOLE](settings, global_config), stands_for=names
    )
    return (*[i for i in integrations if not i.stands_for], merged)


def build_integration(
    entry: IntegrationConfig, global_raw: Mapping[str, Any], env: Mapping[str, str], extra: Mapping[str, Any]
) -> Integration:
    """One integration for ``alerting notify test``: an unset variable is an error there, not a stand-in."""
    for fields in (entry.fields, global_raw):
        unset = [u for u in expand(fields, env).unset if u.default is None]
        if unset:
            raise ConfigError(f"environment variable {unset[0].name} is not set", unset[0].pos or entry.pos)
    global_config = {**expand(global_raw, env).value, **extra}
    return INTEGRATIONS[entry.key](expand(entry.fields, env).value, global_config)


# --- routing ----------------------------------------------------------------------------------------


def _routing(
    path: str | Path, extra_global: Mapping[str, Any] | None, env: Mapping[str, str] | None
) -> tuple[RoutingConfig | None, list[ConfigError]]:
    integrations = _Integrations(environment() if env is None else env, extra_global or {})
    config = read_config(path, integrations.check)
    problems = [*config.file_problems, *config.routing_problems]
    if problems:
        return None, problems
    global_config, _ = integrations.globals(config.global_config)
    receivers = {
        name: Receiver(
            name,
            _merge_stand_ins(
                [
                    integrations.built[key]
                    for entry in receiver.integrations
                    if (key := (entry.receiver, entry.key, entry.index)) in integrations.built
                ],
                global_config,
            ),
            receiver.fallback,
        )
        for name, receiver in config.receivers.items()
    }
    warnings: tuple[str, ...] = ()
    if integrations.fallbacks:
        warnings = (STAND_INS + "; ".join(integrations.fallbacks),)
    return (
        RoutingConfig(
            route=config.route,
            receivers=receivers,
            inhibit_rules=config.inhibit_rules,
            time_intervals=config.time_intervals,
            global_config=global_config,
            datasources=config.datasources_section,
            evaluation=config.evaluation_section,
            templates=config.templates,
            source=config.source,
            warnings=warnings,
            acknowledgements=config.acknowledgements,
            remote_write=config.remote_write,
        ),
        [],
    )


def load_routing_config(
    path: str | Path, extra_global: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None
) -> RoutingConfig:
    """The live routing of ``alerting.yml``; the first problem is raised as ``ConfigError``.

    ``extra_global`` is handed to integrations beside the file's ``global`` section (runtime
    objects such as a shared key-value store; never written in the file). ``env`` is where
    ``${ENV}`` references are looked up (the process environment by default).
    """
    config, problems = _routing(path, extra_global, env)
    if problems:
        raise problems[0]
    assert config is not None
    return config


def check_routing_config(path: str | Path, env: Mapping[str, str] | None = None) -> list[ConfigError]:
    """Every problem in ``alerting.yml``'s routing and receivers (empty when it loads)."""
    return _routing(path, None, env)[1]


def default_routing_config() -> RoutingConfig:
    """What runs when there is no ``alerting.yml``: every alert grouped by name, printed on stdout."""
    console = INTEGRATIONS[CONSOLE]({"send_resolved": True}, {})
    receiver = Receiver("console", (ReceiverIntegration("console", CONSOLE, 0, console),))
    route = Route(
        receiver="console",
        group_by=("alertname",),
        group_wait=10.0,
        group_interval=60.0,
        repeat_interval=DEFAULT_REPEAT_INTERVAL,
    )
    return RoutingConfig(route=route, receivers={"console": receiver}, source="<default>")


STAND_INS = "these receiver integrations print to the console instead, until configured: "


def stand_ins(config: RoutingConfig) -> list[str]:
    """The integrations printing to the console instead, each with why:
    ``heartbeat/webhook_configs[0] (HEARTBEAT_URL not set)``."""
    return [
        item
        for warning in config.warnings
        if warning.startswith(STAND_INS)
        for item in warning.removeprefix(STAND_INS).split("; ")
    ]


def config_warnings(path: str | Path, env: Mapping[str, str] | None = None) -> list[str]:
    """What ``alerting check`` warns about in a loadable alerting.yml (the stand-ins, in this
    shell's environment); nothing for a file with problems, which are reported instead."""
    config, _ = _routing(path, None, env)
    if config is None:
        return []
    items = stand_ins(config)
    other = [w for w in config.warnings if not w.startswith(STAND_INS)]
    return [
        *other,
        *(
            f"{name} prints to the console until configured ({why}"
            for name, _, why in (item.partition(" (") for item in items)
        ),
    ]


def warn_changed(previous: RoutingConfig | None, config: RoutingConfig) -> None:
    """Log the warnings a reload brought. The first load's are in the start-up summary, and
    commands print them only in ``alerting check``: never on every command or every process."""
    if previous is None:
        return
    for warning in config.warnings:
        if warning not in previous.warnings:
            log.warning("routing.config_warning", msg=warning, file=config.source)


# --- datasources ------------------------------------------------------------------------------------


def open_source(config: DatasourceConfig) -> Source:
    """Open a configured datasource through its kind (alerting.sources.KINDS)."""
    kind = KINDS.get(config.kind)
    if kind is None:
        raise DatasourceError(f"no source module for {config.kind} datasources", config.name)
    return kind.open(config.name, config.options)


# --- the whole file ---------------------------------------------------------------------------------


def check_config_file(path: str, settings: Settings) -> list[str]:
    """Problems in an alerting.yml, as ``alerting check`` prints them: the evaluation section's or
    the datasources' first problem, otherwise every problem of routing and receivers."""
    env = settings.environ
    config = read_config(path, _Integrations(env, {}).check)
    first = [*config.file_problems, *config.evaluation_problems]
    if first:
        return [str(first[0])]
    # `check` validates structure, not whether secrets are set in this shell: every ${VAR}
    # resolves to a placeholder so a missing variable is not reported as a broken file.
    placeholders = {name: "unset" for name in references(config.datasources_section) if not env.get(name)}
    try:
        load_datasources(replace(settings, config_path=path), {**env, **placeholders}, config=config)
    except ConfigError as exc:
        return [str(exc)]
    return [str(p) for p in config.routing_problems]
