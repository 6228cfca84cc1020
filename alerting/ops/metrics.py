"""The worker's own metrics (prometheus_client), correct under Celery's prefork pool.

Celery evaluates in forked child processes, so an in-memory registry in the process that serves
``/metrics`` would see none of it. We use prometheus_client's multiprocess mode: every process
writes its samples to memory-mapped files in ``PROMETHEUS_MULTIPROC_DIR`` and the scrape merges
them. If the user did not set that directory, :func:`setup` creates a private one (and removes it at
exit); call it in the worker's main process before the pool forks so every child shares it.

How each kind of value survives several processes:

* counters and histograms are summed over every process that ever wrote them (dead ones included,
  so a recycled child never makes a counter go down);
* "last time" gauges use ``max`` (any process's success counts) and "current state" gauges
  (datasource up, reload successful) use ``mostrecent``: the latest write wins, whichever process
  made it, and it outlives that process;
* ``alerting_worker_processes`` uses ``livesum``: files of dead processes are removed, by the
  ``worker_process_shutdown`` hook (:func:`process_exited`) and, for children that were killed
  without running it, by :func:`reap_dead_processes` before every scrape.

Alerts by state (``ALERTS``, ``ALERTS_FOR_STATE``, as Prometheus exposes them) are *not* a
multiprocess gauge: they are read from Redis at scrape time by :class:`StateCollector`. Redis is the
single truth shared by every worker; a gauge written by whichever child evaluated last would keep
label sets of resolved alerts forever (multiprocess files cannot drop a label set) and would
disagree between workers. Queue depths are likewise read from the broker at scrape time.
"""

from __future__ import annotations

import atexit
import functools
import glob
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, values
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector

from alerting.config import settings
from alerting.core import parse_group_id
from alerting.errors import DatasourceError, QueryError
from alerting.ops.logs import get_logger

if TYPE_CHECKING:
    import redis

    from alerting.rules.model import Group
    from alerting.rules.state import StateStore
    from alerting.rules.tick import GroupOutcome
    from alerting.sources import Sample, Source

log = get_logger(__name__)

MULTIPROC_ENV = settings.MULTIPROC_ENV
_MARKER = ".alerting-private"
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_REASON = re.compile(r"^[a-zA-Z][a-zA-Z0-9_]{0,39}$")

_lock = threading.Lock()
_chosen_dir: str | None = None
_metrics: _Metrics | None = None


def setup(fresh: bool = False) -> str:
    """Choose the multiprocess directory (idempotent) and return it.

    The user's ``PROMETHEUS_MULTIPROC_DIR`` wins; files in it are deleted when ``fresh`` (call it so
    once, in the main process at worker start, as prometheus_client asks). Otherwise a private
    directory is made. A private directory inherited through the environment by an unrelated,
    exec'd process (not a forked child) is not reused: that process makes its own.
    """
    global _chosen_dir
    with _lock:
        configured = settings.metrics_dir()
        if configured and configured == _chosen_dir:
            return configured
        if configured and not (Path(configured) / _MARKER).exists():
            Path(configured).mkdir(parents=True, exist_ok=True)
            if fresh:
                for path in glob.glob(os.path.join(configured, "*.db")):
                    os.remove(path)
            chosen = configured
        else:
            chosen = tempfile.mkdtemp(prefix="alerting-metrics-")
            (Path(chosen) / _MARKER).write_text(str(os.getpid()))
            settings.export_metrics_dir(chosen)
            atexit.register(_remove_private_dir, chosen, os.getpid())
        _chosen_dir = chosen
        if values.ValueClass is values.MutexValue:
            # prometheus_client picks its value class when first imported, which may have been
            # before the directory was chosen: pick again, before any of our metrics exists.
            values.ValueClass = values.get_value_class()
        return chosen


def _remove_private_dir(path: str, owner: int) -> None:
    if os.getpid() == owner:  # forked children inherit atexit handlers; only the creator cleans
        shutil.rmtree(path, ignore_errors=True)


