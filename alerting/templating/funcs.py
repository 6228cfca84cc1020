"""Template functions: Go's built-ins (``and``, ``index``, ``printf``, ``eq`` ...) and Prometheus's
(``humanize``, ``reReplaceAll``, ``query`` ...), each declared with its Go signature.

The signature matters: Go checks argument types before calling (``toUpper $value`` fails with
``wrong type for value; expected string; got float64``) and number literals take the parameter's type
(``humanize 1234567`` passes an int, ``printf "%.2f" 1`` passes an int and prints ``%!f(int=1)``).
A function reports a Go error by raising :class:`FuncError`; the evaluator words it as
``error calling NAME: ...``.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote as _url_quote

import re2

from alerting.durations import parse_duration
from alerting.errors import DurationError
from alerting.templating.fmt import go_float, sprint, sprintf, sprintln
from alerting.templating.options import Env, Limits
from alerting.templating.strconv import ParseFloatError, can_backquote, format_float, parse_float, quote
from alerting.templating.values import (
    HTML,
    GoDuration,
    GoMap,
    GoStruct,
    GoTime,
    QueryResult,
    Sample,
    as_map,
    kind,
    type_name,
)

# Go parameter types a function can declare. "reflect.Value" and "interface {}" accept anything.
STRING, FLOAT, INT, BOOL, ANY, VALUE = "string", "float64", "int", "bool", "interface {}", "reflect.Value"
QUERY_RESULT, SAMPLE = "template.queryResult", "*template.sample"


class Execution(Protocol):
    """What a function sees of the execution calling it: its bounds, its environment, and the
    datasource behind ``query`` (which counts against the bounds)."""

    limits: Limits
    env: Env

    def run_query(self, expr: str) -> QueryResult: ...


class FuncError(Exception):
    """An error a template function returns (Go's ``(T, error)``)."""


@dataclass(frozen=True)
class Func:
    """A callable with its Go signature. ``fn(execution, *args)`` gets evaluated, type-checked arguments."""

    name: str
    fn: Callable[..., Any]
    params: tuple[str, ...] = ()
    variadic: str | None = None


def truth(value: Any) -> bool:
    """Go's template truth: false, 0, nil, and empty string/map/slice are false; structs are true."""
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float | complex):
        return value != 0
    if isinstance(value, str | Mapping | list | tuple):
        return len(value) > 0
    if isinstance(value, GoDuration):
        return value.nanos != 0
    return True


# --- comparison (Go's eq/ne/lt/le/gt/ge) -------------------------------------------------------------

_BAD_TYPE = "invalid type for comparison"
_BAD_COMPARISON = "incompatible types for comparison"
_NO_COMPARISON = "missing argument for comparison"


def _basic_kind(value: Any) -> str | None:
    k = kind(value)
    return k if k in ("bool", "int", "float", "complex", "string") else None


def _comparable(value: Any) -> Any:
    if isinstance(value, GoDuration):
        return value.nanos
    return value


def _eq(_state: Execution, arg1: Any, *others: Any) -> bool:
    if not others:
        raise FuncError(_NO_COMPARISON)
    k1 = _basic_kind(arg1)
    for arg in others:
        k2 = _basic_kind(arg)
        if k1 != k2:
            if arg1 is not None and arg is not None:
                raise FuncError(_BAD_COMPARISON)
            truth_ = False
        elif k1 is None:
            if arg1 is None or arg is None:
                truth_ = arg1 is None and arg is None
            elif isinstance(arg1, Mapping | list) or isinstance(arg, Mapping | list):
                shown = sprint([arg], 1 << 20)
                raise FuncError(f"non-comparable type {shown}: {type_name(arg)}")
            else:
                truth_ = arg1 is arg or arg1 == arg
        else:
            truth_ = _comparable(arg1) == _comparable(arg)
        if truth_:
            return True
    return False


