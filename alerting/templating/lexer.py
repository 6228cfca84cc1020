"""Tokens of Go's text/template: text, ``{{ }}`` actions with trim markers, comments, and operands.

The scanner follows Go's rules token by token (what counts as a terminator after an identifier, how
``{{- `` and `` -}}`` eat whitespace, how numbers are recognised) because error messages and
positions must read exactly as Prometheus prints them. It stops at the first error token; the parser
reports it only when it reaches it, so an earlier syntax error wins, as in Go.
"""

from __future__ import annotations

import enum
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from alerting.templating.strconv import quote

_Next = Callable[[], Any] | None  # the next scanner state, or None to stop


class T(enum.Enum):
    """Token kinds (Go's itemType)."""

    ERROR = "error"
    BOOL = "bool"
    CHAR = "char"
    CHAR_CONSTANT = "char constant"
    COMMENT = "comment"
    COMPLEX = "complex"
    ASSIGN = "="
    DECLARE = ":="
    EOF = "EOF"
    FIELD = "field"
    IDENTIFIER = "identifier"
    LEFT_DELIM = "{{"
    LEFT_PAREN = "("
    NUMBER = "number"
    PIPE = "|"
    RAW_STRING = "raw string"
    RIGHT_DELIM = "}}"
    RIGHT_PAREN = ")"
    SPACE = "space"
    STRING = "string"
    TEXT = "text"
    VARIABLE = "variable"
    # Keywords.
    BLOCK = "block"
    BREAK = "break"
    CONTINUE = "continue"
    DOT = "."
    DEFINE = "define"
    ELSE = "else"
    END = "end"
    IF = "if"
    NIL = "nil"
    RANGE = "range"
    TEMPLATE = "template"
    WITH = "with"


_KEYWORDS = {
    ".": T.DOT,
    "block": T.BLOCK,
    "break": T.BREAK,
    "continue": T.CONTINUE,
    "define": T.DEFINE,
    "else": T.ELSE,
    "end": T.END,
    "if": T.IF,
    "range": T.RANGE,
    "nil": T.NIL,
    "template": T.TEMPLATE,
    "with": T.WITH,
}
_KEYWORD_KINDS = frozenset(_KEYWORDS.values())

_LEFT, _RIGHT = "{{", "}}"
_LEFT_COMMENT, _RIGHT_COMMENT = "/*", "*/"
_SPACE = " \t\r\n"
_TERMINATORS = frozenset(".,|:)(") | frozenset(_SPACE) | {"}"}


@dataclass(frozen=True, slots=True)
class Token:
    kind: T
    pos: int  # offset (in characters) of the token in the template text
    val: str
    line: int

    def __str__(self) -> str:
        # How Go's parser names a token in "unexpected ..." messages.
        if self.kind is T.EOF:
            return "EOF"
        if self.kind is T.ERROR:
            return self.val
        if self.kind in _KEYWORD_KINDS:
            return f"<{self.val}>"
        if len(self.val) > 10:
            # Go's %.10q: quote the first ten characters, then an ellipsis.
            return quote(self.val[:10]) + "..."
        return quote(self.val)


def _is_alnum(ch: str) -> bool:
    """Go's isAlphaNumeric: underscore, Unicode letter or Unicode digit."""
    if ch == "_":
        return True
    if ch.isascii():
        return ch.isalnum()
    cat = unicodedata.category(ch)
    return cat.startswith("L") or cat == "Nd"


def _is_print_ascii(ch: str) -> bool:
    return " " <= ch <= "~"


def _left_trim_marker(text: str, at: int) -> bool:
    return text.startswith("-", at) and at + 1 < len(text) and text[at + 1] in _SPACE


def _right_trim_marker(text: str, at: int) -> bool:
    return at + 1 < len(text) and text[at] in _SPACE and text[at + 1] == "-"


