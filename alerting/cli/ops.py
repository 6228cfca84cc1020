"""Operator commands for an incident: ``alerting status``, ``alerting alerts``, ``alerting history``.

They read what the running workers wrote (Redis state, the broker, the history table), so they
work from any machine with the worker's settings, without talking to the worker itself.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import click
import redis

from alerting import redisconn
from alerting.cli.escalations import escalation_status, render_escalations
from alerting.cli.tools import load_settings
from alerting.config.settings import Settings, load_datasources
from alerting.core import parse_group_id
from alerting.durations import parse_duration
from alerting.errors import AlertingError, ConfigError, DurationError
from alerting.ops.logs import redact_text
from alerting.ops.metrics import queue_depths
from alerting.rules.evaluation import Alert
from alerting.rules.model import Group
from alerting.rules.state import DATASOURCES_GROUP, StateStore

STATES = ("firing", "pending", "resolved")


def register(cli: click.Group) -> None:
    """Add the operator commands to the ``alerting`` command group."""
    cli.add_command(status)
    cli.add_command(alerts)
    cli.add_command(history)


def _store(settings: Settings) -> StateStore:
    client = redisconn.connect(settings.redis_url, socket_timeout=5, socket_connect_timeout=3)
    return StateStore(client, settings.prefix)


def _when(t: float | None) -> str:
    from alerting.cli.main import rfc3339

    return rfc3339(t) or ""


def _table(rows: Sequence[Sequence[Any]], header: Sequence[str]) -> str:
    text = [[str(c) for c in row] for row in [header, *rows]]
    widths = [max(len(r[i]) for r in text) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in text)


def _redis_failure(settings: Settings, exc: Exception) -> click.ClickException:
    return click.ClickException(f"cannot reach Redis at {redact_text(settings.redis_url)}: {exc}")


# --- status -----------------------------------------------------------------------------------


@click.command()
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
def status(fmt: str) -> None:
    """Groups (last slot, duration, health, errors), datasources, beat leader, queues, reload
    problems and receivers' recent failures."""
    settings = load_settings()
    try:
        report = collect_status(settings)
    except redis.RedisError as exc:
        raise _redis_failure(settings, exc) from None
    if fmt == "json":
        click.echo(json.dumps(report, indent=2))
        return
    click.echo(render_status(report))


def collect_status(settings: Settings, now: float | None = None) -> dict[str, Any]:
    """Everything ``alerting status`` shows, as data."""
    from alerting.rules.loader import load_paths

    now = time.time() if now is None else now
    store = _store(settings)
    ruleset = load_paths(settings.rules, settings.default_interval)
    known = {g.id: g for g in ruleset.groups}
    groups = []
    for group_id in sorted(set(known) | {g for g in store.groups() if g != DATASOURCES_GROUP}):
        group = known.get(group_id)
        rules, summary = store.load_health(group_id)
        file, name = (group.file, group.name) if group else parse_group_id(group_id)
        last = summary.get("last_slot")
        errors = [{"rule": key.split("{", 1)[0], "error": h.error} for key, h in rules.items() if h.error]
        groups.append(
            {
                "group": name,
                "file": file,
                "interval_seconds": group.interval if group else None,
                "last_slot": _when(last) or None,
                "age_seconds": round(now - last, 1) if last is not None else None,
                "duration_seconds": summary.get("duration"),
                "missed_slots": summary.get("missed", 0),
                "health": "unknown" if not rules else ("err" if errors else "ok"),
                "rules": len(group.rules) if group else len(rules),
                "recording_rules": len(group.recording) if group else 0,
                "errors": errors,
                "in_rule_files": group is not None,
            }
        )
    down_alerts = store.load_group(DATASOURCES_GROUP)
    down = sorted(n for n, a in down_alerts.items() if any(not x.resolved for x in a.values()))
    try:
        configured = sorted(load_datasources(settings))
        config_problem = None
    except ConfigError as exc:
        configured, config_problem = [], str(exc)
    datasources = [
        {"datasource": name, "status": "down" if name in down else "up" if name in down_alerts else "unknown"}
        for name in sorted(set(configured) | set(down_alerts))
    ]
    leader = store.leader()
    ttl = store.redis.pttl(store.key("beat", "leader")) if leader else None
    queues: dict[str, int] | str
    if urlsplit(settings.broker_url).scheme in redisconn.REDIS_SCHEMES:
        try:
            broker = redisconn.connect(settings.broker_url, socket_timeout=5, socket_connect_timeout=3)
            queues = queue_depths(broker, (settings.queue,))
        except redis.RedisError as exc:
            queues = f"broker unreachable: {exc}"
    else:
        queues = "not a Redis broker: depth not available"
    try:
        replication = store.redis.info("replication")
        primary: dict[str, Any] = {
            "address": redisconn.primary_address(store.redis),
            "replicas": int(replication.get("connected_slaves", 0)),
        }
    except redis.RedisError as exc:
        primary = {"address": None, "error": redact_text(str(exc))}
    problems = [str(p) for p in ruleset.problems]
    if config_problem:
        problems.append(config_problem)
    return {
        "redis": redact_text(redisconn.parse_redis_url(settings.redis_url).safe()),
        "redis_primary": primary,
        "beat_leader": {"owner": leader, "lease_ttl_seconds": ttl / 1000 if ttl and ttl > 0 else None},
        "queues": queues,
        "groups": groups,
        "datasources": datasources,
        "reload": {"ok": not problems, "problems": problems},
        "receivers": _receiver_failures(now),
        **escalation_status(store.redis, settings.prefix, now),
    }


