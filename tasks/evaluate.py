"""``tasks.evaluate_group``: evaluate one rule group at one slot."""

from __future__ import annotations

import time

from alerting.celery import app
from alerting.engine import console_dispatch, evaluate_group
from alerting.observability import get_logger
from alerting.runtime import get_runtime

log = get_logger(__name__)


@app.task(name="tasks.evaluate_group", acks_late=True, ignore_result=True)
def evaluate_group_task(group_id: str, slot: float | None = None) -> None:
    runtime = get_runtime()
    group = runtime.rules.group(group_id)
    if group is None:
        log.info("group.gone", msg=f"group {group_id} no longer exists; skipping", group=group_id)
        return
    slot = group.slot_at(time.time()) if slot is None else slot
    outcome = evaluate_group(
        runtime.store,
        group,
        slot,
        lambda rule: runtime.source(rule.datasource, rule.kind),
        owner=app.conf.get("worker_name") or f"pid{__import__('os').getpid()}",
        concurrency=runtime.settings.query_concurrency,
        outage_tolerance=runtime.settings.outage_tolerance,
        external_url=runtime.settings.external_url,
        dispatch=console_dispatch,
        prometheus=_prometheus(runtime),
    )
    if outcome.skipped:
        log.debug("group.skipped", msg=outcome.skipped, group=group.name, slot=slot)
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
        slot=slot,
        duration=round(outcome.duration, 4),
        errors=len(errors),
        datasources_down=outcome.datasources_down,
    )


def _prometheus(runtime):  # type: ignore[no-untyped-def]
    try:
        return runtime.source("prometheus", "promql")
    except Exception:
        return None
