"""YAML loading that remembers where every key and value was written, for ``file:line:col`` errors."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from alerting.errors import LocatedError, Position


class Mapping(dict[str, Any]):
    """A YAML mapping: a dict plus the position of itself, of each key and of each value, and the
    text of each scalar value as written."""

    pos: Position
    key_pos: dict[str, Position]
    value_pos: dict[str, Position]
    scalar_text: dict[str, str] = {}  # replaced per instance, never changed in place

    def at(self, key: str) -> Position:
        """Position of the value under ``key`` (or of the mapping itself when the key is absent)."""
        return self.value_pos.get(key, self.pos)

    def text(self, key: str) -> str | None:
        """The scalar under ``key`` as written, quotes removed (``0x1F``, ``~``, ``yes`` stay as
        they are), the way Go's YAML decoders read a scalar into a string; None when ``key`` is
        absent or holds a mapping or a list."""
        return self.scalar_text.get(key)


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
        out.scalar_text = dict(value.scalar_text)
        return out
    if isinstance(value, Sequence):
        seq = FrozenSequence(freeze(v) for v in value)
        seq.pos, seq.item_pos = value.pos, list(value.item_pos)
        return seq
    return value


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, with libyaml's rule for tabs between tokens.

    Go's YAML parsers (yaml.v2, yaml.v3: what Prometheus and Alertmanager read files with) are
    ports of libyaml, which skips a tab like a space where it cannot be indentation: inside
    ``[...]``/``{...}`` and after a token on the same line (``expr: "up == 0"<TAB>``,
    ``key:<TAB>value``). PyYAML only skips spaces there and stops with "found character '\\t' that
    cannot start any token" on files that Prometheus loads. A tab that starts a line, or follows
    ``-``, stays an error, as in Go. Only this scan differs from PyYAML's own (tabs in a block
    scalar's header or after a tag are still refused; no real file needed them so far).
    """

    def scan_to_next_token(self) -> None:
        if self.index == 0 and self.peek() == "\ufeff":
            self.forward()
        while True:
            # libyaml: tabs are skipped in flow context or where a simple key cannot start.
            while self.peek() == " " or (
                self.peek() == "\t" and (self.flow_level or not self.allow_simple_key)
            ):
                self.forward()
            if self.peek() == "#":
                while self.peek() not in "\0\r\n\x85\u2028\u2029":
                    self.forward()
            if not self.scan_line_break():
                return
            if not self.flow_level:
                self.allow_simple_key = True


def _mark(node: yaml.Node, file: str) -> Position:
    return Position(file, node.start_mark.line + 1, node.start_mark.column + 1)


def _build(node: yaml.Node, file: str, error: type[LocatedError], ctor: yaml.SafeLoader) -> Any:
    if isinstance(node, yaml.MappingNode):
        written = sum(1 for key_node, _ in node.value if key_node.tag != "tag:yaml.org,2002:merge")
        ctor.flatten_mapping(node)  # resolves YAML merge keys (<<): merged pairs come first
        merged = len(node.value) - written
        out = Mapping()
        out.pos, out.key_pos, out.value_pos, out.scalar_text = _mark(node, file), {}, {}, {}
        from_merge: set[str] = set()
        for i, (key_node, value_node) in enumerate(node.value):
            key = _build(key_node, file, error, ctor)
            if not isinstance(key, str):
                key = "" if key is None else str(key).lower() if isinstance(key, bool) else str(key)
            if i < merged:
                from_merge.add(key)
            elif key in from_merge:
                from_merge.discard(key)  # a key written beside ``<<`` overrides the merged one
                del out[key]
                out.scalar_text.pop(key, None)
            elif key in out:
                raise error(
                    f'mapping key "{key}" already defined at line {out.key_pos[key].line}',
                    _mark(key_node, file),
                )
            out[key] = _build(value_node, file, error, ctor)
            out.key_pos[key] = _mark(key_node, file)
            out.value_pos[key] = _mark(value_node, file)
            if isinstance(value_node, yaml.ScalarNode):
                out.scalar_text[key] = value_node.value
        return out
    if isinstance(node, yaml.SequenceNode):
        seq = Sequence(_build(item, file, error, ctor) for item in node.value)
        seq.pos = _mark(node, file)
        seq.item_pos = [_mark(item, file) for item in node.value]
        return seq
    return ctor.construct_object(node, deep=True)


_MERGE_TAG = "tag:yaml.org,2002:merge"
_VALUE_TAG = "tag:yaml.org,2002:value"
_STR_TAG = "tag:yaml.org,2002:str"
# What reading the event stream raises, as opposed to building values from it.
_SYNTAX_ERRORS = (yaml.reader.ReaderError, yaml.scanner.ScannerError, yaml.parser.ParserError)


class _NodesNeeded(Exception):
    """The document has anchors, aliases or merge keys: it is built from PyYAML's node tree."""