def _receiver_failures(now: float, window: float = 3600.0) -> dict[str, Any]:
    """Failed notification attempts of the last hour, per receiver, from the history table."""
    from alerting.ops.history import History

    try:
        store = History.from_env()
        try:
            rows = store.query(kind="notification", outcome="failed", since=now - window, limit=1000)
        finally:
            store.close()
    except Exception as exc:
        return {"error": f"history unavailable: {redact_text(str(exc))}"}
    out: dict[str, Any] = {}
    seen: set[tuple[str | None, float]] = set()
    for row in rows:
        key = (row.group_key, row.at)  # one attempt may have written several rows (one per alert)
        entry = out.setdefault(row.receiver or "", {"failures": 0, "last_error": None, "last_failure": None})
        if key not in seen:
            seen.add(key)
            entry["failures"] += 1
        entry["last_error"], entry["last_failure"] = row.error, _when(row.at)
    return {"window_seconds": window, "failures": out}


def render_status(report: dict[str, Any]) -> str:
    lines = [f"redis: {report['redis']}"]
    primary = report["redis_primary"]
    lines.append(
        f"redis primary: {primary['address']} ({primary['replicas']} replica(s))"
        if primary.get("address")
        else f"redis primary: UNKNOWN ({primary.get('error')})"
    )
    leader = report["beat_leader"]
    lines.append(
        f"beat leader: {leader['owner']} (lease {leader['lease_ttl_seconds']:.0f}s)"
        if leader["owner"]
        else "beat leader: NONE (nothing is being scheduled)"
    )
    queues = report["queues"]
    lines.append(
        "queues: "
        + (", ".join(f"{q}={n}" for q, n in queues.items()) if isinstance(queues, dict) else queues)
    )
    lines.append("")
    rows = [
        [
            g["group"],
            g["file"],
            g["last_slot"] or "never",
            "" if g["age_seconds"] is None else f"{g['age_seconds']:.0f}s",
            "" if g["duration_seconds"] is None else f"{g['duration_seconds']:.3f}s",
            g["missed_slots"],
            g["health"],
            "; ".join(f"{e['rule']}: {e['error']}" for e in g["errors"]),
        ]
        for g in report["groups"]
    ]
    lines.append(_table(rows, ["GROUP", "FILE", "LAST_SLOT", "AGE", "DURATION", "MISSED", "HEALTH", "ERROR"]))
    lines.append("")
    lines.append(
        "datasources: "
        + (", ".join(f"{d['datasource']}={d['status']}" for d in report["datasources"]) or "none")
    )
    reload = report["reload"]
    lines.append("reload: ok" if reload["ok"] else f"reload: {len(reload['problems'])} problem(s)")
    lines.extend(f"  {p}" for p in reload["problems"])
    lines.extend(render_escalations(report))
    receivers = report["receivers"]
    if "error" in receivers:
        lines.append(f"receivers: {receivers['error']}")
    elif not receivers["failures"]:
        lines.append("receivers: no failed notifications in the last hour")
    else:
        lines.append("receivers with failed notifications in the last hour:")
        for name, entry in sorted(receivers["failures"].items()):
            last = f"last at {entry['last_failure']}: {entry['last_error']}"
            lines.append(f"  {name}: {entry['failures']} failed, {last}")
    return "\n".join(lines)


