"""The templating shortcuts taken on every tick write exactly what the slow way writes.

Alert templates without logic skip the interpreter: every case renders once through
``expand_alert`` (which takes the shortcut when it can) and once through ``render`` over the same
data (always the interpreter), and the two must agree. Float digits are read off ``repr`` instead
of going through ``Decimal``: checked against ``Decimal`` for any float.
"""

from __future__ import annotations

import math
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alerting.templating import ALERT_PREFIX, AlertData, Env, GoMap, Limits, expand_alert, go_float, render
from alerting.templating.strconv import _digits_shortest

LABELS = {"instance": "db-1:9100", "job": "node", "empty": "", "unicode": "ünï ☃", "html": "<b>&'\""}

TEMPLATES = [
    "plain text, no action",
    "",
    "{{ $labels.instance }} at {{ $value }}",
    "{{$labels.job}}{{$labels.instance}}",
    "{{ .Labels.instance }} is {{ .Value }} ({{ .ExternalURL }})",
    "{{ $labels.missing }}|{{ $labels.empty }}|{{ $labels.unicode }}|{{ $labels.html }}",
    "see {{ $externalURL }}/alerts\nline two {{ $value }}",
    "{{- $labels.job -}}  spaced  {{- $value -}}",
    "{{/* a comment */}}{{ $labels.job }}",
    # Anything with logic goes through the interpreter; these check the shortcut declines them.
    "{{ $labels }}",
    '{{ $value | printf "%.2f" }}',
    "{{ humanize $value }}",
    "{{ if gt $value 1.0 }}high{{ else }}low{{ end }}",
    "{{ $x := 1 }}{{ $x }}",
    "{{ $value := 5 }}{{ $value }}",
    '{{ define "x" }}inner{{ end }}{{ $labels.job }}',
    # The shortcut is keyed by text alone; names of defined templates still decide as they did.
    '{{ define "__alert_A" }}clash{{ end }}{{ $labels.job }}',
    '{{ define "__alert_" }}no clash{{ end }}{{ $labels.job }}',
    "{{ .Labels }}",
    "{{ $labels.job.deeper }}",
    "{{ .Missing }}",
    "{{ $externalLabels.region }}",
    "{{ range $k, $v := $labels }}{{ $k }}={{ $v }};{{ end }}",
    '{{ template "nope" }}',
    "{{ $labels.job",
]

VALUES = [0.0, -0.0, 1.0, 2.5, -3.25, 1e21, 1e-7, 123456789.0, math.inf, -math.inf, math.nan]


def interpreted(
    text: str, labels: dict[str, str], value: float, url: str, limits: Limits | None = None
) -> str:
    """What expand_alert has to produce, computed by the interpreter alone."""
    name = "__alert_A"
    data = AlertData(Labels=GoMap(labels), ExternalLabels=GoMap({}), ExternalURL=url, Value=float(value))
    env = Env(external_url=url, path_prefix="/am" if url else "", now=0.0, query=None)
    try:
        return render(ALERT_PREFIX + text, data, name=name, env=env, limits=limits)
    except Exception as exc:  # the error texts differ by design; only the success path is compared
        return f"<error: {type(exc).__name__}>"


@pytest.mark.parametrize("text", TEMPLATES)
@pytest.mark.parametrize("value", VALUES)
def test_alert_template_writes_what_the_interpreter_writes(text: str, value: float) -> None:
    url = "https://am.example/am"
    got = expand_alert(text, labels=LABELS, value=value, external_url=url, alertname="A")
    want = interpreted(text, LABELS, value, url)
    if want.startswith("<error:"):
        assert got.startswith("<error expanding template:")
    else:
        assert got == want


def test_output_over_the_limit_is_the_interpreters_error() -> None:
    limits = Limits(max_output=10)
    got = expand_alert(
        "{{ $labels.instance }} and more", labels=LABELS, value=1.0, alertname="A", limits=limits
    )
    assert got.startswith("<error expanding template: error executing template __alert_A:")
    assert "exceeds the limit of 10" in got


@given(
    labels=st.dictionaries(st.from_regex(r"[a-z_][a-z0-9_]{0,8}", fullmatch=True), st.text(max_size=20)),
    value=st.floats(allow_nan=True, allow_infinity=True),
)
def test_labels_and_values_print_as_the_interpreter_prints_them(labels: dict[str, str], value: float) -> None:
    text = "".join(f"[{{{{ $labels.{k} }}}}]" for k in labels) + " = {{ $value }}"
    got = expand_alert(text, labels=labels, value=value, alertname="A")
    assert got == interpreted(text, labels, value, "")


def decimal_digits(x: float) -> tuple[str, int]:
    """Shortest digits of |x| and the decimal point position, the slow and obvious way."""
    _, digits, exponent = Decimal(repr(abs(x))).normalize().as_tuple()
    assert isinstance(exponent, int)
    return "".join(map(str, digits)), len(digits) + exponent


@given(st.floats(allow_nan=False, allow_infinity=False).filter(lambda x: x != 0))
def test_float_digits_are_the_shortest_round_trip_digits(x: float) -> None:
    assert _digits_shortest(x) == decimal_digits(x)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.0, "0"),
        (1.0, "1"),
        (0.0001, "0.0001"),
        (0.00001, "1e-05"),
        (123456.0, "123456"),
        (1234567.0, "1.234567e+06"),
        (1e21, "1e+21"),
        (-2.5, "-2.5"),
        (5e-324, "5e-324"),
        (math.inf, "+Inf"),
        (math.nan, "NaN"),
    ],
)
def test_value_prints_as_go_prints_a_float64(value: float, text: str) -> None:
    assert go_float(value) == text