def _lt(_state: Execution, arg1: Any, arg2: Any) -> bool:
    k1 = _basic_kind(arg1)
    if k1 is None:
        raise FuncError(_BAD_TYPE)
    k2 = _basic_kind(arg2)
    if k2 is None:
        raise FuncError(_BAD_TYPE)
    if k1 != k2:
        raise FuncError(_BAD_COMPARISON)
    if k1 in ("bool", "complex"):
        raise FuncError(_BAD_TYPE)
    return bool(_comparable(arg1) < _comparable(arg2))


def _le(state: Execution, arg1: Any, arg2: Any) -> bool:
    return _lt(state, arg1, arg2) or _eq(state, arg1, arg2)


# --- Go built-ins ------------------------------------------------------------------------------------


def _not(_state: Execution, value: Any) -> bool:
    return not truth(value)


def _len(_state: Execution, item: Any) -> int:
    if item is None:
        raise FuncError("reflect: call of reflect.Value.Type on zero Value")
    if isinstance(item, str):
        return len(item.encode("utf-8", "surrogatepass"))
    if isinstance(item, Mapping | list | tuple):
        return len(item)
    raise FuncError(f"len of type {type_name(item)}")


def _index_arg(index: Any, cap: int) -> int:
    if index is None:
        raise FuncError("cannot index slice/array with nil")
    if kind(index) != "int" or isinstance(index, GoDuration):
        raise FuncError(f"cannot index slice/array with type {type_name(index)}")
    if index < 0 or index > cap:
        raise FuncError(f"index out of range: {index}")
    return int(index)


def _index(_state: Execution, item: Any, *indexes: Any) -> Any:
    if item is None:
        raise FuncError("index of untyped nil")
    for index in indexes:
        if isinstance(item, str):
            data = item.encode("utf-8", "surrogatepass")
            x = _index_arg(index, len(data))
            if x == len(data):
                raise FuncError("reflect: string index out of range")
            item = data[x]
        elif isinstance(item, list | tuple):
            x = _index_arg(index, len(item))
            if x == len(item):
                raise FuncError("reflect: slice index out of range")
            item = item[x]
        elif isinstance(item, Mapping):
            gomap = as_map(item)
            if index is None:
                raise FuncError("value is nil; should be of type string")
            if not isinstance(index, str) or isinstance(index, HTML):
                raise FuncError(f"value has type {type_name(index)}; should be string")
            item = gomap[index] if index in gomap else gomap.zero()
        elif item is None:
            raise FuncError("index of nil pointer")
        else:
            raise FuncError(f"can't index item of type {type_name(item)}")
    return item


def _slice(_state: Execution, item: Any, *indexes: Any) -> Any:
    if item is None:
        raise FuncError("slice of untyped nil")
    if len(indexes) > 3:
        raise FuncError(f"too many slice indexes: {len(indexes)}")
    data: bytes | Sequence[Any]
    if isinstance(item, str):
        if len(indexes) == 3:
            raise FuncError("cannot 3-index slice a string")
        data = item.encode("utf-8", "surrogatepass")
        cap = len(data)
    elif isinstance(item, list | tuple):
        data = item
        cap = len(item)
    else:
        raise FuncError(f"can't slice item of type {type_name(item)}")
    idx = [0, len(data), 0]
    for i, index in enumerate(indexes):
        idx[i] = _index_arg(index, cap)
    if idx[0] > idx[1]:
        raise FuncError(f"invalid slice index: {idx[0]} > {idx[1]}")
    if len(indexes) == 3 and idx[1] > idx[2]:
        raise FuncError(f"invalid slice index: {idx[1]} > {idx[2]}")
    part = data[idx[0] : idx[1]]
    if isinstance(part, bytes):
        return part.decode("utf-8", "replace")
    return type(item)(part) if isinstance(item, QueryResult) else list(part)


def _eval_args(state: Execution, args: Sequence[Any]) -> str:
    if len(args) == 1 and isinstance(args[0], str):
        return str(args[0])
    return sprint(args, state.limits.max_output)


