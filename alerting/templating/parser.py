"""Parser for Go's text/template: tokens to a small tree of nodes, one tree per named template.

It mirrors Go's recursive-descent parser (three-token look-ahead, variable scoping, ``else if``
rewriting, ``define``/``block``) so that what parses, what does not, and the error message and line
match Go's. Every node can print itself back as Go does, because runtime errors quote the node
(``executing "x" at <humanize $value>``).
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass, field

from alerting.templating.lexer import T as K
from alerting.templating.lexer import Token, lex
from alerting.templating.strconv import parse_float, parse_int, quote

_MAX_DEPTH = 200  # nesting of parentheses and control blocks; deeper input is rejected, not recursed


class ParseError(Exception):
    """A template that does not parse: Go's message plus where (``pos`` is a character offset)."""

    def __init__(self, message: str, line: int, pos: int) -> None:
        super().__init__(message)
        self.message, self.line, self.pos = message, line, pos


# --- nodes -------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Node:
    pos: int

    def string(self) -> str:
        raise NotImplementedError


@dataclass(frozen=True, eq=False)
class TextNode(Node):
    text: str

    def string(self) -> str:
        return self.text


@dataclass(frozen=True, eq=False)
class DotNode(Node):
    def string(self) -> str:
        return "."


@dataclass(frozen=True, eq=False)
class NilNode(Node):
    def string(self) -> str:
        return "nil"


@dataclass(frozen=True, eq=False)
class BoolNode(Node):
    value: bool

    def string(self) -> str:
        return "true" if self.value else "false"


@dataclass(frozen=True, eq=False)
class NumberNode(Node):
    text: str
    is_int: bool = False
    is_uint: bool = False
    is_float: bool = False
    is_complex: bool = False
    int_value: int = 0
    float_value: float = 0.0
    complex_value: complex = 0j

    def string(self) -> str:
        return self.text


@dataclass(frozen=True, eq=False)
class StringNode(Node):
    quoted: str
    text: str

    def string(self) -> str:
        return self.quoted


@dataclass(frozen=True, eq=False)
class FieldNode(Node):
    ident: tuple[str, ...]

    def string(self) -> str:
        return "".join("." + name for name in self.ident)


@dataclass(frozen=True, eq=False)
class VariableNode(Node):
    ident: tuple[str, ...]

    def string(self) -> str:
        return ".".join(self.ident)


@dataclass(frozen=True, eq=False)
class IdentifierNode(Node):
    name: str

    def string(self) -> str:
        return self.name


@dataclass(frozen=True, eq=False)
class ChainNode(Node):
    node: Node
    fields: tuple[str, ...]

    def string(self) -> str:
        head = self.node.string()
        if isinstance(self.node, PipeNode):
            head = "(" + head + ")"
        return head + "".join("." + name for name in self.fields)


@dataclass(frozen=True, eq=False)
class CommandNode(Node):
    args: tuple[Node, ...]

    def string(self) -> str:
        parts = []
        for arg in self.args:
            text = arg.string()
            parts.append("(" + text + ")" if isinstance(arg, PipeNode) else text)
        return " ".join(parts)


@dataclass(frozen=True, eq=False)
class PipeNode(Node):
    line: int
    is_assign: bool
    decl: tuple[VariableNode, ...]
    cmds: tuple[CommandNode, ...]

    def string(self) -> str:
        head = ""
        if self.decl:
            head = ", ".join(v.string() for v in self.decl) + " := "
        return head + " | ".join(c.string() for c in self.cmds)


@dataclass(frozen=True, eq=False)
class ActionNode(Node):
    line: int
    pipe: PipeNode

    def string(self) -> str:
        return "{{" + self.pipe.string() + "}}"


@dataclass(frozen=True, eq=False)
class ListNode(Node):
    nodes: tuple[Node, ...]

    def string(self) -> str:
        return "".join(n.string() for n in self.nodes)


@dataclass(frozen=True, eq=False)
class BranchNode(Node):
    keyword: str
    line: int
    pipe: PipeNode
    list: ListNode
    else_list: ListNode | None

    def string(self) -> str:
        text = "{{" + self.keyword + " " + self.pipe.string() + "}}" + self.list.string()
        if self.else_list is not None:
            text += "{{else}}" + self.else_list.string()
        return text + "{{end}}"


