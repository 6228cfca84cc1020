"""Prometheus's ``relabel_config``: parsing (with its checks) and applying it to one label set.

Meaning as in Prometheus 2.42's ``model/relabel``: regexes are RE2 anchored at both ends; the
source labels' values are joined by ``separator``; a label set to the empty string is removed;
``replacement`` expands ``$1``, ``${1}``, ``$name`` and ``${name}`` as Go's ``Regexp.Expand`` does.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from alerting.config import yamlfile
from alerting.errors import ConfigError, Position
from alerting.routing.matchers import MatcherError, compile_anchored

__all__ = ["ACTIONS", "RelabelConfig", "parse_relabel_configs", "relabel", "expand_template"]

ACTIONS = (
    "replace",
    "keep",
    "drop",
    "keepequal",
    "dropequal",
    "hashmod",
    "labelmap",
    "labeldrop",
    "labelkeep",
    "lowercase",
    "uppercase",
)
_FIELDS = ("source_labels", "separator", "target_label", "regex", "modulus", "replacement", "action")
_DEFAULT_REGEX = "(.*)"
_DEFAULT_SEPARATOR = ";"
_DEFAULT_REPLACEMENT = "$1"
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
# What Prometheus accepts as a target_label (or labelmap replacement) before expansion: label name
# characters and $1, ${1}, $name, ${name} references.
_TARGET = re.compile(r"^(?:(?:[a-zA-Z_]|\$(?:\{\w+\}|\w+))+\w*)+$")


@dataclass(frozen=True)
class RelabelConfig:
    """One relabeling step, validated."""

    action: str = "replace"
    source_labels: tuple[str, ...] = ()
    separator: str = _DEFAULT_SEPARATOR
    target_label: str = ""
    regex: str = _DEFAULT_REGEX
    modulus: int = 0
    replacement: str = _DEFAULT_REPLACEMENT
    _compiled: Any = field(default=None, compare=False, repr=False, hash=False)

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "_compiled", compile_anchored(self.regex))
        except MatcherError as exc:
            raise ValueError(str(exc)) from None
        problem = _problem(self)
        if problem:
            raise ValueError(problem)


def _problem(c: RelabelConfig) -> str:
    """Why Prometheus would refuse ``c`` ("" when it would not)."""
    if c.action not in ACTIONS:
        return f'unknown relabel action "{c.action}" (use one of {", ".join(ACTIONS)})'
    for name in c.source_labels:
        if not _LABEL_NAME.match(name):
            return f'"{name}" is not a valid label name'
    if c.action == "hashmod" and c.modulus == 0:
        return "relabel configuration for hashmod requires non-zero modulus"
    needs_target = ("replace", "hashmod", "lowercase", "uppercase", "keepequal", "dropequal")
    if c.action in needs_target and not c.target_label:
        return f"relabel configuration for {c.action} action requires 'target_label' value"
    if c.action in ("replace", "lowercase", "uppercase") and not _TARGET.match(c.target_label):
        return f"\"{c.target_label}\" is invalid 'target_label' for {c.action} action"
    if c.action in ("lowercase", "uppercase", "keepequal", "dropequal") and (
        c.replacement != _DEFAULT_REPLACEMENT
    ):
        return f"'replacement' can not be set for {c.action} action"
    if c.action == "labelmap" and not _TARGET.match(c.replacement):
        return f"\"{c.replacement}\" is invalid 'replacement' for {c.action} action"
    if c.action == "hashmod" and not _LABEL_NAME.match(c.target_label):
        return f"\"{c.target_label}\" is invalid 'target_label' for {c.action} action"
    if c.action in ("keepequal", "dropequal") and (
        c.regex != _DEFAULT_REGEX or c.modulus or c.separator != _DEFAULT_SEPARATOR
    ):
        return f"{c.action} action requires only 'source_labels' and `target_label`, and no other fields"
    if c.action in ("labeldrop", "labelkeep") and (
        c.source_labels
        or c.target_label
        or c.modulus
        or c.separator != _DEFAULT_SEPARATOR
        or c.replacement != _DEFAULT_REPLACEMENT
    ):
        return f"{c.action} action requires only 'regex', and no other fields"
    return ""


# --- parsing ----------------------------------------------------------------------------------


def _scalar(raw: Mapping[str, Any], key: str, what: str, pos: Position | None) -> str | None:
    value = raw.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ConfigError(
            f"{what}: {key} must be a string, got {yamlfile.type_name(value)}", _at(raw, key, pos)
        )
    # Go reads a scalar into a string as written (0x1F stays 0x1F): use the text when we have it.
    text = raw.text(key) if isinstance(raw, yamlfile.Mapping) else None
    return text if text is not None else str(value)


def _at(raw: Mapping[str, Any], key: str, pos: Position | None) -> Position | None:
    return raw.at(key) if isinstance(raw, yamlfile.Mapping) else pos


def parse_relabel_configs(raw: Any, what: str, pos: Position | None) -> tuple[RelabelConfig, ...]:
    """A ``*_relabel_configs`` list; a problem is a ConfigError at the entry or field it concerns."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ConfigError(f"{what} must be a list, got {yamlfile.type_name(raw)}", pos)
    item_pos = raw.item_pos if isinstance(raw, yamlfile.Sequence) else [pos] * len(raw)
    return tuple(
        _one(item, f"{what}[{i}]", at) for i, (item, at) in enumerate(zip(raw, item_pos, strict=True))
    )


