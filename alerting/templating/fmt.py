"""Go's fmt, as far as templates reach it: ``print``, ``println`` and ``printf`` (Sprint, Sprintln,
Sprintf), and what an action ``{{ x }}`` writes (``%v`` of 1234567.0 is ``1.234567e+06``).

Formatting follows Go's rules verb by verb, flags, width and precision included, with its in-band
error text (``%!d(float64=1.5)``, ``%!v(MISSING)``, ``%!(EXTRA int=1)``) because Prometheus prints
exactly that into annotations. The digits themselves come from :mod:`.strconv`, as in Go.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from alerting.templating.strconv import can_backquote, format_float, quote, quote_rune
from alerting.templating.values import (
    HTML,
    GoDuration,
    GoList,
    GoStruct,
    as_map,
    fields_of,
    is_stringer,
    kind,
    type_name,
)

_MAX_NUM = 1_000_000  # Go's tooLarge: widths and precisions beyond this are %!(BADWIDTH)


class FormatLimitError(Exception):
    """Raised when a single formatted value would exceed the caller's size bound."""


def go_float(value: float) -> str:
    """A float64 as Go's ``%v`` prints it (``15``, ``0.1234``, ``1e+06``, ``1.234567e+06``, ``+Inf``)."""
    if value == 0.0:  # 0.0 and -0.0 are equal keys to a cache, but Go prints -0 apart
        return format_float(value, "g")
    return _cached_go_float(float(value))


# Every alert's ``$value`` is printed each tick, and the values repeat (0, 1, counts).
_cached_go_float = functools.lru_cache(maxsize=1 << 14)(lambda value: format_float(value, "g"))


# --- the printer -------------------------------------------------------------------------------------


@dataclass
class _Flags:
    plus: bool = False
    minus: bool = False
    sharp: bool = False
    space: bool = False
    zero: bool = False
    plus_v: bool = False
    sharp_v: bool = False
    wid: int = 0
    wid_present: bool = False
    prec: int = 0
    prec_present: bool = False


