"""Prometheus's rules and alerts API over the worker's own rules: ``GET /api/v1/rules``,
``/api/v1/alerts`` and ``/api/v1/status/buildinfo``, in Prometheus 2.42's envelope and field names,
so Grafana's Prometheus data source and other tools that read a Prometheus's rules read the worker's.

The rules are those the worker has loaded; their state, alerts and health are what the last
evaluation saved in Redis (:class:`~alerting.rules.state.StateStore`), so every worker answers alike.
Recording rules are listed with the alerting rules, in file order, as Prometheus lists them.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from alerting.core import RuleHealth, rfc3339
from alerting.rules.evaluation import Alert, State
from alerting.rules.model import AnyRule, Group, RecordingRule, Rule
from alerting.rules.state import StateStore

ZERO_TIME = "0001-01-01T00:00:00Z"  # what Go prints for a time never set (a rule not yet evaluated)
_RANK = {State.INACTIVE: 0, State.PENDING: 1, State.FIRING: 2}


def go_float(value: float) -> str:
    """A sample value as Prometheus's API writes it: the shortest exact ``%e`` form (``1e+00``)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    digits = len(Decimal(repr(value)).normalize().as_tuple().digits)
    return f"{value:.{max(digits - 1, 0)}e}"


def success(data: Any) -> Response:
    return _json(200, {"status": "success", "data": data})


def error(status: int, kind: str, message: str) -> Response:
    return _json(status, {"status": "error", "errorType": kind, "error": message})


def _json(status: int, body: Any) -> Response:
    return Response(json.dumps(body, separators=(",", ":")).encode(), status, media_type="application/json")


def seconds(value: float) -> float | int:
    """A duration as Go's JSON writes a float64: ``0`` and ``3600``, not ``0.0``."""
    return int(value) if float(value).is_integer() else value


def _when(t: float | None) -> str:
    return rfc3339(t) if t else ZERO_TIME


def alert_json(alert: Alert) -> dict[str, Any]:
    """An active alert as ``/api/v1/alerts`` and each rule's ``alerts`` show it."""
    return {
        "labels": dict(alert.labels),
        "annotations": dict(alert.annotations),
        "state": alert.state.value,
        "activeAt": rfc3339(alert.active_at),
        "value": go_float(alert.value),
    }


def _active(alerts: Mapping[str, Alert]) -> list[Alert]:
    return sorted((a for a in alerts.values() if a.state is not State.INACTIVE), key=lambda a: a.labels)


def rule_json(rule: Rule, alerts: Mapping[str, Alert], health: RuleHealth | None) -> dict[str, Any]:
    """An alerting rule as Prometheus lists it."""
    active = _active(alerts)
    state = max((a.state for a in active), key=_RANK.__getitem__, default=State.INACTIVE)
    out: dict[str, Any] = {
        "state": state.value,
        "name": rule.name,
        "query": rule.query_text,
        "duration": seconds(rule.for_),
        "keepFiringFor": seconds(rule.keep_firing_for),
        "labels": dict(rule.labels),
        "annotations": dict(rule.annotations),
        "alerts": [alert_json(a) for a in active],
    }
    return {**out, **_health_fields(health), "type": "alerting"}


def recording_rule_json(rule: RecordingRule, health: RuleHealth | None) -> dict[str, Any]:
    """A recording rule as Prometheus lists it (``labels`` left out when there are none)."""
    out: dict[str, Any] = {"name": rule.record, "query": rule.expr}
    if rule.labels:
        out["labels"] = dict(rule.labels)
    return {**out, **_health_fields(health), "type": "recording"}


def _health_fields(health: RuleHealth | None) -> dict[str, Any]:
    """A rule's health, last error (only when there is one) and last evaluation, in that order."""
    out: dict[str, Any] = {"health": health.health if health is not None else "unknown"}
    if health is not None and health.error:
        out["lastError"] = health.error
    out["evaluationTime"] = seconds(health.duration) if health is not None else 0
    out["lastEvaluation"] = _when(health.last_slot if health is not None else None)
    return out


