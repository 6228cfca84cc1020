"""Prometheus is the oracle: every corpus template, rendered by a real Prometheus for a set of alerts,
must come out of our renderer byte for byte the same.

The corpus (``tests/templating_corpus/templates.yaml``) is loaded as the annotations of one alerting
rule per context (``contexts.yaml``: the sample's labels and value, produced on an empty TSDB by
``label_replace(vector(V), ...)``). Prometheus evaluates them with ``for: 0`` every second; we read the
rendered annotations from ``/api/v1/alerts``. Our side renders with the same labels (read back from
Prometheus by running the rule's expression), the known value, the same external labels and URL,
and ``query`` answered by that same Prometheus. Nothing in the corpus depends on the clock, so no
template is excluded from the byte-for-byte comparison.

Templates that do not parse are judged by ``promtool check rules``: its message for each annotation
must be the one :func:`check` produces.
"""

from __future__ import annotations

import math
import re
import subprocess
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from alerting.errors import TemplateError
from alerting.sources.prometheus import PrometheusSource
from alerting.templating import check, expand_alert, parse_error_text
from tests.support.prometheus import PROMTOOL, PrometheusServer

CORPUS = Path(__file__).parent / "templating_corpus"
TEMPLATES: list[str] = yaml.safe_load((CORPUS / "templates.yaml").read_text())
CONTEXTS: list[dict[str, Any]] = yaml.safe_load((CORPUS / "contexts.yaml").read_text())
PARSE_ERRORS: list[str] = yaml.safe_load((CORPUS / "parse_errors.yaml").read_text())

EXTERNAL_URL = "http://prom.example:9090/prefix"
EXTERNAL_LABELS = {"cluster": "eu-1", "region": "west"}


def _promql_string(text: str) -> str:
    # A double-quoted PromQL string; label_replace's replacement also expands $, so double it.
    body = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")
    return '"' + body.replace("$", "$$") + '"'


def _expr(labels: Mapping[str, str], value: str) -> str:
    expr = f"vector({value})"
    for name, label_value in labels.items():
        expr = f'label_replace({expr}, "{name}", {_promql_string(label_value)}, "", "")'
    return expr


def _alertname(index: int) -> str:
    return f"Ctx{index:02d}"


@dataclass(frozen=True)
class Rendered:
    """What Prometheus rendered for one context, with the sample it rendered it for."""

    labels: Mapping[str, str]
    value: float
    annotations: Mapping[str, str]


def _rule_file(path: Path) -> None:
    rules = []
    for index, context in enumerate(CONTEXTS):
        rules.append(
            {
                "alert": _alertname(index),
                "expr": _expr(context["labels"], context["value"]),
                "for": "0s",
                "labels": {"severity": "page"},
                "annotations": {f"t{n:03d}": text for n, text in enumerate(TEMPLATES)},
            }
        )
    group = {"name": "templating-golden", "interval": "1s", "rules": rules}
    path.write_text(yaml.safe_dump({"groups": [group]}, allow_unicode=True, width=10000))


@pytest.fixture(scope="module")
def prometheus_rendered(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[dict[str, Rendered], Any]]:
    rule_path = tmp_path_factory.mktemp("golden") / "rules.yml"
    _rule_file(rule_path)
    checked = subprocess.run([PROMTOOL, "check", "rules", str(rule_path)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    with PrometheusServer(
        rule_files=[rule_path],
        external_url=EXTERNAL_URL,
        external_labels=EXTERNAL_LABELS,
        log_level="error",  # every failing corpus template would log a warning on every evaluation
    ) as prom:
        names = {_alertname(i) for i in range(len(CONTEXTS))}
        deadline = time.monotonic() + 45
        alerts: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            alerts = prom.get("/api/v1/alerts")["alerts"]
            if {a["labels"]["alertname"] for a in alerts} == names:
                break
            time.sleep(0.2)
        else:
            pytest.fail(
                f"Prometheus did not fire every rule: {[a['labels'] for a in alerts]}\n{prom.log()[-2000:]}"
            )
        source = PrometheusSource("golden", {"url": prom.url})
        rendered: dict[str, Rendered] = {}
        by_name = {a["labels"]["alertname"]: a for a in alerts}
        for index, context in enumerate(CONTEXTS):
            name = _alertname(index)
            # The sample Prometheus rendered for: its labels, as the rule's expression returns them.
            samples = source.query(_expr(context["labels"], context["value"]), time.time())
            assert len(samples) == 1
            rendered[name] = Rendered(
                labels=dict(samples[0].labels),
                value=float(context["value"]),
                annotations=by_name[name]["annotations"],
            )

        def query(expr: str) -> list[Any]:
            return source.query(expr, time.time())

        yield rendered, query
        source.close()


@pytest.mark.parametrize("index", range(len(TEMPLATES)), ids=lambda i: f"t{i:03d}")
def test_renders_as_prometheus_does(index: int, prometheus_rendered: tuple[dict[str, Rendered], Any]) -> None:
    rendered, query = prometheus_rendered
    text = TEMPLATES[index]
    mismatches = []
    for name, alert in rendered.items():
        expected = alert.annotations.get(f"t{index:03d}", "")
        ours = expand_alert(
            text,
            labels=alert.labels,
            value=alert.value,
            external_labels=EXTERNAL_LABELS,
            external_url=EXTERNAL_URL,
            query=query,
            alertname=name,
        )
        if ours != expected:
            shown = "NaN" if math.isnan(alert.value) else alert.value
            mismatches.append(
                f"{name} value={shown} labels={dict(alert.labels)}\n"
                f"  prometheus: {expected!r}\n  ours:       {ours!r}"
            )
    assert not mismatches, f"template {text!r}:\n" + "\n".join(mismatches)


def test_corpus_is_large_and_distinct() -> None:
    assert len(TEMPLATES) >= 300
    assert len(set(TEMPLATES)) == len(TEMPLATES)
    values = {float(c["value"]) for c in CONTEXTS}
    assert {0.0, math.inf, -math.inf} <= values and any(math.isnan(v) for v in values)
    assert any(v < 0 for v in values) and any(0 < abs(v) < 1e-100 for v in values)


def test_parse_errors_read_as_promtool_reports_them(tmp_path: Path) -> None:
    rule_path = tmp_path / "bad.yml"
    rule = {
        "alert": "Bad",
        "expr": "vector(1)",
        "annotations": {f"e{n:03d}": text for n, text in enumerate(PARSE_ERRORS)},
    }
    rule_path.write_text(yaml.safe_dump({"groups": [{"name": "g", "rules": [rule]}]}, allow_unicode=True))
    result = subprocess.run([PROMTOOL, "check", "rules", str(rule_path)], capture_output=True, text=True)
    promtool = {
        match.group(1): match.group(2)
        for match in re.finditer(r'annotation "(e\d{3})": (.*)', result.stdout + result.stderr)
    }
    mismatches = []
    for n, text in enumerate(PARSE_ERRORS):
        key = f"e{n:03d}"
        try:
            check(text, alertname="Bad")
            ours = None
        except TemplateError as exc:
            ours = parse_error_text(exc, "Bad")
        if ours != promtool.get(key):
            mismatches.append(f"{text!r}\n  promtool: {promtool.get(key)!r}\n  ours:     {ours!r}")
    assert not mismatches, "\n".join(mismatches)
