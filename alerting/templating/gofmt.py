"""Go's fmt and strconv, as far as templates can reach them: Sprint, Sprintln, Sprintf, Quote,
ParseFloat, and float64 formatting (``%v`` of 1234567.0 is ``1.234567e+06``, not Python's text).

Formatting follows Go's rules verb by verb, including its in-band error text (``%!d(float64=1.5)``,
``%!v(MISSING)``, ``%!(EXTRA int=1)``) because Prometheus prints exactly that into annotations.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

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


# --- strconv -----------------------------------------------------------------------------------------


def quote(text: str, ascii_only: bool = False) -> str:
    """Go's ``strconv.Quote`` (``QuoteToASCII`` with ``ascii_only``)."""
    out = ['"']
    for ch in text:
        code = ord(ch)
        if ch == '"' or ch == "\\":
            out.append("\\" + ch)
        elif " " <= ch <= "~":
            out.append(ch)
        elif code < 0x80 or (0xD800 <= code <= 0xDFFF) or ascii_only or not _is_go_printable(ch):
            out.append(_escape(ch))
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


_SIMPLE_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v"}


def _escape(ch: str) -> str:
    if ch in _SIMPLE_ESCAPES:
        return _SIMPLE_ESCAPES[ch]
    code = ord(ch)
    if 0xD800 <= code <= 0xDFFF:
        return "\\ufffd"
    if code < 0x20 or code == 0x7F:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def _is_go_printable(ch: str) -> bool:
    # strconv.IsPrint: letters, marks, numbers, punctuation, symbols and U+0020; Python's
    # isprintable() agrees except that it rejects every space but U+0020, as Go does.
    return ch.isprintable()


def can_backquote(text: str) -> bool:
    """Go's ``strconv.CanBackquote``."""
    for ch in text:
        if ch == "`" or ch == "\ufeff":
            return False
        if ch != "\t" and (ord(ch) < 0x20 or ord(ch) == 0x7F):
            return False
    return True


_D = r"\d(?:_?\d)*"  # digits, with single underscores between them as Go (and Python) allow
_DEC_FLOAT = re.compile(rf"[+-]?(?:{_D}(?:\.(?:{_D})?)?|\.{_D})(?:[eE][+-]?{_D})?")
_HEX_FLOAT = re.compile(r"([+-]?)0[xX]((?:[0-9a-fA-F_]+\.?[0-9a-fA-F_]*|\.[0-9a-fA-F_]+))[pP]([+-]?[0-9_]+)")
_SPECIAL = {"inf": math.inf, "+inf": math.inf, "-inf": -math.inf, "infinity": math.inf,
            "+infinity": math.inf, "-infinity": -math.inf, "nan": math.nan, "+nan": math.nan,
            "-nan": math.nan}  # fmt: skip


class ParseFloatError(ValueError):
    """strconv.ParseFloat's error, worded as Go words it."""

    def __init__(self, text: str, reason: str) -> None:
        super().__init__(f"strconv.ParseFloat: parsing {quote(text)}: {reason}")


def parse_float(text: str) -> float:
    """Go's ``strconv.ParseFloat(text, 64)``: Go's literal syntax, no surrounding spaces."""
    special = _SPECIAL.get(text.lower())
    if special is not None:
        return special
    if _DEC_FLOAT.fullmatch(text):
        value = float(text)
    else:
        match = _HEX_FLOAT.fullmatch(text)
        if not match:
            raise ParseFloatError(text, "invalid syntax")
        sign, mantissa, exponent = match.groups()
        mantissa, exponent = mantissa.replace("_", ""), exponent.replace("_", "")
        if not mantissa.strip("."):
            raise ParseFloatError(text, "invalid syntax")
        try:
            value = float.fromhex(f"{sign}0x{mantissa}p{exponent}")
        except OverflowError:
            value = math.inf if sign != "-" else -math.inf
    if math.isinf(value):
        raise ParseFloatError(text, "value out of range")
    return value


