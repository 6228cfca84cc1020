"""``tasks.evaluate_group`` and ``tasks.retire_group``: one tick of one group, through this process's
evaluator, with its metrics and report lines."""

from __future__ import annotations

import time

import redis

from alerting.ops import metrics
from alerting.ops.logs import bound, get_logger, new_eval_id
from alerting.rules.model import Group
from alerting.rules.tick import GroupOutcome
from alerting.worker.app import app
from alerting.worker.runtime import get_runtime

log = get_logger(__name__)


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
            outcome = runtime.evaluator.tick(group, slot)
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
    runtime.evaluator.retire(group_id, time.time())


def _report(group: Group, outcome: GroupOutcome) -> None:
    if outcome.skipped:
        log.debug("group.skipped", msg=outcome.skipped, group=group.name, slot=outcome.slot)
        return
    errors = [(e.rule.name, e.health.error) for e in outcome.rules if e.health.error]
    errors += [(r.rule.record, r.health.error) for r in outcome.recorded if r.health.error]
    for name, error in errors:
        log.warning("rule.error", msg=error, group=group.name, rule=name)
    if outcome.missed_slots:
        log.warning(
            "group.missed_slots",
            msg=f"{outcome.missed_slots} slot(s) missed",
            group=group.name,
            missed=outcome.missed_slots,
        )
    log.info(
        "group.evaluated",
        msg=f"evaluated {len(outcome.rules) + len(outcome.recorded)} rules in {outcome.duration:.3f}s",
        group=group.name,
        slot=outcome.slot,
        duration=round(outcome.duration, 4),
        errors=len(errors),
        datasources_down=outcome.datasources_down,
        recorded=sum(len(r.series) for r in outcome.recorded),
    )
