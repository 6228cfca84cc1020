"""Alertmanager's template data model and the wording every receiver shares."""

from __future__ import annotations

from pathlib import Path

import pytest

from alerting.config.yamlfile import load_text
from alerting.errors import ConfigError, TemplateError
from alerting.notify import entries, templates, wording
from tests.support.notifications import SEVERITY_LEVELS, T0, alert, notification


def test_template_data_has_alertmanagers_fields() -> None:
    n = notification(
        alert(labels={"instance": "a"}),
        alert("resolved", labels={"instance": "b"}, ends_at=T0 + 300),
        receiver="team-api",
    )
    d = templates.template_data(n)
    assert d.Receiver == "team-api" and d.Status == "firing"
    assert d.ExternalURL == "http://alerting.example:8080"
    assert d.GroupLabels == {"alertname": "HighErrorRate"}
    assert d.CommonLabels == {"alertname": "HighErrorRate", "service": "api", "severity": "critical"}
    assert d.CommonAnnotations["summary"] == "5xx 3.2/s"
    assert [a.Labels["instance"] for a in d.Alerts.Firing()] == ["a"]
    assert [a.Labels["instance"] for a in d.Alerts.Resolved()] == ["b"]
    firing, resolved = d.Alerts
    assert firing.StartsAt.String() == "2026-01-01 00:00:00 +0000 UTC"
    assert firing.EndsAt.String() == "0001-01-01 00:00:00 +0000 UTC"  # still firing: Go's zero time
    assert resolved.EndsAt.String() == "2026-01-01 00:05:00 +0000 UTC"
    assert firing.GeneratorURL.startswith("http://prometheus.example:9090/graph")
    assert firing.Fingerprint == n.alerts[0].fingerprint


def test_kv_helpers_match_alertmanagers() -> None:
    kv = templates.KV({"b": "2", "a": "1", "c": "3"})
    assert [(p.Name, p.Value) for p in kv.SortedPairs()] == [("a", "1"), ("b", "2"), ("c", "3")]
    assert kv.SortedPairs().Values() == ["1", "2", "3"] and kv.SortedPairs().Names() == ["a", "b", "c"]
    assert kv.Names() == ["a", "b", "c"] and kv.Values() == ["1", "2", "3"]
    assert kv.Remove(["a", "c"]) == {"b": "2"}


@pytest.mark.parametrize(
    ("alerts", "group", "expected"),
    [
        (
            [alert(), alert(labels={"i": "2"})],
            {"alertname": "HighErrorRate"},
            "[FIRING:2] HighErrorRate (api critical)",
        ),
        ([alert("resolved")], {"alertname": "HighErrorRate"}, "[RESOLVED] HighErrorRate (api critical)"),
        (
            [alert()],
            {"alertname": "HighErrorRate", "service": "api"},
            "[FIRING:1] HighErrorRate api (critical)",
        ),
        (
            [alert(labels={"severity": "P1", "i": "1"}), alert(labels={"severity": "P2", "i": "2"})],
            {},
            "[FIRING:2] (HighErrorRate api)",
        ),
    ],
)
def test_title_is_alertmanagers_default_subject(alerts: list, group: dict, expected: str) -> None:
    assert wording.title(notification(*alerts, group_labels=group)) == expected


def test_silence_hint_quotes_values_for_the_shell() -> None:
    n = notification(group_labels={"alertname": "Disk Full", "mount": "/var/lib/$x"})
    assert wording.silence_command(n) == (
        "alerting silence add 'alertname=Disk Full' 'mount=/var/lib/$x' --duration 2h --comment ..."
    )


@pytest.mark.parametrize(("severity", "level"), SEVERITY_LEVELS)
def test_severity_levels(severity: str, level: str) -> None:
    assert wording.level({"severity": severity}) == level


def test_priority_label_counts_when_severity_is_absent() -> None:
    assert wording.severity({"priority": "P2"}) == "P2"
    assert wording.severity({"severity": "critical", "priority": "P4"}) == "critical"


def test_most_urgent_firing_alert_sets_the_notification_severity() -> None:
    n = notification(
        alert(labels={"severity": "info", "i": "1"}),
        alert(labels={"severity": "P1", "i": "2"}),
        alert("resolved", labels={"severity": "critical", "i": "3"}),
    )
    assert wording.notification_severity(n) == "P1"