def _html_escape(text: str) -> str:
    """Go's ``template.HTMLEscapeString``."""
    return (
        text.replace("&", "&amp;")
        .replace("'", "&#39;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&#34;")
        .replace("\x00", "\ufffd")
    )


_JS = {"\\": "\\\\", "'": "\\'", '"': '\\"', "<": "\\u003C", ">": "\\u003E", "&": "\\u0026", "=": "\\u003D"}


def _js_escape(text: str) -> str:
    """Go's ``template.JSEscapeString``."""
    out = []
    for ch in text:
        if ch in _JS:
            out.append(_JS[ch])
        elif ch < " ":
            out.append(f"\\u00{ord(ch):02X}")
        elif ord(ch) >= 0x80 and not ch.isprintable():
            out.append(f"\\u{ord(ch):04X}")
        else:
            out.append(ch)
    return "".join(out)


def _query_escape(text: str) -> str:
    """Go's ``url.QueryEscape``: space becomes ``+``; only ``A-Za-z0-9-_.~`` stay as they are."""
    return _url_quote(text, safe=" ").replace(" ", "+").replace("%7E", "~")


def _print(state: Execution, *args: Any) -> str:
    return sprint(args, state.limits.max_output)


def _printf(state: Execution, fmt: str, *args: Any) -> str:
    return sprintf(fmt, args, state.limits.max_output)


def _println(state: Execution, *args: Any) -> str:
    return sprintln(args, state.limits.max_output)


def _call(_state: Execution, fn: Any, *_args: Any) -> Any:
    if fn is None:
        raise FuncError("call of nil")
    raise FuncError(f"non-function of type {type_name(fn)}")


def _go_builtins() -> dict[str, Func]:
    table = [
        Func("and", lambda s, *a: a, (VALUE,), VALUE),  # evaluated lazily by the executor
        Func("or", lambda s, *a: a, (VALUE,), VALUE),
        Func("not", _not, (VALUE,)),
        Func("call", _call, (VALUE,), VALUE),
        Func("html", lambda s, *a: _html_escape(_eval_args(s, a)), (), ANY),
        Func("js", lambda s, *a: _js_escape(_eval_args(s, a)), (), ANY),
        Func("urlquery", lambda s, *a: _query_escape(_eval_args(s, a)), (), ANY),
        Func("index", _index, (VALUE,), VALUE),
        Func("slice", _slice, (VALUE,), VALUE),
        Func("len", _len, (VALUE,)),
        Func("print", _print, (), ANY),
        Func("printf", _printf, (STRING,), ANY),
        Func("println", _println, (), ANY),
        Func("eq", _eq, (VALUE,), VALUE),
        Func("ne", lambda s, a, b: not _eq(s, a, b), (VALUE, VALUE)),
        Func("lt", _lt, (VALUE, VALUE)),
        Func("le", _le, (VALUE, VALUE)),
        Func("gt", lambda s, a, b: not _le(s, a, b), (VALUE, VALUE)),
        Func("ge", lambda s, a, b: not _lt(s, a, b), (VALUE, VALUE)),
    ]
    return {f.name: f for f in table}


# --- Prometheus's functions --------------------------------------------------------------------------


def _to_float(value: Any) -> float:
    """Prometheus's convertToFloat: numbers, and strings as ``strconv.ParseFloat`` reads them."""
    if isinstance(value, float):
        return value
    if isinstance(value, str) and not isinstance(value, HTML):
        try:
            return parse_float(value)
        except ParseFloatError as exc:
            raise FuncError(str(exc)) from None
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    raise FuncError(f"can't convert {type_name(value)} to float")


def _g4(value: float) -> str:
    return format_float(value, "g", 4)


_SI_LARGE = ("k", "M", "G", "T", "P", "E", "Z", "Y")
_IEC_LARGE = ("ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi")
_SI_SMALL = ("m", "u", "n", "p", "f", "a", "z", "y")