class IfNode(BranchNode):
    pass


class RangeNode(BranchNode):
    pass


class WithNode(BranchNode):
    pass


@dataclass(frozen=True, eq=False)
class TemplateNode(Node):
    line: int
    name: str
    pipe: PipeNode | None

    def string(self) -> str:
        if self.pipe is None:
            return "{{template " + quote(self.name) + "}}"
        return "{{template " + quote(self.name) + " " + self.pipe.string() + "}}"


@dataclass(frozen=True, eq=False)
class BreakNode(Node):
    line: int

    def string(self) -> str:
        return "{{break}}"


@dataclass(frozen=True, eq=False)
class ContinueNode(Node):
    line: int

    def string(self) -> str:
        return "{{continue}}"


@dataclass(frozen=True, eq=False)
class _EndNode(Node):
    def string(self) -> str:
        return "{{end}}"


@dataclass(frozen=True, eq=False)
class _ElseNode(Node):
    line: int

    def string(self) -> str:
        return "{{else}}"


@dataclass
class Tree:
    """A named template: its body (None when only declared) and the text it was parsed from."""

    name: str
    root: ListNode | None
    text: str = field(repr=False, default="")


def _is_empty(node: Node | None) -> bool:
    """Go's IsEmptyTree: only whitespace text (and nothing else) counts as empty."""
    if node is None:
        return True
    if isinstance(node, ListNode):
        return all(_is_empty(n) for n in node.nodes)
    if isinstance(node, TextNode):
        return not node.text.strip()
    return False


# --- the parser --------------------------------------------------------------------------------------