class _Printer:
    """One fmt.Sprint/Sprintf call's buffer and flags (Go's ``pp``)."""

    def __init__(self, limit: int) -> None:
        self.buf: list[str] = []
        self.size = 0
        self.limit = limit
        self.f = _Flags()

    def write(self, text: str) -> None:
        self.size += len(text)
        if self.size > self.limit:
            raise FormatLimitError(f"formatted text exceeds {self.limit} characters")
        self.buf.append(text)

    def text(self) -> str:
        return "".join(self.buf)

    # --- padding ---
    def _padding(self, n: int) -> None:
        if n <= 0:
            return
        if n > self.limit:
            raise FormatLimitError(f"formatted text exceeds {self.limit} characters")
        self.write(("0" if self.f.zero else " ") * n)

    def pad(self, text: str) -> None:
        f = self.f
        if not f.wid_present or f.wid == 0:
            self.write(text)
            return
        width = f.wid - len(text)
        if not f.minus:
            self._padding(width)
            self.write(text)
        else:
            self.write(text)
            self._padding(width)

    # --- basic types ---
    def fmt_bool(self, value: bool, verb: str) -> None:
        if verb in "tv":
            self.pad("true" if value else "false")
        else:
            self.bad_verb(verb, value)

    def fmt_integer(self, value: int, verb: str) -> None:
        if verb in "vd":
            self._integer(value, 10, verb, "0123456789abcdefx")
        elif verb == "b":
            self._integer(value, 2, verb, "0123456789abcdefx")
        elif verb in "oO":
            self._integer(value, 8, verb, "0123456789abcdefx")
        elif verb == "x":
            self._integer(value, 16, verb, "0123456789abcdefx")
        elif verb == "X":
            self._integer(value, 16, verb, "0123456789ABCDEFX")
        elif verb == "c":
            self.pad(_rune(value))
        elif verb == "q":
            self.pad(quote_rune(_rune(value), self.f.plus))
        elif verb == "U":
            self._unicode(value)
        else:
            self.bad_verb(verb, value)

    def _integer(self, value: int, base: int, verb: str, digits: str) -> None:
        f = self.f
        negative = value < 0
        u = -value if negative else value
        prec = 0
        if f.prec_present:
            prec = f.prec
            if prec == 0 and u == 0:
                old, f.zero = f.zero, False
                self._padding(f.wid)
                f.zero = old
                return
        elif f.zero and f.wid_present:
            prec = f.wid
            if negative or f.plus or f.space:
                prec -= 1
        if prec > self.limit:
            raise FormatLimitError(f"formatted text exceeds {self.limit} characters")
        body = ""
        while u >= base:
            body = digits[u % base] + body
            u //= base
        body = digits[u] + body
        if len(body) < prec:
            body = "0" * (prec - len(body)) + body
        if f.sharp:
            if base == 2:
                body = "0b" + body
            elif base == 8 and not body.startswith("0"):
                body = "0" + body
            elif base == 16:
                body = "0" + digits[16] + body
        if verb == "O":
            body = "0o" + body
        if negative:
            body = "-" + body
        elif f.plus:
            body = "+" + body
        elif f.space:
            body = " " + body
        old, f.zero = f.zero, False
        self.pad(body)
        f.zero = old

    def _unicode(self, value: int) -> None:
        text = f"U+{value:04X}" if value >= 0 else f"U+{value & 0xFFFFFFFFFFFFFFFF:04X}"
        if self.f.sharp and 0 <= value <= 0x10FFFF and chr(value).isprintable():
            text += f" '{chr(value)}'"
        old, self.f.zero = self.f.zero, False
        self.pad(text)
        self.f.zero = old

    def fmt_float(self, value: float, verb: str) -> None:
        if verb == "v":
            self._float(value, "g", -1)
        elif verb in "bgGxX":
            self._float(value, verb, -1)
        elif verb in "eEfF":
            self._float(value, verb, 6)
        else:
            self.bad_verb(verb, value)

    def _float(self, value: float, verb: str, prec: int) -> None:
        f = self.f
        if f.prec_present:
            prec = f.prec
        if prec > self.limit:
            raise FormatLimitError(f"formatted text exceeds {self.limit} characters")
        num = format_float(value, "f" if verb == "F" else verb, prec)
        if num[0] not in "+-":
            num = "+" + num
        if f.sharp and verb != "b" and num[1:] not in ("Inf", "NaN"):
            num = _sharp_float(num, verb, prec)
        if f.space and num[0] == "+" and not f.plus:
            num = " " + num[1:]
        if num[1:] in ("Inf", "NaN"):
            old, f.zero = f.zero, False
            if num[1] == "N" and not f.space and not f.plus:
                num = num[1:]
            self.pad(num)
            f.zero = old
            return
        if f.plus or num[0] != "+":
            if f.zero and f.wid_present and f.wid > len(num):
                self.write(num[0])
                self._padding(f.wid - len(num))
                self.write(num[1:])
                return
            self.pad(num)
            return
        self.pad(num[1:])

    def fmt_complex(self, value: complex, verb: str) -> None:
        if verb not in "vbgGxXfFeE":
            self.bad_verb(verb, value)
            return
        old_plus = self.f.plus
        self.write("(")
        self.fmt_float(value.real, verb)
        self.f.plus = True
        self.fmt_float(value.imag, verb)
        self.write("i)")
        self.f.plus = old_plus

    def fmt_string(self, value: str, verb: str) -> None:
        f = self.f
        if verb == "v":
            if f.sharp_v:
                self._fmt_q(value)
            else:
                self._fmt_s(value)
        elif verb == "s":
            self._fmt_s(value)
        elif verb in "xX":
            self._fmt_sx(value, verb)
        elif verb == "q":
            self._fmt_q(value)
        else:
            self.bad_verb(verb, value)

    def _truncate(self, value: str) -> str:
        if self.f.prec_present and len(value) > self.f.prec:
            return value[: self.f.prec]
        return value

    def _fmt_s(self, value: str) -> None:
        self.pad(self._truncate(value))

    def _fmt_q(self, value: str) -> None:
        value = self._truncate(value)
        if self.f.sharp and can_backquote(value):
            self.pad("`" + value + "`")
        else:
            self.pad(quote(value, ascii_only=self.f.plus))

    def _fmt_sx(self, value: str, verb: str) -> None:
        data = value.encode("utf-8", "surrogatepass")
        if self.f.prec_present:
            data = data[: self.f.prec]
        hexdigits = "0123456789abcdef" if verb == "x" else "0123456789ABCDEF"
        parts = []
        for i, byte in enumerate(data):
            piece = hexdigits[byte >> 4] + hexdigits[byte & 15]
            if self.f.space:
                if self.f.sharp:
                    piece = "0" + verb + piece
                if i > 0:
                    piece = " " + piece
            elif self.f.sharp and i == 0:
                piece = "0" + verb + piece
            parts.append(piece)
        self.pad("".join(parts))

    def bad_verb(self, verb: str, value: Any) -> None:
        self.write("%!" + verb + "(")
        if value is None:
            self.write("<nil>")
        else:
            self.write(type_name(value) + "=")
            self.print_arg(value, "v", depth=0)
        self.write(")")

    # --- any value ---
    def print_arg(self, value: Any, verb: str, depth: int = 0) -> None:
        if value is None:
            if depth > 0:
                if verb in "vs" or verb == "T":
                    self.pad("<nil>")
                else:
                    self.bad_verb(verb, None)
                return
            if verb in "Tv":
                self.pad("<nil>")
            else:
                self.bad_verb(verb, None)
            return
        if verb == "T":
            self.fmt_string(type_name(value), "s")
            return
        if verb == "p":
            self.bad_verb(verb, value) if kind(value) not in ("ptr", "map", "slice") else self.write(
                "0xc000010000"
            )
            return
        if isinstance(value, bool):
            self.fmt_bool(value, verb)
        elif isinstance(value, int):
            self.fmt_integer(value, verb)
        elif isinstance(value, float):
            self.fmt_float(value, verb)
        elif isinstance(value, complex):
            self.fmt_complex(value, verb)
        elif isinstance(value, str):
            self.fmt_string(str(value), verb)
        elif is_stringer(value):
            if verb in "vsxXq":
                self.fmt_string(value.String(), verb)
            elif isinstance(value, GoDuration):
                self.fmt_integer(value.nanos, verb)
            else:
                # A *time.Time printed field by field: {wall ext loc}, as Go does for non-string verbs.
                seconds, nanos = divmod(value.nanos, 1_000_000_000)
                self.write("&{")
                self.fmt_integer(nanos, verb)
                self.write(" ")
                self.fmt_integer(seconds + 62135596800, verb)
                self.write(" ")
                self.fmt_integer(0, verb)
                self.write("}")
        else:
            self._print_value(value, verb, depth)

    def _print_value(self, value: Any, verb: str, depth: int) -> None:
        if depth > 0 and (value is None or isinstance(value, bool | int | float | complex | str)):
            self.print_arg(value, verb, depth)
            return
        if depth > 0 and is_stringer(value):
            self.print_arg(value, verb, depth)
            return
        f = self.f
        if isinstance(value, Mapping):
            gomap = as_map(value)
            if f.sharp_v:
                self.write(gomap.type_name + "{")
            else:
                self.write("map[")
            for i, key in enumerate(sorted(gomap)):
                if i:
                    self.write(", " if f.sharp_v else " ")
                self.print_arg(key, verb, depth + 1)
                self.write(":")
                self.print_arg(gomap[key], verb, depth + 1)
            self.write("}" if f.sharp_v else "]")
        elif isinstance(value, list | tuple):
            if isinstance(value, GoList) and value.type_name == "template.queryResult":
                # A slice of pointers: Go prints addresses, which no two runs share.
                self.write("[" + " ".join("0xc000010000" for _ in value) + "]")
                return
            self.write("[")
            for i, item in enumerate(value):
                if i:
                    self.write(" ")
                self.print_arg(item, verb, depth + 1)
            self.write("]")
        elif isinstance(value, GoStruct) or fields_of(value):
            if isinstance(value, GoStruct) and value.go_pointer and depth > 0:
                self.write("0xc000010000")
                return
            if isinstance(value, GoStruct) and value.go_pointer:
                self.write("&")
            self.write("{")
            for i, name in enumerate(fields_of(value)):
                if i:
                    self.write(" ")
                if f.plus_v or f.sharp_v:
                    self.write(name + ":")
                field = getattr(value, name)
                self.print_arg(as_map(field) if isinstance(field, Mapping) else field, verb, depth + 1)
            self.write("}")
        else:
            self.write("?")


