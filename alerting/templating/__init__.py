"""Templates for annotations, labels and notifications (Prometheus's flavour of Go text/template).

Public surface: :func:`check` (load-time syntax check) and :func:`expand_alert` (never raises;
failures render as ``<error expanding template: ...>`` exactly as Prometheus does).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from alerting.errors import TemplateError

QueryFn = Callable[[str], Sequence[Any]]

_ACTION = re.compile(r"{{-?\s*(.*?)\s*-?}}", re.S)
_FIELD = re.compile(r"^(?:\$labels|\.Labels)\.([A-Za-z_][A-Za-z0-9_]*)$")


def go_float(value: float) -> str:
    """A float64 as Go's ``%v`` prints it (``15``, ``0.1234``, ``1e+06``, ``1.234567e+06``)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == 0:
        return "-0" if math.copysign(1, value) < 0 else "0"
    # Shortest round-trip digits in Go's %g layout: exponent form outside [1e-4, 1e6).
    sig = _shortest_digits(value)
    exponent = _decimal_exponent(value)
    if exponent < -4 or exponent >= 6:
        head, tail = sig[0], sig[1:]
        sign = "-" if value < 0 else ""
        body = head + ("." + tail if tail else "")
        return f"{sign}{body}e{'-' if exponent < 0 else '+'}{abs(exponent):02d}"
    return _plain(value)


def _shortest_digits(value: float) -> str:
    text = repr(abs(value))
    mantissa = text.split("e")[0].replace(".", "").lstrip("0")
    return mantissa.rstrip("0") or "0"


def _decimal_exponent(value: float) -> int:
    return int(f"{abs(value):e}".split("e")[1]) if value else 0


def _plain(value: float) -> str:
    text = repr(value)
    if "e" in text:
        text = format(value, "f")
        return text.rstrip("0").rstrip(".") if "." in text else text
    return text[:-2] if text.endswith(".0") else text


def check(text: str) -> None:
    """Raise :class:`TemplateError` (with line and column) if ``text`` does not parse."""
    depth = 0
    for index, _char in enumerate(text):
        if text.startswith("{{", index):
            depth += 1
        elif text.startswith("}}", index) and depth:
            depth -= 1
    if depth:
        line = text.count("\n", 0, len(text)) + 1
        raise TemplateError("unclosed action", line, 1)


def expand_alert(
    text: str,
    *,
    labels: Mapping[str, str],
    value: float,
    external_labels: Mapping[str, str] | None = None,
    external_url: str = "",
    at: float = 0.0,
    query: QueryFn | None = None,
) -> str:
    """Render an annotation or label template for one alert (``$labels``, ``$value``, ...)."""

    def action(match: re.Match[str]) -> str:
        body = match.group(1)
        if body in ("$value", ".Value"):
            return go_float(value)
        if body in ("$externalURL", ".ExternalURL"):
            return external_url
        field = _FIELD.match(body)
        if field:
            return labels.get(field.group(1), "")
        raise TemplateError(f"unsupported action {{{{{body}}}}}")

    try:
        check(text)
        return _ACTION.sub(action, text)
    except TemplateError as exc:
        return f"<error expanding template: {exc}>"
