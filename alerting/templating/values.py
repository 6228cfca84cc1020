"""The Go values templates see, modelled in Python, and the allow-list that guards data access.

Go's template semantics depend on static types (``eq 1 1.0`` is an error, a missing key of a
``map[string]string`` is ``""`` but of a ``map[string]interface {}`` is ``<no value>``), so every value
carries a Go type name. Python ``int``/``float``/``str``/``bool`` are Go's ``int``/``float64``/
``string``/``bool``; ``None`` is Go's invalid (nil) value. Anything else must be one of the wrappers
below, or an object whose readable fields and methods are listed explicitly: a template can never
reach a Python attribute that was not put on the list.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar


class GoMap(Mapping[str, Any]):
    """A Go ``map[string]T``: ``elem`` is T's name (``string`` or ``interface {}``)."""

    __slots__ = ("_items", "elem")

    def __init__(self, items: Mapping[str, Any] | None = None, elem: str = "string") -> None:
        self._items = dict(items or {})
        self.elem = elem

    def __getitem__(self, key: str) -> Any:
        return self._items[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"GoMap({self._items!r}, elem={self.elem!r})"

    @property
    def type_name(self) -> str:
        return f"map[string]{self.elem}"

    def zero(self) -> Any:
        """Go's zero value of the element type (missingkey=zero)."""
        return _ZERO.get(self.elem)


_ZERO: dict[str, Any] = {"string": "", "float64": 0.0, "int": 0, "bool": False}


class GoList(list[Any]):
    """A Go slice with a named type (``[]interface {}`` unless told otherwise)."""

    type_name = "[]interface {}"

    def __init__(self, items: Any = (), type_name: str = "[]interface {}") -> None:
        super().__init__(items)
        self.type_name = type_name


class HTML(str):
    """html/template's ``HTML`` (what ``safeHtml`` returns): a string of a distinct named type."""

    __slots__ = ()
    type_name = "template.HTML"


class GoStruct:
    """Base for values that expose Go-style fields and methods through explicit allow-lists.

    ``go_fields`` are readable fields in Go's declaration order (printing ``{{ . }}`` shows them in
    this order); ``go_methods`` may be called from a template, with arguments.
    """

    go_type: ClassVar[str] = "struct"
    go_fields: ClassVar[tuple[str, ...]] = ()
    go_methods: ClassVar[tuple[str, ...]] = ()
    go_pointer: ClassVar[bool] = False  # printed as &{...} / 0xc... like a Go pointer to struct


@dataclasses.dataclass(frozen=True)
class Sample(GoStruct):
    """Prometheus's template ``sample``: what ``query`` returns elements of."""

    Labels: GoMap
    Value: float

    go_type: ClassVar[str] = "*template.sample"
    go_fields: ClassVar[tuple[str, ...]] = ("Labels", "Value")
    go_pointer: ClassVar[bool] = True


class QueryResult(GoList):
    """Prometheus's ``queryResult`` ([]*sample)."""

    def __init__(self, items: Any = ()) -> None:
        super().__init__(items, "template.queryResult")


@dataclasses.dataclass(frozen=True)
class AlertData(GoStruct):
    """The data an alerting rule's templates run on (Prometheus's ``AlertTemplateData``)."""

    Labels: GoMap
    ExternalLabels: GoMap
    ExternalURL: str
    Value: float

    go_type: ClassVar[str] = (
        "struct { Labels map[string]string; ExternalLabels map[string]string; "
        "ExternalURL string; Value float64 }"
    )
    go_fields: ClassVar[tuple[str, ...]] = ("Labels", "ExternalLabels", "ExternalURL", "Value")


_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.UTC)