class _Parser:
    def __init__(self, name: str, text: str, funcs: frozenset[str], trees: dict[str, Tree]) -> None:
        self.name = name
        self.parse_name = name
        self.text = text
        self.funcs = funcs
        self.tokens = lex(text)
        self.index = 0
        self.token: list[Token] = [self.tokens[0]] * 3
        self.peek_count = 0
        self.vars: list[str] = ["$"]
        self.range_depth = 0
        self.action_line = 0
        self.trees = trees
        self.depth = 0

    # --- token buffer (Go's next/backup/peek) ---
    def _lex_next(self) -> Token:
        tok = self.tokens[min(self.index, len(self.tokens) - 1)]
        self.index += 1
        return tok

    def next(self) -> Token:
        if self.peek_count > 0:
            self.peek_count -= 1
        else:
            self.token[0] = self._lex_next()
        return self.token[self.peek_count]

    def backup(self) -> None:
        self.peek_count += 1

    def backup2(self, t1: Token) -> None:
        self.token[1] = t1
        self.peek_count = 2

    def backup3(self, t2: Token, t1: Token) -> None:
        self.token[1] = t1
        self.token[2] = t2
        self.peek_count = 3

    def peek(self) -> Token:
        if self.peek_count > 0:
            return self.token[self.peek_count - 1]
        self.peek_count = 1
        self.token[0] = self._lex_next()
        return self.token[0]

    def next_non_space(self) -> Token:
        while True:
            tok = self.next()
            if tok.kind is not K.SPACE:
                return tok

    def peek_non_space(self) -> Token:
        tok = self.next_non_space()
        self.backup()
        return tok

    # --- errors ---
    def errorf(self, message: str, at: Token | None = None) -> ParseError:
        # Go reports the line of the last token read; ``at`` points the column at the culprit when
        # that is a token read earlier (on the same line).
        tok = self.token[0]
        pos = at.pos if at is not None and at.line == tok.line else tok.pos
        return ParseError(message, tok.line, pos)

    def expect(self, kind: K, context: str) -> Token:
        tok = self.next_non_space()
        if tok.kind is not kind:
            raise self.unexpected(tok, context)
        return tok

    def expect_one_of(self, kinds: tuple[K, ...], context: str) -> Token:
        tok = self.next_non_space()
        if tok.kind not in kinds:
            raise self.unexpected(tok, context)
        return tok

    def unexpected(self, tok: Token, context: str) -> ParseError:
        if tok.kind is K.ERROR:
            extra = ""
            if self.action_line and self.action_line != tok.line:
                extra = f" in action started at {self.parse_name}:{self.action_line}"
                if tok.val.endswith(" action"):
                    extra = extra[len(" in action") :]
            return self.errorf(f"{tok}{extra}")
        return self.errorf(f"unexpected {tok} in {context}")

    def _enter(self) -> None:
        self.depth += 1
        if self.depth > _MAX_DEPTH:
            raise self.errorf(f"max expression depth exceeded ({_MAX_DEPTH})")

    def _leave(self) -> None:
        self.depth -= 1

    # --- grammar ---
    def parse(self) -> None:
        nodes: list[Node] = []
        start = self.peek().pos
        while self.peek().kind is not K.EOF:
            if self.peek().kind is K.LEFT_DELIM:
                delim = self.next()
                if self.next_non_space().kind is K.DEFINE:
                    self.parse_definition()
                    continue
                self.backup2(delim)
            node = self.text_or_action()
            if isinstance(node, _EndNode | _ElseNode):
                raise self.errorf(f"unexpected {node.string()}")
            nodes.append(node)
        self.add(Tree(self.name, ListNode(start, tuple(nodes)), self.text))

    def add(self, tree: Tree) -> None:
        existing = self.trees.get(tree.name)
        if existing is None or _is_empty(existing.root):
            self.trees[tree.name] = tree
            return
        if not _is_empty(tree.root):
            raise self.errorf(f"template: multiple definition of template {quote(tree.name)}")

    def _sub_parse(self, name: str) -> tuple[ListNode, Node]:
        # A define/block body: its own variable scope, sharing the token stream.
        saved_vars, saved_range, saved_name = self.vars, self.range_depth, self.name
        self.vars, self.range_depth, self.name = ["$"], 0, name
        try:
            return self.item_list()
        finally:
            self.vars, self.range_depth, self.name = saved_vars, saved_range, saved_name

    def parse_definition(self) -> None:
        context = "define clause"
        tok = self.expect_one_of((K.STRING, K.RAW_STRING), context)
        name = self.unquote(tok)
        self.expect(K.RIGHT_DELIM, context)
        body, end = self._sub_parse(name)
        if not isinstance(end, _EndNode):
            raise self.errorf(f"unexpected {end.string()} in {context}")
        self.add(Tree(name, body, self.text))

    def item_list(self) -> tuple[ListNode, Node]:
        self._enter()
        start = self.peek_non_space().pos
        nodes: list[Node] = []
        while self.peek_non_space().kind is not K.EOF:
            node = self.text_or_action()
            if isinstance(node, _EndNode | _ElseNode):
                self._leave()
                return ListNode(start, tuple(nodes)), node
            nodes.append(node)
        raise self.errorf("unexpected EOF")

    def text_or_action(self) -> Node:
        tok = self.next_non_space()
        if tok.kind is K.TEXT:
            return TextNode(tok.pos, tok.val)
        if tok.kind is K.LEFT_DELIM:
            self.action_line = tok.line
            try:
                return self.action()
            finally:
                self.action_line = 0
        raise self.unexpected(tok, "input")

    def action(self) -> Node:
        tok = self.next_non_space()
        kind = tok.kind
        if kind is K.BLOCK:
            return self.block_control()
        if kind is K.BREAK:
            return self.break_control(tok, "break")
        if kind is K.CONTINUE:
            return self.break_control(tok, "continue")
        if kind is K.ELSE:
            return self.else_control()
        if kind is K.END:
            return _EndNode(self.expect(K.RIGHT_DELIM, "end").pos)
        if kind is K.IF:
            return self.parse_control(IfNode, "if", allow_else_if=True)
        if kind is K.RANGE:
            return self.parse_control(RangeNode, "range")
        if kind is K.TEMPLATE:
            return self.template_control()
        if kind is K.WITH:
            return self.parse_control(WithNode, "with")
        self.backup()
        tok = self.peek()
        return ActionNode(tok.pos, tok.line, self.pipeline("command", K.RIGHT_DELIM))

    def break_control(self, keyword: Token, word: str) -> Node:
        tok = self.next_non_space()
        if tok.kind is not K.RIGHT_DELIM:
            raise self.unexpected(tok, "{{" + word + "}}")
        if self.range_depth == 0:
            raise self.errorf("{{" + word + "}} outside {{range}}")
        if word == "break":
            return BreakNode(keyword.pos, keyword.line)
        return ContinueNode(keyword.pos, keyword.line)

    def else_control(self) -> Node:
        peek = self.peek_non_space()
        if peek.kind is K.IF:
            # "{{else if ...": leave the "if" pending; it is parsed as a nested if.
            return _ElseNode(peek.pos, peek.line)
        tok = self.expect(K.RIGHT_DELIM, "else")
        return _ElseNode(tok.pos, tok.line)

    def parse_control(self, cls: type[BranchNode], context: str, allow_else_if: bool = False) -> BranchNode:
        mark = len(self.vars)
        try:
            pipe = self.pipeline(context, K.RIGHT_DELIM)
            if context == "range":
                self.range_depth += 1
            body, nxt = self.item_list()
            if context == "range":
                self.range_depth -= 1
            else_list: ListNode | None = None
            if isinstance(nxt, _ElseNode):
                if allow_else_if and self.peek().kind is K.IF:
                    self.next()
                    nested = self.parse_control(IfNode, "if", allow_else_if=True)
                    else_list = ListNode(nxt.pos, (nested,))
                else:
                    else_list, end = self.item_list()
                    if not isinstance(end, _EndNode):
                        raise self.errorf(f"expected end; found {end.string()}")
            return cls(pipe.pos, context, pipe.line, pipe, body, else_list)
        finally:
            del self.vars[mark:]

    def block_control(self) -> Node:
        context = "block clause"
        tok = self.next_non_space()
        name = self.template_name(tok, context)
        pipe = self.pipeline(context, K.RIGHT_DELIM)
        body, end = self._sub_parse(name)
        if not isinstance(end, _EndNode):
            raise self.errorf(f"unexpected {end.string()} in {context}")
        self.add(Tree(name, body, self.text))
        return TemplateNode(tok.pos, tok.line, name, pipe)

    def template_control(self) -> Node:
        context = "template clause"
        tok = self.next_non_space()
        name = self.template_name(tok, context)
        pipe: PipeNode | None = None
        if self.next_non_space().kind is not K.RIGHT_DELIM:
            self.backup()
            pipe = self.pipeline(context, K.RIGHT_DELIM)
        return TemplateNode(tok.pos, tok.line, name, pipe)

    def template_name(self, tok: Token, context: str) -> str:
        if tok.kind in (K.STRING, K.RAW_STRING):
            return self.unquote(tok)
        raise self.unexpected(tok, context)

    def pipeline(self, context: str, end: K) -> PipeNode:
        self._enter()
        tok = self.peek_non_space()
        decl: list[VariableNode] = []
        is_assign = False
        while True:
            v = self.peek_non_space()
            if v.kind is not K.VARIABLE:
                break
            self.next()
            after = self.peek()
            nxt = self.peek_non_space()
            if nxt.kind in (K.ASSIGN, K.DECLARE):
                is_assign = nxt.kind is K.ASSIGN
                self.next_non_space()
                decl.append(VariableNode(v.pos, (v.val,)))
                self.vars.append(v.val)
            elif nxt.kind is K.CHAR and nxt.val == ",":
                self.next_non_space()
                decl.append(VariableNode(v.pos, (v.val,)))
                self.vars.append(v.val)
                if context == "range" and len(decl) < 2:
                    if self.peek_non_space().kind in (K.VARIABLE, K.RIGHT_DELIM, K.RIGHT_PAREN):
                        continue
                    raise self.errorf("range can only initialize variables")
                raise self.errorf(f"too many declarations in {context}")
            elif after.kind is K.SPACE:
                self.backup3(v, after)
            else:
                self.backup2(v)
            break
        cmds: list[CommandNode] = []
        while True:
            tok2 = self.next_non_space()
            if tok2.kind is end:
                self._check_pipeline(cmds, context)
                self._leave()
                return PipeNode(tok.pos, tok.line, is_assign, tuple(decl), tuple(cmds))
            if tok2.kind in (
                K.BOOL, K.CHAR_CONSTANT, K.COMPLEX, K.DOT, K.FIELD, K.IDENTIFIER, K.NUMBER,
                K.NIL, K.RAW_STRING, K.STRING, K.VARIABLE, K.LEFT_PAREN,
            ):  # fmt: skip
                self.backup()
                cmds.append(self.command())
            else:
                raise self.unexpected(tok2, context)

    def _check_pipeline(self, cmds: list[CommandNode], context: str) -> None:
        if not cmds:
            raise self.errorf(f"missing value for {context}")
        for i, cmd in enumerate(cmds[1:]):
            if isinstance(cmd.args[0], BoolNode | DotNode | NilNode | NumberNode | StringNode):
                raise self.errorf(f"non executable command in pipeline stage {i + 2}")

    def command(self) -> CommandNode:
        start = self.peek_non_space().pos
        args: list[Node] = []
        while True:
            self.peek_non_space()
            operand = self.operand()
            if operand is not None:
                args.append(operand)
            tok = self.next()
            if tok.kind is K.SPACE:
                continue
            if tok.kind in (K.RIGHT_DELIM, K.RIGHT_PAREN):
                self.backup()
            elif tok.kind is not K.PIPE:
                raise self.unexpected(tok, "operand")
            break
        if not args:
            raise self.errorf("empty command")
        return CommandNode(start, tuple(args))

    def operand(self) -> Node | None:
        node = self.term()
        if node is None:
            return None
        if self.peek().kind is K.FIELD:
            pos = self.peek().pos
            fields: list[str] = []
            while self.peek().kind is K.FIELD:
                fields.append(self.next().val[1:])
            if isinstance(node, FieldNode):
                return FieldNode(pos, node.ident + tuple(fields))
            if isinstance(node, VariableNode):
                return VariableNode(pos, node.ident + tuple(fields))
            if isinstance(node, BoolNode | StringNode | NumberNode | NilNode | DotNode):
                raise self.errorf(f"unexpected . after term {quote(node.string())}")
            return ChainNode(pos, node, tuple(fields))
        return node

    def term(self) -> Node | None:
        tok = self.next_non_space()
        kind = tok.kind
        if kind is K.IDENTIFIER:
            if tok.val not in self.funcs:
                raise self.errorf(f"function {quote(tok.val)} not defined")
            return IdentifierNode(tok.pos, tok.val)
        if kind is K.DOT:
            return DotNode(tok.pos)
        if kind is K.NIL:
            return NilNode(tok.pos)
        if kind is K.VARIABLE:
            return self.use_var(tok)
        if kind is K.FIELD:
            return FieldNode(tok.pos, (tok.val[1:],))
        if kind is K.BOOL:
            return BoolNode(tok.pos, tok.val == "true")
        if kind in (K.CHAR_CONSTANT, K.COMPLEX, K.NUMBER):
            return self.number(tok)
        if kind is K.LEFT_PAREN:
            return self.pipeline("parenthesized pipeline", K.RIGHT_PAREN)
        if kind in (K.STRING, K.RAW_STRING):
            return StringNode(tok.pos, tok.val, self.unquote(tok))
        self.backup()
        return None

    def use_var(self, tok: Token) -> VariableNode:
        parts = tuple(tok.val.split("."))
        if parts[0] not in self.vars:
            raise self.errorf(f"undefined variable {quote(parts[0])}", tok)
        return VariableNode(tok.pos, parts)

    def unquote(self, tok: Token) -> str:
        try:
            return _go_unquote(tok.val)
        except ValueError as exc:
            raise self.errorf(str(exc)) from None

    def number(self, tok: Token) -> NumberNode:
        try:
            return _make_number(tok.pos, tok.val, tok.kind)
        except ValueError as exc:
            raise self.errorf(str(exc)) from None


