"""Load Prometheus-format rule files (plus our SQL/probe/Celery extensions) with precise errors.

A file with any error is rejected whole and every problem in it is reported; other files still
load. Recording rules are kept beside the alerting rules of their group, in file order.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from alerting import templating
from alerting.config.yamlfile import (
    Mapping,
    Sequence,
    check_fields,
    expect_mapping,
    expect_sequence,
    load_file,
    type_name,
)
from alerting.durations import parse_duration
from alerting.errors import DurationError, Position, RuleFileError, TemplateError
from alerting.rules import recording
from alerting.rules.model import CONDITION_OPS, Condition, Group, Labels, RecordingRule, Rule, rule_key
from alerting.sources import kind_for_field, kinds

_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_METRIC_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_GROUP_FIELDS = ("name", "interval", "query_offset", "limit", "labels", "rules", "datasource")
_PROM_RULE_FIELDS = ("alert", "record", "expr", "for", "keep_firing_for", "labels", "annotations")
_EXT_RULE_FIELDS = ("sql", "probe", "celery", "datasource", "on_error", "condition")
_RULE_FILE_SUFFIXES = (".yml", ".yaml")
# The top-level fields of an Alertmanager configuration (and of alerting.yml, which is one): a file
# with some of these and no ``groups`` is a configuration, whatever its name.
_CONFIG_FIELDS = frozenset(
    {
        "global",
        "route",
        "receivers",
        "inhibit_rules",
        "templates",
        "time_intervals",
        "mute_time_intervals",
        "datasources",
        "evaluation",
    }
)


def is_alertmanager_config(doc: Any) -> bool:
    """Whether a parsed YAML document is an Alertmanager configuration rather than a rule file."""
    return isinstance(doc, dict) and "groups" not in doc and not _CONFIG_FIELDS.isdisjoint(doc)


@dataclass
class RuleSet:
    """What a load produced: the good groups, every problem, and warnings."""

    groups: list[Group] = field(default_factory=list)
    problems: list[RuleFileError] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)

    @property
    def rule_count(self) -> int:
        """Alerting rules (recording rules are :attr:`recording_count`)."""
        return sum(len(g.rules) for g in self.groups)

    @property
    def recording_count(self) -> int:
        return sum(len(g.recording) for g in self.groups)


def rule_files(paths: Iterable[str | Path]) -> tuple[list[Path], list[RuleFileError]]:
    """Expand directories (recursively, ``*.yml``/``*.yaml``) and report missing paths."""
    files: list[Path] = []
    problems: list[RuleFileError] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files.extend(
                sorted(p for p in path.rglob("*") if p.suffix in _RULE_FILE_SUFFIXES and p.is_file())
            )
        elif path.exists():
            files.append(path)
        else:
            problems.append(RuleFileError("no such file or directory", Position(str(path))))
    return files, problems


def load_paths(paths: Iterable[str | Path], default_interval: float = 300.0) -> RuleSet:
    """Load every rule file under ``paths``."""
    files, problems = rule_files(paths)
    result = RuleSet(problems=problems)
    for path in files:
        groups, file_problems, warnings = load_file_groups(path, default_interval)
        result.files.append(str(path))
        result.warnings.extend(warnings)
        if file_problems:
            result.problems.extend(file_problems)
        else:
            result.groups.extend(groups)
    return result


def load_file_groups(
    path: str | Path, default_interval: float = 300.0
) -> tuple[list[Group], list[RuleFileError], list[str]]:
    """Parse one file into groups; returns (groups, problems, warnings)."""
    file = str(path)
    try:
        # Prometheus decodes a rule file's first YAML document and never looks at the others.
        doc = load_file(path, RuleFileError, first_document=True)
    except RuleFileError as exc:
        return [], [exc], []
    return parse_rule_document(doc, file, default_interval)


def parse_rule_document(
    doc: Any, file: str, default_interval: float = 300.0
) -> tuple[list[Group], list[RuleFileError], list[str]]:
    """:func:`load_file_groups` for a document already read from ``file``."""
    parser = _FileParser(file, default_interval)
    parser.parse(doc)
    return parser.groups, parser.problems, []


class _FileParser:
    def __init__(self, file: str, default_interval: float) -> None:
        self.file = file
        self.default_interval = default_interval
        self.groups: list[Group] = []
        self.problems: list[RuleFileError] = []

    def parse(self, doc: Any) -> None:
        if doc is None:
            return  # an empty file is valid and holds no groups, as in Prometheus
        if is_alertmanager_config(doc):
            self.problems.append(
                RuleFileError(
                    "an Alertmanager configuration, not a rule file (`alerting check` checks it as one)",
                    Position(self.file, 1, 1),
                )
            )
            return
        try:
            doc = expect_mapping(doc, Position(self.file, 1, 1), "a rule file", RuleFileError)
            check_fields(doc, ("groups",), "the rule file", RuleFileError)
            groups = expect_sequence(_sequence(doc, "groups"), doc.at("groups"), "groups", RuleFileError)
        except RuleFileError as exc:
            self.problems.append(exc)
            return
        seen: dict[str, Position] = {}
        for item, pos in zip(groups, groups.item_pos, strict=True):
            try:
                group = self._group(expect_mapping(item, pos, "a group", RuleFileError))
            except RuleFileError as exc:
                self.problems.append(exc)
                continue
            if group is None:
                continue
            if group.name in seen:
                self.problems.append(
                    RuleFileError(
                        f'groupname: "{group.name}" is repeated in the same file '
                        f"(first at line {seen[group.name].line})",
                        group.pos,
                    )
                )
                continue
            seen[group.name] = group.pos
            self.groups.append(group)

    def _group(self, raw: Mapping) -> Group | None:
        check_fields(raw, _GROUP_FIELDS, "a group", RuleFileError)
        name = _go_string(raw, "name")
        if not name:
            raise RuleFileError(
                "group name must be a non-empty string",
                raw.at("name") if "name" in raw else raw.pos,
            )
        interval = _duration(raw, "interval", self.default_interval)
        if interval <= 0:
            raise RuleFileError("interval must be greater than 0", raw.at("interval"))
        query_offset = _duration(raw, "query_offset", 0.0)
        limit = 0 if raw.get("limit") is None else raw["limit"]
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
            raise RuleFileError(f"limit must be a non-negative integer, got {limit!r}", raw.at("limit"))
        group_labels = tuple(sorted(_labels(raw, "labels", "label").items()))
        datasource = raw.get("datasource", "")
        if not isinstance(datasource, str):
            raise RuleFileError("datasource must be a datasource name", raw.at("datasource"))
        rules_raw = expect_sequence(_sequence(raw, "rules"), raw.at("rules"), "rules", RuleFileError)
        ordered: list[Rule | RecordingRule] = []
        taken: set[str] = set()
        for item, pos in zip(rules_raw, rules_raw.item_pos, strict=True):
            try:
                rule = self._rule(
                    expect_mapping(item, pos, "a rule", RuleFileError),
                    group_labels,
                    datasource,
                    name,
                )
            except RuleFileError as exc:
                self.problems.append(exc)
                continue
            ordered.append(replace(rule, key=rule_key(rule.name, rule.labels, taken)))
        staged = [replace(r, stage=s) for r, s in zip(ordered, _stages(ordered), strict=True)]
        return Group(
            name=name,
            file=self.file,
            interval=interval,
            rules=tuple(r for r in staged if isinstance(r, Rule)),
            query_offset=query_offset,
            limit=limit,
            labels=group_labels,
            pos=raw.pos,
            recording=tuple(r for r in staged if isinstance(r, RecordingRule)),
        )

    def _rule(self, raw: Mapping, group_labels: Labels, group_ds: str, group: str) -> Rule | RecordingRule:
        check_fields(raw, _PROM_RULE_FIELDS + _EXT_RULE_FIELDS, "a rule", RuleFileError)
        for key in ("alert", "record"):
            if key in raw and raw.text(key) is None:
                raise RuleFileError(f"{key} must be a name, got {type_name(raw[key])}", raw.at(key))
        # As in Prometheus, a rule is what its non-empty name says it is, and an alert name is any
        # text at all ("Service Down", "Disk>80%"): it is only ever a label value. It is the
        # scalar as written (`alert: 0x1F` names the alert "0x1F", not "31").
        name, record = raw.text("alert") or "", raw.text("record") or ""
        if name and record:
            raise RuleFileError("only one of 'record' and 'alert' must be set", raw.pos)
        if record:
            return self._recording_rule(raw, record, group_labels, group_ds)
        if not name:
            raise RuleFileError("one of 'record' or 'alert' must be set", raw.pos)
        query_fields = [f for f in raw if kind_for_field(f) is not None]
        if not query_fields:
            fields = ", ".join(sorted(k.field for k in kinds().values()))
            raise RuleFileError(f"field 'expr' must be set in rule (or one of: {fields})", raw.pos)
        if len(query_fields) > 1:
            raise RuleFileError(
                f"a rule takes exactly one query, got {' and '.join(query_fields)}",
                raw.key_pos[query_fields[1]],
            )
        kind = kind_for_field(query_fields[0])
        assert kind is not None
        query = kind.check(_query_text(raw, kind.field), raw.at(kind.field))
        own_labels = _labels(raw, "labels", "label")
        labels = dict(group_labels)
        labels.update(own_labels)
        annotations = _labels(raw, "annotations", "annotation")
        for section, texts in (("labels", own_labels), ("annotations", annotations)):
            values = raw.get(section) or {}
            for key, text in texts.items():
                try:
                    templating.check(text, alertname=name)
                except TemplateError as exc:
                    pos = values.at(key) if isinstance(values, Mapping) else raw.at(section)
                    line = pos.line + max(exc.line - 1, 0)
                    raise RuleFileError(
                        f'{section[:-1]} "{key}": template: {exc.message}',
                        Position(pos.file, line, pos.col + max(exc.col - 1, 0) if exc.line <= 1 else exc.col),
                    ) from None
        on_error = raw.get("on_error", "freeze")
        if on_error not in ("freeze", "firing"):
            raise RuleFileError(
                f'on_error must be "freeze" or "firing", got {on_error!r}', raw.at("on_error")
            )
        datasource = raw.get("datasource", group_ds if kind.field != "expr" or group_ds else "")
        if not isinstance(datasource, str):
            raise RuleFileError("datasource must be a datasource name", raw.at("datasource"))
        return Rule(
            name=name,
            kind=kind.name,
            query=query,
            datasource=datasource or kind.default_datasource,
            for_=_duration(raw, "for", 0.0),
            keep_firing_for=_duration(raw, "keep_firing_for", 0.0),
            labels=tuple(sorted(labels.items())),
            annotations=tuple(annotations.items()),
            on_error=on_error,
            condition=_condition(raw),
            pos=raw.pos,
        )

    def _recording_rule(self, raw: Mapping, name: str, group_labels: Labels, group_ds: str) -> RecordingRule:
        """A recording rule, checked as Prometheus checks it (so a file loads here exactly when it
        loads there). It queries its own ``datasource`` (our extension), the group's, or Prometheus."""
        if not _METRIC_NAME.match(name):
            raise RuleFileError(f"invalid recording rule name: {name!r}", raw.at("record"))
        for key in _EXT_RULE_FIELDS:
            if key in raw and key != "datasource":
                raise RuleFileError(f"invalid field '{key}' in recording rule", raw.key_pos[key])
        if raw.get("annotations"):
            raise RuleFileError("invalid field 'annotations' in recording rule", raw.key_pos["annotations"])
        for key in ("for", "keep_firing_for"):
            if _duration(raw, key, 0.0):
                raise RuleFileError(f"invalid field '{key}' in recording rule", raw.key_pos[key])
        labels = dict(group_labels)
        labels.update(_labels(raw, "labels", "label"))
        if "expr" not in raw:
            raise RuleFileError("field 'expr' must be set in rule", raw.pos)
        kind = kind_for_field("expr")
        assert kind is not None
        expr = kind.check(_query_text(raw, "expr"), raw.at("expr"))
        datasource = raw.get("datasource", group_ds)
        if not isinstance(datasource, str):
            raise RuleFileError("datasource must be a datasource name", raw.at("datasource"))
        return RecordingRule(
            record=name,
            expr=expr,
            datasource=datasource or kind.default_datasource,
            labels=tuple(sorted(labels.items())),
            pos=raw.pos,
        )