@dataclasses.dataclass(frozen=True)
class GoTime(GoStruct):
    """A UTC ``time.Time`` (nanoseconds since the epoch), as ``toTime`` returns it (a pointer)."""

    nanos: int

    go_type: ClassVar[str] = "*time.Time"
    go_methods: ClassVar[tuple[str, ...]] = ("Unix", "UnixMilli", "UnixNano", "UTC", "String", "Format")

    def String(self) -> str:  # noqa: N802 - Go's method name
        return _format_time(self.nanos, "2006-01-02 15:04:05.999999999 -0700 MST")

    def Unix(self) -> int:  # noqa: N802
        return self.nanos // 1_000_000_000

    def UnixMilli(self) -> int:  # noqa: N802
        return self.nanos // 1_000_000

    def UnixNano(self) -> int:  # noqa: N802
        return self.nanos

    def UTC(self) -> GoTime:  # noqa: N802
        return self

    def Format(self, layout: str) -> str:  # noqa: N802
        return _format_time(self.nanos, layout)


@dataclasses.dataclass(frozen=True)
class GoDuration(GoStruct):
    """A ``time.Duration`` (nanoseconds), as newer Prometheus's ``toDuration`` returns it."""

    nanos: int

    go_type: ClassVar[str] = "time.Duration"
    go_methods: ClassVar[tuple[str, ...]] = ("String", "Seconds", "Minutes", "Hours", "Milliseconds")

    def String(self) -> str:  # noqa: N802
        return _format_duration(self.nanos)

    def Seconds(self) -> float:  # noqa: N802
        return self.nanos / 1e9

    def Minutes(self) -> float:  # noqa: N802
        return self.nanos / 6e10

    def Hours(self) -> float:  # noqa: N802
        return self.nanos / 3.6e12

    def Milliseconds(self) -> int:  # noqa: N802
        return int(self.nanos / 1_000_000)


def is_stringer(value: Any) -> bool:
    """Go types whose fmt output comes from a String() method."""
    return isinstance(value, GoTime | GoDuration)


def type_name(value: Any) -> str:
    """Go's ``reflect.Type.String()`` of a value."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float64"
    if isinstance(value, complex):
        return "complex128"
    if isinstance(value, HTML):
        return HTML.type_name
    if isinstance(value, str):
        return "string"
    if isinstance(value, GoMap):
        return value.type_name
    if isinstance(value, GoList):
        return value.type_name
    if isinstance(value, GoStruct):
        return value.go_type
    if isinstance(value, Mapping):
        return as_map(value).type_name
    if isinstance(value, list | tuple):
        return "[]interface {}"
    return "struct"


def kind(value: Any) -> str:
    """Go's reflect.Kind family of a value: invalid, bool, int, float, complex, string, map, slice,
    struct or ptr."""
    if value is None:
        return "invalid"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, complex):
        return "complex"
    if isinstance(value, str):
        return "string"
    if isinstance(value, Mapping):
        return "map"
    if isinstance(value, list | tuple):
        return "slice"
    if isinstance(value, GoStruct) and value.go_pointer:
        return "ptr"
    if isinstance(value, GoDuration):
        return "int"
    return "struct"


def as_map(value: Mapping[str, Any]) -> GoMap:
    """A plain dict as a Go map: ``map[string]string`` when every value is a string."""
    if isinstance(value, GoMap):
        return value
    elem = "string" if all(isinstance(v, str) for v in value.values()) else "interface {}"
    return GoMap(value, elem)


def fields_of(value: Any) -> tuple[str, ...]:
    """The fields a template may read on a struct-like value (the allow-list)."""
    if isinstance(value, GoStruct):
        return value.go_fields
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return tuple(f.name for f in dataclasses.fields(value) if not f.name.startswith("_"))
    return ()


# --- Go's time and duration text ---------------------------------------------------------------------

_MONTHS = [
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
]  # fmt: skip
_DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]

# Layout elements of Go's reference time, longest first so "2006" wins over "2".
_LAYOUT_TOKENS = [
    "January", "Monday", "2006", "-07:00:00", "-0700", "-07:00", "Z07:00", "Z0700", "-07",
    "Jan", "Mon", "MST", "002", "__2", "01", "02", "03", "04", "05", "06", "15", "PM", "pm",
    "1", "2", "3", "4", "5", "_2",
]  # fmt: skip


def _split_nanos(nanos: int) -> tuple[_dt.datetime, int]:
    seconds, frac = divmod(nanos, 1_000_000_000)
    return _EPOCH + _dt.timedelta(seconds=seconds), frac


def _format_time(nanos: int, layout: str) -> str:
    """Go's ``time.Time.Format`` for a UTC time (the subset of layout elements Prometheus users use)."""
    when, frac = _split_nanos(nanos)
    out: list[str] = []
    i = 0
    while i < len(layout):
        # Fractional seconds: ".000" (fixed) or ".999" (trailing zeros trimmed), also with ",".
        if layout[i] in ".," and i + 1 < len(layout) and layout[i + 1] in "09":
            digit = layout[i + 1]
            j = i + 1
            while j < len(layout) and layout[j] == digit:
                j += 1
            if j >= len(layout) or not layout[j].isdigit():
                width = j - i - 1
                text = f"{frac:09d}"[:width]
                if digit == "9":
                    text = text.rstrip("0")
                    out.append(layout[i] + text if text else "")
                else:
                    out.append(layout[i] + text)
                i = j
                continue
        for token in _LAYOUT_TOKENS:
            if layout.startswith(token, i):
                out.append(_time_element(token, when))
                i += len(token)
                break
        else:
            out.append(layout[i])
            i += 1
    return "".join(out)