# --- alerts -----------------------------------------------------------------------------------


def _state(alert: Alert) -> str:
    return "resolved" if alert.resolved else alert.state.value


@click.command()
@click.option("--state", "states", type=click.Choice(STATES), multiple=True, help="Only these states.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
def alerts(states: tuple[str, ...], fmt: str) -> None:
    """Alerts the workers hold in Redis (resolved ones are kept 15 minutes)."""
    from alerting.cli.main import alert_json

    settings = load_settings()
    store = _store(settings)
    found: list[tuple[Group, Alert]] = []
    try:
        for group_id in store.groups():
            file, name = parse_group_id(group_id)
            group = Group(name=name, file=file, interval=0.0, rules=())
            for rule_alerts in store.load_group(group_id).values():
                found.extend((group, a) for a in rule_alerts.values() if not states or _state(a) in states)
    except redis.RedisError as exc:
        raise _redis_failure(settings, exc) from None
    order = {s: i for i, s in enumerate(STATES)}
    found.sort(key=lambda ga: (order[_state(ga[1])], ga[0].name, ga[1].name, ga[1].labels))
    if fmt == "json":
        click.echo(json.dumps([alert_json(g, a) for g, a in found], indent=2))
        return
    rows = []
    for group, alert in found:
        labels = ",".join(f"{k}={v}" for k, v in alert.labels if k != "alertname")
        since = alert.resolved_at if alert.resolved else alert.fired_at or alert.active_at
        rows.append([_state(alert), alert.name, group.name, _when(since), labels])
    click.echo(_table(rows, ["STATE", "ALERTNAME", "GROUP", "SINCE", "LABELS"]))


# --- history ----------------------------------------------------------------------------------


def parse_since(text: str, now: float) -> float:
    """``24h`` (a Prometheus duration back from now), RFC3339 or unix seconds."""
    try:
        return now - parse_duration(text)
    except DurationError:
        pass
    from alerting.cli.tools import parse_time

    try:
        return parse_time(text)
    except click.BadParameter:
        raise click.BadParameter(
            f"{text!r} is not a duration (24h, 30m, 7d), RFC3339 time or unix seconds", param_hint="--since"
        ) from None


@click.command()
@click.option("--alertname", default=None, help="Only this alert.")
@click.option("--since", default="24h", show_default=True, help="Duration back from now, or a time.")
@click.option("--kind", type=click.Choice(["transition", "notification"]), default=None)
@click.option("--receiver", default=None, help="Only notifications to this receiver.")
@click.option("--limit", type=click.IntRange(1, 100000), default=200, show_default=True)
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
def history(
    alertname: str | None, since: str, kind: str | None, receiver: str | None, limit: int, fmt: str
) -> None:
    """State transitions and notification attempts, oldest first (ALERTING_HISTORY_URL)."""
    from alerting.ops.history import History

    start = parse_since(since, time.time())
    try:
        store = History.from_env()
        entries = store.query(alertname, start, limit, kind=kind, receiver=receiver)
    except AlertingError as exc:
        raise click.ClickException(str(exc)) from None
    except Exception as exc:  # a database we cannot open: say which, without its password
        raise click.ClickException(f"cannot read history: {redact_text(str(exc))}") from None
    if fmt == "json":
        click.echo(json.dumps([e.as_json() for e in entries], indent=2))
        return
    rows = []
    for e in entries:
        labels = ",".join(f"{k}={v}" for k, v in sorted(e.labels.items()) if k != "alertname")
        if e.kind == "transition":
            what, detail = f"-> {e.state}", f"{e.group}/{e.rule}"
        else:
            what = f"{e.outcome} {e.receiver}" + (f" ({e.integration})" if e.integration else "")
            detail = f"attempt {e.attempt}" + (f": {e.error}" if e.error else "")
        rows.append([_when(e.at), e.kind, e.alertname or "", what, detail, labels])
    click.echo(_table(rows, ["TIME", "KIND", "ALERTNAME", "WHAT", "DETAIL", "LABELS"]))
