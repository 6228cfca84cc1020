"""Aggregation groups flushed the moment their timer fires, and many deliveries in flight per process.

Each worker process runs one ``Flusher``: a thread that sleeps until the earliest timer in the due
index, woken early when ingest announces an earlier one on the wake-up channel, then claims the due
groups and hands their notifications to a pool of delivery threads (``ALERTING_NOTIFY_CONCURRENCY``),
a few of them at a time while the process is busy (``admission``). It claims the next batch of due
groups only once its sends are nearly all under way, leaving the rest to the other processes.
Group claims, delivery locks and the notification log work exactly as for the Celery tasks, so two
processes, or a job handed over twice, send nothing twice. A delivery thread that goes on to the
next waiting job takes that job's lock in the round trip that releases the last one's
(``pipeline.Handoff``): one round trip to Redis per delivery in a storm, not two.

What a process has taken but not yet delivered sits in the outbox in Redis, leased: while it holds a
job it renews the lease; if it dies, another process takes the job over when the lease ends. A send
that fails stays in the outbox, due again after the usual backoff (never sooner than the receiver's
``Retry-After``, which also pauses every other send to that integration). The beat's periodic
``tasks.flush_groups`` remains as a safety net for a flusher that is not running.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import queue
import random
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

# The HTTP stacks the receivers send with (httpx's, and the PagerDuty client's) import these on
# first use. Imported here, in the worker's main process before it forks its pool, so that a storm's
# first sends in every pool process do not pay for it.
import httpcore  # noqa: F401
import httpcore2  # noqa: F401
import orjson
import redis

from alerting import httppool
from alerting.notify.base import DeliveryError
from alerting.notify.live import RoutingConfig
from alerting.notify.pipeline import (
    DeliveryBusy,
    Handoff,
    Job,
    ReceiverPaused,
    deliver,
    fallback_jobs,
    flush_due,
    release_prepared,
)
from alerting.notify.store import Held, NotifyStore, OutboxWrite
from alerting.ops import metrics
from alerting.ops.logs import bound, get_logger
from alerting.routing.escalation import REASON_ESCALATION
from alerting.worker.admission import Admission

if TYPE_CHECKING:
    from alerting.worker.runtime import Runtime

log = get_logger(__name__)


MAX_RETRIES = 300  # with the backoff cap, a receiver may stay down for about a day before we give up
IDLE_CHECK = 2.0  # seconds between looks at the due index when nothing wakes the flusher
FLUSH_GROUPS = 20  # groups claimed at a time: processes share a burst, and its first sends start early
# ... and at most a CLAIM_SHARE-th of the groups due, though CLAIM_LEAST when there are as many. A
# burst's last claims are then small: the processes flushing it run out of work together, instead
# of one delivering its last 20 groups alone while the others have nothing left to do.
CLAIM_SHARE = 4
CLAIM_LEAST = 4
HISTORY_DEFER = 10.0  # seconds a history row may wait for the sends under way
# History rows wait until no send has been under way in this process for this long: a storm's
# groups come due over a while, and the gaps between its sends are not the end of it.
HISTORY_QUIET = 1.0
INDEX_CLEAN_LATEST = 300.0  # seconds the alert index's cleaning may wait for a quiet moment
OUTBOX_TAKE = 100  # abandoned or retrying jobs taken over at a time
OUTBOX_MIN_LEASE = 30.0
OUTBOX_TTL = 2 * 86400.0  # a job nobody could deliver for this long is forgotten (MAX_RETRIES is less)
# Deliveries running at once while the process is busy, and how long the oldest of them may be under
# way, with the process mostly idle, before more may run (up to ALERTING_NOTIFY_CONCURRENCY): see
# ``admission``.
PROMPT_DELIVERIES = 4
PROMPT_PATIENCE = 0.1
# A flush claims the next batch of due groups once fewer than PACE_BACKLOG of this process's sends
# wait to start (or after PACE_MOST seconds): what the process could not start soon stays due for
# the others. A storm's groups are then shared by how fast each process delivers, not by how fast it
# claims (claiming ahead left one process with a third more notifications than the other, and the
# storm waited for it).
PACE_BACKLOG = PROMPT_DELIVERIES
PACE_MOST = 0.5


def backoff(retries: int, retry_after: float | None = None, *, base: float, cap: float) -> float:
    """Seconds before retry number ``retries + 1``: exponential, jittered, at least ``retry_after``.

    ``base`` and ``cap`` are the settings' ALERTING_NOTIFY_BACKOFF_BASE and _CAP, which tests (and
    impatient staging setups) lower to see retries within seconds.
    """
    ceiling = min(cap, base * (2 ** min(retries, 20)))
    delay = random.uniform(ceiling / 2, ceiling)
    return max(delay, retry_after or 0.0)


@dataclass(frozen=True)
class Outcome:
    """What became of one delivery attempt."""

    retry_in: float | None = None  # try again after this many seconds; None: finished
    error: Exception | None = None  # why it is tried again (None: deferred, nothing failed)
    fallbacks: tuple[Job, ...] = ()  # the notification, permanently failed, for the fallback receiver
    settled: bool = False  # the job has left the outbox already


def attempt(
    runtime: Runtime,
    config: RoutingConfig,
    job: Job,
    retries: int,
    record: Callable[..., Any] | None = None,
    handoff: Handoff | None = None,
) -> Outcome:
    """One delivery attempt of ``job`` (number ``retries + 1``), counted, recorded and logged.

    ``record`` writes the history row (the runtime's history by default). A job that is settled
    (sent, or found no longer needed) leaves the outbox in the round trip that writes its log
    (which, with ``handoff``, also takes the lock of the thread's next job: see ``deliver``).
    """
    settings = runtime.settings
    record = record or runtime.history.record_notification
    store = NotifyStore(runtime.redis, runtime.prefix)
    started = time.monotonic()
    context = {"receiver": job.receiver}
    if job.extra.get("eval_id"):
        context["eval_id"] = job.extra["eval_id"]
    with bound(**context):
        try:
            now = time.time()
            sent = deliver(
                runtime.redis,
                runtime.prefix,
                config,
                job,
                now,
                lock_ttl=settings.notify_lock_ttl,
                outbox=[job.job_id],
                handoff=handoff,
            )
        except ReceiverPaused as paused:
            log.info(
                "notify.deferred",
                msg=f"the receiver asked for a pause; sending in {paused.seconds:.1f}s",
                job_id=job.job_id,
                integration=job.integration,
            )
            return Outcome(retry_in=paused.seconds)
        except redis.RedisError as exc:
            # Without Redis the log cannot be checked or written: sending now could duplicate; wait.
            delay = backoff(retries, base=settings.notify_backoff_base, cap=settings.notify_backoff_cap)
            log.warning(
                "notify.retry", msg=f"redis unavailable: {exc}", job_id=job.job_id, retry_in=round(delay, 1)
            )
            return Outcome(retry_in=delay, error=exc)
        except DeliveryError as exc:
            return _failed(runtime, store, config, job, retries, exc, time.monotonic() - started, record)
        metrics.observe_notification(
            job.receiver, "sent", integration=job.integration, duration=time.monotonic() - started
        )
        record(
            job.receiver,
            "sent",
            alerts=job.alerts,
            integration=job.integration,
            attempt=retries + 1,
            group_key=job.group_key,
            eval_id=job.extra.get("eval_id") or None,
            at=time.time(),
        )
        if sent and job.reason == REASON_ESCALATION:
            _escalated(job, record)
        return Outcome(settled=True)


def _escalated(job: Job, record: Callable[..., Any]) -> None:
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
    record(
        job.receiver,
        "escalated",
        alerts=job.alerts,
        integration=job.integration,
        group_key=job.group_key,
        eval_id=job.extra.get("eval_id") or None,
        at=time.time(),
    )


def _failed(
    runtime: Runtime,
    store: NotifyStore,
    config: RoutingConfig,
    job: Job,
    retries: int,
    exc: DeliveryError,
    duration: float,
    record: Callable[..., Any],
) -> Outcome:
    settings = runtime.settings
    metrics.observe_notification(
        job.receiver, "failed", metrics.reason_for(exc), integration=job.integration, duration=duration
    )
    record(
        job.receiver,
        "failed",
        alerts=job.alerts,
        error=exc,
        integration=job.integration,
        attempt=retries + 1,
        group_key=job.group_key,
        eval_id=job.extra.get("eval_id") or None,
        at=time.time(),
    )
    if exc.retry_after and not isinstance(exc, DeliveryBusy):
        # The receiver's word holds for every send to it, not only this one.
        with contextlib.suppress(redis.RedisError):
            store.pause(job.integration, exc.retry_after)
    if exc.retryable and retries < MAX_RETRIES:
        delay = backoff(
            retries, exc.retry_after, base=settings.notify_backoff_base, cap=settings.notify_backoff_cap
        )
        log.warning(
            "notify.retry",
            msg=str(exc),
            job_id=job.job_id,
            receiver=job.receiver,
            integration=job.integration,
            attempt=retries + 1,
            retry_in=round(delay, 1),
        )
        metrics.observe_retry(job.receiver, job.integration)
        return Outcome(retry_in=delay, error=exc)
    log.error(
        "notify.failed",
        msg=str(exc),
        job_id=job.job_id,
        receiver=job.receiver,
        integration=job.integration,
        permanent=not exc.retryable,
        attempts=retries + 1,
    )
    return Outcome(fallbacks=tuple(fallback_jobs(config, job)))


_ENTRY_FIELDS = tuple(f.name for f in dataclasses.fields(Job) if f.name != "alerts")


def _entry(job: Job, retries: int, stored: bytes = b"") -> bytes:
    """The outbox entry of ``job``. Given its alerts as their group stored them (``stored_alerts``,
    which the flush has at hand), they go in as they are; else they are written out."""
    try:
        data = {name: getattr(job, name) for name in _ENTRY_FIELDS}
        if stored:
            data["stored"] = orjson.Fragment(stored)
            return orjson.dumps({"retries": retries, "job": data})
        if all(a.value is None or math.isfinite(a.value) for a in job.alerts):
            # orjson writes the dataclasses as they are: the same JSON as ``to_dict``'s.
            data["alerts"] = job.alerts
            return orjson.dumps({"retries": retries, "job": data})
    except TypeError:  # a mapping other than a dict somewhere: the general way
        pass
    return json.dumps({"retries": retries, "job": job.to_dict()}).encode()  # orjson writes NaN as null


class Flusher:
    """This process's flusher thread and delivery threads (see the module docstring)."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.store = NotifyStore(runtime.redis, runtime.prefix)
        self.lease = max(OUTBOX_MIN_LEASE, 2 * runtime.settings.notify_lock_ttl)
        most = runtime.settings.notify_concurrency
        self._pool = ThreadPoolExecutor(most, thread_name_prefix="delivery")
        self._deliveries: Admission[tuple[Job, int]] = Admission(
            self._pool,
            self._deliver,
            steady=PROMPT_DELIVERIES,
            most=most,
            patience=PROMPT_PATIENCE,
            held_since=httppool.awaiting_since,
            on_awaiting=httppool.on_awaiting,
        )
        self._held: dict[str, int] = {}  # job id -> retries, for jobs taken and not yet finished
        self._held_lock = threading.Lock()
        # Job id -> its delivery lock, taken by the delivery before it on the same thread (``Handoff``)
        self._prepared: dict[str, Held] = {}
        self._flush_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # History rows are written by one thread of their own, so that a delivery thread is free for
        # the next send as soon as its receiver answered (a storm writes a row per alert carried).
        self._records: queue.SimpleQueue[tuple[float, str, str, dict[str, Any]] | None] = queue.SimpleQueue()
        self._busy_at = 0.0  # time.monotonic() when a send was last under way
        self._cleaned_at = time.time()  # when this process last had the alert index cleaned
        self._recorder: threading.Thread | None = None

    # -- the thread ------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the flusher thread, or start it again if it died."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="flusher", daemon=True)
        self._thread.start()
        if self._recorder is None or not self._recorder.is_alive():
            self._recorder = threading.Thread(target=self._write_history, name="history", daemon=True)
            self._recorder.start()
        self._pool.submit(self._warm)

    def _warm(self) -> None:
        """Start the delivery threads, and let integrations that can build their clients (TLS
        contexts, connection pools) now: a storm's first sends would otherwise queue behind
        starting threads (the pool starts one per send until it has them all) and building clients."""
        threads = self.runtime.settings.notify_concurrency
        gathered = threading.Barrier(threads)
        for _ in range(threads):  # each holds its thread until all are there, so each has its own
            self._pool.submit(gathered.wait, 5.0)
        try:
            for receiver in self.runtime.routing().receivers.values():
                for integ in receiver.integrations:
                    warm = getattr(integ.integration, "warm", None)
                    if warm is not None:
                        warm()
        except Exception as exc:  # noqa: BLE001 - the first send builds it then, and says what fails
            log.debug("notify.warm_failed", msg=f"{type(exc).__name__}: {exc}")

    def _record(self, receiver: str, outcome: str, **fields: Any) -> None:
        self._records.put((time.monotonic(), receiver, outcome, fields))

    def _busy(self) -> bool:
        if self._held:
            self._busy_at = time.monotonic()
            return True
        return time.monotonic() - self._busy_at < HISTORY_QUIET

    def _write_history(self) -> None:
        while (item := self._records.get()) is not None:
            # Rows wait (HISTORY_DEFER at most from when they were recorded) until the storm's sends
            # are over: a storm writes a row per alert it carried, which is CPU (about a millisecond
            # per hundred rows) its notifications need more.
            queued, receiver, outcome, fields = item
            deadline = queued + HISTORY_DEFER
            while self._busy() and time.monotonic() < deadline and not self._stop.wait(0.05):
                pass
            try:
                self.runtime.history.record_notification(receiver, outcome, **fields)
            except Exception as exc:  # noqa: BLE001 - the history reports its own failures; go on
                log.warning("history.record_failed", msg=f"{type(exc).__name__}: {exc}")

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop flushing; give back the jobs not started yet, wait ``timeout`` for sends under way."""
        self._stop.set()
        waiting = [job.job_id for job, _ in self._deliveries.close()]  # given back below, not waited for
        with self._held_lock:
            for job_id in waiting:
                self._held.pop(job_id, None)
        self._pool.shutdown(wait=False, cancel_futures=True)
        deadline = time.monotonic() + timeout
        if self._thread is not None:
            self._thread.join(timeout)
        while self._held and time.monotonic() < deadline:
            time.sleep(0.05)
        with self._held_lock:
            left = list(self._held) + waiting
        self._records.put(None)
        if self._recorder is not None:
            self._recorder.join(max(0.0, deadline - time.monotonic()))
        # Whatever is left another process takes over now, not when the lease ends.
        with contextlib.suppress(redis.RedisError):
            self.store.outbox_renew(left, time.time())

    def _run(self) -> None:
        pubsub: Any = None
        target = 0.0
        renew_at = time.monotonic() + self.lease / 3
        while not self._stop.is_set():
            try:
                if pubsub is None:
                    pubsub = self.store.r.pubsub(ignore_subscribe_messages=True)
                    pubsub.subscribe(self.store.wake_channel)
                    target = 0.0  # announcements may have been missed while not listening
                now = time.time()
                if now >= target:
                    self.flush(now)
                    target = self._next_wake()
                if time.monotonic() >= renew_at:
                    # Under the lock: a job given back for a retry meanwhile must not have its
                    # retry time pushed out to the end of a lease.
                    with self._held_lock:
                        self.store.outbox_renew(list(self._held), time.time() + self.lease)
                    renew_at = time.monotonic() + self.lease / 3
                message = pubsub.get_message(timeout=max(0.0, min(target - time.time(), IDLE_CHECK)))
                while message is not None:
                    if message.get("type") == "message":
                        target = min(target, float(message["data"]))
                    message = pubsub.get_message(timeout=0.0)
            except Exception as exc:  # noqa: BLE001 - Redis away, a bad config: log, wait, go on
                log.warning("notify.flusher_error", msg=f"{type(exc).__name__}: {exc}")
                if pubsub is not None:
                    with contextlib.suppress(Exception):  # it is being dropped anyway
                        pubsub.close()
                    pubsub = None
                self._stop.wait(1.0)
        if pubsub is not None:
            pubsub.close()

    def _next_wake(self) -> float:
        pipe = self.store.r.pipeline(transaction=False)
        pipe.zrange(self.store.due_key, 0, 0, withscores=True)
        pipe.zrange(self.store.outbox_key, 0, 0, withscores=True)
        wake = time.time() + IDLE_CHECK
        for first in pipe.execute():
            if first:
                wake = min(wake, float(first[0][1]))
        return wake

    # -- flushing and delivering -----------------------------------------------------------------

    def flush(self, now: float) -> int:
        """Flush what is due and take over abandoned or retrying jobs; returns the jobs started.

        Called by the flusher thread when a timer fires, and by the beat's ``tasks.flush_groups``.
        """
        with self._flush_lock:
            started = 0
            for entry in self.store.outbox_take(now, now + self.lease, OUTBOX_TAKE).values():
                data = json.loads(entry)  # rarely many: jobs given up by a process that died
                self._submit(Job.from_dict(data["job"]), int(data.get("retries", 0)))
                started += 1
            config = self.runtime.routing()
            jobs = flush_due(
                self.store.r,
                self.runtime.prefix,
                config,
                now,
                FLUSH_GROUPS,
                share=CLAIM_SHARE,
                least=CLAIM_LEAST,
                lock_ttl=self.runtime.settings.notify_lock_ttl,
                ack_sources=self.runtime.ack_sources(),
                on_jobs=self._start_flushed,
                outbox=self._outbox,
                collect_garbage=False,
            )
            # Cleaning the alert index reads all of it: in a quiet moment (a flush that started no
            # send; the flusher looks every few seconds), unless it has waited too long already.
            quiet = not jobs and not self._held
            if not config.inhibit_rules and (quiet or now - self._cleaned_at >= INDEX_CLEAN_LATEST):
                self._cleaned_at = now
                self.store.collect_garbage(now)
            return started + len(jobs)

    def _outbox(self, jobs: list[Job], stored: Mapping[str, bytes] | None = None) -> OutboxWrite:
        """The outbox entries of new jobs (with their alerts as stored, by group id, when the flush
        has them), held by this process for a lease."""
        stored = stored or {}
        entries = {job.job_id: _entry(job, 0, stored.get(job.group_id, b"")) for job in jobs}
        return OutboxWrite(entries, time.time() + self.lease, OUTBOX_TTL)

    def _start(self, jobs: list[Job]) -> None:
        for job in jobs:
            self._submit(job, 0)

    def _start_flushed(self, jobs: list[Job]) -> None:
        """Start a flushed batch's sends; return when the flush may claim the next batch."""
        self._start(jobs)
        self._deliveries.wait_fewer(PACE_BACKLOG, PACE_MOST)

    def _dispatch(self, jobs: list[Job]) -> None:
        """Record the jobs in the outbox, then start their sends."""
        write = self._outbox(jobs)
        self.store.outbox_put(write.jobs, write.until, write.ttl)
        self._start(jobs)

    def _submit(self, job: Job, retries: int) -> None:
        with self._held_lock:
            if job.job_id in self._held:
                return  # already ours, and under way
            self._held[job.job_id] = retries
        try:
            self._deliveries.submit((job, retries))
        except RuntimeError:  # stopping: the job stays in the outbox for whoever is still running
            with self._held_lock:
                self._held.pop(job.job_id, None)

    # -- Handoff: a delivery thread takes its next job's lock as it releases the last one's -------

    def next_job(self) -> Job | None:
        item = self._deliveries.take_next()
        return item[0] if item is not None else None

    def prepare(self, job: Job, held: Held | None) -> None:
        if held is not None:
            self._prepared[job.job_id] = held

    def prepared(self, job: Job) -> Held | None:
        return self._prepared.pop(job.job_id, None)

    def _deliver(self, item: tuple[Job, int]) -> None:
        job, retries = item
        try:
            outcome = attempt(self.runtime, self.runtime.routing(), job, retries, self._record, self)
            if outcome.fallbacks:
                self._dispatch(list(outcome.fallbacks))
            if outcome.retry_in is None:
                if not outcome.settled:
                    self.store.outbox_done([job.job_id])
            else:
                # Due again at the retry time, for whichever flusher is awake then: no longer held
                # here (neither renewed, nor skipped as under way when a flush takes it back).
                tries = retries + 1 if outcome.error is not None else retries
                with self._held_lock:
                    self._held.pop(job.job_id, None)
                    self.store.outbox_put(
                        {job.job_id: _entry(job, tries)}, time.time() + outcome.retry_in, OUTBOX_TTL
                    )
                self.store.r.publish(self.store.wake_channel, repr(time.time() + outcome.retry_in))
        except Exception as exc:  # noqa: BLE001 - left in the outbox: taken over when its lease ends
            log.warning(
                "notify.delivery_error",
                msg=f"{type(exc).__name__}: {exc}; tried again when its lease ends",
                job_id=job.job_id,
            )
        finally:
            if job.job_id in self._prepared:  # its delivery did not take it (see ``Handoff.prepared``)
                with contextlib.suppress(redis.RedisError):  # else it expires with its TTL
                    release_prepared(self.store, self, job)
            self._busy_at = time.monotonic()
            with self._held_lock:
                self._held.pop(job.job_id, None)
