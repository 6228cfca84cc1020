"""The worker's start-up summary (``worker.ready``): what it evaluates, what it asks, where
notifications go, where its endpoints are and what to try next. One log line: a block of text in
the console, the same facts as fields in JSON.
"""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any

from alerting.errors import AlertingError, DatasourceError
from alerting.worker.compose import stand_ins
from alerting.worker.runtime import Runtime

# The cheapest question each kind of datasource answers; kinds not listed are checked by the first
# evaluation (a probe is a URL per rule; the celery source asks the broker the worker already uses).
_PINGS = {"promql": "vector(1)", "sql": "SELECT 1 AS value"}


def datasource_states(runtime: Runtime, names: set[str]) -> dict[str, str]:
    """``up``, ``down: why`` or ``not checked`` for each datasource the rules use."""
    configs = runtime.datasource_configs()
    out: dict[str, str] = {}
    for name in sorted(names):
        config = configs.get(name)
        if config is None:
            out[name] = "not configured"
            continue
        ping = _PINGS.get(config.kind)
        if ping is None:
            out[name] = f"{config.kind}, checked at each evaluation"
            continue
        try:
            runtime.source(name, config.kind).query(ping, time.time())
            out[name] = f"{config.kind}, up"
        except DatasourceError as exc:
            out[name] = f"{config.kind}, DOWN: {exc}"
        except AlertingError:
            out[name] = f"{config.kind}, up"  # it answered, if not to our one-liner
        except Exception as exc:  # noqa: BLE001 - a summary line, never a crash at start
            out[name] = f"{config.kind}, DOWN: {exc}"
    return out


def receiver_states(runtime: Runtime) -> dict[str, str]:
    """Each receiver integration: its kind when real, or the console with what would make it real."""
    routing = runtime.routing()
    out: dict[str, str] = {}
    for receiver in routing.receivers.values():
        for item in receiver.integrations:
            if not item.stands_for:
                out[f"{receiver.name}/{item.config_key}[{item.index}]"] = item.kind
    for entry in stand_ins(routing):
        name, _, why = entry.partition(" (")
        out[name] = f"console until configured ({why.rstrip(')')})"
    return dict(sorted(out.items()))


def summary(runtime: Runtime, http_url: str | None) -> tuple[str, dict[str, Any]]:
    """The start-up summary's text and its fields."""
    groups = runtime.rules.groups()
    by_file: dict[str, list[str]] = defaultdict(list)
    for group in groups:
        by_file[group.file].append(group.name)
    rules = sum(len(g.rules) for g in groups)
    used = {r.datasource for g in groups for r in g.rules} | {
        r.datasource for g in groups for r in g.recording
    }
    datasources = datasource_states(runtime, used)
    receivers = receiver_states(runtime)
    settings = runtime.settings
    recording = sum(len(g.recording) for g in groups)
    also = f" and {recording} recording rules" if recording else ""
    lines = [f"ready: {rules} rules{also} in {len(groups)} groups from {len(by_file)} files"]
    for path, names in sorted(by_file.items()):
        lines.append(f"  rules        {path}: {', '.join(names)}")
    for problem in runtime.rules.problems:
        lines.append(f"  rules        PROBLEM {problem}")
    for name, state in datasources.items():
        lines.append(f"  datasource   {name}: {state}")
    targets = [t.shown_url for t in runtime.routing().remote_write]
    for url in targets:
        lines.append(f"  remote write {url}")
    if recording and not targets:
        lines.append("  remote write NONE: what recording rules record is written nowhere (remote_write:)")
    width = max((len(n) for n in receivers), default=0)
    for name, state in receivers.items():
        lines.append(f"  receiver     {name:<{width}}  {state}")
    if http_url:
        lines.append(f"  http         {http_url}/metrics  {http_url}/readyz")
    lines.append("  try          alerting status    alerting routes test alertname=Watchdog")
    fields = {
        "rule_files": sorted(by_file),
        "groups": len(groups),
        "rules": rules,
        "recording_rules": recording,
        "remote_write": targets,
        "datasources": datasources,
        "receivers": receivers,
        "http": http_url,
        "queue": settings.queue,
    }
    return "\n".join(lines), fields
