"""Prometheus judges our semantics: each scenario's series are written once and used twice.

Once backfilled into a real Prometheus that ``alerting backtest`` queries, and once as
``input_series`` of a ``promtool test rules`` file whose ``exp_alerts`` are what our backtest
reported at every minute. ``promtool test rules`` passing means Prometheus, evaluating the same
rules over the same data, has exactly the firing alerts (labels and annotations) we computed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

from tests.support.prometheus import PROMTOOL, PrometheusServer, openmetrics, series_key

T0 = 1767225600  # 2026-01-01T00:00:00Z: minute 0 of every scenario
MINUTES = 24

Values = list[float | None]  # one value per minute; None = no sample that minute


@dataclass(frozen=True)
class Scenario:
    name: str
    rules: list[dict]
    series: list[tuple[str, dict[str, str], Values]]


def ramp(*spans: tuple[int, float | None]) -> Values:
    """Build per-minute values from (count, value) spans."""
    out: Values = []
    for count, value in spans:
        out.extend([value] * count)
    return out + [None] * (MINUTES - len(out))


SCENARIOS = [
    Scenario(
        "for_elapses",
        [
            {
                "alert": "ForElapses",
                "expr": "for_elapses > 0",
                "for": "3m",
                "annotations": {"summary": "value {{ $value }}"},
            }
        ],
        [("for_elapses", {"job": "api"}, ramp((2, 0), (8, 1), (14, 0)))],
    ),
    Scenario(
        "for_zero",
        [{"alert": "ForZero", "expr": "for_zero > 5"}],
        [("for_zero", {"job": "api"}, ramp((3, 1), (4, 9), (17, 1)))],
    ),
    Scenario(
        "keep_firing_for",
        [{"alert": "KeepFiring", "expr": "keep_firing > 0", "for": "1m", "keep_firing_for": "3m"}],
        [("keep_firing", {"job": "api"}, ramp((1, 0), (4, 1), (2, 0), (1, 1), (16, 0)))],
    ),
    Scenario(
        "flapping",
        [
            {"alert": "FlapSlow", "expr": "flapping > 0", "for": "2m"},
            {"alert": "FlapFast", "expr": "flapping > 0"},
        ],
        [("flapping", {"job": "api"}, [float(i % 2) for i in range(MINUTES)])],
    ),
    Scenario(
        "several_series",
        [
            {
                "alert": "SeveralSeries",
                "expr": "several > 10",
                "for": "2m",
                "annotations": {"summary": "{{ $labels.instance }} at {{ $value }}"},
            }
        ],
        [
            ("several", {"instance": "a:9100"}, ramp((2, 0), (10, 20), (12, 0))),
            ("several", {"instance": "b:9100"}, ramp((5, 0), (3, 30), (16, 0))),
            ("several", {"instance": "c:9100"}, ramp((24, 50))),
        ],
    ),
    Scenario(
        "rule_labels_override",
        [
            {
                "alert": "RuleLabels",
                "expr": "rule_labels > 0",
                "labels": {"severity": "critical", "team": "core"},
            }
        ],
        [("rule_labels", {"severity": "low", "job": "db"}, ramp((3, 0), (6, 1), (15, 0)))],
    ),
    Scenario(
        "templated_labels",
        [
            {
                "alert": "TemplatedLabels",
                "expr": "templated > 0",
                "for": "1m",
                "labels": {"target": "{{ $labels.instance }}", "owner": "{{ $labels.team }}"},
                "annotations": {
                    "description": "{{ $labels.instance }} is at {{ $value }} ({{ $labels.team }})"
                },
            }
        ],
        [
            ("templated", {"instance": "h1:80", "team": "web"}, ramp((2, 0), (8, 2.5), (14, 0))),
            ("templated", {"instance": "h2:80"}, ramp((4, 0), (6, 1e6), (14, 0))),
        ],
    ),
    Scenario(
        "scalar_result",
        [
            {
                "alert": "ScalarResult",
                "expr": "scalar(scalar_src) * 2",
                "for": "2m",
                "annotations": {"summary": "v={{ $value }}"},
            }
        ],
        [("scalar_src", {"job": "x"}, ramp((24, 0.25)))],
    ),
    Scenario(
        "series_disappears",
        [{"alert": "Disappears", "expr": "disappears > 0"}],
        [("disappears", {"job": "api"}, ramp((6, 1)))],
    ),
    Scenario(
        "refire_after_resolve",
        [{"alert": "Refire", "expr": "refire > 0", "for": "1m"}],
        [("refire", {"job": "api"}, ramp((3, 1), (3, 0), (4, 1), (14, 0)))],
    ),
    Scenario(
        "annotation_refresh",
        [
            {
                "alert": "Refresh",
                "expr": "refresh",
                "for": "0s",
                "annotations": {"summary": "now {{ $value }}"},
            }
        ],
        [("refresh", {"job": "api"}, [float(i * 1.5) for i in range(12)] + [None] * 12)],
    ),
    Scenario(
        "vanishing_value_label",
        [{"alert": "Vanishing", "expr": "vanishing > 0", "labels": {"zone": "{{ $labels.zone }}"}}],
        [
            ("vanishing", {"zone": "", "job": "a"}, ramp((5, 1))),
            ("vanishing", {"zone": "eu", "job": "b"}, ramp((5, 1))),
        ],
    ),
]


def _om() -> str:
    series = []
    for scenario in SCENARIOS:
        for name, labels, values in scenario.series:
            labels = {k: v for k, v in labels.items() if v}
            points = [(T0 + 60 * i, v) for i, v in enumerate(values) if v is not None]
            series.append((name, labels, points))
    return openmetrics(series)


def _promtool_values(values: Values) -> str:
    return " ".join("_" if v is None else repr(v) for v in values)


def test_backtest_matches_prometheus_own_rule_evaluation(tmp_path: Path) -> None:
    rules_file = tmp_path / "rules.yml"
    rules_file.write_text(
        yaml.safe_dump({"groups": [{"name": s.name, "interval": "1m", "rules": s.rules} for s in SCENARIOS]})
    )

    with PrometheusServer(backfill=_om()) as prom:
        env = {**os.environ, "PROMETHEUS_URL": prom.url}
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "alerting.cli.main",
                "backtest",
                "--from",
                str(T0),
                "--to",
                str(T0 + 60 * (MINUTES - 1)),
                "--step",
                "1m",
                "--rules",
                str(rules_file),
                "--format",
                "json",
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
    assert result.returncode == 0, result.stderr
    frames = json.loads(result.stdout)
    assert len(frames) == MINUTES
    assert all(not f["errors"] for f in frames), [f["errors"] for f in frames if f["errors"]]

    alertnames = [r["alert"] for s in SCENARIOS for r in s.rules]
    firing_seen = set()
    alert_tests = []
    for minute, frame in enumerate(frames):
        for alertname in alertnames:
            expected = [
                {
                    "exp_labels": {k: v for k, v in a["labels"].items() if k != "alertname"},
                    "exp_annotations": a["annotations"],
                }
                for a in frame["alerts"]
                if a["alertname"] == alertname and a["state"] == "firing"
            ]
            if expected:
                firing_seen.add(alertname)
            alert_tests.append({"eval_time": f"{minute}m", "alertname": alertname, "exp_alerts": expected})
    # Every scenario except the slow flapper must have fired at some point, or the
    # comparison would only prove that nothing happens.
    assert firing_seen == set(alertnames) - {"FlapSlow"}

    test_file = tmp_path / "test.yml"
    test_file.write_text(
        yaml.safe_dump(
            {
                "rule_files": [str(rules_file)],
                "evaluation_interval": "1m",
                "tests": [
                    {
                        "interval": "1m",
                        "input_series": [
                            {
                                "series": series_key(name, {k: v for k, v in labels.items() if v}),
                                "values": _promtool_values(values),
                            }
                            for s in SCENARIOS
                            for name, labels, values in s.series
                        ],
                        "alert_rule_test": alert_tests,
                    }
                ],
            }
        )
    )
    check = subprocess.run(
        [PROMTOOL, "test", "rules", str(test_file)], capture_output=True, text=True, timeout=120
    )
    assert check.returncode == 0, check.stdout[-4000:] + check.stderr[-4000:]
