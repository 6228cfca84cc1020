"""Go's strconv, as far as templates reach it: quoting strings and runes as ``strconv.Quote`` does,
reading numbers as ``ParseFloat`` and Go's integer literals do, and ``FormatFloat`` with its
``b``, ``e``, ``f``, ``g`` and ``x`` formats, shortest representation included.

Pure text in, text out: no template values and no formatting flags (those are :mod:`.fmt`'s).
"""

from __future__ import annotations

import math
import re

# --- quoting -----------------------------------------------------------------------------------------


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


def quote_rune(ch: str, ascii_only: bool = False) -> str:
    """Go's ``strconv.QuoteRune`` (``QuoteRuneToASCII`` with ``ascii_only``) of one character."""
    if ch == "'":
        return "'\\''"
    if ch == '"':
        return "'\"'"
    inner = quote(ch, ascii_only)[1:-1]
    return "'" + inner + "'"


# --- parsing -----------------------------------------------------------------------------------------

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
    """``strconv.FormatFloat(x, verb, prec, 64)`` for verbs b, e, E, f, F, g, G, x, X; a negative
    ``prec`` asks for the fewest digits that read back as ``x``."""
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "+Inf" if x > 0 else "-Inf"
    if verb in ("x", "X"):
        return _format_hex(x, verb == "X", prec)
    if verb == "b":
        return _format_binary(x)
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


def _format_hex(x: float, upper: bool, prec: int) -> str:
    """The 'x' format of a finite float: hexadecimal mantissa and binary exponent (``0x1.8p+01``)."""
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
    return text.upper() if upper else text


def _format_binary(x: float) -> str:
    """The 'b' format of a finite float: decimal mantissa and binary exponent (``8891907104280307p-56``)."""
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
