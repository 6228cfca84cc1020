"""``${NAME}`` and ``${NAME:-default}`` references in alerting.yml, expanded in one place.

The rule: a variable counts as set when the environment holds it with a non-empty value, as the
shell's ``:-`` reads it. A set variable is substituted; an unset one becomes its default (or the
empty string when it has none), and every reference to an unset variable is reported with its
position. The expander never decides what an unset variable means: a receiver integration whose
secret is unset prints to the console instead, a datasource option that is unset is a ConfigError.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from collections.abc import Mapping as AbcMapping
from dataclasses import dataclass
from typing import Any

from alerting.config.yamlfile import Mapping, Sequence
from alerting.errors import Position

# ${NAME} or ${NAME:-default}; the one spelling of a reference, used by every reader of alerting.yml.
REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


@dataclass(frozen=True)
class Unset:
    """A reference to a variable that is not set (or empty) in the environment."""

    name: str
    default: str | None  # None: written without ``:-``
    pos: Position | None = None


@dataclass(frozen=True)
class Expansion:
    """The value with every reference substituted, and the references that found nothing."""

    value: Any
    unset: tuple[Unset, ...] = ()

    @property
    def missing(self) -> tuple[str, ...]:
        """Unset variables written without a default, each named once."""
        return tuple(dict.fromkeys(u.name for u in self.unset if u.default is None))

    @property
    def empty(self) -> tuple[str, ...]:
        """Unset variables that left an empty string (no default, or an empty one), each named once."""
        return tuple(dict.fromkeys(u.name for u in self.unset if not u.default))


def references(value: Any) -> tuple[str, ...]:
    """The names of every variable referenced in ``value`` (strings, recursively), each once."""
    names: list[str] = []

    def collect(text: str, _pos: Position | None) -> str:
        names.extend(found.group(1) for found in REFERENCE.finditer(text))
        return text

    _walk(value, collect, None)
    return tuple(dict.fromkeys(names))


def expand(value: Any, env: AbcMapping[str, str], pos: Position | None = None) -> Expansion:
    """Substitute references in the strings of ``value`` (recursively), keeping YAML positions."""
    unset: list[Unset] = []

    def substitute(text: str, where: Position | None) -> str:
        def one(found: re.Match[str]) -> str:
            name, default = found.group(1), found.group(2)
            set_to = env.get(name)
            if set_to:
                return set_to
            unset.append(Unset(name, default, where))
            return default or ""

        return REFERENCE.sub(one, text)

    return Expansion(_walk(value, substitute, pos), tuple(unset))


def _walk(value: Any, on_string: Callable[[str, Position | None], str], pos: Position | None) -> Any:
    if isinstance(value, str):
        return on_string(value, pos)
    if isinstance(value, Mapping):
        out = Mapping((k, _walk(v, on_string, value.at(k))) for k, v in value.items())
        out.pos, out.key_pos, out.value_pos = value.pos, value.key_pos, value.value_pos
        return out
    if isinstance(value, Sequence):
        seq = Sequence(_walk(v, on_string, p) for v, p in zip(value, value.item_pos, strict=True))
        seq.pos, seq.item_pos = value.pos, value.item_pos
        return seq
    if isinstance(value, dict):
        return {k: _walk(v, on_string, pos) for k, v in value.items()}
    if isinstance(value, list):
        return [_walk(v, on_string, pos) for v in value]
    return value
