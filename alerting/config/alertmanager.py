"""``alerting.yml``: Alertmanager's configuration format plus our sections, parsed once into data.

Sections: ``global``, ``route``, ``receivers``, ``inhibit_rules``, ``time_intervals`` (and the older
``mute_time_intervals``), ``templates``; plus our ``datasources:`` and ``evaluation:``, and
Prometheus's ``remote_write:``. The result is frozen data (:class:`AlertingConfig`) with
``file:line:col`` problems; values are kept as written (``${ENV}`` references included): whoever uses
a value expands it (see alerting.config.env) and decides what an unset variable means. The exception
is ``remote_write:``, parsed into typed targets (alerting.remotewrite.config) after expansion, an
unset variable being an error. Live integrations are built from it in alerting.worker.compose.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Mapping as AbcMapping
from collections.abc import Sequence as AbcSequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from alerting.config.acknowledgements import (
    AcknowledgementsSection,
    acknowledgements_section,
    escalation_steps,
)
from alerting.config.yamlfile import (
    Mapping,
    Sequence,
    check_fields,
    expect_mapping,
    freeze,
    load_file,
    suggest,
    type_name,
)
from alerting.durations import parse_duration
from alerting.errors import ConfigError, DurationError, Position
from alerting.routing.escalation import EscalationStep
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
    parse_days_of_month,
    parse_months,
    parse_times,
    parse_weekdays,
    parse_years,
)

if TYPE_CHECKING:
    from alerting.remotewrite import RemoteWriteTarget

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
    "acknowledgements",
    "remote_write",
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
    "escalate",
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
    "slack_app_token",
    "slack_app_token_file",
    "slack_app_url",
    "pagerduty_url",
    "opsgenie_api_key",
    "opsgenie_api_key_file",
    "opsgenie_api_url",
    "victorops_api_key",
    "victorops_api_key_file",
    "victorops_api_url",
    "wechat_api_url",
    "wechat_api_secret",
    "wechat_api_secret_file",
    "wechat_api_corp_id",
    "telegram_api_url",
    "telegram_bot_token",
    "telegram_bot_token_file",
    "webex_api_url",
    "mattermost_webhook_url",
    "mattermost_webhook_url_file",
    "rocketchat_api_url",
    "rocketchat_token",
    "rocketchat_token_file",
    "rocketchat_token_id",
    "rocketchat_token_id_file",
    "jira_api_url",
    "external_url",
)
# Our SMS integration's global defaults are spelled with these prefixes (e.g. ``twilio_account_sid``).
_GLOBAL_PREFIXES = ("sms_", "twilio_")
# Integrations of Alertmanager this worker has no implementation for: rejected, never silently dropped.
_UNSUPPORTED: tuple[str, ...] = ()
# Integrations this worker implements (alerting/notify/receivers/, one module each).
INTEGRATION_KEYS = (
    "pagerduty_configs",
    "slack_configs",
    "email_configs",
    "webhook_configs",
    "sms_configs",
    "console_configs",
    "alertmanager_configs",
    "telegram_configs",
    "opsgenie_configs",
    "victorops_configs",
    "pushover_configs",
    "discord_configs",
    "sns_configs",
    "webex_configs",
    "wechat_configs",
    "msteams_configs",
    "msteamsv2_configs",
    "mattermost_configs",
    "rocketchat_configs",
    "jira_configs",
    "incidentio_configs",
)
# Where Slack app tokens post unless slack_app_url or app_url says otherwise.
SLACK_APP_URL = "https://slack.com/api/chat.postMessage"
# The global settings each integration falls back on, as in Alertmanager.
GLOBALS_USED = {
    "slack_configs": ("slack_api_url", "slack_app_", "http_config"),
    "email_configs": ("smtp_",),
    "pagerduty_configs": ("pagerduty_url", "http_config"),
    "sms_configs": ("sms_", "twilio_", "http_config"),
    "webhook_configs": ("http_config",),
    "telegram_configs": ("telegram_api_url", "telegram_bot_token", "http_config"),
    "opsgenie_configs": ("opsgenie_api_", "http_config"),
    "victorops_configs": ("victorops_api_", "http_config"),
    "sns_configs": ("http_config",),
    "webex_configs": ("webex_api_url", "http_config"),
    "wechat_configs": ("wechat_", "http_config"),
    "mattermost_configs": ("mattermost_webhook_url", "http_config"),
    "rocketchat_configs": ("rocketchat_", "http_config"),
    "jira_configs": ("jira_api_url", "http_config"),
}


@dataclass(frozen=True)
class IntegrationConfig:
    """One entry of a receiver's ``*_configs`` list, as written (``${ENV}`` references unexpanded)."""

    receiver: str
    key: str  # e.g. "slack_configs"
    index: int
    fields: AbcMapping[str, Any]  # the YAML mapping, positions kept (``fields.pos``, ``fields.at(key)``)
    pos: Position

    @property
    def name(self) -> str:
        """How messages name it: ``receiver/key[index]``."""
        return f"{self.receiver}/{self.key}[{self.index}]"


