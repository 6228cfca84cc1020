"""Load Prometheus-format rule files (plus our SQL/probe/Celery extensions) with precise errors.

A file with any error is rejected whole and every problem in it is reported; other files still
load. Recording rules are skipped with one warning per file: they belong to Prometheus.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alerting import templating
from alerting.config.yamlfile import (
    Mapping,
    check_fields,
    expect_mapping,
    expect_sequence,
    load_file,
    type_name,
)
from alerting.durations import parse_duration
from alerting.errors import DurationError, Position, RuleFileError, TemplateError
from alerting.rules.model import CONDITION_OPS, Condition, Group, Labels, Rule, rule_key
from alerting.sources import kind_for_field, kinds

_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_METRIC_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_GROUP_FIELDS = ("name", "interval", "query_offset", "limit", "labels", "rules", "datasource")
_PROM_RULE_FIELDS = ("alert", "record", "expr", "for", "keep_firing_for", "labels", "annotations")
_EXT_RULE_FIELDS = ("sql", "probe", "celery", "datasource", "on_error", "condition")
_RULE_FILE_SUFFIXES = (".yml", ".yaml")


@dataclass
class RuleSet:
    """What a load produced: the good groups, every problem, and warnings."""

    groups: list[Group] = field(default_factory=list)
    problems: list[RuleFileError] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)

    @property
    def rule_count(self) -> int:
        return sum(len(g.rules) for g in self.groups)


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
        doc = load_file(path, RuleFileError)
    except RuleFileError as exc:
        return [], [exc], []
    parser = _FileParser(file, default_interval)
    parser.parse(doc)
    warnings = []
    if parser.recording:
        warnings.append(
            f"{file}: skipped {parser.recording} recording rule(s); recording rules belong in Prometheus"
        )
    return parser.groups, parser.problems, warnings


class _FileParser:
    def __init__(self, file: str, default_interval: float) -> None:
        self.file = file
        self.default_interval = default_interval
        self.groups: list[Group] = []
        self.problems: list[RuleFileError] = []
        self.recording = 0

    def parse(self, doc: Any) -> None:
        if doc is None:
            return  # an empty file is valid and holds no groups, as in Prometheus
        try:
            doc = expect_mapping(doc, Position(self.file, 1, 1), "a rule file", RuleFileError)
            check_fields(doc, ("groups",), "the rule file", RuleFileError)
            groups = expect_sequence(
                doc.get("groups", _empty_seq(doc)), doc.at("groups"), "groups", RuleFileError
            )
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
        name = raw.get("name")
        if not isinstance(name, str) or not name:
            raise RuleFileError(
                "group name must be a non-empty string",
                raw.at("name") if "name" in raw else raw.pos,
            )
        interval = _duration(raw, "interval", self.default_interval)
        if interval <= 0:
            raise RuleFileError("interval must be greater than 0", raw.at("interval"))
        query_offset = _duration(raw, "query_offset", 0.0)
        limit = raw.get("limit", 0)
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
            raise RuleFileError(f"limit must be a non-negative integer, got {limit!r}", raw.at("limit"))
        group_labels = tuple(sorted(_labels(raw, "labels", "label").items()))
        datasource = raw.get("datasource", "")
        if not isinstance(datasource, str):
            raise RuleFileError("datasource must be a datasource name", raw.at("datasource"))
        rules_raw = expect_sequence(
            raw.get("rules", _empty_seq(raw)), raw.at("rules"), "rules", RuleFileError
        )
        rules: list[Rule] = []
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
            if rule is not None:
                rules.append(_with_key(rule, taken))
        return Group(
            name=name,
            file=self.file,
            interval=interval,
            rules=tuple(rules),
            query_offset=query_offset,
            limit=limit,
            labels=group_labels,
            pos=raw.pos,
        )

    def _rule(self, raw: Mapping, group_labels: Labels, group_ds: str, group: str) -> Rule | None:
        check_fields(raw, _PROM_RULE_FIELDS + _EXT_RULE_FIELDS, "a rule", RuleFileError)
        if "alert" in raw and "record" in raw:
            raise RuleFileError("only one of 'record' and 'alert' must be set", raw.pos)
        if "record" in raw:
            self.recording += 1
            return None
        if "alert" not in raw:
            raise RuleFileError("one of 'record' or 'alert' must be set", raw.pos)
        name = raw["alert"]
        if not isinstance(name, str) or not _METRIC_NAME.match(name):
            raise RuleFileError(f"invalid alert name: {name!r}", raw.at("alert"))
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
        query = kind.check(raw[kind.field], raw.at(kind.field))
        labels = dict(group_labels)
        labels.update(_labels(raw, "labels", "label"))
        annotations = _labels(raw, "annotations", "annotation")
        for section in ("labels", "annotations"):
            values = raw.get(section) or {}
            for key, text in values.items():
                try:
                    templating.check(str(text), alertname=name)
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


def _with_key(rule: Rule, taken: set[str]) -> Rule:
    from dataclasses import replace

    return replace(rule, key=rule_key(rule.name, rule.labels, taken))


def _empty_seq(parent: Mapping) -> Any:
    from alerting.config.yamlfile import Sequence

    seq = Sequence()
    seq.pos, seq.item_pos = parent.pos, []
    return seq


def _duration(raw: Mapping, key: str, default: float) -> float:
    if key not in raw:
        return default
    value = raw[key]
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
        if isinstance(text, (dict, list)) or text is None:
            raise RuleFileError(f'{what} "{name}" must be a string, got {type_name(text)}', mapping.at(name))
        out[name] = (
            text if isinstance(text, str) else (str(text).lower() if isinstance(text, bool) else str(text))
        )
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
