"""``alerting silence ...`` and ``alerting routes ...``: the operator's routing tools.

Settings come from the environment: ``ALERTING_REDIS_URL`` (default ``redis://localhost:6379/0``),
``ALERTING_REDIS_PREFIX`` (default ``alerting``) and ``ALERTING_CONFIG`` (default ``alerting.yml``),
the latter overridable with ``--config``.
"""

from __future__ import annotations

import getpass
import json
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from alerting import durable, redisconn
from alerting.cli.tools import load_settings, parse_time
from alerting.durations import format_duration, parse_duration
from alerting.errors import AlertingError, ConfigError
from alerting.notify.live import RoutingConfig
from alerting.notify.store import NotifyStore
from alerting.routing.matchers import Matcher, MatcherError, matchers_string, parse_matcher, parse_matchers
from alerting.routing.route import Route
from alerting.routing.silences import ACTIVE, EXPIRED, PENDING, SilenceError, expire, new_silence
from alerting.worker.compose import check_routing_config, default_routing_config, load_routing_config


def _redis_store() -> NotifyStore:
    settings = load_settings()
    durable.configure(settings.redis_wait_timeout)
    return NotifyStore(redisconn.connect(settings.redis_url), settings.prefix)


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _config_option(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--config",
        "config_path",
        default=None,
        metavar="PATH",
        help="alerting.yml to read (default: $ALERTING_CONFIG or ./alerting.yml).",
    )(func)


def _load_config(config_path: str | None) -> RoutingConfig:
    path = config_path or load_settings().config_path
    if config_path is None and not Path(path).exists():
        click.echo(f"{path} not found: using the built-in default (everything to the console)", err=True)
        return default_routing_config()
    problems = check_routing_config(path)
    if problems:
        for problem in problems:
            click.echo(str(problem), err=True)
        sys.exit(1)
    return load_routing_config(path)


def _parse_cli_matchers(args: tuple[str, ...]) -> list[Matcher]:
    matchers: list[Matcher] = []
    for index, arg in enumerate(args):
        if index == 0 and not any(op in arg for op in ("=", "!", "~")):
            matchers.append(Matcher("alertname", "=", arg))  # amtool's shorthand: a bare alert name
            continue
        try:
            matchers.extend(parse_matchers(arg))
        except MatcherError as exc:
            raise click.BadParameter(str(exc), param_hint="MATCHER") from None
    return matchers


@click.group("silence")
def silence() -> None:
    """Mute alerts matching a set of matchers for a while."""


@silence.command("add")
@click.argument("matchers", nargs=-1, required=True)
@click.option("--duration", "duration", default=None, help="How long, e.g. 2h (default 1h).")
@click.option("--end", "end", default=None, help="When it ends (RFC3339 or unix seconds).")
@click.option("--start", "start", default=None, help="When it starts (default now).")
@click.option("--comment", required=True, help="Why the alerts are silenced.")
@click.option("--author", default=None, help="Who silenced them (default: the current user).")
@_config_option
def silence_add(
    matchers: tuple[str, ...],
    duration: str | None,
    end: str | None,
    start: str | None,
    comment: str,
    author: str | None,
    config_path: str | None,
) -> None:
    """Add a silence, e.g. ``alerting silence add alertname=DiskFull 'instance=~"db.*"' --duration 2h``."""
    if duration and end:
        raise click.UsageError("give --duration or --end, not both")
    now = time.time()
    starts = parse_time(start) if start else now
    if end:
        ends = parse_time(end)
    else:
        try:
            ends = starts + parse_duration(duration or "1h")
        except AlertingError as exc:
            raise click.BadParameter(str(exc), param_hint="--duration") from None
    try:
        made = new_silence(_parse_cli_matchers(matchers), starts, ends, author or _user(), comment, now)
    except SilenceError as exc:
        raise click.ClickException(str(exc)) from None
    _redis_store().put_silence(made)
    click.echo(made.id)


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


