"""``alerting.yml``: Alertmanager's configuration format, loaded unchanged, with precise errors.

Sections: ``global``, ``route``, ``receivers``, ``inhibit_rules``, ``time_intervals`` (and the older
``mute_time_intervals``), ``templates``; plus our ``datasources:`` and ``evaluation:`` sections, kept
as opaque mappings for their own loaders. Secrets in ``global`` and ``receivers`` may be written as
``${ENV_VAR}`` (or ``${ENV_VAR:-default}``) or read from ``*_file`` paths. An integration whose secret is
missing is replaced by a console integration, with one warning, so an unconfigured worker still runs
and shows every notification on stdout instead of dropping it.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping as AbcMapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import structlog

from alerting.config.env import expand
from alerting.config.settings import environment
from alerting.config.yamlfile import Mapping, Sequence, load_file, suggest, type_name
from alerting.durations import parse_duration
from alerting.errors import ConfigError, DurationError, Position
from alerting.notify.base import INTEGRATIONS, Integration
from alerting.routing.inhibit import InhibitRule
from alerting.routing.matchers import (
    LABEL_NAME,
    Matcher,
    MatcherError,
    matchers_string,
    parse_matchers,
    sort_matchers,
)
from alerting.routing.route import (
    DEFAULT_GROUP_INTERVAL,
    DEFAULT_GROUP_WAIT,
    DEFAULT_REPEAT_INTERVAL,
    Route,
)
from alerting.routing.timeintervals import (
    TimeInterval,
    TimeIntervalError,
    check_location,
    in_any,
    parse_days_of_month,
    parse_months,
    parse_times,
    parse_weekdays,
    parse_years,
)

log = structlog.get_logger(__name__)

_TOP_FIELDS = (
    "global",
    "route",
    "receivers",
    "inhibit_rules",
    "time_intervals",
    "mute_time_intervals",
    "templates",
    "datasources",
    "evaluation",
)
_ROUTE_FIELDS = (
    "receiver",
    "group_by",
    "continue",
    "match",
    "match_re",
    "matchers",
    "group_wait",
    "group_interval",
    "repeat_interval",
    "mute_time_intervals",
    "active_time_intervals",
    "routes",
)
_INHIBIT_FIELDS = (
    "source_match",
    "source_match_re",
    "source_matchers",
    "target_match",
    "target_match_re",
    "target_matchers",
    "equal",
)
_GLOBAL_FIELDS = (
    "resolve_timeout",
    "http_config",
    "smtp_from",
    "smtp_hello",
    "smtp_smarthost",
    "smtp_auth_username",
    "smtp_auth_password",
    "smtp_auth_password_file",
    "smtp_auth_secret",
    "smtp_auth_identity",
    "smtp_require_tls",
    "slack_api_url",
    "slack_api_url_file",
    "pagerduty_url",
    "opsgenie_api_key",
    "opsgenie_api_key_file",
    "opsgenie_api_url",
    "victorops_api_key",
    "victorops_api_key_file",
    "victorops_api_url",
    "wechat_api_url",
    "wechat_api_secret",
    "wechat_api_corp_id",
    "telegram_api_url",
    "webex_api_url",
    "external_url",
)
# Our SMS integration's global defaults are spelled with these prefixes (e.g. ``twilio_account_sid``).
_GLOBAL_PREFIXES = ("sms_", "twilio_")
# Integrations of Alertmanager this worker has no implementation for: rejected, never silently dropped.
_UNSUPPORTED = (
    "opsgenie_configs",
    "wechat_configs",
    "pushover_configs",
    "victorops_configs",
    "sns_configs",
    "telegram_configs",
    "webex_configs",
    "discord_configs",
    "msteams_configs",
)
# Integrations this worker implements, each in alerting/notify/<module>.py, registering itself on import.
_INTEGRATION_MODULES = ("console", "webhook", "slack", "pagerduty", "email", "sms", "alertmanager")
_OURS = (
    "pagerduty_configs",
    "slack_configs",
    "email_configs",
    "webhook_configs",
    "sms_configs",
    "console_configs",
    "alertmanager_configs",
)
# The global settings each integration falls back on, as in Alertmanager.
_GLOBALS_USED = {
    "slack_configs": ("slack_api_url", "http_config"),
    "email_configs": ("smtp_",),
    "pagerduty_configs": ("pagerduty_url", "http_config"),
    "sms_configs": ("sms_", "twilio_", "http_config"),
    "webhook_configs": ("http_config",),
}
CONSOLE = "console_configs"


@dataclass(frozen=True)
class ReceiverIntegration:
    """One integration of a receiver; ``key`` names it in the notification log."""

    receiver: str
    config_key: str
    index: int
    integration: Integration = field(compare=False)
    stands_for: str = ""  # set when a console integration replaces one whose secrets are missing

    @property
    def kind(self) -> str:
        return self.config_key.removesuffix("_configs")

    @property
    def key(self) -> str:
        if self.stands_for:  # its own log entries: a real integration configured later starts fresh
            return f"{self.receiver}/console-standin/{self.index}"
        return f"{self.receiver}/{self.kind}/{self.index}"

    @property
    def send_resolved(self) -> bool:
        return bool(getattr(self.integration, "send_resolved", True))


@dataclass(frozen=True)
class Receiver:
    name: str
    integrations: tuple[ReceiverIntegration, ...]
    fallback: str | None = None  # receiver that gets what this one permanently failed to deliver


@dataclass(frozen=True)
class RoutingConfig:
    """A loaded ``alerting.yml``: route tree, receivers, inhibition rules, time intervals."""

    route: Route
    receivers: AbcMapping[str, Receiver]
    inhibit_rules: tuple[InhibitRule, ...] = ()
    time_intervals: AbcMapping[str, tuple[TimeInterval, ...]] = field(default_factory=dict)
    global_config: AbcMapping[str, Any] = field(default_factory=dict)
    datasources: Any = None
    evaluation: Any = None
    templates: tuple[str, ...] = ()
    source: str = ""
    warnings: tuple[str, ...] = ()
    routes_by_id: AbcMapping[str, Route] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if not self.routes_by_id:
            object.__setattr__(self, "routes_by_id", {r.id: r for r in self.route.walk()})

    @property
    def external_url(self) -> str:
        return str(self.global_config.get("external_url") or "")

    def match(self, labels: AbcMapping[str, str]) -> list[Route]:
        return self.route.match(labels)

    def receivers_for(self, labels: AbcMapping[str, str]) -> list[str]:
        """Receiver names an alert with these labels reaches, in tree order (like amtool)."""
        return [route.receiver for route in self.match(labels)]

    def muted_by_time(self, route: Route, now: float) -> str | None:
        """Why the route's notifications are held back at ``now`` (a time interval), or None."""
        for name in route.mute_time_intervals:
            if in_any(self.time_intervals.get(name, ()), now):
                return f"inside mute time interval {name!r}"
        if route.active_time_intervals and not any(
            in_any(self.time_intervals.get(name, ()), now) for name in route.active_time_intervals
        ):
            names = ", ".join(repr(n) for n in route.active_time_intervals)
            return f"outside active time intervals {names}"
        return None