class _Stream:
    """Builds a document straight from the parser's events, as :func:`_build` builds it from the
    node tree, without that tree: a 10,000-rule file's nodes (each with its marks), held all at
    once, were most of a worker's peak memory. Documents that need the tree (anchors, aliases,
    merge keys) are built from it instead.

    Errors come in the same order as from the tree: YAML syntax errors anywhere in the document
    first, then "expected a single document", then the first error found while building it.
    """

    def __init__(self, loader: _Loader, file: str, error: type[LocatedError]) -> None:
        self.loader = loader
        self.file = file
        self.error = error

    def _mark(self, event: Any) -> Position:
        mark = event.start_mark
        return Position(self.file, mark.line + 1, mark.column + 1)

    def document(self, first_document: bool) -> Any:
        loader = self.loader
        loader.get_event()  # the stream start
        if loader.check_event(yaml.StreamEndEvent):
            return None
        loader.get_event()  # the document start
        root = loader.peek_event()
        failed: Exception | None = None
        try:
            value = self._value(key=False)
        except (_NodesNeeded, RecursionError, *_SYNTAX_ERRORS):
            raise
        except Exception as exc:  # noqa: BLE001 - whatever building raised, raised after the syntax check
            failed, value = exc, None
            # The tree was composed whole before it was built: a syntax error further on wins.
            while not loader.check_event(yaml.DocumentEndEvent):
                self._check(loader.get_event())
        loader.get_event()  # the document end
        if not first_document:
            if not loader.check_event(yaml.StreamEndEvent):
                event = loader.get_event()
                raise yaml.composer.ComposerError(
                    "expected a single document in the stream",
                    root.start_mark,
                    "but found another document",
                    event.start_mark,
                )
            loader.get_event()  # the stream end
        if failed is not None:
            raise failed
        return value

    def _check(self, event: Any) -> None:
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise _NodesNeeded

    def _value(self, *, key: bool) -> Any:
        loader = self.loader
        event: Any = loader.get_event()
        self._check(event)
        if isinstance(event, yaml.ScalarEvent):
            tag = event.tag
            if tag is None or tag == "!":
                tag = loader.resolve(yaml.ScalarNode, event.value, event.implicit)
            if key and tag == _MERGE_TAG:
                raise _NodesNeeded
            if key and tag == _VALUE_TAG:
                tag = _STR_TAG  # as PyYAML's flatten_mapping reads a "=" key
            start: Any = event.start_mark
            end: Any = event.end_mark
            node = yaml.ScalarNode(tag, event.value, start, end, style=event.style)
            value = loader.construct_object(node, deep=True)
            loader.constructed_objects.pop(node, None)  # kept there until the load ends, otherwise
            return value
        if isinstance(event, yaml.SequenceStartEvent):
            seq = Sequence()
            seq.pos, seq.item_pos = self._mark(event), []
            while not loader.check_event(yaml.SequenceEndEvent):
                seq.item_pos.append(self._mark(loader.peek_event()))
                seq.append(self._value(key=False))
            loader.get_event()
            return seq
        out = Mapping()
        out.pos, out.key_pos, out.value_pos, out.scalar_text = self._mark(event), {}, {}, {}
        while not loader.check_event(yaml.MappingEndEvent):
            key_event = loader.peek_event()
            name = self._value(key=True)
            if not isinstance(name, str):
                name = "" if name is None else str(name).lower() if isinstance(name, bool) else str(name)
            if name in out:
                raise self.error(
                    f'mapping key "{name}" already defined at line {out.key_pos[name].line}',
                    self._mark(key_event),
                )
            value_event = loader.peek_event()
            out[name] = self._value(key=False)
            out.key_pos[name] = self._mark(key_event)
            out.value_pos[name] = self._mark(value_event)
            if isinstance(value_event, yaml.ScalarEvent):
                out.scalar_text[name] = value_event.value
        loader.get_event()
        return out


def load_text(text: str, file: str, error: type[LocatedError], *, first_document: bool = False) -> Any:
    """Parse YAML text; syntax errors become ``error`` with the position YAML reports.

    A stream holds one document, or, with ``first_document``, its first document is read and the
    rest is not looked at (as Go's ``yaml.Unmarshal`` and ``Decoder.Decode`` do).
    """
    try:
        # The reader checks every character up front: a NUL or other control character in the
        # file is reported here, before the parser runs.
        loader = _Loader(text)
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        col = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        raise error(
            f"YAML syntax error: character #x{exc.character:04X} is not allowed", Position(file, line, col)
        ) from None
    try:
        try:
            return _Stream(loader, file, error).document(first_document)
        except _NodesNeeded:
            loader.dispose()
            loader = _Loader(text)
        if first_document:
            loader.get_event()  # the stream start
            node = loader.compose_document() if not loader.check_event(yaml.StreamEndEvent) else None
        else:
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


def load_file(path: str | Path, error: type[LocatedError], *, first_document: bool = False) -> Any:
    """Read and parse a YAML file; unreadable files become ``error`` naming the file."""
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise error(
            f"cannot read file: {exc.strerror if isinstance(exc, OSError) else exc}", Position(file)
        ) from None
    return load_text(text, file, error, first_document=first_document)


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