def _rune(value: int) -> str:
    if 0 <= value <= 0x10FFFF and not 0xD800 <= value <= 0xDFFF:
        return chr(value)
    return "\ufffd"


def _sharp_float(num: str, verb: str, prec: int) -> str:
    """Go's ``#`` flag on floats: always a decimal point, and %g keeps its trailing zeros.

    ``num`` starts with its sign; the digit counting follows fmt's own loop, quirks included.
    """
    digits = 0
    if verb in "vgGx":
        digits = 6 if prec == -1 else prec
    tail = ""
    has_point = False
    seen_nonzero = False
    i = 1
    while i < len(num):
        ch = num[i]
        if ch == ".":
            has_point = True
        elif ch in "pP" or (ch in "eE" and verb not in "xX"):
            tail = num[i:]
            num = num[:i]
            break
        else:
            if ch != "0":
                seen_nonzero = True
            if seen_nonzero:
                digits -= 1
        i += 1
    if not has_point:
        if len(num) == 2 and num[1] == "0":
            digits -= 1
        num += "."
    if digits > 0:
        num += "0" * digits
    return num + tail


# --- Sprint, Sprintln, Sprintf, and an action's output -----------------------------------------------


def _is_string_kind(value: Any) -> bool:
    return isinstance(value, str)