def test_default_text_says_what_where_runbook_and_how_to_silence() -> None:
    text = wording.default_text(notification(alert(labels={"instance": "api-1"}, value=3.2)))
    assert text.splitlines() == [
        "[FIRING:1] HighErrorRate (api-1 api critical)",
        "",
        "Severity: critical",
        "Where: instance=api-1, service=api",
        "",
        "Firing (1):",
        "- 5xx 3.2/s (value 3.2)",
        "  The api answers 5xx to 3.2 requests per second.",
        "  Labels: alertname=HighErrorRate, instance=api-1, service=api, severity=critical",
        "  Since: 2026-01-01 00:00:00 UTC",
        "  Source: http://prometheus.example:9090/graph?g0.expr=rate%28http_5xx%5B5m%5D%29",
        "",
        "Runbook: https://runbooks.example/high-error-rate",
        "Silence: alerting silence add alertname=HighErrorRate --duration 2h --comment ...",
    ]


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("https://x.example/a", True),
        ("http://x", True),
        ("javascript:alert(1)", False),
        ("//x.example", False),
        ("data:text/html,hi", False),
        ("", False),
    ],
)
def test_only_web_links_are_links(url: str, ok: bool) -> None:
    assert wording.is_web_link(url) is ok


def test_secret_from_file_loses_surrounding_whitespace_only(tmp_path: Path) -> None:
    secret = tmp_path / "s"
    secret.write_text(" tok en \n")
    assert entries.secret({"token_file": str(secret)}, "token", "x") == "tok en"


def test_config_errors_carry_the_yaml_position() -> None:
    doc = load_text("slack_configs:\n  - channel: '#a'\n    colr: red\n", "alerting.yml", ConfigError)
    with pytest.raises(ConfigError) as caught:
        entries.check_fields(doc["slack_configs"][0], ("channel", "color"), "slack_configs")
    assert (
        str(caught.value) == 'alerting.yml:3:5: unknown field "colr" in slack_configs (did you mean "color"?)'
    )


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ .Status | toUpper }} {{ len .Alerts.Firing }} {{ .CommonLabels.service }}", "FIRING 1 api"),
        ("{{ range .Alerts.Firing }}{{ .Labels.instance }} {{ end }}", "a "),
        (
            '{{ range .Alerts.Resolved }}{{ .Labels.instance }}@{{ .EndsAt.Format "15:04" }}{{ end }}',
            "b@00:10",
        ),
        ('{{ .CommonLabels.SortedPairs.Values | join " " }}', "HighErrorRate api critical"),
        ("{{ range .GroupLabels.SortedPairs }}{{ .Name }}={{ .Value }}{{ end }}", "alertname=HighErrorRate"),
        ('{{ template "__subject" . }}', "[FIRING:1] HighErrorRate (api critical)"),
        ("{{ (index .Alerts 0).StartsAt }}", "2026-01-01 00:00:00 +0000 UTC"),
        ("{{ (index .Alerts 0).EndsAt }}", "0001-01-01 00:00:00 +0000 UTC"),
        ("{{ .Receiver }} {{ .ExternalURL }}", "oncall http://alerting.example:8080"),
        ('{{ stringSlice "a" "b" | join "," }} {{ trimSpace "  x " }}', "a,b x"),
        ("{{ .CommonLabels.missing }}|{{ .CommonAnnotations.summary }}", "|5xx 3.2/s"),
    ],
)
def test_alertmanager_template_idioms_render(template: str, expected: str) -> None:
    n = notification(alert(labels={"instance": "a"}), alert("resolved", labels={"instance": "b"}))
    assert templates.render(template, n, "text") == expected


def test_escape_applies_to_data_not_to_the_template() -> None:
    n = notification(alert(labels={"service": "<b>&"}))
    out = templates.render(
        "<i>{{ .CommonLabels.service }}</i>", n, "html", escape=lambda v: v.replace("<", "&lt;")
    )
    assert out == "<i>&lt;b>&</i>"


def test_template_cannot_reach_python_internals() -> None:
    with pytest.raises(TemplateError):
        templates.render("{{ .Alerts.__class__ }}", notification(), "text")


def test_alertmanager_default_title_idiom_with_remove_renders() -> None:
    from alerting.notify.base import Notification, NotifyAlert

    n = Notification(
        "slack",
        "k",
        {"alertname": "X"},
        (NotifyAlert("firing", {"alertname": "X", "job": "api", "severity": "critical"}, {}, 0.0),),
    )
    text = (
        '[{{ .Status | toUpper }}] {{ .GroupLabels.SortedPairs.Values | join " " }} '
        "{{ if gt (len .CommonLabels) (len .GroupLabels) }}"
        '({{ with .CommonLabels.Remove .GroupLabels.Names }}{{ .Values | join " " }}{{ end }})'
        "{{ end }}"
    )
    assert templates.render(text, n, field="title") == "[FIRING] X (api critical)"
