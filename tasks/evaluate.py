"""``tasks.evaluate_group``: evaluate one rule group at one slot."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

import redis

from alerting.core import group_name
from alerting.errors import AlertingError
from alerting.notify.pipeline import ingest
from alerting.ops import history, metrics
from alerting.ops.logs import bound, get_logger, new_eval_id
from alerting.rules.model import Group, Rule
from alerting.rules.tick import (
    Evaluated,
    GroupOutcome,
    console_dispatch,
    evaluate_group,
    notify_alerts,
    retire_group,
)
from alerting.sources.prometheus import without_credentials
from alerting.worker.app import app
from alerting.worker.runtime import Runtime, get_runtime

log = get_logger(__name__)
OWNER = f"{os.uname().nodename}:{os.getpid()}"


@app.task(name="tasks.evaluate_group", acks_late=True, ignore_result=True)
def evaluate_group_task(group_id: str, slot: float | None = None) -> None:
    runtime = get_runtime()
    group = runtime.rules.group(group_id)
    metrics.observe_reload(runtime.rules.last_reload_ok)
    if group is None:
        log.info("group.gone", msg=f"group {group_id} no longer exists; skipping", group=group_id)
        return
    slot = group.slot_at(time.time()) if slot is None else slot
    with bound(eval_id=new_eval_id(), group=group.name):
        try:
            outcome = _evaluate(runtime, group, slot)
        except redis.RedisError as exc:
            # Without Redis there is no state to advance: skip this slot (counted as missed by
            # the next successful tick) rather than evaluate blind or crash-loop.
            log.error("state.unavailable", msg=f"Redis unavailable, slot skipped: {exc}", slot=slot)
            metrics.observe_group_failure(group, "redis")
            return
        metrics.observe_group(outcome)
        _report(group, outcome)


@app.task(name="tasks.retire_group", acks_late=True, ignore_result=True)
def retire_group_task(group_id: str) -> None:
    """Resolve the alerts of a group that is gone from the rule files, once."""
    runtime = get_runtime()
    if runtime.rules.group(group_id) is not None:
        return  # it came back
    with runtime.store.lock(f"retire:{group_id}", timeout=30):
        now = time.time()
        retired = retire_group(runtime.store, group_id, now)
    if not retired:
        return
    name = group_name(group_id)
    log.info(
        "group.retired", msg=f"group {group_id} is gone from the rule files; its alerts resolve", group=name
    )
    _dispatch(Group(name=name, file="", interval=1.0, rules=()), retired, now)


def _evaluate(runtime: Runtime, group: Group, slot: float) -> GroupOutcome:
    return evaluate_group(
        runtime.store,
        group,
        slot,
        lambda rule: metrics.timed(runtime.source(rule.datasource, rule.kind)),
        owner=f"{OWNER}:{os.getpid()}",
        concurrency=runtime.settings.query_concurrency,
        outage_tolerance=runtime.settings.outage_tolerance,
        external_url=runtime.settings.external_url,
        dispatch=_dispatch,
        prometheus=_prometheus(runtime),
    )


def _dispatch(group: Group, evaluated: Sequence[Evaluated], slot: float) -> None:
    runtime = get_runtime()
    history.record_evaluated(group.name, evaluated, slot)
    console_dispatch(group, evaluated, slot)
    alerts = notify_alerts(evaluated, lambda rule: generator_url(runtime, rule))
    # The state is saved already; a Redis hiccup here is retried at the next tick, which sends the
    # same alerts again (the pipeline is idempotent per alert).
    try:
        ingest(runtime.redis, runtime.prefix, runtime.routing(), alerts, time.time())
    except redis.RedisError as exc:
        log.error("notify.ingest_failed", msg=f"Redis unavailable, alerts not queued: {exc}")


def generator_url(runtime: Runtime, rule: Rule) -> str:
    """Where the on-call can see the condition: Prometheus's graph of the expression for PromQL
    rules, the configured external URL otherwise."""
    if rule.kind == "promql":
        config = runtime.datasource_configs().get(rule.datasource)
        base = str(config.options.get("url", "")) if config else ""
        if base:
            # Receivers (and whoever they forward to) see this link: never with URL credentials.
            base = without_credentials(base)
            return f"{base.rstrip('/')}/graph?g0.expr={quote(rule.query)}&g0.tab=1"
    return runtime.settings.external_url


def _prometheus(runtime: Runtime) -> Any:
    try:
        return runtime.source("prometheus", "promql")
    except AlertingError:
        return None


def _report(group: Group, outcome: GroupOutcome) -> None:
    if outcome.skipped:
        log.debug("group.skipped", msg=outcome.skipped, group=group.name, slot=outcome.slot)
        return
    errors = [e for e in outcome.rules if e.health.error]
    for item in errors:
        log.warning("rule.error", msg=item.health.error, group=group.name, rule=item.rule.name)
    if outcome.missed_slots:
        log.warning(
            "group.missed_slots",
            msg=f"{outcome.missed_slots} slot(s) missed",
            group=group.name,
            missed=outcome.missed_slots,
        )
    log.info(
        "group.evaluated",
        msg=f"evaluated {len(outcome.rules)} rules in {outcome.duration:.3f}s",
        group=group.name,
        slot=outcome.slot,
        duration=round(outcome.duration, 4),
        errors=len(errors),
        datasources_down=outcome.datasources_down,
    )