class _Metrics:
    """Every metric this process writes, created once after :func:`setup`."""

    def __init__(self) -> None:
        g = ("group", "file")
        self.evaluations = Counter(
            "alerting_group_evaluations_total", "Group evaluations completed (state saved).", g, registry=None
        )
        self.evaluation_failures = Counter(
            "alerting_group_evaluation_failures_total",
            "Group evaluations that could not complete, by reason (e.g. redis, exception).",
            (*g, "reason"),
            registry=None,
        )
        self.rule_failures = Counter(
            "alerting_rule_evaluation_failures_total",
            "Rules whose query or evaluation failed in a completed group evaluation.",
            g,
            registry=None,
        )
        self.recorded = Counter(
            "alerting_recorded_samples_total",
            "Samples recording rules recorded (stale markers included) in completed group evaluations.",
            g,
            registry=None,
        )
        self.skipped = Counter(
            "alerting_group_evaluations_skipped_total",
            "Ticks that did nothing: the slot was already claimed or not newer than the last one.",
            (*g, "reason"),
            registry=None,
        )
        self.duration = Histogram(
            "alerting_group_evaluation_duration_seconds",
            "Time to evaluate a group: queries, state machine and saving state.",
            g,
            buckets=DURATION_BUCKETS,
            registry=None,
        )
        self.missed = Counter(
            "alerting_group_missed_slots_total",
            "Evaluation slots skipped because the previous ones were not evaluated in time.",
            g,
            registry=None,
        )
        self.last_evaluation = Gauge(
            "alerting_last_evaluation_timestamp_seconds",
            "Slot time (unix seconds) of the group's last completed evaluation.",
            g,
            multiprocess_mode="max",
            registry=None,
        )
        self.interval = Gauge(
            "alerting_group_interval_seconds",
            "The group's evaluation interval.",
            g,
            multiprocess_mode="mostrecent",
            registry=None,
        )
        self.datasource_up = Gauge(
            "alerting_datasource_up",
            "1 if the datasource answered at least one query of the last evaluation that used it.",
            ("datasource",),
            multiprocess_mode="mostrecent",
            registry=None,
        )
        self.query_duration = Histogram(
            "alerting_datasource_query_duration_seconds",
            "Time for one rule query against a datasource.",
            ("datasource",),
            buckets=DURATION_BUCKETS,
            registry=None,
        )
        self.queries = Counter(
            "alerting_datasource_queries_total",
            "Rule queries by datasource and outcome (success, query_error, datasource_error, error).",
            ("datasource", "outcome"),
            registry=None,
        )
        r = ("receiver", "integration")
        self.notifications_sent = Counter(
            "alerting_notifications_sent_total", "Notifications delivered.", r, registry=None
        )
        self.notifications_failed = Counter(
            "alerting_notifications_failed_total",
            "Notification attempts that failed, by reason.",
            (*r, "reason"),
            registry=None,
        )
        self.notification_retries = Counter(
            "alerting_notification_retries_total",
            "Notification attempts scheduled again after a failure.",
            r,
            registry=None,
        )
        self.notification_latency = Histogram(
            "alerting_notification_latency_seconds",
            "Time for one notification attempt.",
            r,
            buckets=DURATION_BUCKETS,
            registry=None,
        )
        self.suppressed = Counter(
            "alerting_notifications_suppressed_total",
            "Alerts removed from a notification by a pipeline stage (inhibit, silence, dedup, ...).",
            ("stage",),
            registry=None,
        )
        self.escalations = Counter(
            "alerting_escalations_total",
            "Groups that reached an escalation step, by the route's receiver and the step's receiver.",
            ("receiver", "step_receiver"),
            registry=None,
        )
        self.acknowledgements = Counter(
            "alerting_acknowledgements_total",
            "Groups acknowledged, by where the acknowledgement came from (cli, api, slack, pagerduty).",
            ("source",),
            registry=None,
        )
        self.task_retries = Counter(
            "alerting_task_retries_total", "Celery task retries, by task name.", ("task",), registry=None
        )
        self.reload_ok = Gauge(
            "alerting_config_last_reload_successful",
            "1 if the last reload of rule files and alerting.yml succeeded, 0 if one was broken.",
            multiprocess_mode="mostrecent",
            registry=None,
        )
        self.reload_ok_time = Gauge(
            "alerting_config_last_reload_success_timestamp_seconds",
            "Time of the last successful reload.",
            multiprocess_mode="max",
            registry=None,
        )
        self.history_writes = Counter(
            "alerting_history_writes_total", "Rows written to the history table.", ("kind",), registry=None
        )
        self.history_failures = Counter(
            "alerting_history_write_failures_total",
            "History writes that failed (the evaluation or notification went on).",
            ("kind",),
            registry=None,
        )
        self.unreplicated = Counter(
            "alerting_redis_unreplicated_writes_total",
            "Writes that must survive a failover but no replica acknowledged within "
            "ALERTING_REDIS_WAIT_TIMEOUT, by what was written (claim, state, nflog, silence, ...).",
            ("what",),
            registry=None,
        )
        w = ("remote",)
        self.remote_samples = Counter(
            "alerting_remote_write_samples_total",
            "Samples for a remote_write target, by outcome: sent (the target accepted them) or dropped.",
            (*w, "outcome"),
            registry=None,
        )
        self.remote_dropped = Counter(
            "alerting_remote_write_samples_dropped_total",
            "Samples never delivered to a remote_write target, by reason (queue_full, rejected: the "
            "target answered 4xx, too_old: past sample_age_limit, closed: queued at shutdown, redis: not "
            "queued, Redis did not answer).",
            (*w, "reason"),
            registry=None,
        )
        self.remote_retries = Counter(
            "alerting_remote_write_retries_total",
            "Requests to a remote_write target sent again after a failure (5xx, 429, no answer).",
            w,
            registry=None,
        )
        self.remote_pending = Gauge(
            "alerting_remote_write_pending_samples",
            "Samples held for a remote_write target (queued or being sent), summed over live processes; "
            "a queue shared in Redis is reported by the one process sending it.",
            w,
            multiprocess_mode="livesum",
            registry=None,
        )
        self.remote_last_success = Gauge(
            "alerting_remote_write_last_success_timestamp_seconds",
            "Time of the last request a remote_write target accepted.",
            w,
            multiprocess_mode="max",
            registry=None,
        )
        self.processes = Gauge(
            "alerting_worker_processes",
            "Live worker processes that have written metrics.",
            multiprocess_mode="livesum",
            registry=None,
        )
        self.processes.set(1)
        self.pid = os.getpid()


