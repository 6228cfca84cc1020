"""``alerting ack MATCHER...``: acknowledge the alert groups firing alerts that match, so they stop
escalating and repeating until an alert joins them; ``alerting ack list`` and ``alerting ack expire``.

Like ``alerting status`` it works on the workers' Redis directly, from any machine with their settings.
"""

from __future__ import annotations

import getpass
import json
import socket
import time
from typing import Any

import click
import redis

from alerting import redisconn
from alerting.cli.tools import load_settings
from alerting.config.settings import Settings
from alerting.durations import parse_duration
from alerting.errors import DurationError
from alerting.notify import acks
from alerting.ops.logs import redact_text
from alerting.routing.escalation import DEFAULT_ACK_DURATION
from alerting.routing.matchers import Matcher, MatcherError, matchers_string, parse_matchers


def register(cli: click.Group) -> None:
    cli.add_command(ack)


class _AckGroup(click.Group):
    """``ack list`` and ``ack expire`` are subcommands; anything else is a matcher of ``ack create``."""

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        if args and args[0] not in self.commands:
            return "create", self.commands["create"], args
        return super().resolve_command(ctx, args)


def _client(settings: Settings) -> redis.Redis:
    return redisconn.connect(settings.redis_url, socket_timeout=5, socket_connect_timeout=3)


def _failure(settings: Settings, exc: Exception) -> click.ClickException:
    return click.ClickException(f"cannot reach Redis at {redact_text(settings.redis_url)}: {exc}")


def default_author() -> str:
    try:
        user = getpass.getuser()
    except Exception:  # no user name in a bare container
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def _default_duration(settings: Settings) -> float:
    """The ``acknowledgements.default_duration`` of alerting.yml (24h when unset or unreadable)."""
    from alerting.config.alertmanager import read_config

    try:
        return read_config(settings.config_path).acknowledgements.default_duration
    except Exception:
        return DEFAULT_ACK_DURATION


@click.group(cls=_AckGroup, context_settings={"ignore_unknown_options": True})
def ack() -> None:
    """Acknowledge alert groups: ``alerting ack alertname=X [k=v ...] [--comment TEXT] [--duration 4h]``.

    An acknowledged group stops escalating and repeating until an alert joins it or the
    acknowledgement expires; new alerts are always notified.
    """


def _row(item: dict[str, Any]) -> str:
    return (
        f"{item['id']}  {item['group_key']}  {item['alerts']} alert(s)  by {item['by']} via {item['source']}"
        f"  until {item['expires_at']}" + (f"  ({item['comment']})" if item["comment"] else "")
    )


@ack.command("create", hidden=True)
@click.argument("matchers", nargs=-1, required=True)
@click.option("--comment", default="", help="Why, or what is being done.")
@click.option("--duration", default=None, help="How long it holds (default: alerting.yml, else 24h).")
@click.option("--author", default=None, help="Who acknowledges (default: user@host).")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
def create(
    matchers: tuple[str, ...], comment: str, duration: str | None, author: str | None, fmt: str
) -> None:
    settings = load_settings()
    parsed: list[Matcher] = []
    for text in matchers:
        try:
            parsed.extend(parse_matchers(text))
        except MatcherError as exc:
            raise click.BadParameter(f"{text!r}: {exc}", param_hint="MATCHERS") from None
    try:
        seconds = _default_duration(settings) if duration is None else parse_duration(duration)
    except DurationError as exc:
        raise click.BadParameter(str(exc), param_hint="--duration") from None
    if seconds <= 0:
        raise click.BadParameter("must be positive", param_hint="--duration")
    client = _client(settings)
    try:
        made = acks.acknowledge(
            client,
            settings.prefix,
            parsed,
            by=author or default_author(),
            comment=comment,
            duration=seconds,
            now=time.time(),
            source="cli",
        )
    except redis.RedisError as exc:
        raise _failure(settings, exc) from None
    if not made:
        raise click.ClickException(f"no alert group has a firing alert matching {matchers_string(parsed)}")
    items = [acks.ack_json(nid, a) for nid, a in made]
    if fmt == "json":
        click.echo(json.dumps(items, indent=2))
        return
    click.echo(f"acknowledged {len(items)} group(s):")
    for item in items:
        click.echo("  " + _row(item))


@ack.command("list")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
def list_command(fmt: str) -> None:
    """Acknowledgements in force."""
    settings = load_settings()
    try:
        items = [
            acks.ack_json(nid, a)
            for nid, a in acks.AckStore(_client(settings), settings.prefix).all(time.time())
        ]
    except redis.RedisError as exc:
        raise _failure(settings, exc) from None
    if fmt == "json":
        click.echo(json.dumps(items, indent=2))
    elif not items:
        click.echo("no acknowledgements")
    else:
        for item in items:
            click.echo(_row(item))


@ack.command("expire")
@click.argument("ids", nargs=-1, required=True)
def expire(ids: tuple[str, ...]) -> None:
    """End acknowledgements by id (as ``alerting ack list`` shows them)."""
    settings = load_settings()
    try:
        gone = acks.expire(_client(settings), settings.prefix, ids)
    except redis.RedisError as exc:
        raise _failure(settings, exc) from None
    for nid in gone:
        click.echo(f"expired {nid}")
    missing = [i for i in ids if i not in gone]
    if missing:
        raise click.ClickException(f"no acknowledgement with id {', '.join(missing)}")