def load_routing_config(
    path: str | Path,
    extra_global: AbcMapping[str, Any] | None = None,
    env: AbcMapping[str, str] | None = None,
) -> RoutingConfig:
    """Load ``alerting.yml``; the first problem is raised as ``ConfigError`` (``file:line:col``).

    ``extra_global`` is handed to integrations beside the file's ``global`` section (runtime
    objects such as a shared key-value store; never written in the file).
    """
    config, problems = _load(path, extra_global, env)
    if problems:
        raise problems[0]
    assert config is not None
    _warn_once(config)
    return config


def check_routing_config(path: str | Path, env: AbcMapping[str, str] | None = None) -> list[ConfigError]:
    """Every problem in ``alerting.yml`` (empty when it loads)."""
    return _load(path, None, env)[1]


def default_routing_config() -> RoutingConfig:
    """What runs when there is no ``alerting.yml``: every alert grouped by name, printed on stdout."""
    _import_integrations()
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


# --- loading ----------------------------------------------------------------------------------------

_warned: set[str] = set()


def _warn_once(config: RoutingConfig) -> None:
    # Reloads re-read the file every tick; the same warning is logged once per process.
    for warning in config.warnings:
        if warning not in _warned:
            _warned.add(warning)
            log.warning("routing.config_warning", msg=warning, file=config.source)