def _scale_large(v: float, base: int, prefixes: tuple[str, ...]) -> tuple[float, str]:
    """Divide by ``base`` while the value is at least ``base``: the scaled value and its prefix."""
    prefix = ""
    for p in prefixes:
        if abs(v) < base:
            break
        prefix = p
        v /= base
    return v, prefix


def _scale_small(v: float) -> tuple[float, str]:
    """Multiply by 1000 while the value is below 1: the scaled value and its SI prefix."""
    prefix = ""
    for p in _SI_SMALL:
        if abs(v) >= 1:
            break
        prefix = p
        v *= 1000
    return v, prefix


def _humanize(_state: Execution, value: Any) -> str:
    v = _to_float(value)
    if v == 0 or math.isnan(v) or math.isinf(v):
        return _g4(v)
    if abs(v) >= 1:
        v, prefix = _scale_large(v, 1000, _SI_LARGE)
    else:
        v, prefix = _scale_small(v)
    return _g4(v) + prefix


def _humanize1024(_state: Execution, value: Any) -> str:
    v = _to_float(value)
    if abs(v) <= 1 or math.isnan(v) or math.isinf(v):
        return _g4(v)
    v, prefix = _scale_large(v, 1024, _IEC_LARGE)
    return _g4(v) + prefix


def _go_int64(v: float) -> int:
    # Go's float64 -> int64 conversion on amd64: truncation, and MinInt64 when out of range or NaN.
    if math.isnan(v) or not -(2.0**63) <= v < 2.0**63:
        return -(2**63)
    return int(v)


def _quo(a: int, b: int) -> int:
    """Go's truncated integer division."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


def _rem(a: int, b: int) -> int:
    return a - b * _quo(a, b)


def _humanize_duration(_state: Execution, value: Any) -> str:
    v = _to_float(value)
    if math.isnan(v) or math.isinf(v):
        return _g4(v)
    if v == 0:
        return _g4(v) + "s"
    if abs(v) >= 1:
        sign = ""
        if v < 0:
            sign, v = "-", -v
        n = _go_int64(v)
        seconds = _rem(n, 60)
        minutes = _rem(_quo(n, 60), 60)
        hours = _rem(_quo(_quo(n, 60), 60), 24)
        days = _quo(_quo(_quo(n, 60), 60), 24)
        if days != 0:
            return f"{sign}{days}d {hours}h {minutes}m {seconds}s"
        if hours != 0:
            return f"{sign}{hours}h {minutes}m {seconds}s"
        if minutes != 0:
            return f"{sign}{minutes}m {seconds}s"
        return f"{sign}{_g4(v)}s"
    v, prefix = _scale_small(v)
    return f"{_g4(v)}{prefix}s"


def _humanize_percentage(_state: Execution, value: Any) -> str:
    return _g4(_to_float(value) * 100) + "%"


class _NaNOrInf(FuncError):
    def __init__(self) -> None:
        super().__init__("value is NaN or Inf")


def _seconds_to_nanos(v: float, what: str) -> int:
    """Seconds as Go's int64 nanoseconds; NaN, Inf and values out of int64's range are errors."""
    if math.isnan(v) or math.isinf(v):
        raise _NaNOrInf()
    nanos = v * 1e9
    if nanos > 9.223372036854775807e18 or nanos < -9.223372036854775808e18:
        raise FuncError(
            f"{go_float(v)} cannot be represented as a nanoseconds {what} since it overflows int64"
        )
    return _go_int64(nanos)


def _float_to_time(v: float) -> GoTime:
    """Prometheus's floatToTime: seconds to a UTC time, truncated to milliseconds as Prometheus does."""
    millis = _quo(_seconds_to_nanos(v, "timestamp"), 1_000_000)
    return GoTime(millis * 1_000_000)


def _humanize_timestamp(_state: Execution, value: Any) -> str:
    v = _to_float(value)
    try:
        when = _float_to_time(v)
    except _NaNOrInf:
        return _g4(v)
    return when.String()