def _m() -> _Metrics:
    global _metrics
    if _metrics is None:
        setup()
        with _lock:
            if _metrics is None:
                _metrics = _Metrics()
    elif _metrics.pid != os.getpid():
        # A forked child: its values go to its own files; announce it as a live process.
        _metrics.pid = os.getpid()
        _metrics.processes.set(1)
    return _metrics


# --- what the engine and tasks call -----------------------------------------------------------

_F = TypeVar("_F", bound=Callable[..., None])


def _never_raises(func: _F) -> _F:
    """Counting must not break what is counted: a metrics failure (say, a full disk under the
    multiprocess directory) is logged, and the evaluation or send goes on."""

    @functools.wraps(func)
    def guarded(*args: Any, **kwargs: Any) -> None:
        try:
            func(*args, **kwargs)
        except Exception as exc:
            log.error("metrics.failed", msg=f"{func.__name__} failed: {type(exc).__name__}: {exc}")

    return guarded  # type: ignore[return-value]


@_never_raises
def announce() -> None:
    """Count this process in ``alerting_worker_processes`` (pool children do so on first use)."""
    _m()


@_never_raises
def observe_group(outcome: GroupOutcome) -> None:
    """Count one tick of a group (completed or skipped)."""
    group = outcome.group
    labels = (group.name, group.file)
    m = _m()
    if outcome.skipped:
        m.skipped.labels(*labels, _skip_reason(outcome.skipped)).inc()
        return
    m.evaluations.labels(*labels).inc()
    m.duration.labels(*labels).observe(outcome.duration)
    if outcome.missed_slots:
        m.missed.labels(*labels).inc(outcome.missed_slots)
    failed = sum(1 for e in outcome.rules if e.health.error) + sum(
        1 for r in outcome.recorded if r.health.error
    )
    if failed:
        m.rule_failures.labels(*labels).inc(failed)
    recorded = sum(len(r.series) + len(r.stale) for r in outcome.recorded)
    if recorded:
        m.recorded.labels(*labels).inc(recorded)
    m.last_evaluation.labels(*labels).set(outcome.slot)
    m.interval.labels(*labels).set(group.interval)
    down = set(outcome.datasources_down)
    for datasource in sorted({r.datasource for r in group.rules}):
        m.datasource_up.labels(datasource).set(0 if datasource in down else 1)


