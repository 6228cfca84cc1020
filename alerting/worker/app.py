"""The Celery app ``app`` and its beat schedule, built from the rule groups.

The beat scheduler is :mod:`alerting.worker.beat`.
"""

from __future__ import annotations

import os
from typing import Any

from celery import Celery, signals

from alerting import redisconn
from alerting.api import health
from alerting.config.settings import Settings
from alerting.errors import ConfigError
from alerting.ops import metrics
from alerting.ops.logs import configure_logging, get_logger, prepare_celery_worker
from alerting.worker.broker import BrokerAMQP

try:
    settings = Settings.from_env()
except ConfigError as _exc:
    # A bad setting is the operator's to fix; say which, without a traceback.
    raise SystemExit(f"alerting: configuration error: {_exc}") from None
# A sentinel URL (redis+sentinel://...) becomes kombu's sentinel transport with its master_name.
broker = redisconn.celery_broker(settings.broker_url)
app = Celery("alerting", broker=broker.url, include=["tasks.evaluate", "tasks.notify"], amqp=BrokerAMQP)
app.conf.update(
    timezone="UTC",
    enable_utc=True,
    task_serializer="json",
    accept_content=["json"],
    task_default_queue=settings.queue,
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
    # A worker killed mid-task gets its message redelivered after this (Redis broker).
    broker_transport_options={"visibility_timeout": 600, **broker.transport_options},
    # Celery reads CELERY_BROKER_URL from the environment itself, over the ``broker`` given above;
    # the read and write URLs win over that, so kombu gets the translated URL, never ours.
    broker_read_url=broker.url,
    broker_write_url=broker.url,
    broker_transport=broker.transport,
    broker_use_ssl=broker.use_ssl,
    beat_scheduler="alerting.worker.beat:GroupScheduler",
    beat_max_loop_interval=5,
)

log = get_logger(__name__)


@signals.setup_logging.connect
def _setup_logging(**_: Any) -> None:
    configure_logging(settings.log_level, settings.log_format)


@signals.celeryd_init.connect
def _prepare(instance: Any = None, **_: Any) -> None:
    prepare_celery_worker(instance, settings.log_level, settings.log_format)


@signals.worker_init.connect
def _metrics_dir(**_: Any) -> None:
    # In the main process, before the pool forks: every child writes into the same directory.
    metrics.setup(fresh=True)


_server: Any = None


@signals.worker_ready.connect
def _serve(**_: Any) -> None:
    global _server
    from alerting.worker.runtime import get_runtime

    runtime = get_runtime()
    _server = health.start_server(settings, registry=runtime.rules)
    from alerting.worker.banner import summary

    try:
        text, fields = summary(runtime, _server.url if _server is not None else None)
    except Exception as exc:  # noqa: BLE001 - the summary is a courtesy; the worker runs regardless
        log.warning("worker.summary_failed", msg=f"no start-up summary: {exc}")
        return
    log.info("worker.ready", msg=text, **fields)


@signals.worker_shutdown.connect
def _stop(**_: Any) -> None:
    if _server is not None:
        _server.stop()


@signals.worker_process_init.connect
def _start_flusher(**_: Any) -> None:
    # In each pool process, after the fork: its own flusher thread, delivery threads and connections,
    # all on one CPU (pinned first: the threads started next take this one's affinity).
    from celery.utils.log import current_process_index

    from alerting.ops import affinity
    from alerting.ops.heap import settle_heap
    from alerting.worker.runtime import get_runtime

    cpu = affinity.pin_process(settings.cpu_affinity, current_process_index(base=0))
    if cpu is not None:
        log.info(
            "worker.pinned", msg=f"pool process {os.getpid()} runs on CPU {cpu}", cpu=cpu, pid=os.getpid()
        )
    try:
        get_runtime().flusher().start()
    except Exception as exc:  # noqa: BLE001 - beat's flush_groups starts it again shortly
        log.warning("notify.flusher_not_started", msg=f"{type(exc).__name__}: {exc}")
    settle_heap()


@signals.worker_process_shutdown.connect
def _gone(pid: int | None = None, **_: Any) -> None:
    from alerting.worker.runtime import get_runtime

    try:
        get_runtime().flusher().stop()
    except Exception as exc:  # noqa: BLE001 - its jobs are taken over when their leases end
        log.warning("notify.flusher_stop_failed", msg=f"{type(exc).__name__}: {exc}")
    # Recorded samples still queued in this process go out before it exits (a pool process being
    # recycled, or the worker stopping); what cannot go in time is counted as dropped.
    try:
        get_runtime().flush_writes(timeout=10)
    except Exception as exc:  # noqa: BLE001 - shutting down either way
        log.warning("remote_write.flush_failed", msg=f"{type(exc).__name__}: {exc}")
    if pid is not None:
        metrics.process_exited(pid)


@signals.task_retry.connect
def _retry(sender: Any = None, request: Any = None, **_: Any) -> None:
    metrics.observe_task_retry(str(getattr(sender, "name", None) or getattr(request, "task", "unknown")))
