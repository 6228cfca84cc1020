"""The ``alerting`` command: check rule files, evaluate once, backtest, and operator tools."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from alerting.cli import ack, notify, ops, routes
from alerting.cli.tools import load_settings, parse_time
from alerting.config.settings import Settings
from alerting.config.yamlfile import load_file
from alerting.core import rfc3339 as core_rfc3339
from alerting.durations import parse_duration
from alerting.errors import AlertingError, DurationError, RuleFileError
from alerting.ops.logs import configure_logging
from alerting.rules.evaluation import Alert
from alerting.rules.loader import (
    RuleSet,
    is_alertmanager_config,
    load_paths,
    parse_rule_document,
    rule_files,
)
from alerting.rules.model import Group, Labels
from alerting.rules.state import json_number
from alerting.templating import go_float
from alerting.worker.compose import check_config_file, config_warnings


def rfc3339(t: float | None) -> str | None:
    """Times in the CLI's JSON: whole seconds without ``.000``, None stays null."""
    return None if t is None else core_rfc3339(t, trim_zero_millis=True)


def alert_json(group: Group, alert: Alert) -> dict[str, Any]:
    return {
        "group": group.name,
        "alertname": alert.name,
        "labels": dict(alert.labels),
        "annotations": dict(alert.annotations),
        "state": "resolved" if alert.resolved else alert.state.value,
        "active_at": rfc3339(alert.active_at),
        "fired_at": rfc3339(alert.fired_at),
        "resolved_at": rfc3339(alert.resolved_at),
        "value": json_number(alert.value),
    }