def parse_int(text: str) -> int | None:
    """Go's integer literal syntax as ``strconv.ParseInt(text, 0, ...)`` reads it, without the range
    check (callers decide what fits); None when it is not an integer literal."""
    negative = text.startswith("-")
    body = text[1:] if text[:1] in "+-" and text else text
    if not body or body[0] in "+-":
        return None
    base, digits = 10, body
    lower = body.lower()
    if lower.startswith("0x"):
        base, digits = 16, body[2:]
    elif lower.startswith("0o"):
        base, digits = 8, body[2:]
    elif lower.startswith("0b"):
        base, digits = 2, body[2:]
    elif body.startswith("0") and len(body) > 1:
        base, digits = 8, body[1:]
    if "_" in digits and (digits.endswith("_") or "__" in digits or (base == 10 and digits.startswith("_"))):
        return None
    clean = digits.replace("_", "")
    if not clean or not all(c in "0123456789abcdefABCDEF"[: base if base <= 10 else base + 6] for c in clean):
        return None
    value = int(clean, base)
    return -value if negative else value


# --- float64 formatting ------------------------------------------------------------------------------


def _digits_shortest(x: float) -> tuple[str, int]:
    """Shortest round-trip decimal digits of |x| > 0 and the decimal point position (0.DIGITS × 10^dp)."""
    # repr is Python's shortest round-trip form ("123.45", "1e-07", "1.5e+300"); read its digits and
    # exponent off the text (every {{ $value }} comes through here, so no Decimal).
    mantissa, _, exponent = repr(abs(x)).partition("e")
    whole, _, fraction = mantissa.partition(".")
    digits = (whole + fraction).lstrip("0")
    dp = len(whole) + (int(exponent) if exponent else 0) - (len(whole) + len(fraction) - len(digits))
    return digits.rstrip("0"), dp


def _digits_rounded(x: float, significant: int) -> tuple[str, int]:
    """|x| rounded (exactly, half-even on the true binary value) to ``significant`` digits."""
    mantissa, exp = format(abs(x), f".{significant - 1}e").split("e")
    digits = mantissa.replace(".", "").rstrip("0")
    return digits or "0", int(exp) + 1


def _fmt_e(digits: str, dp: int, prec: int, letter: str) -> str:
    first = digits[0] if digits else "0"
    out = first
    if prec > 0:
        rest = digits[1 : 1 + prec]
        out += "." + rest + "0" * (prec - len(rest))
    exp = dp - 1 if digits != "0" and digits else 0
    sign = "-" if exp < 0 else "+"
    return f"{out}{letter}{sign}{abs(exp):02d}"


def _fmt_f(digits: str, dp: int, prec: int) -> str:
    whole = digits[:dp] + "0" * max(dp - len(digits), 0) if dp > 0 else "0"
    if prec <= 0:
        return whole
    frac = []
    for i in range(prec):
        index = dp + i
        frac.append(digits[index] if 0 <= index < len(digits) else "0")
    return whole + "." + "".join(frac)