# --- literals ----------------------------------------------------------------------------------------

_SIMPLE = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "\\": "\\"}


def _unquote_char(text: str, i: int, quote_char: str) -> tuple[str, int]:
    """One (possibly escaped) character of a Go literal starting at ``text[i]``; raises ValueError."""
    ch = text[i]
    if ch != "\\":
        if ch == quote_char:
            raise ValueError("invalid syntax")
        return ch, i + 1
    if i + 1 >= len(text):
        raise ValueError("invalid syntax")
    esc = text[i + 1]
    if esc in _SIMPLE:
        return _SIMPLE[esc], i + 2
    if esc == quote_char:
        return esc, i + 2
    if esc in "xuU":
        size = {"x": 2, "u": 4, "U": 8}[esc]
        digits = text[i + 2 : i + 2 + size]
        if len(digits) != size or any(c not in "0123456789abcdefABCDEF" for c in digits):
            raise ValueError("invalid syntax")
        code = int(digits, 16)
        if esc == "x":
            # \xNN is a byte; a lone byte above 0x7f is not valid UTF-8 and reads as U+FFFD.
            return (chr(code) if code < 0x80 else codecs.decode(bytes([code]), "utf-8", "replace")), i + 4
        if code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
            raise ValueError("invalid syntax")
        return chr(code), i + 2 + size
    if esc in "01234567":
        digits = text[i + 1 : i + 4]
        if len(digits) != 3 or any(c not in "01234567" for c in digits):
            raise ValueError("invalid syntax")
        code = int(digits, 8)
        if code > 255:
            raise ValueError("invalid syntax")
        return (chr(code) if code < 0x80 else "\ufffd"), i + 4
    raise ValueError("invalid syntax")