@silence.command("list")
@click.option("--expired", is_flag=True, help="Also list expired silences.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
@_config_option
def silence_list(expired: bool, fmt: str, config_path: str | None) -> None:
    """List active and pending silences."""
    now = time.time()
    shown = [s for s in _redis_store().silences(now) if expired or s.state(now) != EXPIRED]
    if fmt == "json":
        click.echo(json.dumps([{**s.to_dict(), "state": s.state(now)} for s in shown], indent=2))
        return
    rows = [("ID", "MATCHERS", "STATE", "STARTS", "ENDS", "AUTHOR", "COMMENT")]
    for s in shown:
        rows.append(
            (
                s.id,
                matchers_string(s.matchers),
                s.state(now),
                _iso(s.starts_at),
                _iso(s.ends_at),
                s.created_by,
                s.comment,
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)) + "  " + row[-1])


@silence.command("expire")
@click.argument("ids", nargs=-1, required=True)
@_config_option
def silence_expire(ids: tuple[str, ...], config_path: str | None) -> None:
    """End silences now."""
    store = _redis_store()
    now = time.time()
    failed = False
    for silence_id in ids:
        found = store.get_silence(silence_id)
        if found is None:
            click.echo(f"no silence with id {silence_id}", err=True)
            failed = True
            continue
        try:
            store.put_silence(expire(found, now))
        except SilenceError as exc:
            click.echo(str(exc), err=True)
            failed = True
    if failed:
        sys.exit(1)


@click.group("routes")
def routes() -> None:
    """Inspect the route tree of alerting.yml."""


def _describe(route: Route, root: bool) -> str:
    parts = ["default-route" if root else matchers_string(route.matchers)]
    if route.continue_:
        parts.append("continue: true")
    parts.append(f"receiver: {route.receiver}")
    group = "..." if route.group_by_all else ",".join(route.group_by) or "-"
    parts.append(f"group_by: [{group}]")
    parts.append(
        "timers: "
        + "/".join(
            format_duration(t) for t in (route.group_wait, route.group_interval, route.repeat_interval)
        )
    )
    if route.mute_time_intervals:
        parts.append("mute: " + ",".join(route.mute_time_intervals))
    if route.active_time_intervals:
        parts.append("active: " + ",".join(route.active_time_intervals))
    if route.escalate:
        parts.append(
            "escalate: " + ", ".join(f"{format_duration(s.after)} -> {s.receiver}" for s in route.escalate)
        )
    return "  ".join(parts)


def render_tree(route: Route) -> list[str]:
    lines = ["Routing tree:"]

    def walk(node: Route, indent: str, last: bool, root: bool) -> None:
        lines.append(f"{indent}{'└── ' if last else '├── '}{_describe(node, root)}")
        child_indent = indent + ("    " if last else "│   ")
        for i, child in enumerate(node.routes):
            walk(child, child_indent, i == len(node.routes) - 1, False)

    walk(route, "", True, True)
    return lines


@routes.command("show")
@_config_option
def routes_show(config_path: str | None) -> None:
    """Print the route tree (matchers, receiver, grouping, timers, time intervals)."""
    for line in render_tree(_load_config(config_path).route):
        click.echo(line)


@routes.command("test")
@click.argument("labels", nargs=-1, required=True)
@click.option("--verify-receivers", default=None, help="Comma-separated receivers expected; exit 1 if not.")
@_config_option
def routes_test(labels: tuple[str, ...], verify_receivers: str | None, config_path: str | None) -> None:
    """Print the receivers an alert with labels ``k=v ...`` reaches, like ``amtool config routes test``."""
    label_set: dict[str, str] = {}
    for arg in labels:
        try:
            matcher = parse_matcher(arg)
        except MatcherError as exc:
            raise click.BadParameter(str(exc), param_hint="LABELS") from None
        if matcher.op != "=":
            raise click.BadParameter(f"labels are name=value, got {arg!r}", param_hint="LABELS")
        label_set[matcher.name] = matcher.value
    try:
        config = _load_config(config_path)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    found = ",".join(config.receivers_for(label_set))
    click.echo(found)
    if verify_receivers is not None and found != verify_receivers:
        click.echo(f"WARNING: expected receivers {verify_receivers!r}, got {found!r}", err=True)
        sys.exit(1)


def register(cli: click.Group) -> None:
    """Add ``silence`` and ``routes`` to the ``alerting`` command."""
    cli.add_command(silence)
    cli.add_command(routes)


__all__ = ["register", "render_tree", "parse_time", "ACTIVE", "PENDING", "EXPIRED"]