def _one(raw: Any, what: str, pos: Position | None) -> RelabelConfig:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{what} must be a mapping, got {yamlfile.type_name(raw)}", pos)
    for key in raw:
        if key not in _FIELDS:
            where = raw.key_pos.get(key, pos) if isinstance(raw, yamlfile.Mapping) else pos
            raise ConfigError(f'unknown field "{key}" in {what}{yamlfile.suggest(str(key), _FIELDS)}', where)
    values: dict[str, Any] = {}
    action = _scalar(raw, "action", what, pos)
    if action is not None:
        if not action:
            raise ConfigError(f"{what}: relabel action cannot be empty", _at(raw, "action", pos))
        values["action"] = action.lower()  # Prometheus reads the action in any case
        if values["action"] not in ACTIONS:
            raise ConfigError(
                f'{what}: unknown relabel action "{action}"{yamlfile.suggest(action.lower(), ACTIONS)}',
                _at(raw, "action", pos),
            )
    for key in ("separator", "target_label", "regex", "replacement"):
        value = _scalar(raw, key, what, pos)
        if value is not None:
            values[key] = value
    sources = raw.get("source_labels")
    if sources is not None:
        if not isinstance(sources, list) or not all(isinstance(s, str) for s in sources):
            raise ConfigError(
                f"{what}: source_labels must be a list of label names", _at(raw, "source_labels", pos)
            )
        values["source_labels"] = tuple(sources)
    modulus = raw.get("modulus")
    if modulus is not None:
        if isinstance(modulus, bool) or not isinstance(modulus, int) or modulus < 0 or modulus >= 2**64:
            raise ConfigError(f"{what}: modulus must be a positive whole number", _at(raw, "modulus", pos))
        values["modulus"] = modulus
    try:
        return RelabelConfig(**values)
    except ValueError as exc:
        key = _blamed(str(exc), raw)
        raise ConfigError(f"{what}: {exc}", _at(raw, key, pos) if key else pos) from None


def _blamed(message: str, raw: Mapping[str, Any]) -> str | None:
    """The field a validation message is about, to point at it (None: the entry as a whole)."""
    for key in ("regex", "target_label", "replacement", "modulus", "source_labels"):
        if key in message and key in raw:
            return key
    if "regular expression" in message:
        return "regex"
    if "not a valid label name" in message:
        return "source_labels"
    return None


# --- applying ---------------------------------------------------------------------------------