def _to_time(_state: Execution, value: Any) -> GoTime:
    return _float_to_time(_to_float(value))


def _to_duration(_state: Execution, value: Any) -> GoDuration:
    return GoDuration(_seconds_to_nanos(_to_float(value), "duration"))


def _title(_state: Execution, text: str) -> str:
    # Go's strings.Title: upper-case (title-case) each rune that follows a separator.
    out = []
    prev = " "
    for ch in text:
        out.append(_to_title(ch) if _is_separator(prev) else ch)
        prev = ch
    return "".join(out)


def _is_separator(ch: str) -> bool:
    if ch.isascii():
        return not (ch.isalnum() or ch == "_")
    if ch.isalpha() or ch.isdigit():
        return False
    return ch.isspace()


def _single(mapped: str, original: str) -> str:
    # Go maps rune to rune; where Python's full case mapping yields several runes, Go keeps the rune.
    return mapped if len(mapped) == 1 else original


def _to_title(ch: str) -> str:
    return _single(ch.title(), ch)


def _to_upper(_state: Execution, text: str) -> str:
    if text.isascii():
        return text.upper()
    return "".join(_single(ch.upper(), ch) for ch in text)


def _to_lower(_state: Execution, text: str) -> str:
    if text.isascii():
        return text.lower()
    return "".join("i" if ch == "\u0130" else _single(ch.lower(), ch) for ch in text)


def _split_host_port(hostport: str) -> tuple[str, str] | None:
    """Go's ``net.SplitHostPort``; None where Go returns an error."""
    i = hostport.rfind(":")
    if i < 0:
        return None
    j = k = 0
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0 or end + 1 == len(hostport) or end + 1 != i:
            return None
        host = hostport[1:end]
        j, k = 1, end + 1
    else:
        host = hostport[:i]
        if ":" in host:
            return None
    if "[" in hostport[j:] or "]" in hostport[k:]:
        return None
    return host, hostport[i + 1 :]


def _is_ip(host: str) -> bool:
    # Go's net.ParseIP: dotted IPv4 (no leading zeros) or IPv6 without a zone.
    if "%" in host:
        return False
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _strip_port(_state: Execution, hostport: str) -> str:
    split = _split_host_port(hostport)
    return hostport if split is None else split[0]


def _strip_domain(_state: Execution, hostport: str) -> str:
    split = _split_host_port(hostport)
    host, port = (hostport, "") if split is None else split
    if _is_ip(host):
        return hostport
    host = host.split(".")[0]
    if port:
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return host


# --- regular expressions (RE2, worded as Go's regexp package words its errors) ----------------------

_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False

_RE_ERRORS = [
    ("missing ): ", "missing closing ): "),
    ("missing ]: ", "missing closing ]: "),
    ("bad repetition operator: ", "invalid nested repetition operator: "),
    ("no argument for repetition operator: ", "missing argument to repetition operator: "),
    ("invalid escape sequence: ", "invalid escape sequence: "),
    ("invalid perl operator: ", "invalid or unsupported Perl syntax: "),
    ("invalid repetition size: ", "invalid repeat count: "),
    ("unexpected ): ", "unexpected ): "),
    ("invalid character class range: ", "invalid character class range: "),
    ("invalid character class: ", "invalid character class: "),
    ("invalid named capture group: ", "invalid named capture: "),
    ("duplicate capture group name: ", "duplicate capture group name: "),
    ("invalid UTF-8: ", "invalid UTF-8: "),
]

_CACHE: dict[str, Any] = {}


def _compile_regexp(pattern: str) -> Any:
    """Compile with RE2; a bad pattern raises FuncError with Go's ``error parsing regexp`` text."""
    cached = _CACHE.get(pattern)
    if cached is not None:
        return cached
    try:
        compiled = re2.compile(pattern, _RE2_OPTIONS)
    except re2.error as exc:
        raw = exc.args[0] if exc.args else b""
        message = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
        raise FuncError("error parsing regexp: " + _go_regexp_error(message)) from None
    if len(_CACHE) > 512:
        _CACHE.clear()
    _CACHE[pattern] = compiled
    return compiled