def in_file_order(group: Group) -> list[AnyRule]:
    """The group's alerting and recording rules, as the file lists them."""
    rules: list[AnyRule] = [*group.rules, *group.recording]
    return sorted(rules, key=lambda r: (r.pos.line or 0, r.pos.col or 0))


class RuleFilter:
    """``type``, ``rule_name[]``, ``rule_group[]`` and ``file[]``: Prometheus's filters of ``/rules``."""

    def __init__(self, request: Request) -> None:
        params = request.query_params
        self.type = params.get("type", "").lower()
        if self.type not in ("", "alert", "record"):
            raise ValueError(f'invalid parameter "type": not supported value "{self.type}"')
        self.names = set(params.getlist("rule_name[]"))
        self.groups = set(params.getlist("rule_group[]"))
        self.files = set(params.getlist("file[]"))

    @property
    def narrows(self) -> bool:
        """Filtering by name, group or file leaves out the groups none of whose rules is left."""
        return bool(self.names or self.groups or self.files)

    def wants_group(self, group: Group) -> bool:
        return (not self.groups or group.name in self.groups) and (not self.files or group.file in self.files)

    def wants_rule(self, rule: AnyRule) -> bool:
        kind = "record" if isinstance(rule, RecordingRule) else "alert"
        return self.type in ("", kind) and (not self.names or rule.name in self.names)


class PrometheusAPI:
    """The ``/api/v1`` routes over the loaded rules (``groups()``) and their saved state."""

    def __init__(
        self, store: StateStore, groups: Callable[[], list[Group]], version: str = "unknown"
    ) -> None:
        self.store = store
        self.groups = groups
        self.version = version

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/api/v1/rules", self.rules, methods=["GET"]),
            Route("/api/v1/alerts", self.alerts, methods=["GET"]),
            Route("/api/v1/status/buildinfo", self.buildinfo, methods=["GET"]),
        ]

    def _state(
        self, group: Group
    ) -> tuple[dict[str, dict[str, Alert]], dict[str, RuleHealth], dict[str, Any]]:
        alerts = self.store.load_group(group.id)
        health, summary = self.store.load_health(group.id)
        return alerts, health, summary

    def rules(self, request: Request) -> Response:
        try:
            wanted = RuleFilter(request)
        except ValueError as exc:
            return error(400, "bad_data", str(exc))
        out = []
        for group in self.groups():
            if not wanted.wants_group(group):
                continue
            alerts, health, summary = self._state(group)
            rules = [
                recording_rule_json(rule, health.get(rule.key))
                if isinstance(rule, RecordingRule)
                else rule_json(rule, alerts.get(rule.key, {}), health.get(rule.key))
                for rule in in_file_order(group)
                if wanted.wants_rule(rule)
            ]
            if wanted.narrows and not rules:
                continue
            out.append(
                {
                    "name": group.name,
                    "file": group.file,
                    "rules": rules,
                    "interval": seconds(group.interval),
                    "limit": group.limit,
                    "evaluationTime": seconds(summary.get("duration") or 0),
                    "lastEvaluation": _when(summary.get("last_slot")),
                }
            )
        return success({"groups": out})

    def alerts(self, _: Request) -> Response:
        out: list[dict[str, Any]] = []
        for group in self.groups():
            alerts, _health, _summary = self._state(group)
            for rule in group.rules:
                out.extend(alert_json(a) for a in _active(alerts.get(rule.key, {})))
        return success({"alerts": out})

    def buildinfo(self, _: Request) -> Response:
        return success(
            {
                "version": self.version,
                "revision": "",
                "branch": "",
                "buildUser": "",
                "buildDate": "",
                "goVersion": f"python{sys.version_info.major}.{sys.version_info.minor}",
            }
        )
