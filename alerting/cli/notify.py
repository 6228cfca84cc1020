"""``alerting notify test RECEIVER``: send a synthetic alert to every integration of one receiver.

It is the first thing to run after configuring a receiver: the synthetic alert goes through the same
integration code the worker uses, so a wrong token, an unknown channel or an unreachable SMTP server
shows up here with the error the worker would log. ``--resolve`` sends the resolve as well, which
closes the PagerDuty incident and threads the resolve under the Slack message.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from alerting.cli.tools import load_settings
from alerting.config.alertmanager import AlertingConfig, parse_document
from alerting.config.settings import environment
from alerting.config.yamlfile import load_file
from alerting.errors import ConfigError, Position
from alerting.notify import entries, kvstore
from alerting.notify.base import DeliveryError, Integration, Notification, NotifyAlert
from alerting.worker.compose import build_integration

TEST_ALERTNAME = "AlertingTestNotification"


def test_notification(
    receiver: str, severity: str, *, now: float, external_url: str = "", resolved: bool = False
) -> Notification:
    """The synthetic alert: clearly a test, with the severity the receiver routes on."""
    labels = {"alertname": TEST_ALERTNAME, "severity": severity, "receiver": receiver}
    annotations = {
        "summary": f"Test notification for receiver {receiver}",
        "description": f"Sent by `alerting notify test {receiver}` to check delivery. Nothing is wrong.",
    }
    alert = NotifyAlert(
        status="resolved" if resolved else "firing",
        labels=labels,
        annotations=annotations,
        starts_at=now,
        ends_at=now if resolved else None,
        fingerprint="notify-test",
    )
    return Notification(
        receiver=receiver,
        # One stable group per receiver: repeated tests update one PagerDuty incident, not many.
        group_key=f'{{}}/notify-test:{{receiver="{receiver}"}}',
        group_labels={"alertname": TEST_ALERTNAME, "receiver": receiver},
        alerts=(alert,),
        external_url=external_url,
    )


@dataclass(frozen=True)
class Outcome:
    """What happened to one integration of the receiver."""

    integration: str  # e.g. "slack_configs[0]"
    status: str  # "firing" or "resolved"
    result: str  # "sent", "skipped" or "failed"
    detail: str = ""
    retryable: bool = False


def build_receiver(
    name: str, document: Mapping[str, Any], env: Mapping[str, str] | None = None
) -> list[tuple[str, Integration]]:
    """The integrations of receiver ``name`` in an alerting.yml document (``receivers`` + ``global``)."""
    env = environment() if env is None else env
    file = str(getattr(entries.position(document), "file", "") or "alerting.yml")
    config = parse_document(document, file)
    receiver = config.receivers.get(name)
    if receiver is None:
        names = ", ".join(config.receivers) or "none"
        raise ConfigError(
            f'no receiver named "{name}" (receivers: {names})', entries.position(document, "receivers")
        )
    for problem in config.routing_problems:  # the receiver's own problems; the rest of the file may be wrong
        if f'receiver "{name}"' in problem.message or _within(problem.pos, receiver.pos, config):
            raise problem
    extra = {kvstore.STORE_KEY: kvstore.MemoryStore()}
    integrations = [
        (f"{entry.key}[{entry.index}]", build_integration(entry, config.global_config, env, extra))
        for entry in receiver.integrations
    ]
    if not integrations:
        raise ConfigError(f'receiver "{name}" has no integrations to test', receiver.pos)
    return integrations


def _within(pos: Position | None, start: Position | None, config: AlertingConfig) -> bool:
    """Whether ``pos`` lies in the receiver written at ``start`` (before the next one)."""
    if pos is None or start is None:
        return False
    starts = sorted(r.pos.line for r in config.receivers.values() if r.pos is not None)
    end = next((line for line in starts if line > start.line), None)
    return start.line <= pos.line and (end is None or pos.line < end)


def send_test(
    name: str,
    document: Mapping[str, Any],
    *,
    severity: str = "critical",
    resolve: bool = False,
    now: float | None = None,
    external_url: str = "",
    env: Mapping[str, str] | None = None,
) -> list[Outcome]:
    """Send the synthetic alert (and with ``resolve`` its resolve) to every integration of ``name``."""
    now = time.time() if now is None else now
    outcomes = []
    for label, integration in build_receiver(name, document, env):
        for resolved in (False, True) if resolve else (False,):
            notification = test_notification(
                name, severity, now=now, external_url=external_url, resolved=resolved
            )
            status = notification.status
            if resolved and not integration.send_resolved:
                outcomes.append(Outcome(label, status, "skipped", "send_resolved is false"))
                continue
            try:
                integration.send(notification)
            except DeliveryError as exc:
                outcomes.append(Outcome(label, status, "failed", str(exc), exc.retryable))
                break  # no resolve after a failed trigger
            outcomes.append(Outcome(label, status, "sent"))
    return outcomes


def _load_document(path: str) -> Mapping[str, Any]:
    if not Path(path).exists():
        raise ConfigError(f"{path}: no such file (set ALERTING_CONFIG or pass --config)")
    document = load_file(path, ConfigError)
    if not isinstance(document, Mapping):
        raise ConfigError(f"{path}: expected a mapping with receivers")
    return document


def register(cli: click.Group) -> None:
    """Add ``alerting notify ...`` to the command line."""

    @cli.group()
    def notify() -> None:
        """Receivers: check that notifications arrive."""

    @notify.command("test")
    @click.argument("receiver")
    @click.option(
        "--severity", default="critical", show_default=True, help="severity label of the test alert"
    )
    @click.option("--resolve", is_flag=True, help="also send the resolve (closes the test incident)")
    @click.option(
        "--config",
        "config_path",
        default=None,
        help="alerting.yml [default: $ALERTING_CONFIG or alerting.yml]",
    )
    def test(receiver: str, severity: str, resolve: bool, config_path: str | None) -> None:
        """Send a synthetic alert to every integration of RECEIVER and report each result."""
        settings = load_settings()
        path = config_path or settings.config_path
        try:
            outcomes = send_test(
                receiver,
                _load_document(path),
                severity=severity,
                resolve=resolve,
                external_url=settings.external_url,
                env=settings.environ,
            )
        except ConfigError as exc:
            raise click.ClickException(str(exc)) from None
        for outcome in outcomes:
            head = f"{outcome.integration}: {outcome.status}"
            if outcome.result == "sent":
                click.echo(f"{head}: sent")
            elif outcome.result == "skipped":
                click.echo(f"{head}: skipped ({outcome.detail})")
            else:
                kind = "temporary, the worker would retry" if outcome.retryable else "permanent"
                click.echo(f"{head}: FAILED ({kind}): {outcome.detail}", err=True)
        failed = sum(1 for o in outcomes if o.result == "failed")
        if failed:
            raise click.ClickException(f"{failed} of {len(outcomes)} deliveries failed")
        if not resolve:
            click.echo(f"Run again with --resolve to close the test alert ({TEST_ALERTNAME}).")