@dataclass(frozen=True)
class ReceiverConfig:
    name: str
    integrations: tuple[IntegrationConfig, ...]
    fallback: str | None = None  # receiver that gets what this one permanently failed to deliver
    pos: Position | None = None


@dataclass(frozen=True)
class DatasourceSpec:
    """One entry of ``datasources:``: its kind (from ``type``) and its options as written."""

    name: str
    kind: str  # a key of alerting.sources.KINDS
    options: AbcMapping[str, Any]  # the YAML mapping without ``type``; positions kept
    pos: Position


@dataclass(frozen=True)
class EvaluationSection:
    """The ``evaluation:`` section: defaults for rule evaluation (None where not written)."""

    interval: float | None = None
    outage_tolerance: float | None = None
    query_concurrency: Any = None  # checked by Settings, which the environment may override
    query_concurrency_pos: Position | None = None
    external_url: str | None = None
    # ALERTS and ALERTS_FOR_STATE written by remote write beside what recording rules record
    write_alert_series: bool | None = None


@dataclass(frozen=True)
class AlertingConfig:
    """``alerting.yml`` as data. ``problems`` lists what is wrong, by section; a section with
    problems holds what could be read of it."""

    source: str
    route: Route = field(default_factory=lambda: Route(receiver=""))
    receivers: AbcMapping[str, ReceiverConfig] = field(default_factory=dict)
    inhibit_rules: tuple[InhibitRule, ...] = ()
    time_intervals: AbcMapping[str, tuple[TimeInterval, ...]] = field(default_factory=dict)
    global_config: AbcMapping[str, Any] = field(default_factory=dict)  # values as written
    templates: tuple[str, ...] = ()
    datasources: AbcMapping[str, DatasourceSpec] = field(default_factory=dict)
    evaluation: EvaluationSection = EvaluationSection()
    acknowledgements: AcknowledgementsSection = AcknowledgementsSection()
    remote_write: tuple[RemoteWriteTarget, ...] = ()  # ${ENV} expanded, unlike the rest
    # The two sections of ours as written (None when absent).
    datasources_section: Any = None
    evaluation_section: Any = None
    # Problems: of the file itself (unreadable, not YAML), of our two sections, of the rest.
    file_problems: tuple[ConfigError, ...] = ()
    evaluation_problems: tuple[ConfigError, ...] = ()
    datasource_problems: tuple[ConfigError, ...] = ()
    routing_problems: tuple[ConfigError, ...] = ()

    @property
    def problems(self) -> tuple[ConfigError, ...]:
        """Every problem: the file's, then the evaluation section's, the datasources', the rest."""
        return (
            self.file_problems + self.evaluation_problems + self.datasource_problems + self.routing_problems
        )


# Checks one integration entry beyond its shape (alerting.worker.compose builds it): its problems.
IntegrationCheck = Callable[[IntegrationConfig, AbcMapping[str, Any]], AbcSequence[ConfigError]]


def read_config(path: str | Path, check_integration: IntegrationCheck | None = None) -> AlertingConfig:
    """Parse ``alerting.yml`` once into data; its problems are in the result, none is raised.

    ``check_integration`` is called for each integration entry, in file order, with the ``global``
    section; what it returns is reported beside the parser's own problems, in order.
    """
    try:
        doc = load_file(path, ConfigError)
    except ConfigError as exc:
        return AlertingConfig(source=str(path), file_problems=(exc,))
    return parse_document(doc, str(path), check_integration)


def parse_document(doc: Any, file: str, check_integration: IntegrationCheck | None = None) -> AlertingConfig:
    """:func:`read_config` for a document already read from ``file``."""
    parser = _Parser(file, check_integration)
    return parser.parse(doc)


def load_config(path: str | Path) -> AlertingConfig:
    """Parse ``alerting.yml``; the first problem is raised as ``ConfigError`` (``file:line:col``)."""
    config = read_config(path)
    if config.problems:
        raise config.problems[0]
    return config


def check_config(path: str | Path, check_integration: IntegrationCheck | None = None) -> list[ConfigError]:
    """Every problem in ``alerting.yml`` (empty when it loads)."""
    return list(read_config(path, check_integration).problems)


# --- loading ----------------------------------------------------------------------------------------