@_never_raises
def observe_group_failure(group: Group, reason: str) -> None:
    """A tick that could not complete (``reason`` like ``redis`` or ``exception``)."""
    _m().evaluation_failures.labels(group.name, group.file, _reason(reason)).inc()


@_never_raises
def observe_query(datasource: str, seconds: float, outcome: str) -> None:
    m = _m()
    m.query_duration.labels(datasource).observe(seconds)
    m.queries.labels(datasource, _reason(outcome)).inc()


class TimedSource:
    """A datasource wrapper that records each query's latency and outcome."""

    def __init__(self, source: Source) -> None:
        self.source = source
        self.name = source.name

    def query(self, query: Any, at: float) -> list[Sample]:
        started = time.monotonic()
        outcome = "error"
        try:
            result = self.source.query(query, at)
            outcome = "success"
            return result
        except QueryError:
            outcome = "query_error"
            raise
        except DatasourceError:
            outcome = "datasource_error"
            raise
        finally:
            observe_query(self.name, time.monotonic() - started, outcome)

    def close(self) -> None:
        self.source.close()


def timed(source: Source) -> Source:
    """``source`` with its queries measured (wrap what ``source_for`` returns)."""
    return TimedSource(source)


@_never_raises
def observe_notification(
    receiver: str,
    outcome: str,
    reason: str = "",
    *,
    integration: str = "",
    duration: float | None = None,
) -> None:
    """One notification attempt: ``outcome`` is ``sent`` or ``failed`` (with a short ``reason``
    such as ``client_error``, ``server_error``, ``timeout``, ``connection``; see :func:`reason_for`)."""
    m = _m()
    labels = (receiver, integration)
    if duration is not None:
        m.notification_latency.labels(*labels).observe(duration)
    if outcome == "sent":
        m.notifications_sent.labels(*labels).inc()
    else:
        m.notifications_failed.labels(*labels, _reason(reason or "other")).inc()


@_never_raises
def observe_retry(receiver: str, integration: str = "") -> None:
    _m().notification_retries.labels(receiver, integration).inc()


@_never_raises
def observe_suppressed(stage: str, count: int = 1) -> None:
    if count:
        _m().suppressed.labels(_reason(stage)).inc(count)


@_never_raises
def observe_escalation(receiver: str, step_receiver: str) -> None:
    _m().escalations.labels(receiver, step_receiver).inc()


@_never_raises
def observe_acknowledgement(source: str) -> None:
    _m().acknowledgements.labels(_reason(source)).inc()


@_never_raises
def observe_task_retry(task: str) -> None:
    _m().task_retries.labels(task).inc()


@_never_raises
def observe_reload(ok: bool, at: float | None = None) -> None:
    """Result of the latest reload of rule files / alerting.yml."""
    m = _m()
    m.reload_ok.set(1 if ok else 0)
    if ok:
        m.reload_ok_time.set(time.time() if at is None else at)


@_never_raises
def observe_unreplicated(what: str) -> None:
    _m().unreplicated.labels(what).inc()


@_never_raises
def observe_history_write(kind: str, ok: bool, rows: int = 1) -> None:
    m = _m()
    if ok:
        m.history_writes.labels(kind).inc(rows)
    else:
        m.history_failures.labels(kind).inc()


@_never_raises
def observe_remote_write_sent(remote: str, count: int, at: float | None = None) -> None:
    """``count`` samples a remote_write target accepted (2xx) at ``at`` (now by default)."""
    m = _m()
    m.remote_samples.labels(remote, "sent").inc(count)
    m.remote_last_success.labels(remote).set(time.time() if at is None else at)


