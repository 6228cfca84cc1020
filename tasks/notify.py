"""Thin Celery tasks around the notification pipeline: the flushing safety net, and one delivery per job.

Groups are flushed, and their notifications delivered, by each worker process's flusher
(:mod:`alerting.worker.flusher`) the moment their timer fires. ``flush_groups``, sent by beat every
couple of seconds, keeps that flusher running and flushes whatever it may have missed.

``send_notification`` delivers one job handed over as a task (acknowledged late, keyed by the job's
idempotency key): the same attempt as the flusher's, with the same backoff, never sooner than a
receiver's ``Retry-After``; permanent failures are logged and handed to the receiver's ``fallback``.
"""

from __future__ import annotations  # noqa: I001 (alerting.worker.app and .runtime are ours)

import time
from typing import Any

from alerting.worker.app import app
from alerting.notify.pipeline import Job
from alerting.worker.flusher import attempt
from alerting.worker.runtime import get_runtime


@app.task(name="tasks.flush_groups", ignore_result=True)
def flush_groups() -> int:
    flusher = get_runtime().flusher()
    flusher.start()
    return flusher.flush(time.time())


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
    outcome = attempt(runtime, config, Job.from_dict(job_data), self.request.retries)
    for fallback in outcome.fallbacks:
        send_notification.apply_async(args=[fallback.to_dict()], task_id=fallback.job_id)
    if outcome.retry_in is not None:
        raise self.retry(countdown=outcome.retry_in, exc=outcome.error) from None