class _Parser:
    def __init__(self, file: str, check_integration: IntegrationCheck | None) -> None:
        self.file = file
        self.check_integration = check_integration
        self.errors: list[ConfigError] = []
        self.route_refs: list[tuple[str, Position]] = []
        self.interval_refs: list[tuple[str, Position]] = []
        self.escalate_refs: list[tuple[str, Position]] = []

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
                if value is None and op == "=~":
                    # Alertmanager refuses an empty regular expression here (a null value).
                    self.error(f'{key}: invalid regexp value for "{name}"', pos)
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

    def parse(self, doc: Any) -> AlertingConfig:
        if doc is None:
            self.error("the file is empty: it needs at least a route and a receiver", Position(self.file))
            return AlertingConfig(source=self.file, routing_problems=tuple(self.errors))
        top = self.mapping(doc, getattr(doc, "pos", Position(self.file)), "the top level")
        if top is None:
            return AlertingConfig(source=self.file, routing_problems=tuple(self.errors))
        evaluation, evaluation_problems = _evaluation_section(top)
        datasources, datasource_problems = _datasources_section(top)
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
        for name, pos in self.escalate_refs:
            if name not in receivers:
                self.error(f'undefined receiver "{name}" used in escalate{suggest(name, receivers)}', pos)
        acks, ack_problems = acknowledgements_section(top)
        self.errors.extend(ack_problems)
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
        remote_write = self.remote_write(top)
        return AlertingConfig(
            source=self.file,
            route=route or Route(receiver=""),
            receivers=MappingProxyType(receivers),
            inhibit_rules=tuple(inhibit),
            time_intervals=MappingProxyType(intervals),
            global_config=MappingProxyType(global_config),
            templates=templates,
            datasources=MappingProxyType(datasources),
            evaluation=evaluation,
            acknowledgements=acks,
            remote_write=remote_write,
            datasources_section=top.get("datasources"),
            evaluation_section=top.get("evaluation"),
            evaluation_problems=tuple(evaluation_problems),
            datasource_problems=tuple(datasource_problems),
            routing_problems=tuple(self.errors),
        )

    def remote_write(self, top: Mapping) -> tuple[RemoteWriteTarget, ...]:
        if top.get("remote_write") is None:
            return ()
        # Imported here: settings imports this module, and the remotewrite package imports the
        # metrics, which import settings.
        from alerting.config.settings import environment
        from alerting.remotewrite.config import parse_remote_write

        try:
            return parse_remote_write(top["remote_write"], top.at("remote_write"), env=environment())
        except ConfigError as exc:
            self.errors.append(exc)
            return ()

    def global_section(self, top: Mapping) -> dict[str, Any]:
        if top.get("global") is None:
            return {"resolve_timeout": 300.0}
        raw = self.mapping(top["global"], top.at("global"), "global")
        if raw is None:
            return {}
        for key in raw:
            if key not in _GLOBAL_FIELDS and not key.startswith(_GLOBAL_PREFIXES):
                self.error(f'unknown field "{key}" in global{suggest(key, _GLOBAL_FIELDS)}', raw.key_pos[key])
        for key in raw:
            inline = key.removesuffix("_file")
            if key.endswith("_file") and raw.get(key) and raw.get(inline):
                self.error(f"at most one of {inline} & {key} must be configured", raw.key_pos[key])
        app_token = raw.get("slack_app_token") or raw.get("slack_app_token_file")
        api_url = raw.get("slack_api_url") or raw.get("slack_api_url_file")
        # Both only for the older way to use a bot token: slack_api_url naming chat.postMessage.
        if app_token and api_url and raw.get("slack_api_url") != raw.get("slack_app_url", SLACK_APP_URL):
            self.error(
                "at most one of slack_app_token/slack_app_token_file & slack_api_url/slack_api_url_file "
                "must be configured",
                raw.key_pos["slack_app_token" if raw.get("slack_app_token") else "slack_app_token_file"],
            )
        out: dict[str, Any] = {k: freeze(v) for k, v in raw.items()}  # as written: users expand ${ENV}
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

    def receivers(self, top: Mapping, global_config: dict[str, Any]) -> dict[str, ReceiverConfig]:
        out: dict[str, ReceiverConfig] = {}
        if "receivers" not in top:
            self.error("missing required section: receivers", top.pos)
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
            allowed = ("name", "fallback", *INTEGRATION_KEYS, *_UNSUPPORTED)
            self.fields(raw, allowed, f'receiver "{name}"')
            integrations: list[IntegrationConfig] = []
            for key in raw:
                if not key.endswith("_configs"):
                    continue
                if key in _UNSUPPORTED:
                    supported = ", ".join(sorted(INTEGRATION_KEYS))
                    self.error(
                        f'receiver "{name}": {key} are not supported here (supported: {supported})',
                        raw.key_pos[key],
                    )
                    continue
                if key not in INTEGRATION_KEYS:
                    continue  # reported above as an unknown field
                for index, (cfg, cfg_pos) in enumerate(self.sequence(raw, key, key)):
                    entry = self.mapping(
                        cfg if cfg is not None else _empty_mapping(cfg_pos), cfg_pos, f"an entry of {key}"
                    )
                    if entry is None:
                        continue
                    integration = IntegrationConfig(name, key, index, freeze(entry), cfg_pos)
                    if self.check_integration is not None:
                        self.errors.extend(self.check_integration(integration, global_config))
                    integrations.append(integration)
            fallback = self.string(raw, "fallback", "fallback")
            out[name] = ReceiverConfig(name, tuple(integrations), fallback, pos)
        return out

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
            escalate=self.escalate(raw, parent),
        )
        children = []
        for index, (item, pos) in enumerate(self.sequence(raw, "routes", "routes")):
            child_raw = self.mapping(item, pos, "a route")
            if child_raw is not None:
                child = self.route(child_raw, node, f"{route_id}.{index}")
                if child is not None:
                    children.append(child)
        return replace(node, routes=tuple(children))

    def escalate(self, raw: Mapping, parent: Route | None) -> tuple[EscalationStep, ...]:
        if "escalate" not in raw:
            return parent.escalate if parent else ()
        steps, problems = escalation_steps(raw["escalate"], raw.at("escalate"))
        self.errors.extend(problems)
        self.escalate_refs.extend((s.receiver, s.pos or raw.at("escalate")) for s in steps)
        return steps

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