class _Lexer:
    """Scans the whole text up front into a token list ending in EOF or one ERROR token."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.start = 0
        self.paren_depth = 0
        self.tokens: list[Token] = []
        self._run()

    # --- helpers -------------------------------------------------------------------------------------
    def _line_at(self, pos: int) -> int:
        return self.text.count("\n", 0, pos) + 1

    def _emit(self, kind: T) -> None:
        self.tokens.append(
            Token(kind, self.start, self.text[self.start : self.pos], self._line_at(self.start))
        )
        self.start = self.pos

    def _error(self, message: str) -> None:
        self.tokens.append(Token(T.ERROR, self.start, message, self._line_at(self.start)))

    def _peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def _at_right_delim(self) -> tuple[bool, bool]:
        """(at a right delimiter, with a trim marker before it)."""
        if _right_trim_marker(self.text, self.pos) and self.text.startswith(_RIGHT, self.pos + 2):
            return True, True
        return self.text.startswith(_RIGHT, self.pos), False

    def _at_terminator(self) -> bool:
        return self.pos >= len(self.text) or self.text[self.pos] in _TERMINATORS

    # --- states (each returns False when scanning must stop) -----------------------------------------
    def _run(self) -> None:
        state: _Next = self._lex_text
        while state is not None:
            state = state()

    def _lex_text(self) -> _Next:
        found = self.text.find(_LEFT, self.pos)
        if found < 0:
            self.pos = len(self.text)
            if self.pos > self.start:
                self._emit(T.TEXT)
            self._emit(T.EOF)
            return None
        if found > self.start:
            end = found
            if _left_trim_marker(self.text, found + len(_LEFT)):
                while end > self.start and self.text[end - 1] in _SPACE:
                    end -= 1
            if end > self.start:
                self.pos = end
                self._emit(T.TEXT)
        self.pos = self.start = found
        return self._lex_left_delim

    def _lex_left_delim(self) -> _Next:
        self.pos += len(_LEFT)
        trim = _left_trim_marker(self.text, self.pos)
        after = 2 if trim else 0
        if self.text.startswith(_LEFT_COMMENT, self.pos + after):
            self.pos += after
            self.start = self.pos
            return self._lex_comment
        self._emit(T.LEFT_DELIM)
        self.pos += after
        self.start = self.pos
        self.paren_depth = 0
        return self._lex_inside_action

    def _lex_comment(self) -> _Next:
        self.pos += len(_LEFT_COMMENT)
        end = self.text.find(_RIGHT_COMMENT, self.pos)
        if end < 0:
            self._error("unclosed comment")
            return None
        self.pos = end + len(_RIGHT_COMMENT)
        delim, trim = self._at_right_delim()
        if not delim:
            self._error("comment ends before closing delimiter")
            return None
        if trim:
            self.pos += 2
        self.pos += len(_RIGHT)
        if trim:
            self._skip_space()
        self.start = self.pos
        return self._lex_text

    def _skip_space(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] in _SPACE:
            self.pos += 1

    def _lex_right_delim(self) -> _Next:
        _, trim = self._at_right_delim()
        if trim:
            self.pos += 2
            self.start = self.pos
        self.pos += len(_RIGHT)
        self._emit(T.RIGHT_DELIM)
        if trim:
            self._skip_space()
            self.start = self.pos
        return self._lex_text

    def _lex_inside_action(self) -> _Next:
        delim, _ = self._at_right_delim()
        if delim:
            if self.paren_depth == 0:
                return self._lex_right_delim
            self._error("unclosed left paren")
            return None
        if self.pos >= len(self.text):
            self._error("unclosed action")
            return None
        ch = self.text[self.pos]
        self.pos += 1
        if ch in _SPACE:
            self.pos -= 1
            return self._lex_space
        if ch == "=":
            self._emit(T.ASSIGN)
        elif ch == ":":
            if self._peek() != "=":
                self._error("expected :=")
                return None
            self.pos += 1
            self._emit(T.DECLARE)
        elif ch == "|":
            self._emit(T.PIPE)
        elif ch == '"':
            return self._lex_quote
        elif ch == "`":
            return self._lex_raw_quote
        elif ch == "$":
            return self._lex_variable
        elif ch == "'":
            return self._lex_char
        elif ch == "." and self._peek() and not "0" <= self._peek() <= "9":
            return self._lex_field
        elif ch in "+-." or "0" <= ch <= "9":
            self.pos -= 1
            return self._lex_number
        elif _is_alnum(ch):
            self.pos -= 1
            return self._lex_identifier
        elif ch == "(":
            self._emit(T.LEFT_PAREN)
            self.paren_depth += 1
        elif ch == ")":
            self._emit(T.RIGHT_PAREN)
            self.paren_depth -= 1
            if self.paren_depth < 0:
                self._error("unexpected right paren U+0029 ')'")
                return None
        elif _is_print_ascii(ch):
            self._emit(T.CHAR)
        else:
            self._error(f"unrecognized character in action: {_go_rune(ch)}")
            return None
        return self._lex_inside_action

    def _lex_space(self) -> _Next:
        count = 0
        while self.pos < len(self.text) and self.text[self.pos] in _SPACE:
            self.pos += 1
            count += 1
        # A space followed by "-}}" belongs to the closing delimiter.
        if _right_trim_marker(self.text, self.pos - 1) and self.text.startswith(_RIGHT, self.pos + 1):
            self.pos -= 1
            if count == 1:
                return self._lex_right_delim
        self._emit(T.SPACE)
        return self._lex_inside_action

    def _scan_word(self) -> bool:
        """Advance over alphanumerics; False (with an error token) unless a terminator follows."""
        while self.pos < len(self.text) and _is_alnum(self.text[self.pos]):
            self.pos += 1
        if not self._at_terminator():
            self.pos += 1
            self._error(f"bad character {_go_rune(self.text[self.pos - 1])}")
            return False
        return True

    def _lex_identifier(self) -> _Next:
        if not self._scan_word():
            return None
        word = self.text[self.start : self.pos]
        if word in _KEYWORDS:
            self._emit(_KEYWORDS[word])
        elif word in ("true", "false"):
            self._emit(T.BOOL)
        else:
            self._emit(T.IDENTIFIER)
        return self._lex_inside_action

    def _lex_field(self) -> _Next:
        return self._lex_field_or_variable(T.FIELD)

    def _lex_variable(self) -> _Next:
        if self._at_terminator():
            self._emit(T.VARIABLE)
            return self._lex_inside_action
        return self._lex_field_or_variable(T.VARIABLE)

    def _lex_field_or_variable(self, kind: T) -> _Next:
        if self._at_terminator():
            self._emit(T.VARIABLE if kind is T.VARIABLE else T.DOT)
            return self._lex_inside_action
        if not self._scan_word():
            return None
        self._emit(kind)
        return self._lex_inside_action

    def _lex_char(self) -> _Next:
        return self._lex_quoted("'", T.CHAR_CONSTANT, "unterminated character constant")

    def _lex_quote(self) -> _Next:
        return self._lex_quoted('"', T.STRING, "unterminated quoted string")

    def _lex_quoted(self, close: str, kind: T, unterminated: str) -> _Next:
        """Scan up to ``close``, skipping backslash escapes; a newline or the end is an error."""
        while True:
            ch = self._peek()
            self.pos += 1
            if ch == "\\":
                nxt = self._peek()
                if nxt and nxt != "\n":
                    self.pos += 1
                    continue
                ch = ""
            if ch in ("", "\n"):
                self._error(unterminated)
                return None
            if ch == close:
                break
        self._emit(kind)
        return self._lex_inside_action

    def _lex_number(self) -> _Next:
        if not self._scan_number():
            self._error(f"bad number syntax: {quote(self.text[self.start : self.pos])}")
            return None
        if self._peek() in ("+", "-"):
            if not self._scan_number() or self.text[self.pos - 1] != "i":
                self._error(f"bad number syntax: {quote(self.text[self.start : self.pos])}")
                return None
            self._emit(T.COMPLEX)
        else:
            self._emit(T.NUMBER)
        return self._lex_inside_action

    def _accept(self, valid: str) -> bool:
        if self.pos < len(self.text) and self.text[self.pos] in valid:
            self.pos += 1
            return True
        return False

    def _accept_run(self, valid: str) -> None:
        while self.pos < len(self.text) and self.text[self.pos] in valid:
            self.pos += 1

    def _scan_number(self) -> bool:
        self._accept("+-")
        digits = "0123456789_"
        if self._accept("0"):
            if self._accept("xX"):
                digits = "0123456789abcdefABCDEF_"
            elif self._accept("oO"):
                digits = "01234567_"
            elif self._accept("bB"):
                digits = "01_"
        self._accept_run(digits)
        if self._accept("."):
            self._accept_run(digits)
        if len(digits) == 11 and self._accept("eE"):
            self._accept("+-")
            self._accept_run("0123456789_")
        if len(digits) == 23 and self._accept("pP"):
            self._accept("+-")
            self._accept_run("0123456789_")
        self._accept("i")
        if self.pos < len(self.text) and _is_alnum(self.text[self.pos]):
            self.pos += 1
            return False
        return True

    def _lex_raw_quote(self) -> _Next:
        end = self.text.find("`", self.pos)
        if end < 0:
            self._error("unterminated raw quoted string")
            return None
        self.pos = end + 1
        self._emit(T.RAW_STRING)
        return self._lex_inside_action


def _go_rune(ch: str) -> str:
    """Go's ``%#U`` of a rune: ``U+0041 'A'`` (the quoted form only for printable runes)."""
    code = ord(ch)
    head = f"U+{code:04X}"
    if ch.isprintable():
        return f"{head} '{ch}'"
    return head


def lex(text: str) -> list[Token]:
    return _Lexer(text).tokens