def sprint(args: Sequence[Any], limit: int) -> str:
    """Go's ``fmt.Sprint``: a space between two operands when neither is a string."""
    p = _Printer(limit)
    prev_string = False
    for i, arg in enumerate(args):
        is_string = _is_string_kind(arg)
        if i > 0 and not is_string and not prev_string:
            p.write(" ")
        p.f = _Flags()
        p.print_arg(arg, "v")
        prev_string = is_string
    return p.text()


def sprintln(args: Sequence[Any], limit: int) -> str:
    """Go's ``fmt.Sprintln``: spaces between all operands and a final newline."""
    p = _Printer(limit)
    for i, arg in enumerate(args):
        if i > 0:
            p.write(" ")
        p.f = _Flags()
        p.print_arg(arg, "v")
    p.write("\n")
    return p.text()


def _parsenum(s: str, start: int, end: int) -> tuple[int, bool, int]:
    if start >= end:
        return 0, False, end
    num, isnum, i = 0, False, start
    while i < end and "0" <= s[i] <= "9":
        if num > _MAX_NUM:
            return 0, False, end
        num = num * 10 + ord(s[i]) - 48
        isnum = True
        i += 1
    return num, isnum, i


def sprintf(fmt: str, args: Sequence[Any], limit: int) -> str:
    """Go's ``fmt.Sprintf``, verb by verb, with Go's in-band error text."""
    p = _Printer(limit)
    end = len(fmt)
    arg_num = 0
    after_index = False
    reordered = False
    i = 0

    def arg_number(arg_num: int, i: int) -> tuple[int, int, bool, bool]:
        # Returns (arg_num, i, found, good).
        nonlocal reordered
        if i >= end or fmt[i] != "[":
            return arg_num, i, False, True
        reordered = True
        # parseArgNumber
        if end - i < 3:
            return arg_num, i + 1, False, False
        for j in range(i + 1, end):
            if fmt[j] == "]":
                width, ok, newi = _parsenum(fmt, i + 1, j)
                if not ok or newi != j:
                    return arg_num, j + 1, False, False
                index = width - 1
                if 0 <= index < len(args):
                    return index, j + 1, True, True
                return arg_num, j + 1, True, False
        return arg_num, i + 1, False, False

    def int_from_arg(arg_num: int) -> tuple[int, bool, int]:
        if arg_num < len(args):
            value = args[arg_num]
            ok = isinstance(value, int) and not isinstance(value, bool)
            num = value if ok else 0
            if ok and (num > _MAX_NUM or num < -_MAX_NUM):
                num, ok = 0, False
            return num, ok, arg_num + 1
        return 0, False, arg_num

    while i < end:
        good_arg_num = True
        last = i
        while i < end and fmt[i] != "%":
            i += 1
        if i > last:
            p.write(fmt[last:i])
        if i >= end:
            break
        i += 1
        p.f = f = _Flags()
        simple_done = False
        while i < end:
            c = fmt[i]
            if c == "#":
                f.sharp = True
            elif c == "0":
                f.zero = not f.minus
            elif c == "+":
                f.plus = True
            elif c == "-":
                f.minus = True
                f.zero = False
            elif c == " ":
                f.space = True
            else:
                if "a" <= c <= "z" and arg_num < len(args):
                    if c == "v":
                        f.sharp_v, f.sharp = f.sharp, False
                        f.plus_v, f.plus = f.plus, False
                    p.print_arg(args[arg_num], c)
                    arg_num += 1
                    i += 1
                    simple_done = True
                break
            i += 1
        if simple_done:
            continue

        arg_num, i, after_index, good = arg_number(arg_num, i)
        good_arg_num = good_arg_num and good

        if i < end and fmt[i] == "*":
            i += 1
            f.wid, f.wid_present, arg_num = int_from_arg(arg_num)
            if not f.wid_present:
                p.write("%!(BADWIDTH)")
            if f.wid < 0:
                f.wid = -f.wid
                f.minus = True
                f.zero = False
            after_index = False
        else:
            f.wid, f.wid_present, i = _parsenum(fmt, i, end)
            if after_index and f.wid_present:
                good_arg_num = False

        if i + 1 < end and fmt[i] == ".":
            i += 1
            if after_index:
                good_arg_num = False
            arg_num, i, after_index, good = arg_number(arg_num, i)
            good_arg_num = good_arg_num and good
            if i < end and fmt[i] == "*":
                i += 1
                f.prec, f.prec_present, arg_num = int_from_arg(arg_num)
                if f.prec < 0:
                    f.prec, f.prec_present = 0, False
                if not f.prec_present:
                    p.write("%!(BADPREC)")
                after_index = False
            else:
                f.prec, f.prec_present, i = _parsenum(fmt, i, end)
                if not f.prec_present:
                    f.prec, f.prec_present = 0, True

        if not after_index:
            arg_num, i, after_index, good = arg_number(arg_num, i)
            good_arg_num = good_arg_num and good

        if i >= end:
            p.write("%!(NOVERB)")
            break
        verb = fmt[i]
        i += 1
        if verb == "%":
            p.write("%")
        elif not good_arg_num:
            p.write(f"%!{verb}(BADINDEX)")
        elif arg_num >= len(args):
            p.write(f"%!{verb}(MISSING)")
        else:
            if verb == "v":
                f.sharp_v, f.sharp = f.sharp, False
                f.plus_v, f.plus = f.plus, False
            if verb == "w":
                p.bad_verb(verb, args[arg_num])
            else:
                p.print_arg(args[arg_num], verb)
            arg_num += 1

    if not reordered and arg_num < len(args):
        p.f = _Flags()
        p.write("%!(EXTRA ")
        for n, arg in enumerate(args[arg_num:]):
            if n:
                p.write(", ")
            if arg is None:
                p.write("<nil>")
            else:
                p.write(type_name(arg) + "=")
                p.print_arg(arg, "v")
        p.write(")")
    return p.text()


def print_value(value: Any, limit: int) -> str:
    """What an action ``{{ x }}`` writes: fmt.Print of the value, ``<no value>`` for nil."""
    if value is None:
        return "<no value>"
    if isinstance(value, HTML):
        return str(value)
    if isinstance(value, GoStruct) and value.go_pointer and not is_stringer(value):
        # printValue dereferences a pointer before printing it.
        p = _Printer(limit)
        p._print_value(value, "v", depth=0)
        return p.text()[1:]
    return sprint([value], limit)
