"""Unit tables for the template engine: lexer, parser, Go formatting, every function, the data model
and the sandbox. Expected texts are Go's and Prometheus's (the golden test checks the same against a
running Prometheus; these tables pin the edges and what Prometheus 2.42 cannot show)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import pytest

from alerting.errors import TemplateError
from alerting.sources import Sample as SourceSample
from alerting.templating import (
    Env,
    Func,
    GoMap,
    GoStruct,
    Limits,
    check,
    expand_alert,
    go_float,
    parse_error_text,
    render,
    render_for_cli,
)
from alerting.templating.fmt import sprint, sprintf, sprintln
from alerting.templating.funcs import ANY, STRING
from alerting.templating.lexer import T, lex
from alerting.templating.parser import ParseError, parse
from alerting.templating.strconv import parse_float, quote


def alert(text: str, value: float = 1.5, labels: dict[str, str] | None = None, **kwargs: Any) -> str:
    return expand_alert(text, labels=labels or {"instance": "host:9090", "job": "api"}, value=value, **kwargs)


# --- lexer -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "kinds"),
    [
        ("plain", [T.TEXT, T.EOF]),
        ("a{{.X}}b", [T.TEXT, T.LEFT_DELIM, T.FIELD, T.RIGHT_DELIM, T.TEXT, T.EOF]),
        (
            "{{ $x := 1 }}",
            [
                T.LEFT_DELIM,
                T.SPACE,
                T.VARIABLE,
                T.SPACE,
                T.DECLARE,
                T.SPACE,
                T.NUMBER,
                T.SPACE,
                T.RIGHT_DELIM,
                T.EOF,
            ],
        ),
        (
            "{{\"s\" `r` 'c'}}",
            [T.LEFT_DELIM, T.STRING, T.SPACE, T.RAW_STRING, T.SPACE, T.CHAR_CONSTANT, T.RIGHT_DELIM, T.EOF],
        ),
        (
            "{{if true}}{{else}}{{end}}",
            [
                T.LEFT_DELIM,
                T.IF,
                T.SPACE,
                T.BOOL,
                T.RIGHT_DELIM,
                T.LEFT_DELIM,
                T.ELSE,
                T.RIGHT_DELIM,
                T.LEFT_DELIM,
                T.END,
                T.RIGHT_DELIM,
                T.EOF,
            ],
        ),
        (
            "{{ f (g .) | h }}",
            [
                T.LEFT_DELIM,
                T.SPACE,
                T.IDENTIFIER,
                T.SPACE,
                T.LEFT_PAREN,
                T.IDENTIFIER,
                T.SPACE,
                T.DOT,
                T.RIGHT_PAREN,
                T.SPACE,
                T.PIPE,
                T.SPACE,
                T.IDENTIFIER,
                T.SPACE,
                T.RIGHT_DELIM,
                T.EOF,
            ],
        ),
        ("{{/* c */}}x", [T.TEXT, T.EOF]),
        (
            "{{ 1+2i -3 0x1F }}",
            [
                T.LEFT_DELIM,
                T.SPACE,
                T.COMPLEX,
                T.SPACE,
                T.NUMBER,
                T.SPACE,
                T.NUMBER,
                T.SPACE,
                T.RIGHT_DELIM,
                T.EOF,
            ],
        ),
        (
            "{{ $x = nil }}",
            [
                T.LEFT_DELIM,
                T.SPACE,
                T.VARIABLE,
                T.SPACE,
                T.ASSIGN,
                T.SPACE,
                T.NIL,
                T.SPACE,
                T.RIGHT_DELIM,
                T.EOF,
            ],
        ),
        (
            "{{ break }}{{ continue }}",
            [
                T.LEFT_DELIM,
                T.SPACE,
                T.BREAK,
                T.SPACE,
                T.RIGHT_DELIM,
                T.LEFT_DELIM,
                T.SPACE,
                T.CONTINUE,
                T.SPACE,
                T.RIGHT_DELIM,
                T.EOF,
            ],
        ),
        ("{{ @ }}", [T.LEFT_DELIM, T.SPACE, T.CHAR, T.SPACE, T.RIGHT_DELIM, T.EOF]),
        ("{{ .x", [T.LEFT_DELIM, T.SPACE, T.FIELD, T.ERROR]),
        ('{{ "abc', [T.LEFT_DELIM, T.SPACE, T.ERROR]),
    ],
)
def test_lexer_tokens(text: str, kinds: list[T]) -> None:
    assert [tok.kind for tok in lex(text)] == kinds


@pytest.mark.parametrize(
    ("text", "texts"),
    [
        ("a  {{- 1 -}}  b", ["a", "1", "b"]),
        ("a \n\t{{- 1 }} b", ["a", "1", " b"]),
        ("a {{ 1 -}}\n\n b", ["a ", "1", "b"]),
        ("a {{-1}} b", ["a ", "-1", " b"]),  # no space after '-': a negative number, not a trim marker
        ("  {{- /* c */ -}}  x", ["x"]),
    ],
)
def test_trim_markers_remove_adjacent_whitespace(text: str, texts: list[str]) -> None:
    vals = [tok.val for tok in lex(text) if tok.kind in (T.TEXT, T.NUMBER)]
    assert vals == texts


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{{ .x", "unclosed action"),
        ('{{ "abc', "unterminated quoted string"),
        ("{{ `abc", "unterminated raw quoted string"),
        ("{{ 'a", "unterminated character constant"),
        ("{{ 1x }}", 'bad number syntax: "1x"'),
        ("{{ $x:1 }}", "expected :="),
        ("{{ ) }}", "unexpected right paren U+0029 ')'"),
        ("{{ ( }}", "unclosed left paren"),
        ("{{/* x", "unclosed comment"),
        ("{{/* x */ }}", "comment ends before closing delimiter"),
        ("{{ .a\u00a7 }}", "bad character U+00A7 '\u00a7'"),
        ("{{ \u2028 }}", "unrecognized character in action: U+2028"),
    ],
)
def test_lexer_errors(text: str, message: str) -> None:
    assert lex(text)[-1].kind is T.ERROR
    assert lex(text)[-1].val == message


# --- parser ------------------------------------------------------------------------------------------

FUNCS = frozenset({"f", "g", "printf", "len", "eq"})


@pytest.mark.parametrize(
    "text",
    [
        "plain",
        "{{.A.B}}",
        "{{$x := .A}}{{$x}}",
        "{{if .A}}x{{else}}y{{end}}",
        "{{range $i, $e := .L}}{{$i}}{{else}}none{{end}}",
        "{{with .A}}{{.}}{{end}}",
        '{{template "t" .}}',
        "{{f (g .A) 1 2.5 true nil}}",
        '{{.A | printf "%s" | len}}',
        "{{(f .A).B.C}}",
        "{{$.A}}",
    ],
)
def test_parsed_tree_prints_back_as_go_does(text: str) -> None:
    tree = parse("t", text, FUNCS)["t"]
    assert tree.root is not None
    assert tree.root.string() == text


def test_else_if_is_a_nested_if() -> None:
    tree = parse("t", "{{if .A}}a{{else if .B}}b{{else}}c{{end}}", FUNCS)["t"]
    assert tree.root is not None
    assert tree.root.string() == "{{if .A}}a{{else}}{{if .B}}b{{else}}c{{end}}{{end}}"


def test_define_and_block_add_named_templates() -> None:
    trees = parse("main", '{{define "a"}}A{{end}}{{block "b" .}}B{{end}}x', FUNCS)
    assert sorted(trees) == ["a", "b", "main"]


@pytest.mark.parametrize(
    ("text", "message", "line"),
    [
        ("{{ foo }}", 'function "foo" not defined', 1),
        ("{{ $x }}", 'undefined variable "$x"', 1),
        ("a\n{{ if true }}\nb", "unexpected EOF", 3),
        ("{{ end }}", "unexpected {{end}}", 1),
        ("{{ else }}", "unexpected {{else}}", 1),
        ("{{ }}", "missing value for command", 1),
        ("{{ if }}{{ end }}", "missing value for if", 1),
        ("{{ break }}", "{{break}} outside {{range}}", 1),
        ("{{ range .L }}{{ continue 1 }}{{ end }}", 'unexpected "1" in {{continue}}', 1),
        ("{{ .A | 1 }}", "non executable command in pipeline stage 2", 1),
        ('{{ "a".b }}', 'unexpected . after term "\\"a\\""', 1),
        ("{{ $a, $b := 1 }}", "too many declarations in command", 1),
        ("{{ range $a, $b, $c := . }}{{ end }}", "too many declarations in range", 1),
        (
            '{{ define "a" }}x{{ end }}{{ define "a" }}y{{ end }}',
            'template: multiple definition of template "a"',
            1,
        ),
        ("{{ 99999999999999999999 }}", 'integer overflow: "99999999999999999999"', 1),
        ("{{ 1.2.3 }}", 'unexpected ".3" in operand', 1),
        ("{{ template x }}", 'unexpected "x" in template clause', 1),
        ("x\n{{ .A\n", "unclosed action started at t:2", 3),
    ],
)
def test_parse_errors_name_the_problem_and_line(text: str, message: str, line: int) -> None:
    with pytest.raises(ParseError) as info:
        parse("t", text, FUNCS)
    assert info.value.message == message
    assert info.value.line == line


def test_deep_nesting_is_a_parse_error_not_a_crash() -> None:
    with pytest.raises(ParseError, match="max expression depth exceeded"):
        parse("t", "{{ " + "(" * 500 + "1" + ")" * 500 + " }}", FUNCS)


# --- check() and the rule loader's view --------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message", "line", "col"),
    [
        ("{{ foo }}", 'function "foo" not defined', 1, 4),
        ("ok\n  {{ $value | bar }}", 'function "bar" not defined', 2, 15),
        ("{{ $labels.x }} {{ $y }}", 'undefined variable "$y"', 1, 20),
        ("{{ if true }}", "unexpected EOF", 1, 14),
    ],
)
def test_check_reports_go_message_with_line_and_column(text: str, message: str, line: int, col: int) -> None:
    with pytest.raises(TemplateError) as info:
        check(text)
    assert (info.value.message, info.value.line, info.value.col) == (message, line, col)
    assert parse_error_text(info.value, "HighLoad") == f"template: __alert_HighLoad:{line}: {message}"


@pytest.mark.parametrize(
    "text",
    ["", "{{ $value }}", "{{ $labels.job }} {{ $externalLabels.x }} {{ $externalURL }}", "{{ humanize 1 }}"],
)
def test_check_accepts_what_prometheus_accepts(text: str) -> None:
    check(text)


# --- Go formatting -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (15.0, "15"),
        (0.1234, "0.1234"),
        (1e6, "1e+06"),
        (1234567.0, "1.234567e+06"),
        (1e-5, "1e-05"),
        (100000.0, "100000"),
        (0.0001, "0.0001"),
        (-0.0, "-0"),
        (math.nan, "NaN"),
        (math.inf, "+Inf"),
        (-math.inf, "-Inf"),
        (5e-324, "5e-324"),
        (1.7976931348623157e308, "1.7976931348623157e+308"),
    ],
)
def test_go_float_is_gos_percent_v(value: float, text: str) -> None:
    assert go_float(value) == text


@pytest.mark.parametrize(
    ("fmt", "args", "text"),
    [
        ("%s %d %f %.2f %5.1f", ["a", 7, 1.5, 3.14159, 2.25], "a 7 1.500000 3.14   2.2"),
        ("%v %q %g %e %x %%", [1e21, 'a"b', 1e-7, 1234.5678, 255], '1e+21 "a\\"b" 1e-07 1.234568e+03 ff %'),
        ("%.4g|%.4g|%.4g", [1234567.0, 1000.0, 10000.0], "1.235e+06|1000|1e+04"),
        ("%d", [1.5], "%!d(float64=1.5)"),
        ("%s", [3], "%!s(int=3)"),
        ("%d %d", [1], "1 %!d(MISSING)"),
        ("x", [1, "y"], "x%!(EXTRA int=1, string=y)"),
        ("%", [], "%!(NOVERB)"),
        ("%[2]s %[1]s", ["a", "b"], "b a"),
        ("%[3]d", [1], "%!d(BADINDEX)"),
        ("%*d|%-*d|", [4, 7, 3, 8], "   7|8  |"),
        ("%.*f", [2, 3.14159], "3.14"),
        (
            "%05d|%+d|% d|%x|%X|%#x|%o|%#o|%b|%c|%U|%#U",
            [-42, 5, 5, 255, 255, 255, 8, 8, 5, 65, 65, 0x263A],
            "-0042|+5| 5|ff|FF|0xff|10|010|101|A|U+0041|U+263A '☺'",
        ),
        ("%08.3f|%+.1f|% .2f|%-8.2f|", [-3.14159, 2.0, 2.0, 1.5], "-003.142|+2.0| 2.00|1.50    |"),
        ("%6.2e|%E|%G", [12345.678, 1e-10, 1e-10], "1.23e+04|1.000000E-10|1E-10"),
        ("%t|%v|%d", [True, False, True], "true|false|%!d(bool=true)"),
        ("%q|%+q|%#q|%x|% x", ["é\n", "é", "a`b", "hi", "hi"], '"é\\n"|"\\u00e9"|"a`b"|6869|68 69'),
        ("%.2s|%5s|%-5s|", ["hello", "ab", "ab"], "he|   ab|ab   |"),
        (
            "%v|%d|%+v|%#v",
            [{"b": "2", "a": "1"}, {"a": "x"}, {"a": "1"}, {"a": "1"}],
            'map[a:1 b:2]|map[%!d(string=a):%!d(string=x)]|map[a:1]|map[string]string{"a":"1"}',
        ),
        ("%v|%s", [None, None], "<nil>|%!s(<nil>)"),
        ("%T|%T|%T|%T", [1, 1.5, "s", {"a": "b"}], "int|float64|string|map[string]string"),
        ("%5.1f|%05.1f|%x", [math.inf, -math.inf, math.nan], " +Inf| -Inf|NaN"),
        ("%b|%#g|%#x", [0.1234, 1.0, 15.0], "8891907104280307p-56|1.00000|0x1.e000p+03"),
    ],
)
def test_sprintf_follows_go(fmt: str, args: list[Any], text: str) -> None:
    assert sprintf(fmt, [GoMap(a) if isinstance(a, dict) else a for a in args], 10_000) == text


def test_sprint_spaces_only_between_non_strings() -> None:
    assert sprint([1, 2, "a", 3, "b", "c", 4.5], 100) == "1 2a3bc4.5"
    assert sprintln([1, "a"], 100) == "1 a\n"


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1e3", 1000.0),
        ("-1_000.5", -1000.5),
        ("0x1p-2", 0.25),
        ("+Inf", math.inf),
        ("-inf", -math.inf),
        (".5", 0.5),
    ],
)
def test_parse_float_reads_go_syntax(text: str, value: float) -> None:
    assert parse_float(text) == value


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("abc", "invalid syntax"),
        (" 5", "invalid syntax"),
        ("1__0", "invalid syntax"),
        ("1e400", "value out of range"),
        ("", "invalid syntax"),
    ],
)
def test_parse_float_errors_are_gos(text: str, reason: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_float(text)
    assert str(info.value) == f"strconv.ParseFloat: parsing {quote(text)}: {reason}"


# --- Prometheus functions ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "out"),
    [
        # The values Prometheus's documentation gives.
        ("{{ humanize 1234567 }}", "1.235M"),
        ("{{ humanizeDuration 90 }}", "1m 30s"),
        ("{{ humanizePercentage 0.959 }}", "95.9%"),
        ("{{ humanize1024 1048576 }}", "1Mi"),
        # And their edges.
        (
            "{{ humanize 0 }}|{{ humanize 0.001234 }}|{{ humanize -1234 }}|{{ humanize 1e30 }}",
            "0|1.234m|-1.234k|1e+06Y",
        ),
        ('{{ humanize 1e-30 }}|{{ humanize "1e3" }}|{{ humanize 999.95 }}', "1e-06y|1k|1000"),
        ("{{ humanize1024 1023 }}|{{ humanize1024 -2048 }}|{{ humanize1024 0.5 }}", "1023|-2ki|0.5"),
        ("{{ humanizeDuration 0 }}|{{ humanizeDuration 0.5 }}|{{ humanizeDuration 59.999 }}", "0s|500ms|60s"),
        (
            "{{ humanizeDuration 90061.5 }}|{{ humanizeDuration -90 }}|{{ humanizeDuration 1e-9 }}",
            "1d 1h 1m 1s|-1m 30s|1ns",
        ),
        ("{{ humanizeDuration 3600 }}|{{ humanizeDuration 86400 }}", "1h 0m 0s|1d 0h 0m 0s"),
        (
            '{{ humanizePercentage 0 }}|{{ humanizePercentage -0.5 }}|{{ humanizePercentage "0.25" }}',
            "0%|-50%|25%",
        ),
        (
            "{{ humanizeTimestamp 1700000000.123 }}",
            "2023-11-14 22:13:20.122 +0000 UTC",
        ),  # float seconds, truncated to ms
        (
            "{{ humanizeTimestamp 0 }}|{{ humanizeTimestamp -1 }}",
            "1970-01-01 00:00:00 +0000 UTC|1969-12-31 23:59:59 +0000 UTC",
        ),
        ("{{ toTime 1700000000.5 }}", "2023-11-14 22:13:20.5 +0000 UTC"),
        ("{{ (toTime 1700000000).Unix }}", "1700000000"),
        (
            '{{ (toTime 1700000000.25).Format "2006-01-02T15:04:05.000Z07:00 Mon Jan _2" }}',
            "2023-11-14T22:13:20.249Z Tue Nov 14",
        ),
        ('{{ parseDuration "1h30m" }}|{{ parseDuration "500ms" }}|{{ parseDuration "0" }}', "5400|0.5|0"),
        ('{{ title "aa bb CC don\'t x_y" }}', "Aa Bb CC Don'T X_y"),
        ('{{ toUpper "straße" }}|{{ toLower "ÀB" }}', "STRAßE|àb"),
        (
            '{{ stripPort "host:9090" }}|{{ stripPort "[::1]:9090" }}|{{ stripPort "a:b:c" }}',
            "host|::1|a:b:c",
        ),
        (
            '{{ stripDomain "a.b.c:80" }}|{{ stripDomain "10.1.2.3:80" }}'
            '|{{ stripDomain "host.example.com" }}',
            "a:80|10.1.2.3:80|host",
        ),
        (
            '{{ match "^api" "api-1" }}|{{ match "(?i)API" "x api" }}|{{ match "^x" "api" }}',
            "true|true|false",
        ),
        ('{{ reReplaceAll "(?P<h>[^:]+):(\\\\d+)" "${h} port $2" "db:5432" }}', "db port 5432"),
        ('{{ reReplaceAll "x*" "-" "abc" }}|{{ reReplaceAll "a*" "<$0>" "baaac" }}', "-a-b-c-|<>b<aaa>c<>"),
        ('{{ reReplaceAll "(a)" "$1x" "banana" }}|{{ reReplaceAll "(a)" "${1}x|$$" "ba" }}', "bnn|bax|$"),
        (
            '{{ graphLink "up == 0" }}|{{ tableLink "a{b=\\"c\\"}" }}',
            "/graph?g0.expr=up+%3D%3D+0&g0.tab=0|/graph?g0.expr=a%7Bb%3D%22c%22%7D&g0.tab=1",
        ),
        (
            '{{ urlquery "a b&c=d/é~" }}|{{ html "<a href=\\"x\\">&\'" }}|{{ js "it\'s <b>=\\n" }}',
            "a+b%26c%3Dd%2F%C3%A9~|&lt;a href=&#34;x&#34;&gt;&amp;&#39;|it\\'s \\u003Cb\\u003E\\u003D\\u000A",
        ),
        ('{{ safeHtml "<b>" }}|{{ printf "%T" (safeHtml "x") }}', "<b>|template.HTML"),
        ('{{ args 1 "a" 2.5 }}|{{ (args 1).arg3 }}', "map[arg0:1 arg1:a arg2:2.5]|<no value>"),
        # Functions Prometheus added after 2.42, with upstream's current semantics.
        ("{{ toDuration 90.5 }}|{{ toDuration 0.0015 }}|{{ (toDuration 3600).Hours }}", "1m30.5s|1.5ms|1"),
        ('{{ urlQueryEscape "a b/c" }}', "a+b%2Fc"),
    ],
)
def test_prometheus_functions(text: str, out: str) -> None:
    assert alert(text) == out


def test_now_is_the_evaluation_time() -> None:
    assert alert("{{ now }}|{{ now | humanizeTimestamp }}", at=1700000000.5) == (
        "1.7000000005e+09|2023-11-14 22:13:20.5 +0000 UTC"
    )


def test_external_url_and_path_prefix_come_from_the_url() -> None:
    out = alert(
        "{{ externalURL }}|{{ pathPrefix }}|{{ $externalURL }}", external_url="http://p.example:9090/pre"
    )
    assert out == "http://p.example:9090/pre|/pre|http://p.example:9090/pre"


def test_query_family_over_samples() -> None:
    series = {
        "up": [
            SourceSample({"instance": "b", "job": "x"}, 0.0),
            SourceSample({"instance": "a", "job": "x"}, 1.0),
        ],
        "none": [],
    }
    calls: list[str] = []

    def query(expr: str) -> list[SourceSample]:
        calls.append(expr)
        return series[expr]

    text = (
        '{{ range query "up" | sortByLabel "instance" }}{{ .Labels.instance }}={{ .Value }};{{ end }}'
        '|{{ query "up" | first | label "job" }}|{{ query "up" | first | value }}'
        '|{{ with query "none" }}x{{ else }}empty{{ end }}|{{ query "up" | len }}'
    )
    assert alert(text, query=query) == "a=1;b=0;|x|0|empty|2"
    assert calls == ["up", "up", "up", "none", "up"]
    assert "first() called on vector with no elements" in alert('{{ query "none" | first }}', query=query)


def test_query_errors_and_missing_datasource_render_as_errors() -> None:
    from alerting.errors import QueryError

    def failing(expr: str) -> list[Any]:
        raise QueryError("bad_data: parse error")

    assert alert('{{ query "x" }}', query=failing).endswith("error calling query: bad_data: parse error>")
    assert "no datasource" in alert('{{ query "x" }}')


# --- language semantics ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "out"),
    [
        (
            "{{ $value }}|{{ .Value }}|{{ $labels }}|{{ $labels.job }}|[{{ $labels.nope }}]",
            "1.5|1.5|map[instance:host:9090 job:api]|api|[]",
        ),
        ("{{ . }}", "{map[instance:host:9090 job:api] map[]  1.5}"),
        ("{{ if gt $value 1.0 }}hi{{ else if lt $value 0.0 }}neg{{ else }}lo{{ end }}", "hi"),
        ("{{ range $k, $v := $labels }}{{ $k }}={{ $v }},{{ end }}", "instance=host:9090,job=api,"),
        (
            '{{ range $k, $v := $labels }}{{ if eq $k "instance" }}{{ continue }}{{ end }}{{ $k }}{{ end }}',
            "job",
        ),
        ("{{ range $labels }}{{ . }}{{ break }}{{ end }}", "host:9090"),
        ("{{ range $externalLabels }}x{{ else }}none{{ end }}", "none"),
        (
            "{{ with $labels.job }}{{ . }}{{ else }}no{{ end }}"
            "|{{ with $labels.x }}{{ . }}{{ else }}no{{ end }}",
            "api|no",
        ),
        (
            '{{ define "t" }}<{{ . }}>{{ end }}{{ template "t" $labels.job }}'
            '{{ block "b" 2 }}[{{ . }}]{{ end }}',
            "<api>[2]",
        ),
        ("{{ $x := 1 }}{{ if true }}{{ $x = 2 }}{{ end }}{{ $x }}", "2"),
        (
            '{{ and 1 0 "x" }}|{{ or 0 "" "y" }}|{{ not 0 }}|{{ and $labels.nope (index $labels.nope 5) }}',
            "0|y|true|",
        ),
        (
            '{{ len $labels }}|{{ len "héllo" }}|{{ index $labels "job" }}|{{ index "abc" 1 }}'
            '|{{ slice "abcdef" 1 3 }}',
            "2|6|api|98|bc",
        ),
        (
            '{{ eq $labels.job "a" "api" }}|{{ ne 1 2 }}|{{ lt "a" "b" }}|{{ le 2 2 }}|{{ ge 1.5 2.5 }}',
            "true|true|true|true|false",
        ),
        ('{{ print 1 2 "a" }}|{{ printf "%.2f" $value }}|{{ println "x" }}', "1 2a|1.50|x\n"),
        ("{{ 0x1F }}|{{ 1e3 }}|{{ 'a' }}|{{ 1+2i }}|{{ -0.0 }}|{{ 017 }}", "31|1000|97|(1+2i)|-0|15"),
        ('a  {{- "b" -}}  c', "abc"),
        ("{{/* comment */}}x", "x"),
    ],
)
def test_language(text: str, out: str) -> None:
    assert alert(text) == out


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("{{ gt $value 0 }}", "at <gt $value 0>: error calling gt: incompatible types for comparison"),
        ("{{ toUpper $value }}", "at <$value>: wrong type for value; expected string; got float64"),
        (
            "{{ .Foo }}",
            "at <.Foo>: can't evaluate field Foo in type struct { Labels map[string]string; "
            "ExternalLabels map[string]string; ExternalURL string; Value float64 }",
        ),
        ('{{ humanize "x" }}', 'error calling humanize: strconv.ParseFloat: parsing "x": invalid syntax'),
        ('{{ template "nope" }}', 'at <{{template "nope"}}>: template "nope" not defined'),
        ("{{ range $value }}{{ end }}", "range can't iterate over 1.5"),
        ("{{ nil }}", "at <nil>: nil is not a command"),
        ("{{ $value 1 }}", "can't give argument to non-function $value"),
        ("{{ printf 1 }}", "at <1>: expected string; found 1"),
        ("{{ and }}", "wrong number of args for and: want at least 1 got 0"),
        (
            '{{ reReplaceAll "(" "x" "y" }}',
            "error calling reReplaceAll: regexp: Compile(`(`): error parsing regexp: missing closing ): `(`",
        ),
        (
            '{{ match "a**" "x" }}',
            "error calling match: error parsing regexp: invalid nested repetition operator: `**`",
        ),
        ('{{ toTime "NaN" }}', "error calling toTime: value is NaN or Inf"),
        (
            "{{ humanizeTimestamp 1e300 }}",
            "error calling humanizeTimestamp: 1e+300 cannot be represented as a nanoseconds timestamp"
            " since it overflows int64",
        ),
    ],
)
def test_runtime_errors_render_as_prometheus_does(text: str, error: str) -> None:
    out = alert(text, alertname="HighLoad")
    assert out.startswith(
        "<error expanding template: error executing template __alert_HighLoad: template: __alert_HighLoad:1:"
    )
    assert out.endswith(error + ">")


def test_error_position_counts_the_prometheus_prefix_and_lines() -> None:
    assert ":1:115: " in alert("{{ .Foo }}")
    assert ":2:4: " in alert("x\n {{ .Foo }}")  # Go's column: a 0-based byte offset
    assert alert("{{ foo }}", alertname="A") == (
        "<error expanding template: error parsing template __alert_A: "
        'template: __alert_A:1: function "foo" not defined>'
    )


def test_expand_alert_never_raises_even_on_internal_failure() -> None:
    def exploding(expr: str) -> list[Any]:
        raise RuntimeError("boom")

    out = alert('{{ query "x" }}', query=exploding)
    assert out.startswith("<error expanding template: internal error")


def test_render_for_cli_uses_the_alert_data_model() -> None:
    assert (
        render_for_cli("{{ $labels.job }} {{ $value | humanize }}", {"job": "api"}, 1234567.0) == "api 1.235M"
    )


# --- the general data model and the sandbox ----------------------------------------------------------


@dataclass(frozen=True)
class KV(GoStruct):
    pairs: dict[str, str]
    go_type = "template.KV"
    go_methods = ("Names",)

    def Names(self) -> list[str]:  # noqa: N802 - a Go method name, as templates call it
        return sorted(self.pairs)


@dataclass(frozen=True)
class AlertItem:
    Status: str
    Labels: dict[str, str]
    secret: str = field(default="hidden")
    _private: str = "x"

    def Method(self) -> str:  # noqa: N802
        return "not allow-listed"


@dataclass(frozen=True)
class Notification:
    Status: str
    Alerts: list[AlertItem]
    CommonLabels: dict[str, str]
    ExternalURL: str


NOTIFICATION = Notification(
    Status="firing",
    Alerts=[
        AlertItem("firing", {"alertname": "A", "severity": "page"}),
        AlertItem("resolved", {"alertname": "B"}),
    ],
    CommonLabels={"team": "core"},
    ExternalURL="http://am.example",
)


@pytest.mark.parametrize(
    ("text", "out"),
    [
        (
            "{{ .Status }} {{ len .Alerts }} {{ .CommonLabels.team }} {{ .ExternalURL }}",
            "firing 2 core http://am.example",
        ),
        ("{{ range .Alerts }}{{ .Status }}:{{ .Labels.alertname }};{{ end }}", "firing:A;resolved:B;"),
        ("[{{ .CommonLabels.nope }}]", "[]"),
        ("{{ (index .Alerts 0).Labels }}", "map[alertname:A severity:page]"),
    ],
)
def test_render_reads_dataclass_fields_and_dicts(text: str, out: str) -> None:
    assert render(text, NOTIFICATION) == out


def test_render_calls_allow_listed_methods_and_extra_functions() -> None:
    data = {"kv": KV({"b": "2", "a": "1"})}
    funcs = {
        "join": Func("join", lambda _s, items, sep: sep.join(items), (ANY, STRING)),
        "double": lambda x: x * 2,
    }
    assert render('{{ join .kv.Names "," }}|{{ double 21 }}', data, funcs=funcs) == "a,b|42"


@pytest.mark.parametrize(
    "text",
    [
        "{{ .__class__ }}",
        "{{ .Alerts.__len__ }}",
        "{{ (index .Alerts 0).Method }}",
        "{{ (index .Alerts 0)._private }}",
        "{{ .__dict__ }}",
        "{{ .Status.upper }}",
        "{{ (index .Alerts 0).__init__ }}",
    ],
)
def test_templates_cannot_reach_python_attributes(text: str) -> None:
    with pytest.raises(TemplateError, match="can't evaluate field"):
        render(text, NOTIFICATION)


@pytest.mark.parametrize(
    ("text", "limits", "message"),
    [
        (
            "{{ range $i, $e := .L }}{{ range $.L }}{{ end }}{{ end }}",
            Limits(max_iterations=1000),
            "loop iterations",
        ),
        ("{{ range .L }}xxxxxxxxxx{{ end }}", Limits(max_output=500), "output exceeds"),
        ('{{ printf "%0999999d" 1 }}', Limits(max_output=10_000), "exceeds"),
        (
            '{{ define "r" }}{{ template "r" . }}{{ end }}{{ template "r" . }}',
            Limits(),
            "maximum template depth",
        ),
        (
            '{{ $s := "ab" }}{{ range .L }}{{ $s = printf "%s%s" $s $s }}{{ end }}{{ len $s }}',
            Limits(max_output=100_000),
            "exceeds",
        ),
        (
            '{{ reReplaceAll "" "xxxxxxxxxxxxxxxxxxxx" (printf "%0500d" 0) }}',
            Limits(max_output=5_000),
            "exceeds",
        ),
    ],
)
def test_bounds_stop_runaway_templates(text: str, limits: Limits, message: str) -> None:
    with pytest.raises(TemplateError, match=message):
        render(text, {"L": list(range(200))}, limits=limits)


def test_render_parse_error_carries_position() -> None:
    with pytest.raises(TemplateError) as info:
        render("ok\n{{ nope }}", {}, name="mail")
    assert str(info.value) == 'template: mail:2: function "nope" not defined'
    assert (info.value.line, info.value.col) == (2, 4)


def test_render_env_supplies_prometheus_functions() -> None:
    env = Env(external_url="http://x/p", path_prefix="/p", now=10.0)
    assert render("{{ externalURL }} {{ pathPrefix }} {{ now }}", None, env=env) == "http://x/p /p 10"