@_never_raises
def observe_remote_write_dropped(remote: str, reason: str, count: int) -> None:
    """``count`` samples that will never reach a remote_write target, and why."""
    if count:
        m = _m()
        m.remote_samples.labels(remote, "dropped").inc(count)
        m.remote_dropped.labels(remote, _reason(reason)).inc(count)


@_never_raises
def observe_remote_write_retry(remote: str) -> None:
    _m().remote_retries.labels(remote).inc()


@_never_raises
def observe_remote_write_pending(remote: str, count: int) -> None:
    _m().remote_pending.labels(remote).set(count)


def reason_for(exc: BaseException) -> str:
    """A short, bounded label for why a send failed."""
    import httpx

    from alerting.notify.base import DeliveryError

    if isinstance(exc, httpx.TimeoutException | TimeoutError):
        return "timeout"
    if isinstance(exc, httpx.TransportError | ConnectionError):
        return "connection"
    if isinstance(exc, DeliveryError):
        return "server_error" if exc.retryable else "client_error"
    return "other"


def _reason(text: str) -> str:
    return text if _REASON.match(text) else "other"


def _skip_reason(text: str) -> str:
    if "claimed" in text:
        return "claimed"
    if "not newer" in text:
        return "stale_slot"
    return "other"


@_never_raises
def process_exited(pid: int) -> None:
    """Drop the live gauges of a process that has ended (Celery's ``worker_process_shutdown``)."""
    path = settings.metrics_dir()
    if path:
        mark_process_dead(pid, path)


def reap_dead_processes(path: str | None = None) -> list[int]:
    """Drop live gauges of processes that died without saying so (killed, OOM). Returns their pids."""
    path = path or settings.metrics_dir()
    if not path:
        return []
    dead = []
    for file in glob.glob(os.path.join(path, "gauge_live*_*.db")):
        pid_text = Path(file).stem.rsplit("_", 1)[-1]
        if not pid_text.isdigit():
            continue
        pid = int(pid_text)
        if not _alive(pid):
            mark_process_dead(pid, path)
            dead.append(pid)
    return sorted(set(dead))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# --- scrape-time collectors -------------------------------------------------------------------


class StateCollector(Collector):
    """``ALERTS``, ``ALERTS_FOR_STATE`` and per-group counts, read from Redis at scrape time."""

    def __init__(self, store: StateStore) -> None:
        self.store = store

    def collect(self) -> Iterator[Metric]:
        alerts = GaugeMetricFamily("ALERTS", "Active alerts (pending or firing), as Prometheus exposes them.")
        for_state = GaugeMetricFamily(
            "ALERTS_FOR_STATE", "Unix time at which each active alert became active."
        )
        counts = GaugeMetricFamily(
            "alerting_alerts",
            "Alerts by group and state (resolved ones are kept for 15 minutes).",
            labels=("group", "file", "state"),
        )
        errors = GaugeMetricFamily(
            "alerting_group_rules_unhealthy",
            "Rules of the group whose last evaluation failed.",
            labels=("group", "file"),
        )
        up = GaugeMetricFamily("alerting_state_up", "1 if alert state in Redis could be read at scrape.")
        leader = GaugeMetricFamily(
            "alerting_beat_leader_present", "1 if some beat holds the scheduling lease."
        )
        try:
            seen: set[tuple[tuple[str, str], ...]] = set()
            for group_id in self.store.groups():
                file, name = parse_group_id(group_id)
                tally = {"pending": 0, "firing": 0, "resolved": 0}
                for rule_alerts in self.store.load_group(group_id).values():
                    for alert in rule_alerts.values():
                        state = "resolved" if alert.resolved else alert.state.value
                        tally[state] += 1
                        if alert.resolved:
                            continue
                        labels = {k: v for k, v in alert.labels if _LABEL_NAME.match(k) and k[:2] != "__"}
                        identity = tuple(sorted(labels.items()))
                        if identity in seen:  # same label set in two groups: one series, as in Prometheus
                            continue
                        seen.add(identity)
                        alerts.add_sample("ALERTS", {**labels, "alertstate": state}, 1.0)
                        for_state.add_sample("ALERTS_FOR_STATE", labels, alert.active_at)
                for state, n in tally.items():
                    counts.add_metric((name, file, state), n)
                rules, _ = self.store.load_health(group_id)
                errors.add_metric((name, file), sum(1 for h in rules.values() if h.health == "err"))
            leader.add_metric((), 1.0 if self.store.leader() else 0.0)
            up.add_metric((), 1.0)
        except Exception as exc:  # a scrape must answer even when Redis does not
            log.warning("metrics.state_unavailable", msg=f"cannot read alert state from Redis: {exc}")
            up.add_metric((), 0.0)
            yield up
            return
        yield from (alerts, for_state, counts, errors, leader, up)


