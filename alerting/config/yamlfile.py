"""YAML loading that remembers where every key and value was written, for ``file:line:col`` errors."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from alerting.errors import LocatedError, Position


class Mapping(dict[str, Any]):
    """A YAML mapping: a dict plus the position of itself, of each key and of each value."""

    pos: Position
    key_pos: dict[str, Position]
    value_pos: dict[str, Position]

    def at(self, key: str) -> Position:
        """Position of the value under ``key`` (or of the mapping itself when the key is absent)."""
        return self.value_pos.get(key, self.pos)


class Sequence(list[Any]):
    """A YAML sequence: a list plus the position of itself and of each item."""

    pos: Position
    item_pos: list[Position]


def _read_only(self: Any, *args: Any, **kwargs: Any) -> Any:
    raise TypeError("parsed configuration is read-only")


class FrozenMapping(Mapping):
    """A :class:`Mapping` of parsed configuration data: positions kept, changes refused."""

    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = __ior__ = _read_only


class FrozenSequence(Sequence):
    """A :class:`Sequence` of parsed configuration data: positions kept, changes refused."""

    __setitem__ = __delitem__ = __iadd__ = __imul__ = append = extend = insert = pop = remove = _read_only
    clear = sort = reverse = _read_only


def freeze(value: Any) -> Any:
    """A read-only copy of parsed YAML (mappings and sequences, recursively), positions kept."""
    if isinstance(value, Mapping):
        out = FrozenMapping((k, freeze(v)) for k, v in value.items())
        out.pos, out.key_pos, out.value_pos = value.pos, dict(value.key_pos), dict(value.value_pos)
        return out
    if isinstance(value, Sequence):
        seq = FrozenSequence(freeze(v) for v in value)
        seq.pos, seq.item_pos = value.pos, list(value.item_pos)
        return seq
    return value


def _mark(node: yaml.Node, file: str) -> Position:
    return Position(file, node.start_mark.line + 1, node.start_mark.column + 1)


def _build(node: yaml.Node, file: str, error: type[LocatedError], ctor: yaml.SafeLoader) -> Any:
    if isinstance(node, yaml.MappingNode):
        ctor.flatten_mapping(node)  # resolves YAML merge keys (<<)
        out = Mapping()
        out.pos, out.key_pos, out.value_pos = _mark(node, file), {}, {}
        for key_node, value_node in node.value:
            key = _build(key_node, file, error, ctor)
            if not isinstance(key, str):
                key = "" if key is None else str(key).lower() if isinstance(key, bool) else str(key)
            if key in out:
                raise error(
                    f'mapping key "{key}" already defined at line {out.key_pos[key].line}',
                    _mark(key_node, file),
                )
            out[key] = _build(value_node, file, error, ctor)
            out.key_pos[key] = _mark(key_node, file)
            out.value_pos[key] = _mark(value_node, file)
        return out
    if isinstance(node, yaml.SequenceNode):
        seq = Sequence(_build(item, file, error, ctor) for item in node.value)
        seq.pos = _mark(node, file)
        seq.item_pos = [_mark(item, file) for item in node.value]
        return seq
    return ctor.construct_object(node, deep=True)


def load_text(text: str, file: str, error: type[LocatedError]) -> Any:
    """Parse YAML text; syntax errors become ``error`` with the position YAML reports."""
    try:
        # The reader checks every character up front: a NUL or other control character in the
        # file is reported here, before the parser runs.
        loader = yaml.SafeLoader(text)
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        col = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        raise error(
            f"YAML syntax error: character #x{exc.character:04X} is not allowed", Position(file, line, col)
        ) from None
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        return _build(node, file, error, loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        pos = Position(file, mark.line + 1, mark.column + 1) if mark else Position(file)
        problem = exc.problem or exc.context or "invalid YAML"
        raise error(f"YAML syntax error: {problem}", pos) from None
    except yaml.YAMLError as exc:
        raise error(f"YAML syntax error: {exc}", Position(file)) from None
    except RecursionError:
        # Thousands of nested brackets, or an alias inside the node it names (``&x [*x]``).
        raise error("YAML nested too deeply (or an alias refers to itself)", Position(file)) from None
    finally:
        loader.dispose()


def load_file(path: str | Path, error: type[LocatedError]) -> Any:
    """Read and parse a YAML file; unreadable files become ``error`` naming the file."""
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise error(
            f"cannot read file: {exc.strerror if isinstance(exc, OSError) else exc}", Position(file)
        ) from None
    return load_text(text, file, error)


def suggest(word: str, choices: Iterable[str]) -> str:
    """A ``(did you mean "x"?)`` suffix when one of ``choices`` is close to ``word``."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f' (did you mean "{close[0]}"?)' if close else ""


def check_fields(mapping: Mapping, allowed: Iterable[str], what: str, error: type[LocatedError]) -> None:
    """Reject keys that are not in ``allowed``, with a did-you-mean."""
    allowed = tuple(allowed)
    for key in mapping:
        if key not in allowed:
            raise error(f'unknown field "{key}" in {what}{suggest(key, allowed)}', mapping.key_pos[key])


def expect_mapping(value: Any, pos: Position, what: str, error: type[LocatedError]) -> Mapping:
    if not isinstance(value, Mapping):
        raise error(f"{what} must be a mapping, got {type_name(value)}", pos)
    return value


def expect_sequence(value: Any, pos: Position, what: str, error: type[LocatedError]) -> Sequence:
    if not isinstance(value, Sequence):
        raise error(f"{what} must be a list, got {type_name(value)}", pos)
    return value


def type_name(value: Any) -> str:
    if value is None:
        return "nothing"
    return {
        dict: "a mapping",
        list: "a list",
        str: "a string",
        bool: "a boolean",
        int: "a number",
        float: "a number",
    }.get(
        next((t for t in (dict, list, bool, str, int, float) if isinstance(value, t)), object),
        type(value).__name__,
    )