def _empty_mapping(pos: Position) -> Mapping:
    empty = Mapping()
    empty.pos, empty.key_pos, empty.value_pos = pos, {}, {}
    return empty


# --- our sections -----------------------------------------------------------------------------------

# Datasource "type" in alerting.yml -> source kind name in alerting.sources.
DATASOURCE_TYPES = {"prometheus": "promql", "sql": "sql", "probe": "probe", "celery": "celery"}
_EVALUATION_FIELDS = (
    "interval",
    "outage_tolerance",
    "query_concurrency",
    "external_url",
    "write_alert_series",
)


def _evaluation_section(top: Mapping) -> tuple[EvaluationSection, list[ConfigError]]:
    """The optional ``evaluation:`` section (defaults for rule evaluation); its first problem."""
    if "evaluation" not in top:
        return EvaluationSection(), []
    try:
        section = expect_mapping(top["evaluation"], top.at("evaluation"), "evaluation", ConfigError)
        check_fields(section, _EVALUATION_FIELDS, "evaluation", ConfigError)
        durations: dict[str, float] = {}
        for key in ("interval", "outage_tolerance"):
            if key in section:
                try:
                    durations[key] = parse_duration(str(section[key]))
                except DurationError as exc:
                    raise ConfigError(f"evaluation.{key}: {exc}", section.at(key)) from None
        alert_series = section.get("write_alert_series")
        if alert_series is not None and not isinstance(alert_series, bool):
            raise ConfigError(
                f"evaluation.write_alert_series must be true or false, got {alert_series!r}",
                section.at("write_alert_series"),
            )
    except ConfigError as exc:
        return EvaluationSection(), [exc]
    return EvaluationSection(
        interval=durations.get("interval"),
        outage_tolerance=durations.get("outage_tolerance"),
        query_concurrency=section.get("query_concurrency"),
        query_concurrency_pos=section.at("query_concurrency") if "query_concurrency" in section else None,
        external_url=str(section["external_url"]) if "external_url" in section else None,
        write_alert_series=alert_series,
    ), []


def _datasources_section(top: Mapping) -> tuple[dict[str, DatasourceSpec], list[ConfigError]]:
    """The optional ``datasources:`` section, options as written; its first problem."""
    out: dict[str, DatasourceSpec] = {}
    if "datasources" not in top:
        return out, []
    try:
        section = expect_mapping(top["datasources"], top.at("datasources"), "datasources", ConfigError)
        for name, raw in section.items():
            raw = expect_mapping(raw, section.at(name), f'datasource "{name}"', ConfigError)
            kind = DATASOURCE_TYPES.get(str(raw.get("type", "")))
            if kind is None:
                raise ConfigError(
                    f'datasource "{name}": type must be one of '
                    f"{', '.join(DATASOURCE_TYPES)}, got {raw.get('type')!r}",
                    raw.at("type") if "type" in raw else raw.pos,
                )
            options = Mapping((k, v) for k, v in raw.items() if k != "type")
            options.pos, options.key_pos, options.value_pos = raw.pos, raw.key_pos, raw.value_pos
            out[name] = DatasourceSpec(name, kind, freeze(options), raw.pos)
    except ConfigError as exc:
        return out, [exc]
    return out, []