class QueueCollector(Collector):
    """``alerting_queue_depth{queue}``: messages waiting in the broker, read at scrape time."""

    def __init__(self, depths: Callable[[], dict[str, int]]) -> None:
        self.depths = depths

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "alerting_queue_depth", "Messages waiting in the Celery queue.", labels=("queue",)
        )
        try:
            for queue, depth in sorted(self.depths().items()):
                family.add_metric((queue,), depth)
        except Exception as exc:
            log.warning("metrics.queue_unavailable", msg=f"cannot read queue depths: {exc}")
            return
        yield family


class PrimaryCollector(Collector):
    """``alerting_redis_primary_info{role, address}``: the Redis node written to now, read at scrape
    time (asking the sentinels when the URL is a sentinel URL), so a failover shows at once; and
    ``alerting_redis_connected_replicas{role}``, the replicas that node has."""

    def __init__(self, primaries: Callable[[], dict[str, tuple[str, int]]]) -> None:
        self.primaries = primaries

    def collect(self) -> Iterator[Metric]:
        info = GaugeMetricFamily(
            "alerting_redis_primary_info",
            "The Redis node written to (1), by role: state store or broker.",
            labels=("role", "address"),
        )
        replicas = GaugeMetricFamily(
            "alerting_redis_connected_replicas",
            "Replicas connected to the primary, by role.",
            labels=("role",),
        )
        try:
            for role, (address, count) in sorted(self.primaries().items()):
                info.add_metric((role, address), 1)
                replicas.add_metric((role,), count)
        except Exception as exc:
            log.warning("metrics.primary_unavailable", msg=f"cannot tell the Redis primary: {exc}")
            return
        yield info
        yield replicas


def queue_depths(client: redis.Redis, queues: Sequence[str]) -> dict[str, int]:
    """Depth of Celery queues on a Redis broker (priority sub-queues included)."""
    out: dict[str, int] = {}
    for queue in queues:
        # kombu keeps priorities 1..9 in sibling lists named queue + "\x06\x16" + priority.
        names = [queue, *(f"{queue}\x06\x16{p}" for p in range(1, 10))]
        pipe = client.pipeline(transaction=False)
        for name in names:
            pipe.llen(name)
        out[queue] = int(sum(pipe.execute()))
    return out


def registry(collectors: Iterable[Collector] = ()) -> CollectorRegistry:
    """A registry for ``/metrics``: every process's files merged, plus scrape-time collectors."""
    path = setup()
    reg = CollectorRegistry()
    MultiProcessCollector(reg, path=path)
    for collector in collectors:
        reg.register(collector)
    return reg


def render(reg: CollectorRegistry) -> bytes:
    """Text exposition of ``reg`` (live gauges of dead processes dropped first)."""
    from prometheus_client import generate_latest

    reap_dead_processes()
    return generate_latest(reg)


def snapshot(reg: CollectorRegistry) -> dict[str, float]:
    """Every sample as ``name{labels}`` -> value (for the CLI and tests)."""
    out: dict[str, float] = {}
    reap_dead_processes()
    for family in reg.collect():
        for sample in family.samples:
            inner = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            out[f"{sample.name}{{{inner}}}" if inner else sample.name] = sample.value
    return out