def _go_unquote(text: str) -> str:
    """Go's ``strconv.Unquote`` for "..." and `...` strings."""
    if len(text) < 2:
        raise ValueError("invalid syntax")
    if text[0] == "`":
        if text[-1] != "`":
            raise ValueError("invalid syntax")
        return text[1:-1].replace("\r", "")
    if text[0] != '"' or text[-1] != '"':
        raise ValueError("invalid syntax")
    body = text[1:-1]
    out: list[str] = []
    i = 0
    while i < len(body):
        if body[i] == "\n":
            raise ValueError("invalid syntax")
        ch, i = _unquote_char(body, i, '"')
        out.append(ch)
    return "".join(out)


def _make_number(pos: int, text: str, kind: K) -> NumberNode:
    """Go's newNumber: which of int, uint, float and complex a literal can be."""
    if kind is K.CHAR_CONSTANT:
        try:
            ch, end = _unquote_char(text, 1, "'")
        except (ValueError, IndexError):
            raise ValueError("invalid syntax") from None
        if text[end:] != "'":
            raise ValueError(f"malformed character constant: {text}")
        code = ord(ch)
        return NumberNode(pos, text, True, True, True, False, code, float(code))
    if kind is K.COMPLEX or text.endswith("i"):
        try:
            value = (
                complex(text.replace("_", "")[:-1] + "j")
                if kind is K.COMPLEX
                else complex(0, parse_float(text[:-1]))
            )
        except ValueError:
            if kind is K.COMPLEX:
                raise ValueError(f"expected integer\nbad number syntax: {quote(text)}") from None
        else:
            if value.imag == 0:
                real = value.real
                as_int = int(real) if float(int(real)) == real else None
                return NumberNode(
                    pos, text, as_int is not None, as_int is not None and as_int >= 0, True, True,
                    as_int or 0, real, value,
                )  # fmt: skip
            return NumberNode(pos, text, is_complex=True, complex_value=value)
    parsed = parse_int(text)
    as_int = parsed if parsed is not None and -(2**63) <= parsed < 2**63 else None
    unsigned = parsed if parsed is not None and text[:1] not in "+-" and 0 <= parsed < 2**64 else None
    if as_int is not None:
        return NumberNode(
            pos, text, True, unsigned is not None or as_int == 0, True, False, as_int, float(as_int)
        )
    if unsigned is not None:
        return NumberNode(pos, text, False, True, True, False, 0, float(unsigned))
    try:
        value_f = parse_float(text) if not text.lower().lstrip("+-").startswith(("inf", "nan")) else None
    except ValueError:
        value_f = None
    if value_f is not None:
        if not any(c in text for c in ".eEpP"):
            raise ValueError(f"integer overflow: {quote(text)}")
        int_ok = float(int(value_f)) == value_f and -(2**63) <= value_f < 2**63
        return NumberNode(pos, text, int_ok, int_ok and value_f >= 0, True, False,
                          int(value_f) if int_ok else 0, value_f)  # fmt: skip
    raise ValueError(f"illegal number syntax: {quote(text)}")


def parse(name: str, text: str, funcs: frozenset[str]) -> dict[str, Tree]:
    """Parse ``text`` as template ``name``; returns every template it defines (``name`` included)."""
    trees: dict[str, Tree] = {}
    parser = _Parser(name, text, funcs, trees)
    try:
        parser.parse()
    except RecursionError:
        raise parser.errorf("template nesting too deep") from None
    return trees
