"""``alerting notify test RECEIVER``: send a synthetic alert to every integration of one receiver.

It is the first thing to run after configuring a receiver: the synthetic alert goes through the same
integration code the worker uses, so a wrong token, an unknown channel or an unreachable SMTP server
shows up here with the error the worker would log. ``--resolve`` sends the resolve as well, which
closes the PagerDuty incident and threads the resolve under the Slack message.
"""

from __future__ import annotations

import importlib
import pkgutil
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from alerting.cli.tools import load_settings
from alerting.config.env import expand
from alerting.config.yamlfile import load_file
from alerting.errors import ConfigError
from alerting.notify import base, data
from alerting.notify.base import DeliveryError, Integration, Notification, NotifyAlert

TEST_ALERTNAME = "AlertingTestNotification"


def load_integrations() -> None:
    """Import every receiver module so each registers its ``*_configs`` key."""
    import alerting.notify.receivers as package

    for module in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"{package.__name__}.{module.name}")


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


def build_receiver(name: str, document: Mapping[str, Any]) -> list[tuple[str, Integration]]:
    """The integrations of receiver ``name`` in an alerting.yml document (``receivers`` + ``global``)."""
    load_integrations()
    receivers = document.get("receivers") or []
    if not isinstance(receivers, list):
        raise data.config_error(document, "receivers", "receivers must be a list")
    found = [r for r in receivers if isinstance(r, Mapping) and r.get("name") == name]
    if not found:
        names = ", ".join(str(r.get("name")) for r in receivers if isinstance(r, Mapping)) or "none"
        raise ConfigError(
            f'no receiver named "{name}" (receivers: {names})', data.position(document, "receivers")
        )
    receiver = found[0]
    global_config = dict(data.mapping(document, "global", "global"))
    global_config.setdefault(data.STORE_KEY, data.MemoryStore())
    integrations: list[tuple[str, Integration]] = []
    for key, entries in receiver.items():
        if key == "name":
            continue
        factory = base.INTEGRATIONS.get(key)
        if factory is None:
            known = ", ".join(sorted(base.INTEGRATIONS))
            raise data.config_error(
                receiver, key, f'receiver "{name}": unknown integration {key} (known: {known})'
            )
        if not isinstance(entries, list):
            raise data.config_error(receiver, key, f'receiver "{name}": {key} must be a list')
        for index, entry in enumerate(entries):
            if not isinstance(entry, Mapping):
                raise data.config_error(receiver, key, f'receiver "{name}": {key}[{index}] must be a mapping')
            integrations.append((f"{key}[{index}]", factory(entry, global_config)))
    if not integrations:
        raise data.config_error(receiver, None, f'receiver "{name}" has no integrations to test')
    return integrations


def send_test(
    name: str,
    document: Mapping[str, Any],
    *,
    severity: str = "critical",
    resolve: bool = False,
    now: float | None = None,
    external_url: str = "",
) -> list[Outcome]:
    """Send the synthetic alert (and with ``resolve`` its resolve) to every integration of ``name``."""
    now = time.time() if now is None else now
    outcomes = []
    for label, integration in build_receiver(name, document):
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


def _load_document(path: str, env: Mapping[str, str]) -> Mapping[str, Any]:
    if not Path(path).exists():
        raise ConfigError(f"{path}: no such file (set ALERTING_CONFIG or pass --config)")
    document = load_file(path, ConfigError)
    if not isinstance(document, Mapping):
        raise ConfigError(f"{path}: expected a mapping with receivers")
    expansion = expand(document, env, data.position(document))
    if expansion.missing:
        first = next(u for u in expansion.unset if u.default is None)
        raise ConfigError(f"environment variable {first.name} is not set", first.pos)
    return expansion.value


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
                _load_document(path, settings.environ),
                severity=severity,
                resolve=resolve,
                external_url=settings.external_url,
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