def _table(rows: Sequence[Sequence[str]], header: Sequence[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    ]
    return "\n".join(lines)


def _alert_row(group: Group, alert: Alert) -> list[str]:
    data = alert_json(group, alert)
    labels = ",".join(f"{k}={v}" for k, v in data["labels"].items() if k != "alertname")
    return [group.name, alert.name, data["state"], go_float(alert.value), data["active_at"] or "", labels]


_ALERT_HEADER = ["GROUP", "ALERTNAME", "STATE", "VALUE", "ACTIVE_AT", "LABELS"]


def _settings() -> Settings:
    return load_settings()


def _load_groups(settings: Settings, rules: tuple[str, ...], group: str | None) -> list[Group]:
    ruleset = load_paths(rules or settings.rules, settings.default_interval)
    for problem in ruleset.problems:
        click.echo(str(problem), err=True)
    if ruleset.problems:
        # Evaluating what did load would report a rule file's alerts as gone.
        raise click.ClickException(f"{len(ruleset.problems)} problem(s) in the rule files; nothing evaluated")
    groups = [g for g in ruleset.groups if group is None or g.name == group]
    if group is not None and not groups:
        raise click.ClickException(f'no group named "{group}"')
    return groups


@click.group()
@click.version_option(package_name="alerting")
def cli() -> None:
    """Alert evaluator worker: Prometheus-format rules, evaluated on a schedule."""
    # What the library logs goes to stderr, warnings and worse only: stdout carries the command's
    # answer (JSON with --format json). Warnings about alerting.yml are `check`'s to print.
    configure_logging("WARNING", "console", sys.stderr)


@dataclass
class CheckReport:
    """What ``alerting check`` found: the rule files' groups, the configurations, every problem."""

    ruleset: RuleSet = field(default_factory=RuleSet)
    rule_files: list[str] = field(default_factory=list)
    config_files: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # configurations that load: their stand-ins

    def summary(self) -> str:
        parts = []
        if self.rule_files or not self.config_files:
            recording = self.ruleset.recording_count
            also = f" and {recording} recording rules" if recording else ""
            parts.append(f"{self.ruleset.rule_count} rules{also} in {len(self.ruleset.groups)} groups")
        if self.config_files:
            parts.append(f"{len(self.config_files)} config file(s)")
        verdict = f"{len(self.problems)} problem(s)" if self.problems else "ok"
        return f"{', '.join(parts)}: {verdict}"


def check_paths(paths: Sequence[str | Path], settings: Settings, config: str | None = None) -> CheckReport:
    """Check files and directories (recursively, ``*.yml``/``*.yaml``), each as what its content
    says it is: an Alertmanager configuration (``route``, ``receivers``, ...) or a rule file.
    ``config`` is checked as a configuration whatever it holds."""
    report = CheckReport()
    files, missing = rule_files(paths)
    report.problems.extend(str(p) for p in missing)
    for path in files:
        file = str(path)
        try:
            doc = load_file(path, RuleFileError, first_document=True)
        except RuleFileError as exc:
            # Not YAML: which kind it meant to be cannot be told; it is named as one or counted as rules.
            (report.config_files if file == config else report.rule_files).append(file)
            report.problems.append(str(exc))
            continue
        if file == config or is_alertmanager_config(doc):
            report.config_files.append(file)
            config_problems = check_config_file(file, settings)
            report.problems.extend(config_problems)
            if not config_problems:
                report.warnings.extend(f"{file}: {w}" for w in config_warnings(file, settings.environ))
            continue
        groups, problems, warnings = parse_rule_document(doc, file, settings.default_interval)
        report.rule_files.append(file)
        report.ruleset.warnings.extend(warnings)
        report.problems.extend(str(p) for p in problems)
        if not problems:
            report.ruleset.groups.extend(groups)
    return report


def _recording_without_targets(report: CheckReport, settings: Settings) -> list[str]:
    """A warning when recording rules were checked and no ``remote_write`` target takes what they
    record (the configuration checked beside them, or else the worker's)."""
    if not report.ruleset.recording_count:
        return []
    from alerting.config.alertmanager import read_config

    path = report.config_files[0] if report.config_files else settings.config_path
    if Path(path).is_file():
        config = read_config(path)
        if config.remote_write or config.file_problems or config.routing_problems:
            return []
    return [
        f"{report.ruleset.recording_count} recording rule(s) and no remote_write target in {path}: "
        "what they record is written nowhere, and rules reading it see no data"
    ]


@cli.command()
@click.argument("paths", nargs=-1, type=click.Path())
@click.option(
    "--web-config",
    "web_config",
    default=None,
    type=click.Path(),
    help="A web config file (TLS, basic auth) to check too; default: ALERTING_WEB_CONFIG when no PATHS.",
)
def check(paths: tuple[str, ...], web_config: str | None) -> None:
    """Validate rule files and Alertmanager configurations (alerting.yml), each told apart by its
    content, and the web config; print every problem as file:line:col: message."""
    settings = _settings()
    config = None
    targets: list[str] = list(paths)
    if not paths:
        targets = list(settings.rules)
        if Path(settings.config_path).exists():
            config = settings.config_path
            targets.append(config)
    report = check_paths(targets, settings, config)
    report.warnings.extend(_recording_without_targets(report, settings))
    web_config = web_config or (settings.web_config if not paths else None)
    if web_config:
        from alerting.api.webconfig import load_web_config
        from alerting.errors import ConfigError

        targets.append(web_config)
        report.config_files.append(web_config)
        try:
            load_web_config(web_config)
        except ConfigError as exc:
            report.problems.append(str(exc))
    for warning in (*report.ruleset.warnings, *report.warnings):
        click.echo(f"warning: {warning}", err=True)
    for problem in report.problems:
        click.echo(problem)
    click.echo(report.summary() if targets else "nothing to check: ok")
    sys.exit(1 if report.problems else 0)


@cli.command(name="eval")
@click.option("--rules", "rules", multiple=True, help="Rule file or directory (repeatable).")
@click.option("--group", default=None, help="Only this group.")
@click.option("--at", "at", default=None, help="Evaluation time: RFC3339 or unix seconds.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
def eval_command(rules: tuple[str, ...], group: str | None, at: str | None, fmt: str) -> None:
    """Evaluate each group once at TIME with the Redis state, saving it; print the alerts."""
    from alerting.worker.runtime import Runtime

    settings = _settings()
    t = parse_time(at) if at else time.time()
    groups = _load_groups(settings, rules, group)
    runtime = Runtime(settings)
    out: list[tuple[Group, Alert]] = []
    errors: list[str] = []
    try:
        evaluator = runtime.build_evaluator(owner="cli")
        for g in groups:
            outcome = evaluator.tick(g, t, claim=False)
            if outcome.skipped:
                errors.append(f"{g.name}: {outcome.skipped}")
            for item in outcome.rules:
                if item.health.error:
                    errors.append(f"{g.name}/{item.rule.name}: {item.health.error}")
                out.extend((g, a) for a in item.alerts.values())
    except AlertingError as exc:
        raise click.ClickException(str(exc)) from None
    except Exception as exc:
        import redis

        if isinstance(exc, redis.RedisError):
            raise click.ClickException(f"Redis at {settings.redis_url}: {exc}") from None
        raise
    finally:
        runtime.close()
    for error in errors:
        click.echo(f"error: {error}", err=True)
    if fmt == "json":
        click.echo(json.dumps([alert_json(g, a) for g, a in out], indent=2))
    else:
        click.echo(_table([_alert_row(g, a) for g, a in out], _ALERT_HEADER))


@cli.command()
@click.option("--from", "start", required=True, help="Start: RFC3339 or unix seconds.")
@click.option("--to", "end", required=True, help="End: RFC3339 or unix seconds.")
@click.option("--step", default=None, help="Step duration (default: each group's interval).")
@click.option("--rules", "rules", multiple=True, help="Rule file or directory (repeatable).")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
def backtest(start: str, end: str, step: str | None, rules: tuple[str, ...], fmt: str) -> None:
    """Replay evaluation over a past range (in-memory state; Redis untouched)."""
    from alerting.rules.backtest import backtest as run_backtest
    from alerting.rules.backtest import times
    from alerting.worker.runtime import Runtime

    settings = _settings()
    t0, t1 = parse_time(start), parse_time(end)
    if t1 < t0:
        raise click.BadParameter("--to is before --from")
    try:
        step_s = parse_duration(step) if step else None
    except DurationError as exc:
        raise click.BadParameter(str(exc)) from None
    if step_s is not None and step_s <= 0:
        raise click.BadParameter("--step must be greater than 0")
    groups = _load_groups(settings, rules, None)
    runtime = Runtime(settings)
    total = sum(len(times(t0, t1, step_s or g.interval)) for g in groups)
    show_progress = fmt == "table" and sys.stderr.isatty() and total > 50
    try:
        with click.progressbar(
            length=total, label="backtest", file=sys.stderr, hidden=not show_progress
        ) as bar:
            frames = run_backtest(
                groups,
                lambda r: runtime.source(r.datasource, r.kind),
                t0,
                t1,
                step_s,
                prometheus=runtime.prometheus(),
                external_url=settings.external_url,
                progress=bar.update,
            )
    finally:
        runtime.close()
    if fmt == "json":
        click.echo(
            json.dumps(
                [
                    {
                        "time": rfc3339(f.time),
                        "alerts": [alert_json(g, a) for g, a in f.alerts],
                        "transitions": [
                            {
                                "group": g.name,
                                "alertname": e.alert.name,
                                "to": e.kind,
                                "labels": dict(e.alert.labels),
                            }
                            for g, e in f.transitions
                        ],
                        "errors": [{"group": g.name, "rule": r, "error": e} for g, r, e in f.errors],
                        "recorded": [
                            {
                                "group": g.name,
                                "record": r.rule.record,
                                "series": [
                                    {"labels": dict(labels), "value": go_float(value)}
                                    for labels, value in r.series
                                ],
                            }
                            for g, r in f.recorded
                            if not r.health.error
                        ],
                    }
                    for f in frames
                ],
                indent=2,
            )
        )
        return
    for frame in frames:
        click.echo(f"== {rfc3339(frame.time)}")
        for g, e in frame.transitions:
            labels = ",".join(f"{k}={v}" for k, v in e.alert.labels if k != "alertname")
            click.echo(f"  -> {e.kind:<8} {g.name}/{e.alert.name} {labels}")
        for g, rule, error in frame.errors:
            click.echo(f"  !! error    {g.name}/{rule}: {error}")
        for g, record in frame.recorded:
            if not record.health.error:
                click.echo(f"  == recorded {g.name}/{record.rule.record}: {_recorded_summary(record.series)}")
        if frame.alerts:
            click.echo(
                "  "
                + _table([_alert_row(g, a) for g, a in frame.alerts], _ALERT_HEADER).replace("\n", "\n  ")
            )


def _recorded_summary(series: Sequence[tuple[Labels, float]], shown: int = 3) -> str:
    """A recording rule's series at one instant, in a line: how many, and the first few."""
    if not series:
        return "no series"
    parts = []
    for labels, value in series[:shown]:
        inner = ",".join(f'{k}="{v}"' for k, v in labels if k != "__name__")
        parts.append(f"{{{inner}}} {go_float(value)}")
    more = f" (+{len(series) - shown} more)" if len(series) > shown else ""
    return f"{len(series)} series: " + ", ".join(parts) + more


@cli.command()
@click.argument("template")
@click.option("--labels", "labels", multiple=True, metavar="K=V", help="A label (repeatable).")
@click.option("--value", default="0", help="The alert's $value (a number, NaN, +Inf, -Inf).")
@click.option("--alertname", default="", help="Name used in error messages, as in a rule.")
def render(template: str, labels: tuple[str, ...], value: str, alertname: str) -> None:
    """Print what an annotation TEMPLATE renders to for these labels and value."""
    from alerting.errors import TemplateError
    from alerting.templating import check as check_template
    from alerting.templating import render_for_cli

    pairs = {}
    for item in labels:
        name, sep, text = item.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"{item!r} is not K=V", param_hint="--labels")
        pairs[name] = text
    try:
        number = float(value.replace("Inf", "inf"))
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a number", param_hint="--value") from None
    try:
        check_template(template, alertname=alertname)
    except TemplateError as exc:
        raise click.ClickException(f"template does not parse: {exc}") from None
    click.echo(render_for_cli(template, pairs, number, alertname=alertname))


# The operator's command groups, each in its own module.
routes.register(cli)
notify.register(cli)
ops.register(cli)
ack.register(cli)


def main() -> None:
    cli(prog_name="alerting")


if __name__ == "__main__":
    main()