def _import_integrations() -> None:
    for name in _INTEGRATION_MODULES:
        module = f"alerting.notify.receivers.{name}"
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise


def _load(
    path: str | Path, extra_global: AbcMapping[str, Any] | None, env: AbcMapping[str, str] | None
) -> tuple[RoutingConfig | None, list[ConfigError]]:
    _import_integrations()
    try:
        doc = load_file(path, ConfigError)
    except ConfigError as exc:
        return None, [exc]
    parser = _Parser(str(path), environment() if env is None else env)
    parser.extra_global = extra_global or {}
    config = parser.parse(doc)
    return (config if not parser.errors else None), parser.errors


class _Parser:
    def __init__(self, file: str, env: AbcMapping[str, str]) -> None:
        self.file = file
        self.env = env
        self.errors: list[ConfigError] = []
        self.warnings: list[str] = []
        self.route_refs: list[tuple[str, Position]] = []
        self.interval_refs: list[tuple[str, Position]] = []
        self.global_unset: dict[str, list[str]] = {}
        self.extra_global: AbcMapping[str, Any] = {}

    def error(self, message: str, pos: Position | None) -> None:
        self.errors.append(ConfigError(message, pos or Position(self.file)))

    # -- helpers ---------------------------------------------------------------------------------

    def fields(self, mapping: Mapping, allowed: tuple[str, ...], what: str) -> None:
        for key in mapping:
            if key not in allowed:
                self.error(f'unknown field "{key}" in {what}{suggest(key, allowed)}', mapping.key_pos[key])

    def mapping(self, value: Any, pos: Position, what: str) -> Mapping | None:
        if isinstance(value, Mapping):
            return value
        self.error(f"{what} must be a mapping, got {type_name(value)}", pos)
        return None

    def sequence(self, parent: Mapping, key: str, what: str) -> list[tuple[Any, Position]]:
        value = parent.get(key)
        if value is None:
            return []
        if not isinstance(value, Sequence):
            self.error(f"{what} must be a list, got {type_name(value)}", parent.at(key))
            return []
        return list(zip(value, value.item_pos, strict=True))

    def duration(self, parent: Mapping, key: str, default: float, allow_zero: bool = True) -> float:
        if key not in parent or parent[key] is None:
            return default
        raw = parent[key]
        try:
            seconds = parse_duration(str(raw) if isinstance(raw, int) else raw)
        except DurationError as exc:
            self.error(f"{key}: {exc}", parent.at(key))
            return default
        if not allow_zero and seconds == 0:
            self.error(f"{key} cannot be zero", parent.at(key))
            return default
        return seconds

    def string(self, parent: Mapping, key: str, what: str) -> str | None:
        value = parent.get(key)
        if value is None:
            return None
        if not isinstance(value, str):
            self.error(f"{what} must be a string, got {type_name(value)}", parent.at(key))
            return None
        return value

    def matchers(self, parent: Mapping, prefix: str) -> list[Matcher]:
        """``{prefix}match``, ``{prefix}match_re`` and ``{prefix}matchers`` merged, Alertmanager-style."""
        found: list[Matcher] = []
        for key, op in ((f"{prefix}match", "="), (f"{prefix}match_re", "=~")):
            if key not in parent:
                continue
            legacy = self.mapping(parent[key], parent.at(key), key)
            for name, value in (legacy or {}).items():
                pos = legacy.value_pos[name] if legacy is not None else None
                if not LABEL_NAME.match(name):
                    self.error(f"{key}: invalid label name {name!r}", legacy.key_pos[name] if legacy else pos)
                    continue
                if not isinstance(value, str):
                    value = (
                        "" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
                    )
                try:
                    found.append(Matcher(name, op, value))
                except MatcherError as exc:
                    self.error(f"{key}: {exc}", pos)
        for item, pos in self.sequence(parent, f"{prefix}matchers", f"{prefix}matchers"):
            if not isinstance(item, str):
                self.error(f"{prefix}matchers entries must be strings like 'severity=\"critical\"'", pos)
                continue
            try:
                found.extend(parse_matchers(item))
            except MatcherError as exc:
                self.error(f"{prefix}matchers: {exc}", pos)
        return found

    # -- sections --------------------------------------------------------------------------------

    def parse(self, doc: Any) -> RoutingConfig | None:
        if doc is None:
            self.error("the file is empty: it needs at least a route and a receiver", Position(self.file))
            return None
        top = self.mapping(doc, getattr(doc, "pos", Position(self.file)), "the top level")
        if top is None:
            return None
        self.fields(top, _TOP_FIELDS, "the top level")
        global_config = self.global_section(top)
        intervals = self.time_intervals(top)
        receivers = self.receivers(top, global_config)
        route = None
        if "route" not in top:
            self.error("missing required section: route", top.pos)
        else:
            raw_route = self.mapping(top["route"], top.at("route"), "route")
            if raw_route is not None:
                route = self.route(raw_route, None, "0")
        inhibit = self.inhibit_rules(top)
        for name, pos in self.route_refs:
            if name not in receivers:
                self.error(f'undefined receiver "{name}" used in route{suggest(name, receivers)}', pos)
        for name, pos in self.interval_refs:
            if name not in intervals:
                self.error(f'undefined time interval "{name}" used in route{suggest(name, intervals)}', pos)
        for receiver in receivers.values():
            if receiver.fallback is not None and receiver.fallback not in receivers:
                self.error(
                    f'receiver "{receiver.name}": undefined fallback receiver "{receiver.fallback}"',
                    top.at("receivers"),
                )
        templates = tuple(str(t) for t, _ in self.sequence(top, "templates", "templates"))
        if route is None or self.errors:
            return None
        return RoutingConfig(
            route=route,
            receivers=receivers,
            inhibit_rules=tuple(inhibit),
            time_intervals=intervals,
            global_config=global_config,
            datasources=top.get("datasources"),
            evaluation=top.get("evaluation"),
            templates=templates,
            source=self.file,
            warnings=tuple(self.warnings),
        )

    def global_section(self, top: Mapping) -> dict[str, Any]:
        if top.get("global") is None:
            return {"resolve_timeout": 300.0}
        raw = self.mapping(top["global"], top.at("global"), "global")
        if raw is None:
            return {}
        for key in raw:
            if key not in _GLOBAL_FIELDS and not key.startswith(_GLOBAL_PREFIXES):
                self.error(f'unknown field "{key}" in global{suggest(key, _GLOBAL_FIELDS)}', raw.key_pos[key])
        out: dict[str, Any] = {}
        for key, value in raw.items():
            expansion = expand(value, self.env)
            if expansion.unset:
                self.global_unset[key] = list(expansion.empty)
            if expansion.missing:
                continue  # an unset global secret is absent; integrations relying on it fall back
            out[key] = expansion.value
        out["resolve_timeout"] = self.duration(raw, "resolve_timeout", 300.0, allow_zero=False)
        return out

    def time_intervals(self, top: Mapping) -> dict[str, tuple[TimeInterval, ...]]:
        out: dict[str, tuple[TimeInterval, ...]] = {}
        for section in ("time_intervals", "mute_time_intervals"):
            for item, pos in self.sequence(top, section, section):
                raw = self.mapping(item, pos, f"an entry of {section}")
                if raw is None:
                    continue
                self.fields(raw, ("name", "time_intervals"), f"{section} entry")
                name = self.string(raw, "name", "name")
                if not name:
                    self.error(f"{section} entry needs a name", pos)
                    continue
                if name in out:
                    self.error(f'time interval "{name}" is defined twice', raw.at("name"))
                    continue
                parsed = [
                    self.time_interval(ti, ti_pos)
                    for ti, ti_pos in self.sequence(raw, "time_intervals", "time_intervals")
                ]
                out[name] = tuple(t for t in parsed if t is not None)
        return out

    def time_interval(self, item: Any, pos: Position) -> TimeInterval | None:
        raw = self.mapping(item, pos, "a time interval")
        if raw is None:
            return None
        self.fields(
            raw, ("times", "weekdays", "days_of_month", "months", "years", "location"), "time interval"
        )
        values: dict[str, Any] = {}
        parsers = {
            "weekdays": parse_weekdays,
            "days_of_month": parse_days_of_month,
            "months": parse_months,
            "years": parse_years,
        }
        try:
            if "times" in raw:
                times = []
                for entry, entry_pos in self.sequence(raw, "times", "times"):
                    entry_map = self.mapping(entry, entry_pos, "a times entry")
                    if entry_map is not None:
                        self.fields(entry_map, ("start_time", "end_time"), "times entry")
                        try:
                            times.append(parse_times(entry_map))
                        except TimeIntervalError as exc:
                            self.error(str(exc), entry_pos)
                values["times"] = tuple(times)
            for key, parser in parsers.items():
                if key in raw:
                    ranges = []
                    for entry, entry_pos in self.sequence(raw, key, key):
                        try:
                            ranges.append(parser(entry))
                        except TimeIntervalError as exc:
                            self.error(str(exc), entry_pos)
                    values[key] = tuple(ranges)
            if raw.get("location") is not None:
                values["location"] = check_location(raw["location"])
        except TimeIntervalError as exc:
            self.error(str(exc), raw.at("location"))
            return None
        return TimeInterval(**values)

    def receivers(self, top: Mapping, global_config: dict[str, Any]) -> dict[str, Receiver]:
        out: dict[str, Receiver] = {}
        if "receivers" not in top:
            self.error("missing required section: receivers", top.pos)
        fallbacks: list[str] = []
        for item, pos in self.sequence(top, "receivers", "receivers"):
            raw = self.mapping(item, pos, "a receiver")
            if raw is None:
                continue
            name = self.string(raw, "name", "receiver name")
            if not name:
                self.error("a receiver needs a name", pos)
                continue
            if name in out:
                self.error(f'receiver "{name}" is defined twice', raw.at("name"))
                continue
            allowed = ("name", "fallback", *_OURS, *_UNSUPPORTED, *INTEGRATIONS)
            self.fields(raw, tuple(dict.fromkeys(allowed)), f'receiver "{name}"')
            integrations: list[ReceiverIntegration] = []
            for key in raw:
                if not key.endswith("_configs"):
                    continue
                if key in _UNSUPPORTED:
                    supported = ", ".join(sorted(set(_OURS) & set(INTEGRATIONS)))
                    self.error(
                        f'receiver "{name}": {key} are not supported here (supported: {supported})',
                        raw.key_pos[key],
                    )
                    continue
                for index, (cfg, cfg_pos) in enumerate(self.sequence(raw, key, key)):
                    built = self.integration(name, key, index, cfg, cfg_pos, global_config, fallbacks)
                    if built is not None:
                        integrations.append(built)
            fallback = self.string(raw, "fallback", "fallback")
            out[name] = Receiver(name, _merge_stand_ins(integrations, global_config), fallback)
        if fallbacks:
            self.warnings.append(
                "these receiver integrations print to the console instead, until configured: "
                + "; ".join(fallbacks)
            )
        return out

    def integration(
        self,
        receiver: str,
        key: str,
        index: int,
        cfg: Any,
        pos: Position,
        global_config: dict[str, Any],
        fallbacks: list[str],
    ) -> ReceiverIntegration | None:
        raw = self.mapping(cfg if cfg is not None else _empty_mapping(pos), pos, f"an entry of {key}")
        if raw is None:
            return None
        expansion = expand(raw, self.env)
        expanded = expansion.value
        missing = list(expansion.missing)
        for file_key, value in raw.items():
            is_path = isinstance(value, str) and value and "${" not in value
            if file_key.endswith("_file") and is_path and not os.access(value, os.R_OK):
                missing.append(f"{file_key} {value} unreadable")
        what = f"{receiver}/{key}[{index}]"
        factory = INTEGRATIONS.get(key)
        if factory is None:
            fallbacks.append(f"{what} (no {key.removesuffix('_configs')} integration installed)")
            return self.console_stand_in(receiver, key, index, expanded, global_config)
        if missing:
            fallbacks.append(f"{what} ({', '.join(missing)} not set)")
            return self.console_stand_in(receiver, key, index, expanded, global_config)
        try:
            integration = factory(expanded, {**global_config, **self.extra_global})
        except ConfigError as exc:
            # Empty because a variable is unset (in this entry or a global it uses): not configured yet.
            names = list(expansion.empty) + [
                name
                for global_key, names in self.global_unset.items()
                if global_key.startswith(_GLOBALS_USED.get(key, ("http_config",)))
                for name in names
            ]
            if names and not exc.message.startswith("unknown field"):
                fallbacks.append(f"{what} ({', '.join(dict.fromkeys(names))} not set)")
                return self.console_stand_in(receiver, key, index, expanded, global_config)
            self.errors.append(exc if exc.pos else ConfigError(f"{what}: {exc.message}", pos))
            return None
        except (ValueError, TypeError, KeyError) as exc:
            self.error(f"{what}: {exc}", pos)
            return None
        return ReceiverIntegration(receiver, key, index, integration)

    def console_stand_in(
        self, receiver: str, key: str, index: int, cfg: AbcMapping[str, Any], global_config: dict[str, Any]
    ) -> ReceiverIntegration:
        default = key not in ("slack_configs", "email_configs")  # Alertmanager's defaults per kind
        settings = {
            "send_resolved": cfg.get("send_resolved", default),
            "stands_for": f"{receiver}/{key}[{index}]",
        }
        console = INTEGRATIONS[CONSOLE](settings, global_config)
        return ReceiverIntegration(receiver, CONSOLE, index, console, stands_for=key)

    def route(self, raw: Mapping, parent: Route | None, route_id: str) -> Route | None:
        root = parent is None
        what = "the root route" if root else "route"
        self.fields(raw, _ROUTE_FIELDS, what)
        matchers = self.matchers(raw, "")
        if root:
            if matchers or any(k in raw for k in ("match", "match_re", "matchers")):
                self.error("the root route must not have any matchers", raw.pos)
            if raw.get("continue"):
                self.error("the root route cannot have continue", raw.at("continue"))
            for key in ("mute_time_intervals", "active_time_intervals"):
                if raw.get(key):
                    self.error(f"the root route cannot have {key}", raw.at(key))
        receiver = self.string(raw, "receiver", "receiver")
        if receiver is None:
            if root:
                self.error("the root route needs a receiver", raw.pos)
                receiver = ""
            else:
                assert parent is not None
                receiver = parent.receiver
        else:
            self.route_refs.append((receiver, raw.at("receiver")))
        group_by, group_by_all = self.group_by(raw, parent)
        cont = raw.get("continue", False)
        if not isinstance(cont, bool):
            self.error(f"continue must be true or false, got {type_name(cont)}", raw.at("continue"))
            cont = False
        base = parent or Route(receiver="")
        names: dict[str, tuple[str, ...]] = {}
        for key in ("mute_time_intervals", "active_time_intervals"):
            items = []
            for name, pos in self.sequence(raw, key, key):
                if not isinstance(name, str):
                    self.error(f"{key} entries must be names of time intervals", pos)
                    continue
                self.interval_refs.append((name, pos))
                items.append(name)
            names[key] = tuple(items)
        ordered = sort_matchers(matchers)
        key = matchers_string(ordered) if root else f"{base.key}/{matchers_string(ordered)}"
        node = Route(
            receiver=receiver,
            matchers=ordered,
            group_by=group_by,
            group_by_all=group_by_all,
            continue_=cont,
            group_wait=self.duration(raw, "group_wait", base.group_wait if parent else DEFAULT_GROUP_WAIT),
            group_interval=self.duration(
                raw, "group_interval", base.group_interval if parent else DEFAULT_GROUP_INTERVAL, False
            ),
            repeat_interval=self.duration(
                raw, "repeat_interval", base.repeat_interval if parent else DEFAULT_REPEAT_INTERVAL, False
            ),
            mute_time_intervals=names["mute_time_intervals"],
            active_time_intervals=names["active_time_intervals"],
            key=key,
            id=route_id,
            pos=raw.pos,
        )
        children = []
        for index, (item, pos) in enumerate(self.sequence(raw, "routes", "routes")):
            child_raw = self.mapping(item, pos, "a route")
            if child_raw is not None:
                child = self.route(child_raw, node, f"{route_id}.{index}")
                if child is not None:
                    children.append(child)
        return replace(node, routes=tuple(children))

    def group_by(self, raw: Mapping, parent: Route | None) -> tuple[tuple[str, ...], bool]:
        if not raw.get("group_by"):
            # Alertmanager reads an empty list like an absent one: the route inherits its parent's.
            return (parent.group_by, parent.group_by_all) if parent else ((), False)
        labels: list[str] = []
        everything = False
        for name, pos in self.sequence(raw, "group_by", "group_by"):
            if name == "...":
                everything = True
            elif not isinstance(name, str) or not LABEL_NAME.match(name):
                self.error(f"group_by: invalid label name {name!r}", pos)
            elif name in labels:
                self.error(f'group_by: label "{name}" is listed twice', pos)
            else:
                labels.append(name)
        if everything and labels:
            self.error("group_by cannot mix '...' (group by all labels) with label names", raw.at("group_by"))
        return tuple(labels), everything

    def inhibit_rules(self, top: Mapping) -> list[InhibitRule]:
        out = []
        for item, pos in self.sequence(top, "inhibit_rules", "inhibit_rules"):
            raw = self.mapping(item, pos, "an inhibit rule")
            if raw is None:
                continue
            self.fields(raw, _INHIBIT_FIELDS, "inhibit rule")
            source = self.matchers(raw, "source_")
            target = self.matchers(raw, "target_")
            equal = []
            for name, name_pos in self.sequence(raw, "equal", "equal"):
                if not isinstance(name, str) or not LABEL_NAME.match(name):
                    self.error(f"equal: invalid label name {name!r}", name_pos)
                else:
                    equal.append(name)
            out.append(InhibitRule(tuple(source), tuple(target), tuple(equal), pos))
        return out


def _merge_stand_ins(
    integrations: list[ReceiverIntegration], global_config: dict[str, Any]
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


def _empty_mapping(pos: Position) -> Mapping:
    empty = Mapping()
    empty.pos, empty.key_pos, empty.value_pos = pos, {}, {}
    return empty