def _time_element(token: str, when: _dt.datetime) -> str:
    hour12 = when.hour % 12 or 12
    return {
        "January": _MONTHS[when.month - 1],
        "Jan": _MONTHS[when.month - 1][:3],
        "Monday": _DAYS[when.weekday()],
        "Mon": _DAYS[when.weekday()][:3],
        "2006": f"{when.year:04d}",
        "06": f"{when.year % 100:02d}",
        "01": f"{when.month:02d}",
        "1": str(when.month),
        "02": f"{when.day:02d}",
        "2": str(when.day),
        "_2": f"{when.day:>2d}",
        "002": f"{when.timetuple().tm_yday:03d}",
        "__2": f"{when.timetuple().tm_yday:>3d}",
        "15": f"{when.hour:02d}",
        "03": f"{hour12:02d}",
        "3": str(hour12),
        "04": f"{when.minute:02d}",
        "4": str(when.minute),
        "05": f"{when.second:02d}",
        "5": str(when.second),
        "PM": "PM" if when.hour >= 12 else "AM",
        "pm": "pm" if when.hour >= 12 else "am",
        "MST": "UTC",
        "-0700": "+0000",
        "-07:00": "+00:00",
        "-07": "+00",
        "-07:00:00": "+00:00:00",
        "Z0700": "Z",
        "Z07:00": "Z",
    }[token]


def _format_duration(nanos: int) -> str:
    """Go's ``time.Duration.String()``: ``1h2m3.5s``, ``1.5ms``, ``0s``."""
    if nanos == 0:
        return "0s"
    sign = "-" if nanos < 0 else ""
    u = abs(nanos)
    if u < 1_000_000_000:
        for unit, size in (("ns", 1), ("µs", 1_000), ("ms", 1_000_000)):
            if u < size * 1000:
                return sign + _frac(u, size) + unit
    hours, rest = divmod(u, 3_600_000_000_000)
    minutes, rest = divmod(rest, 60_000_000_000)
    text = _frac(rest, 1_000_000_000) + "s"
    if hours or minutes:
        text = f"{minutes}m" + text
    if hours:
        text = f"{hours}h" + text
    return sign + text


def _frac(value: int, size: int) -> str:
    whole, frac = divmod(value, size)
    if not frac:
        return str(whole)
    digits = len(str(size)) - 1
    return f"{whole}." + f"{frac:0{digits}d}".rstrip("0")
