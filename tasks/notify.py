"""Thin Celery tasks around the notification pipeline: periodic flush, and one delivery per job.

``send_notification`` is acknowledged late (a worker killed mid-send leaves the task queued) and keyed
by the job's idempotency key; the pipeline's delivery lock and notification log make a redelivered
task send nothing twice. Retryable failures back off exponentially with jitter, never sooner than a
receiver's ``Retry-After``; permanent failures are logged and handed to the receiver's ``fallback``.
"""

from __future__ import annotations  # noqa: I001 (alerting.worker.app and .runtime are ours)

import random
import time
from typing import Any

import redis
import structlog


from alerting.ops import metrics
from alerting.worker.app import app
from alerting.ops.logs import bound
from alerting.notify.base import DeliveryError
from alerting.notify.pipeline import Job, deliver, fallback_jobs, flush_due
from alerting.routing.escalation import REASON_ESCALATION
from alerting.worker.runtime import get_runtime

log = structlog.get_logger(__name__)

MAX_RETRIES = 300  # with the cap, a receiver may stay down for about a day before we give up


def backoff(retries: int, retry_after: float | None = None, *, base: float, cap: float) -> float:
    """Seconds before retry number ``retries + 1``: exponential, jittered, at least ``retry_after``.

    ``base`` and ``cap`` are the settings' ALERTING_NOTIFY_BACKOFF_BASE and _CAP, which tests (and
    impatient staging setups) lower to see retries within seconds.
    """
    ceiling = min(cap, base * (2 ** min(retries, 20)))
    delay = random.uniform(ceiling / 2, ceiling)
    return max(delay, retry_after or 0.0)


def _backoff(runtime: Any, retries: int, retry_after: float | None = None) -> float:
    settings = runtime.settings
    return backoff(retries, retry_after, base=settings.notify_backoff_base, cap=settings.notify_backoff_cap)


@app.task(name="tasks.flush_groups", ignore_result=True)
def flush_groups() -> int:
    runtime = get_runtime()
    jobs = flush_due(
        runtime.redis,
        runtime.prefix,
        runtime.routing(),
        time.time(),
        lock_ttl=runtime.settings.notify_lock_ttl,
        ack_sources=runtime.ack_sources(),
    )
    for job in jobs:
        send_notification.apply_async(args=[job.to_dict()], task_id=job.job_id)
    return len(jobs)


@app.task(
    name="tasks.send_notification",
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    max_retries=None,
    ignore_result=True,
)
def send_notification(self: Any, job_data: dict[str, Any]) -> None:
    runtime = get_runtime()
    config = runtime.routing()
    job = Job.from_dict(job_data)
    context = {"receiver": job.receiver}
    if job.extra.get("eval_id"):
        context["eval_id"] = job.extra["eval_id"]
    with bound(**context):
        _send(self, runtime, config, job)


def _send(self: Any, runtime: Any, config: Any, job: Job) -> None:
    attempt = self.request.retries + 1
    started = time.monotonic()
    try:
        sent = deliver(
            runtime.redis, runtime.prefix, config, job, time.time(), lock_ttl=runtime.settings.notify_lock_ttl
        )
        metrics.observe_notification(
            job.receiver, "sent", integration=job.integration, duration=time.monotonic() - started
        )
        runtime.history.record_notification(
            job.receiver,
            "sent",
            alerts=job.alerts,
            integration=job.integration,
            attempt=attempt,
            group_key=job.group_key,
        )
        if sent and job.reason == REASON_ESCALATION:
            _escalated(runtime, job)
    except redis.RedisError as exc:
        # Without Redis the log cannot be checked or written: sending now could duplicate; wait.
        delay = _backoff(runtime, self.request.retries)
        log.warning(
            "notify.retry", msg=f"redis unavailable: {exc}", job_id=job.job_id, retry_in=round(delay, 1)
        )
        raise self.retry(countdown=delay, exc=exc) from None
    except DeliveryError as exc:
        metrics.observe_notification(
            job.receiver,
            "failed",
            metrics.reason_for(exc),
            integration=job.integration,
            duration=time.monotonic() - started,
        )
        runtime.history.record_notification(
            job.receiver,
            "failed",
            alerts=job.alerts,
            error=exc,
            integration=job.integration,
            attempt=attempt,
            group_key=job.group_key,
        )
        attempt = self.request.retries
        if exc.retryable and attempt < MAX_RETRIES:
            delay = _backoff(runtime, attempt, exc.retry_after)
            log.warning(
                "notify.retry",
                msg=str(exc),
                job_id=job.job_id,
                receiver=job.receiver,
                integration=job.integration,
                attempt=attempt + 1,
                retry_in=round(delay, 1),
            )
            metrics.observe_retry(job.receiver, job.integration)
            raise self.retry(countdown=delay, exc=exc) from None
        log.error(
            "notify.failed",
            msg=str(exc),
            job_id=job.job_id,
            receiver=job.receiver,
            integration=job.integration,
            permanent=not exc.retryable,
            attempts=attempt + 1,
        )
        for fallback in fallback_jobs(config, job):
            send_notification.apply_async(args=[fallback.to_dict()], task_id=fallback.job_id)


def _escalated(runtime: Any, job: Job) -> None:
    """A group reached an escalation step and its receiver was told: log, count, record."""
    source = str(job.extra.get("escalated_from", ""))
    log.warning(
        "notify.escalated",
        msg=f"escalated from {source} to {job.receiver} (step {job.extra.get('step')})",
        group_key=job.group_key,
        receiver=job.receiver,
        escalated_from=source,
        integration=job.integration,
        step=job.extra.get("step"),
    )
    metrics.observe_escalation(source, job.receiver)
    runtime.history.record_notification(
        job.receiver, "escalated", alerts=job.alerts, integration=job.integration, group_key=job.group_key
    )