def relabel(labels: Mapping[str, str], configs: Sequence[RelabelConfig]) -> dict[str, str] | None:
    """``labels`` after every step of ``configs`` in order; None when a step drops the set.

    A result with no labels left is returned empty: whoever sends it decides (remote write drops
    it, as Prometheus does)."""
    current = dict(labels)
    for config in configs:
        if not _apply(current, config):
            return None
    return current


def _set(labels: dict[str, str], name: str, value: str) -> None:
    if value:
        labels[name] = value
    else:  # an empty label is an absent label
        labels.pop(name, None)


def _apply(labels: dict[str, str], c: RelabelConfig) -> bool:
    """Apply one step in place; False when the label set is dropped."""
    value = c.separator.join(labels.get(name, "") for name in c.source_labels)
    action, regex = c.action, c._compiled
    if action == "drop":
        return regex.search(value) is None
    if action == "keep":
        return regex.search(value) is not None
    if action == "dropequal":
        return labels.get(c.target_label, "") != value
    if action == "keepequal":
        return labels.get(c.target_label, "") == value
    if action == "replace":
        match = regex.search(value)
        if match is None:
            return True
        target = expand_template(c.target_label, match, regex.groupindex)
        if not _LABEL_NAME.match(target):
            return True
        _set(labels, target, expand_template(c.replacement, match, regex.groupindex))
    elif action == "lowercase":
        _set(labels, c.target_label, value.lower())
    elif action == "uppercase":
        _set(labels, c.target_label, value.upper())
    elif action == "hashmod":
        digest = hashlib.md5(value.encode(), usedforsecurity=False).digest()
        _set(labels, c.target_label, str(int.from_bytes(digest[8:], "big") % c.modulus))
    elif action == "labelmap":
        # Every name is matched against the label set as it was before this step.
        for name, label_value in list(labels.items()):
            match = regex.search(name)
            if match is not None:
                _set(labels, expand_template(c.replacement, match, regex.groupindex), label_value)
    elif action in ("labeldrop", "labelkeep"):
        keep = action == "labelkeep"
        for name in list(labels):
            if (regex.search(name) is not None) != keep:
                del labels[name]
    return True


def expand_template(template: str, match: Any, names: Mapping[str, int]) -> str:
    """``template`` with ``$1``/``${1}``/``$name``/``${name}`` replaced by ``match``'s groups and
    ``$$`` by ``$``, by Go's ``Regexp.Expand`` rules: a name is as long as it can be (``$1x`` is the
    group named ``1x``), a group that did not take part or does not exist is empty, and a ``$`` not
    followed by a valid reference stays as it is."""
    out: list[str] = []
    rest = template
    while True:
        before, dollar, rest = rest.partition("$")
        out.append(before)
        if not dollar:
            return "".join(out)
        if rest.startswith("$"):
            out.append("$")
            rest = rest[1:]
            continue
        reference = _reference(rest)
        if reference is None:
            out.append("$")
            continue
        name, rest = reference
        index = _group_number(name)
        if index < 0:
            index = names.get(name, -1)
        try:
            group = match.group(index) if index >= 0 else None
        except IndexError:
            group = None
        out.append(group or "")


def _reference(text: str) -> tuple[str, str] | None:
    """The name right after a ``$`` (``name`` or ``{name}``) and the text after it; None if malformed."""
    brace = text.startswith("{")
    body = text[1:] if brace else text
    end = 0
    while end < len(body) and (body[end].isalpha() or body[end].isdecimal() or body[end] == "_"):
        end += 1
    if end == 0:
        return None
    name = body[:end]
    if brace:
        if end >= len(body) or body[end] != "}":
            return None
        end += 1
    return name, body[end:]


def _group_number(name: str) -> int:
    """The group index a reference names, or -1 when it is a name (Go: digits only, no leading 0)."""
    if not name.isascii() or not name.isdigit() or (len(name) > 1 and name[0] == "0") or len(name) > 9:
        return -1
    return int(name)