def _go_regexp_error(message: str) -> str:
    if message.startswith("trailing \\"):
        return "trailing backslash at end of expression: ``"
    for theirs, ours in _RE_ERRORS:
        if message.startswith(theirs):
            return ours + "`" + message[len(theirs) :] + "`"
    return message


def _match(_state: Execution, pattern: str, text: str) -> bool:
    return _compile_regexp(pattern).search(text) is not None


def _go_quote_pattern(pattern: str) -> str:
    return "`" + pattern + "`" if can_backquote(pattern) else quote(pattern)


def _re_replace_all(state: Execution, pattern: str, repl: str, text: str) -> str:
    try:
        regexp = _compile_regexp(pattern)
    except FuncError as exc:
        # regexp.MustCompile panics; the template engine reports the panic's text.
        raise FuncError(f"regexp: Compile({_go_quote_pattern(pattern)}): {exc}") from None
    out: list[str] = []
    size = 0
    last_end = 0
    search = 0
    names = {index: name for name, index in regexp.groupindex.items()}
    while search <= len(text):
        match = regexp.search(text, search)
        if match is None:
            break
        start, end = match.span()
        out.append(text[last_end:start])
        if end > last_end or start == 0:
            out.append(_expand(repl, match, names, regexp.groups))
        last_end = end
        search = end if end > search else search + 1
        size += end - start + len(out[-1])
        if size > state.limits.max_output:
            raise FuncError(f"result exceeds {state.limits.max_output} characters")
    out.append(text[last_end:])
    result = "".join(out)
    if len(result) > state.limits.max_output:
        raise FuncError(f"result exceeds {state.limits.max_output} characters")
    return result


def _extract(template: str) -> tuple[str, int, str] | None:
    """Go's regexp ``extract``: a ``$name``/``${name}`` reference at the start of ``template``."""
    brace = template.startswith("{")
    body = template[1:] if brace else template
    i = 0
    while i < len(body) and (body[i].isalpha() or body[i].isdigit() or body[i] == "_"):
        i += 1
    if i == 0:
        return None
    name = body[:i]
    if brace:
        if i >= len(body) or body[i] != "}":
            return None
        i += 1
    num = -1
    if name.isascii() and name.isdigit() and len(name) <= 8 and not (name[0] == "0" and len(name) > 1):
        num = int(name)
    return name, num, body[i:]


def _expand(template: str, match: Any, names: Mapping[int, str], groups: int) -> str:
    out: list[str] = []
    while template:
        before, dollar, after = template.partition("$")
        if not dollar:
            break
        out.append(before)
        template = after
        if template.startswith("$"):
            out.append("$")
            template = template[1:]
            continue
        ref = _extract(template)
        if ref is None:
            out.append("$")
            continue
        name, num, template = ref
        if num >= 0:
            if num <= groups and match.group(num) is not None:
                out.append(match.group(num))
        else:
            for index, group_name in names.items():
                if group_name == name and match.group(index) is not None:
                    out.append(match.group(index))
                    break
    out.append(template)
    return "".join(out)


# --- query family ------------------------------------------------------------------------------------


def _query(state: Execution, expr: str) -> QueryResult:
    return state.run_query(expr)


def _first(_state: Execution, result: QueryResult) -> Sample | None:
    if result:
        return result[0]
    raise FuncError("first() called on vector with no elements")


def _need_sample(sample: Sample | None) -> Sample:
    if sample is None:
        raise FuncError("runtime error: invalid memory address or nil pointer dereference")
    return sample


def _label(_state: Execution, name: str, sample: Sample | None) -> str:
    return str(_need_sample(sample).Labels.get(name, ""))


def _value(_state: Execution, sample: Sample | None) -> float:
    return _need_sample(sample).Value


def _strvalue(_state: Execution, sample: Sample | None) -> str:
    return str(_need_sample(sample).Labels.get("__value__", ""))