def _stages(rules: list[Rule | RecordingRule]) -> list[int]:
    exprs = [r.query if isinstance(r, RecordingRule) or r.kind == "promql" else None for r in rules]
    records = [r.record if isinstance(r, RecordingRule) else None for r in rules]
    if not any(records):
        return [0] * len(rules)
    return recording.stages(exprs, records)


def _sequence(parent: Mapping, key: str) -> Any:
    """The list under ``key``; absent or null (``rules:`` with nothing after it) is an empty list,
    as Go decodes it."""
    value = parent.get(key)
    if value is not None:
        return value
    seq = Sequence()
    seq.pos, seq.item_pos = parent.at(key), []
    return seq


def _go_string(raw: Mapping, key: str) -> str | None:
    """The value under ``key`` as Go's YAML decoder reads it into a string field: a scalar's text as
    written, null (or absent) as empty; None for a mapping or a list."""
    return "" if raw.get(key) is None else raw.text(key)


def _query_text(raw: Mapping, key: str) -> Any:
    """A PromQL ``expr`` is the scalar as written (``expr: 5`` is the query "5"); other query
    fields keep their parsed value (a probe is a mapping)."""
    text = raw.text(key)
    return text if key == "expr" and text is not None else raw[key]


def _duration(raw: Mapping, key: str, default: float) -> float:
    value = raw.get(key)
    if value is None:  # absent, or null as Go reads it: the default
        return default
    try:
        return parse_duration(
            value
            if isinstance(value, str)
            else str(value)
            if value == 0 and not isinstance(value, bool)
            else value
        )
    except DurationError as exc:
        raise RuleFileError(f"{key}: {exc}", raw.at(key)) from None


def _labels(raw: Mapping, key: str, what: str) -> dict[str, str]:
    value = raw.get(key)
    if value is None:
        return {}
    mapping = expect_mapping(value, raw.at(key), key, RuleFileError)
    out: dict[str, str] = {}
    for name, text in mapping.items():
        if not _LABEL_NAME.match(name) or (what == "label" and name == "__name__"):
            raise RuleFileError(f"invalid {what} name: {name!r}", mapping.key_pos[name])
        value = _go_string(mapping, name)
        if value is None:
            raise RuleFileError(f'{what} "{name}" must be a string, got {type_name(text)}', mapping.at(name))
        out[name] = value
    return out


def _condition(raw: Mapping) -> Condition | None:
    if "condition" not in raw:
        return None
    text = raw["condition"]
    match = re.match(r"^\s*(>=|<=|==|!=|>|<)\s*(\S+)\s*$", str(text))
    try:
        if match and match.group(1) in CONDITION_OPS:
            return Condition(match.group(1), float(match.group(2)))
    except ValueError:
        pass
    raise RuleFileError(
        f'condition must look like "> 50" (one of > >= < <= == !=), got {text!r}',
        raw.at("condition"),
    )