def format_float(x: float, verb: str, prec: int = -1) -> str:
    """``strconv.FormatFloat(x, verb, prec, 64)`` for verbs e, E, f, F, g, G (with sign, no padding)."""
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "+Inf" if x > 0 else "-Inf"
    neg = math.copysign(1.0, x) < 0
    sign = "-" if neg else ""
    lower = verb.lower()
    if x == 0:
        digits, dp = "0", 1
        zero = True
    else:
        zero = False
    if lower == "f":
        if prec < 0:
            digits, dp = ("0", 1) if zero else _digits_shortest(x)
            return sign + _fmt_f(digits, dp, max(len(digits) - dp, 0))
        return sign + format(abs(x), f".{prec}f")
    if lower == "e":
        if prec < 0:
            digits, dp = ("0", 1) if zero else _digits_shortest(x)
            prec = len(digits) - 1
        elif not zero:
            digits, dp = _digits_rounded(x, prec + 1)
        return sign + _fmt_e(digits if not zero else "0", dp if not zero else 1, prec, verb)
    # g / G
    shortest = prec < 0
    if zero:
        digits, dp = "0", 1
    elif shortest:
        digits, dp = _digits_shortest(x)
    else:
        digits, dp = _digits_rounded(x, max(prec, 1))
    if shortest:
        prec = len(digits)
    elif prec == 0:
        prec = 1
    eprec = prec
    if eprec > len(digits) and len(digits) >= dp:
        eprec = len(digits)
    if shortest:
        eprec = 6
    exp = dp - 1
    if exp < -4 or exp >= eprec:
        if prec > len(digits):
            prec = len(digits)
        return sign + _fmt_e(digits, dp, prec - 1, "e" if verb == "g" else "E")
    if prec > dp:
        prec = len(digits)
    return sign + _fmt_f(digits, dp, max(prec - dp, 0))


def go_float(value: float) -> str:
    """A float64 as Go's ``%v`` prints it (``15``, ``0.1234``, ``1e+06``, ``1.234567e+06``, ``+Inf``)."""
    return format_float(value, "g")


def _hex_float(x: float, upper: bool, prec: int) -> str:
    if math.isnan(x) or math.isinf(x):
        return format_float(x, "g")
    sign = "-" if math.copysign(1.0, x) < 0 else ""
    if x == 0:
        mant, exp = "0", 0
    else:
        text = float.hex(abs(x))  # 0x1.8000000000000p+1
        body, exp_text = text[2:].split("p")
        head, _, frac = body.partition(".")
        exp = int(exp_text)
        frac = frac.rstrip("0")
        if head == "0":  # subnormal: normalise to 1.xxx
            value = abs(x)
            exp = math.frexp(value)[1] - 1
            frac = float.hex(value / 2.0**exp)[4:].split("p")[0].rstrip("0")
        mant = "1" + ("." + frac if frac else "")
        if prec >= 0:
            mant = "1" + ("." + frac[:prec].ljust(prec, "0") if prec > 0 else "")
    text = f"{sign}0x{mant}p{'-' if exp < 0 else '+'}{abs(exp):02d}"
    return text.upper().replace("0X", "0X") if upper else text


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


class Printer:
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
            self.pad(_quote_rune(value, self.f.plus))
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
        if verb in "xX":
            num = _hex_float(value, verb == "X", prec)
        elif verb == "b":
            num = _binary_float(value)
        else:
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


def _quote_rune(value: int, ascii_only: bool) -> str:
    ch = _rune(value)
    if ch == "'":
        return "'\\''"
    if ch == '"':
        return "'\"'"
    inner = quote(ch, ascii_only)[1:-1]
    return "'" + inner + "'"


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


def _binary_float(x: float) -> str:
    """strconv's 'b' format: decimal mantissa and binary exponent (``8891907104280307p-56``)."""
    if math.isnan(x) or math.isinf(x):
        return format_float(x, "g")
    sign = "-" if math.copysign(1.0, x) < 0 else ""
    if x == 0:
        return sign + "0p-1074"
    mantissa, exp = math.frexp(abs(x))
    mant = int(mantissa * 2**53)
    exp -= 53
    if exp < -1074:
        mant >>= -1074 - exp
        exp = -1074
    return f"{sign}{mant}p{'-' if exp < 0 else '+'}{abs(exp)}"


def _is_string_kind(value: Any) -> bool:
    return isinstance(value, str)


def sprint(args: Sequence[Any], limit: int) -> str:
    """Go's ``fmt.Sprint``: a space between two operands when neither is a string."""
    p = Printer(limit)
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
    p = Printer(limit)
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
    p = Printer(limit)
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
        p = Printer(limit)
        p._print_value(value, "v", depth=0)
        return p.text()[1:]
    return sprint([value], limit)