def _sort_by_label(_state: Execution, name: str, result: QueryResult | None) -> QueryResult:
    items = list(result or [])
    items.sort(key=lambda s: s.Labels.get(name, ""))
    return QueryResult(items)


def _args(_state: Execution, *values: Any) -> GoMap:
    return GoMap({f"arg{i}": v for i, v in enumerate(values)}, elem="interface {}")


def _graph_link(expr: str) -> str:
    return f"/graph?g0.expr={_query_escape(expr)}&g0.tab=0"


def _table_link(expr: str) -> str:
    return f"/graph?g0.expr={_query_escape(expr)}&g0.tab=1"


def _parse_duration(_state: Execution, text: str) -> float:
    if not text:
        raise FuncError("empty duration string")
    try:
        return parse_duration(text)
    except DurationError as exc:
        raise FuncError(str(exc)) from None


def _prometheus_funcs() -> dict[str, Func]:
    table = [
        Func("query", _query, (STRING,)),
        Func("first", _first, (QUERY_RESULT,)),
        Func("label", _label, (STRING, SAMPLE)),
        Func("value", _value, (SAMPLE,)),
        Func("strvalue", _strvalue, (SAMPLE,)),
        Func("args", _args, (), ANY),
        Func("reReplaceAll", _re_replace_all, (STRING, STRING, STRING)),
        Func("safeHtml", lambda s, text: HTML(text), (STRING,)),
        Func("match", _match, (STRING, STRING)),
        Func("title", _title, (STRING,)),
        Func("toUpper", _to_upper, (STRING,)),
        Func("toLower", _to_lower, (STRING,)),
        Func("graphLink", lambda s, expr: _graph_link(expr), (STRING,)),
        Func("tableLink", lambda s, expr: _table_link(expr), (STRING,)),
        Func("sortByLabel", _sort_by_label, (STRING, QUERY_RESULT)),
        Func("stripPort", _strip_port, (STRING,)),
        Func("stripDomain", _strip_domain, (STRING,)),
        Func("humanize", _humanize, (ANY,)),
        Func("humanize1024", _humanize1024, (ANY,)),
        Func("humanizeDuration", _humanize_duration, (ANY,)),
        Func("humanizePercentage", _humanize_percentage, (ANY,)),
        Func("humanizeTimestamp", _humanize_timestamp, (ANY,)),
        Func("toTime", _to_time, (ANY,)),
        Func("pathPrefix", lambda s: s.env.path_prefix),
        Func("externalURL", lambda s: s.env.external_url),
        Func("parseDuration", _parse_duration, (STRING,)),
        # Added to Prometheus after 2.42; same semantics as upstream's current release.
        Func("toDuration", _to_duration, (ANY,)),
        Func("now", lambda s: s.env.now),
        Func("urlQueryEscape", lambda s, text: _query_escape(text), (STRING,)),
    ]
    return {f.name: f for f in table}


_BUILTINS: dict[str, Func] = _go_builtins()
_PROMETHEUS: dict[str, Func] = _prometheus_funcs()
DEFAULT_FUNCS: dict[str, Func] = {**_BUILTINS, **_PROMETHEUS}


def method_func(owner: GoStruct, name: str) -> Func | None:
    """An allow-listed method of a value, as a Func with its Go signature."""
    # A value type may declare its methods' parameter types (``go_signatures``); Go's
    # time.Format is the one built in.
    signatures: dict[str, tuple[str, ...]] = {"Format": (STRING,), **getattr(owner, "go_signatures", {})}
    if name not in owner.go_methods:
        return None
    bound = getattr(type(owner), name)
    return Func(name, lambda s, *a: bound(owner, *a), signatures.get(name, ()))


def query_samples(samples: Sequence[Any]) -> QueryResult:
    """Datasource samples (objects with ``labels`` and ``value``) as template samples."""
    return QueryResult(Sample(GoMap(dict(s.labels)), float(s.value)) for s in samples)
