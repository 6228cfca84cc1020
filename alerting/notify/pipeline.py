"""The notification pipeline: alerts in, aggregation groups, stages, jobs out, deliveries.

``ingest`` routes each alert the evaluator reports into aggregation groups kept in Redis.
``flush_due`` takes the groups whose timer fired and runs them through the stages, in
Alertmanager's order: inhibit -> active time -> mute time -> silence -> dedup; it returns one job per
(group, receiver integration) that needs a notification. ``deliver`` sends a job and, only on
success, writes the notification log, so the next flush's dedup sees it. Every stage logs what it
removed and why.

Two workers may flush and deliver at once: groups are claimed atomically, each delivery holds a
lock and re-checks the notification log first, and a newer flush supersedes older queued jobs of the
same group and integration (as Alertmanager drops a retry when the next flush starts).

Where a worker fleet has to differ from Alertmanager's single process, it does so deliberately:
resolved alerts leave their group when the flush hands them to a job (the job carries them through
its retries), not after the send; a group is removed as soon as a flush empties it (Alertmanager
sweeps empty groups every 30s), so an alert arriving later starts a new group with ``group_wait``;
and a firing alert reported without ``ends_at`` never times out into "resolved" on its own, because
the evaluator reports every resolution explicitly (an ``ends_at`` in the future is honoured as
Alertmanager honours Prometheus's).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import orjson
import redis
import structlog

from alerting.core import fingerprint
from alerting.notify import acks
from alerting.notify.base import DeliveryError, Notification, NotifyAlert
from alerting.notify.live import ReceiverIntegration, RoutingConfig
from alerting.notify.store import (
    GroupInsert,
    GroupSnapshot,
    Held,
    NotifyStore,
    OutboxWrite,
    Taking,
    group_id,
    nflog_id,
)
from alerting.ops.logs import context_value
from alerting.routing.dedup import LogEntry, needs_update
from alerting.routing.escalation import REASON_ESCALATION, EscalationStep, decide, next_step_at
from alerting.routing.inhibit import Inhibitor
from alerting.routing.matchers import alert_sort_key, labels_string
from alerting.routing.route import Route
from alerting.routing.silences import ACTIVE, Silence
from alerting.routing.timeintervals import in_any

log = structlog.get_logger(__name__)

CLAIM_LEASE = 60.0  # a flusher that dies holding groups gives them back after this long
RETRY_UNCLAIMED = 1.0  # seconds before groups a flush failed on are due again
FLUSH_BATCH = 1000
# A delivery's lock on its (group, integration) expires this many seconds after its holder last
# renewed it; the holder renews it every third of that while the send runs, however long the
# receiver takes. So a worker killed mid-send holds up that group's next delivery this long at most.
# The default; the worker passes its settings' ALERTING_NOTIFY_LOCK_TTL as ``lock_ttl``.
LOCK_TTL = 15.0
FALLBACK_SENT_TTL = 7 * 86400.0
REASON_IN_FLIGHT = "changed while a notification was in flight"
REASON_AFTER_UNKNOWN = "resolved after a notification of unknown outcome"


# --- alerts as stored in a group --------------------------------------------------------------------


def _alert_to_json(
    alert: NotifyAlert, fp: str, ends_at: float | None, now: float, eval_id: str | None
) -> bytes:
    # Bytes, as Redis stores them: handed over as they are, without decoding and encoding again.
    data = {
        "labels": dict(alert.labels),
        "annotations": dict(alert.annotations),
        "starts_at": alert.starts_at,
        "ends_at": ends_at,
        "generator_url": alert.generator_url,
        "value": alert.value,
        "fingerprint": fp,
        "updated_at": now,
        # The evaluation that reported it last, so the notification's logs join its logs.
        "eval_id": eval_id,
    }
    if alert.value is None or math.isfinite(alert.value):
        return orjson.dumps(data, option=orjson.OPT_SORT_KEYS)
    return json.dumps(data, sort_keys=True).encode()  # orjson would write NaN and ±Inf as null


def _loads(stored: bytes | str) -> Any:
    try:
        return orjson.loads(stored)
    except orjson.JSONDecodeError:  # a value of NaN or ±Inf, which only the standard decoder reads
        return json.loads(stored)


def _latest_eval_id(stored: Iterable[dict[str, Any]]) -> str | None:
    """The evaluation that last touched any alert of the group (None for alerts from elsewhere)."""
    latest: dict[str, Any] = max(stored, key=lambda d: d.get("updated_at", 0.0), default={})
    eval_id = latest.get("eval_id")
    return str(eval_id) if eval_id else None


def _loads_all(raws: Sequence[bytes | str]) -> list[Any]:
    """Stored alerts decoded together (a group's, in a flush): one call for the lot is half the
    cost of one per alert. Falls back to one at a time when one of them needs the standard decoder."""
    try:
        values = orjson.loads(b"[%s]" % b",".join(raws))  # type: ignore[arg-type]
    except (orjson.JSONDecodeError, TypeError):  # NaN or ±Inf, or text rather than bytes
        return [_loads(raw) for raw in raws]
    if not isinstance(values, list) or len(values) != len(raws):  # a damaged value spanning two
        return [_loads(raw) for raw in raws]
    return values


_new_alert = object.__new__
_set = object.__setattr__


def _alert_at(data: dict[str, Any], now: float) -> NotifyAlert:
    """The stored alert as it stands at ``now``: resolved once its end time has passed."""
    ends_at: Any = data.get("ends_at")
    resolved = ends_at is not None and ends_at <= now
    # Every field set at once, without the frozen dataclass's ``__init__`` (which sets them one by
    # one through ``object.__setattr__``): a flush builds every alert of every due group here. The
    # object is the same as the constructor's (it compares equal; its fields are in their order).
    alert: NotifyAlert = _new_alert(NotifyAlert)
    _set(
        alert,
        "__dict__",
        {
            "status": "resolved" if resolved else "firing",
            "labels": data["labels"],
            "annotations": data.get("annotations", {}),
            "starts_at": float(data["starts_at"]),
            "ends_at": float(ends_at) if resolved else None,
            "generator_url": data.get("generator_url", ""),
            "fingerprint": data["fingerprint"],
            "value": data.get("value"),
        },
    )
    return alert


def _sort_key(alert: NotifyAlert) -> tuple[Any, ...]:
    """``alert_sort_key`` (Alertmanager's order: job, instance, then the whole label set), with its
    first comparisons as plain values, so that sorting a group calls the comparison function only for
    alerts those leave tied (a storm's alerts differ by instance)."""
    labels = alert.labels
    job, instance = labels.get("job"), labels.get("instance")
    return (
        (0, job) if job is not None else (1, ""),
        (0, instance) if instance is not None else (1, ""),
        len(labels),
        alert_sort_key(labels),
    )


def _is_resolved(alert: NotifyAlert, now: float) -> bool:
    if alert.status == "resolved":
        return True
    return alert.ends_at is not None and alert.ends_at <= now


# --- ingest -----------------------------------------------------------------------------------------


def ingest(
    redis_client: redis.Redis, prefix: str, config: RoutingConfig, alerts: list[NotifyAlert], now: float
) -> None:
    """Route the alerts of one evaluation into their aggregation groups, starting timers of new groups."""
    if not alerts:
        return
    store = NotifyStore(redis_client, prefix)
    # The evaluator hands over each alert with its label set's fingerprint (it keys the alert's
    # state by it); alerts from elsewhere (the API) come without one.
    prints = [a.fingerprint or fingerprint(a.labels) for a in alerts]
    known = store.index_get(prints)
    eval_id = context_value("eval_id")
    # A rule's alerts mostly share their groups: each group's key and id are worked out once per call.
    groups: dict[tuple[Any, ...], GroupInsert] = {}
    placed = 0
    for alert, fp in zip(alerts, prints, strict=True):
        resolved = _is_resolved(alert, now)
        ends_at = (alert.ends_at if alert.ends_at is not None else now) if resolved else alert.ends_at
        before = known.get(fp)
        # A resolved alert is re-reported every tick for a while; once its group has closed there is
        # nothing left to tell anyone, so it must not reopen a group and start another group_wait.
        create = not (resolved and before is not None and before.get("ends_at") == ends_at)
        stored = _alert_to_json(alert, fp, ends_at, now, eval_id)
        indexed = orjson.dumps(
            {"ends_at": ends_at, "labels": dict(alert.labels), "seen": now}, option=orjson.OPT_SORT_KEYS
        )
        item = GroupInsert.item(fp, create, alert.starts_at, indexed, stored)
        for route in config.match(alert.labels):
            group_labels = route.group_labels(alert.labels)
            known_group = (route.id, *group_labels.items())
            group = groups.get(known_group)
            if group is None:
                key = route.group_key(group_labels)
                group = groups[known_group] = GroupInsert(
                    gid=group_id(route.id, key),
                    route_id=route.id,
                    route_key=route.key,
                    group_key=key,
                    group_labels=group_labels,
                    group_wait=route.group_wait,
                )
            group.alerts.append(item)
            placed += 1
    store.insert(list(groups.values()), now)
    log.debug("notify.ingested", alerts=len(alerts), placements=placed)


# --- jobs -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Job:
    """One notification to deliver: a group's alerts for one receiver integration."""

    job_id: str  # idempotency key: the same flush of the same group and integration
    group_id: str
    group_key: str
    nflog_id: str
    receiver: str
    integration: str  # ReceiverIntegration.key
    seq: float  # the flush's timer time; orders jobs of the same group and integration
    group_labels: Mapping[str, str]
    alerts: tuple[NotifyAlert, ...]
    firing: tuple[str, ...]
    resolved: tuple[str, ...]
    repeat_interval: float
    reason: str = ""
    fallback_for: str = ""  # set on jobs re-sent to a fallback receiver after a permanent failure
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = {k: v for k, v in self.__dict__.items() if k != "alerts"}
        data["group_labels"] = dict(self.group_labels)
        data["firing"], data["resolved"] = list(self.firing), list(self.resolved)
        data["extra"] = dict(self.extra)
        data["alerts"] = [
            {**a.__dict__, "labels": dict(a.labels), "annotations": dict(a.annotations)} for a in self.alerts
        ]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Job:
        """The job of ``to_dict``, or of an outbox entry that carries its alerts as stored."""
        values = dict(data)
        snapshot = values.pop("stored", None)
        if snapshot is not None:
            values["alerts"] = tuple(_alert_at(a, snapshot["at"]) for a in snapshot["alerts"])
        else:
            values["alerts"] = tuple(NotifyAlert(**a) for a in data["alerts"])
        values["firing"], values["resolved"] = tuple(data["firing"]), tuple(data["resolved"])
        return cls(**values)


# How a flush's jobs go in the outbox: given the jobs and their groups' alerts as stored (group id
# -> ``stored_alerts``; a group's jobs carry the same alerts), the write that puts them there.
Outbox = Callable[[list[Job], Mapping[str, bytes]], OutboxWrite]


def stored_alerts(alerts: Iterable[NotifyAlert], stored: Mapping[str, bytes | str], now: float) -> bytes:
    """``alerts`` (read from their group at ``now``) as the group stores them, in their order: a
    JSON object that ``Job.from_dict`` turns back into the same alerts (as an outbox entry's
    ``stored``). A storm's outbox entries carry every alert it flushed; written this way they are
    joined, not encoded again."""
    raws = (stored[a.fingerprint] for a in alerts)
    joined = b",".join(raw if isinstance(raw, bytes) else raw.encode() for raw in raws)
    return b'{"at":%s,"alerts":[%s]}' % (repr(now).encode(), joined)


def _job_id(gid: str, integration: str, seq: float, fallback_for: str = "") -> str:
    digest = hashlib.sha256(f"{gid}\x00{integration}\x00{seq!r}\x00{fallback_for}".encode()).hexdigest()
    return f"nf-{digest[:32]}"


# --- stages -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FlushContext:
    now: float
    config: RoutingConfig
    route: Route
    group: GroupSnapshot
    inhibitor: Inhibitor
    silences: list[Silence]


class Stage(Protocol):
    name: str

    def run(self, ctx: FlushContext, alerts: list[NotifyAlert]) -> tuple[list[NotifyAlert], dict[str, str]]:
        """Alerts kept, and for each removed fingerprint why it was removed."""
        ...


class InhibitStage:
    name = "inhibit"

    def run(self, ctx: FlushContext, alerts: list[NotifyAlert]) -> tuple[list[NotifyAlert], dict[str, str]]:
        if not ctx.config.inhibit_rules:
            return alerts, {}
        kept, removed = [], {}
        for alert in alerts:
            source = ctx.inhibitor.inhibited_by(alert.labels)
            if source is None:
                kept.append(alert)
            else:
                removed[alert.fingerprint] = f"inhibited by {labels_string(source)}"
        return kept, removed


class ActiveTimeStage:
    name = "active_time"

    def run(self, ctx: FlushContext, alerts: list[NotifyAlert]) -> tuple[list[NotifyAlert], dict[str, str]]:
        route = ctx.route
        if not route.active_time_intervals or not alerts:
            return alerts, {}
        intervals = ctx.config.time_intervals
        if any(in_any(intervals.get(name, ()), ctx.now) for name in route.active_time_intervals):
            return alerts, {}
        names = ", ".join(route.active_time_intervals)
        return [], {a.fingerprint: f"outside active time intervals ({names})" for a in alerts}


class MuteTimeStage:
    name = "mute_time"

    def run(self, ctx: FlushContext, alerts: list[NotifyAlert]) -> tuple[list[NotifyAlert], dict[str, str]]:
        for name in ctx.route.mute_time_intervals:
            if in_any(ctx.config.time_intervals.get(name, ()), ctx.now):
                return [], {a.fingerprint: f"inside mute time interval {name}" for a in alerts}
        return alerts, {}


class SilenceStage:
    name = "silence"

    def run(self, ctx: FlushContext, alerts: list[NotifyAlert]) -> tuple[list[NotifyAlert], dict[str, str]]:
        if not ctx.silences:
            return alerts, {}
        kept, removed = [], {}
        for alert in alerts:
            silence = next((s for s in ctx.silences if s.mutes(alert.labels, ctx.now)), None)
            if silence is None:
                kept.append(alert)
            else:
                removed[alert.fingerprint] = f"silenced by {silence.id} ({silence.comment})"
        return kept, removed


STAGES: tuple[Stage, ...] = (InhibitStage(), ActiveTimeStage(), MuteTimeStage(), SilenceStage())


def run_stages(ctx: FlushContext, alerts: list[NotifyAlert]) -> list[NotifyAlert]:
    """Apply the muting stages in order, logging each removal."""
    for stage in STAGES:
        alerts, removed = stage.run(ctx, alerts)
        if removed:
            log.info(
                "notify.stage_removed",
                msg=f"{stage.name} removed {len(removed)} alert(s)",
                stage=stage.name,
                group_key=ctx.group.group_key,
                removed=removed,
            )
    return alerts


# --- flush ------------------------------------------------------------------------------------------


def flush_due(
    redis_client: redis.Redis,
    prefix: str,
    config: RoutingConfig,
    now: float,
    batch: int = FLUSH_BATCH,
    *,
    share: int = 1,
    least: int = 1,
    lock_ttl: float | None = None,
    ack_sources: Sequence[acks.AckSource] = (),
    on_jobs: Callable[[list[Job]], None] | None = None,
    outbox: Outbox | None = None,
    collect_garbage: bool = True,
) -> list[Job]:
    """Flush every aggregation group whose timer has fired; return the notifications to deliver.

    Groups are claimed ``batch`` at a time until none is due, so a burst is flushed in one call;
    with ``share`` n, a claim takes at most an n-th of the groups due (but ``least`` while as
    many are due), so that claims shrink as a burst runs out and processes flushing it at once
    finish together. ``on_jobs`` gets each batch's jobs as soon as they exist, so their sends
    start meanwhile. ``outbox`` says how a batch's jobs go in the outbox; they are put there in
    the round trip that finishes their groups. A batch that fails before that gives its groups
    back, due again shortly.
    ``collect_garbage=False`` leaves cleaning the alert index to the caller, after the sends started.
    ``ack_sources`` are asked before an escalation step or a repeat goes out.
    """
    store = NotifyStore(redis_client, prefix)
    # (With inhibit rules, reading the inhibition sources cleans the index anyway.)
    if collect_garbage and not config.inhibit_rules:
        store.collect_garbage(now)
    jobs: list[Job] = []
    inhibitor: Inhibitor | None = None
    silences: list[Silence] = []
    left = 1
    while left:
        gids, left = store.claim_due(now, now + CLAIM_LEASE, batch, share, least)
        if not gids:  # only timers of groups that are gone
            continue
        if inhibitor is None:  # read once per call, and only when some group is due
            sources = store.active_sources(now) if config.inhibit_rules else []
            inhibitor = Inhibitor(config.inhibit_rules, sources)
            silences = [s for s in store.silences(now) if s.state(now) == ACTIVE]
        ttl = LOCK_TTL if lock_ttl is None else lock_ttl
        escalations = acks.Escalations(redis_client, prefix, ack_sources, _ack_duration(config))
        try:
            batch_jobs = _flush_batch(
                store, config, store.load_groups(gids), now, inhibitor, silences, ttl, escalations, outbox
            )
        except Exception:
            # Not flushed: due again in a moment rather than when the claim's lease ends (a group
            # finished before the failure is no longer claimed, and is left alone).
            with contextlib.suppress(redis.RedisError):
                store.unclaim(gids, now + CLAIM_LEASE, now + RETRY_UNCLAIMED)
            raise
        if on_jobs is not None and batch_jobs:
            on_jobs(batch_jobs)
        jobs.extend(batch_jobs)
    return jobs


@dataclass(frozen=True)
class _Flushed:
    """One group after the muting stages, before dedup."""

    group: GroupSnapshot
    route: Route
    alerts: tuple[NotifyAlert, ...]
    firing: tuple[str, ...]
    resolved: tuple[str, ...]
    done: Mapping[str, bytes | str]  # resolved alerts handed on: stored JSON, for compare-and-delete

    @property
    def nflog_id(self) -> str:
        return nflog_id(self.group.group_key)


def _flush_batch(
    store: NotifyStore,
    config: RoutingConfig,
    groups: list[GroupSnapshot],
    now: float,
    inhibitor: Inhibitor,
    silences: list[Silence],
    lock_ttl: float,
    escalations: acks.Escalations | None = None,
    outbox: Outbox | None = None,
) -> list[Job]:
    """Stages for every group, then dedup and bookkeeping with one Redis round trip per phase."""
    flushed: list[_Flushed] = []
    for group in groups:
        route = config.routes_by_id.get(group.route_id)
        if route is None or route.key != group.route_key:
            # The configuration changed under the group; its alerts come back through the new routes
            # at the next evaluation, and the notification log (keyed by group key) prevents resends.
            store.drop_group(group.gid, group.alerts)
            log.info("notify.group_dropped", group_key=group.group_key, reason="route no longer configured")
            continue
        stored = _loads_all(list(group.alerts.values()))
        snapshot = {fp: _alert_at(data, now) for fp, data in zip(group.alerts, stored, strict=True)}
        eval_id = _latest_eval_id(stored)
        alerts = sorted(snapshot.values(), key=_sort_key)
        alerts = run_stages(FlushContext(now, config, route, group, inhibitor, silences), alerts)
        flushed.append(
            _Flushed(
                group=group,
                route=route,
                alerts=tuple(alerts),
                firing=tuple(a.fingerprint for a in alerts if a.status == "firing"),
                resolved=tuple(a.fingerprint for a in alerts if a.status == "resolved"),
                done={fp: group.alerts[fp] for fp, a in snapshot.items() if a.status == "resolved"},
            )
        )
    states = (
        escalations.load([(f.nflog_id, f.group.group_key, f.firing) for f in flushed], now)
        if escalations is not None
        else {}
    )
    pairs = [(f, integ, step) for f in flushed for integ, step in _targets(config, f.route)]
    logged = store.nflog_and_issued([(f.nflog_id, integ.key) for f, integ, _ in pairs])
    jobs: list[Job] = []
    latest: list[tuple[str, str, float, float]] = []
    kept: list[tuple[str, str, float]] = []
    clocks: dict[str, tuple[str, str, Mapping[str, str]]] = {}  # episodes whose first notification this is
    as_stored: dict[str, bytes] = {}  # group id -> its jobs' alerts as stored
    for (f, integ, step), (entry, issued) in zip(pairs, logged, strict=True):
        route, group = f.route, f.group
        state = states.get(f.nflog_id) or acks.GroupState()
        needed, why = _decide(f, integ, step, entry, state, now)
        if needed and escalations is not None and why in (REASON_ESCALATION, "repeat interval elapsed"):
            # Before a step or a repeat goes out: has someone acknowledged it elsewhere meanwhile?
            state = states[f.nflog_id] = escalations.poll(
                state, f.nflog_id, group.group_key, group.group_labels, f.firing, now
            )
            needed, why = _decide(f, integ, step, entry, state, now)
        if state.ack is not None and entry is not None:
            kept.append((f.nflog_id, integ.key, state.ack.expires_at - now + 2 * route.repeat_interval))
        if not needed and f.alerts and issued is not None and (entry is None or entry.seq < issued):
            # A job issued earlier has not been delivered yet (a slow receiver, retries, a
            # failover): the log cannot say what it will have told, so what the group holds now
            # goes out behind it; delivery compares with the log as it is then and sends only what
            # is news (Alertmanager flushes a group only once its last notification is done).
            needed, why = True, REASON_IN_FLIGHT
        if not needed:
            if f.alerts:
                log.debug("notify.dedup", group_key=group.group_key, integration=integ.key, reason=why)
            continue
        job = Job(
            job_id=_job_id(group.gid, integ.key, group.due),
            group_id=group.gid,
            group_key=group.group_key,
            nflog_id=f.nflog_id,
            receiver=integ.receiver,
            integration=integ.key,
            seq=group.due,
            group_labels=dict(group.group_labels),
            alerts=f.alerts,
            firing=f.firing,
            resolved=f.resolved,
            repeat_interval=route.repeat_interval,
            reason=why,
            extra={
                "external_url": config.external_url,
                "eval_id": eval_id,
                **_escalation_extra(route, step, state),
            },
        )
        if outbox is not None and group.gid not in as_stored:
            as_stored[group.gid] = stored_alerts(f.alerts, group.alerts, now)
        latest.append((f.nflog_id, integ.key, group.due, max(lock_ttl, 2 * route.repeat_interval)))
        log.info(
            "notify.job",
            msg=f"{why}: {len(f.firing)} firing, {len(f.resolved)} resolved",
            group_key=group.group_key,
            receiver=integ.receiver,
            integration=integ.key,
            job_id=job.job_id,
        )
        jobs.append(job)
        if step is None and f.firing and route.escalate and state.since is None:
            clocks[f.nflog_id] = (f.nflog_id, group.group_key, group.group_labels)
    if escalations is not None:
        escalations.keep_logs(kept)
        escalations.start_clocks(list(clocks.values()), now)
    finished = []
    for f in flushed:
        next_due = f.group.due + f.route.group_interval
        if next_due <= now:  # the flusher was away longer than an interval: restart the cadence from now
            next_due = now + f.route.group_interval
        held = states.get(f.nflog_id)
        if f.route.escalate and held is not None:  # wake up for the next escalation step
            step_at = next_step_at(
                f.route.escalate, held.since, now, firing=bool(f.firing), acknowledged=held.acknowledged
            )
            if step_at is not None:
                next_due = min(next_due, step_at)
        # Resolved alerts have been handed on; forget them unless re-reported since the snapshot.
        finished.append((f.group.gid, f.done, next_due))
    store.finish_groups(finished, latest, outbox(jobs, as_stored) if outbox is not None and jobs else None)
    return jobs


def _ack_duration(config: RoutingConfig) -> float:
    section = config.acknowledgements
    return float(section.default_duration) if section is not None else 24 * 3600.0


def _targets(
    config: RoutingConfig, route: Route
) -> Iterator[tuple[ReceiverIntegration, EscalationStep | None]]:
    """The route's own receiver's integrations, then each escalation step's (each integration once)."""
    seen: set[str] = set()
    for name, step in [(route.receiver, None), *((s.receiver, s) for s in route.escalate)]:
        receiver = config.receivers.get(name)
        for integ in receiver.integrations if receiver is not None else ():
            if integ.key not in seen:
                seen.add(integ.key)
                yield integ, step


def _decide(
    f: _Flushed,
    integ: ReceiverIntegration,
    step: EscalationStep | None,
    entry: LogEntry | None,
    state: acks.GroupState,
    now: float,
) -> tuple[bool, str]:
    return decide(
        step,
        entry,
        f.firing,
        f.resolved,
        integ.send_resolved,
        f.route.repeat_interval,
        now,
        since=state.since,
        acknowledged=state.acknowledged,
    )


def _escalation_extra(route: Route, step: EscalationStep | None, state: acks.GroupState) -> dict[str, Any]:
    """What a job carries about escalation: its step (0: the route's own receiver), the route's
    receiver, and what to say about an acknowledgement."""
    extra: dict[str, Any] = {"step": 0 if step is None else route.escalate.index(step) + 1}
    if step is not None:
        extra["escalated_from"] = route.receiver
    note = state.note()
    if note:
        extra["acknowledged"] = note
    return extra


# --- delivery ---------------------------------------------------------------------------------------


def _find_integration(config: RoutingConfig, receiver: str, key: str) -> ReceiverIntegration | None:
    found = config.receivers.get(receiver)
    if found is None:
        return None
    return next((i for i in found.integrations if i.key == key), None)


def _what(job: Job) -> str:
    """What a job tells its receiver, in a word: its firing and resolved alerts."""
    return "\x00".join([",".join(sorted(job.firing)), ",".join(sorted(job.resolved))])


def _notification_id(job: Job, what: str, previous: LogEntry | None) -> str:
    """The same for every attempt at telling the receiver the same thing after the same last logged
    notification: a retry, or a new flush after a worker died mid-send without logging. A later
    notification (its predecessor logged) or other alerts give another id."""
    basis = "\x00".join([job.nflog_id, job.integration, what, repr(previous.seq) if previous else "-"])
    return f"nf-{hashlib.sha256(basis.encode()).hexdigest()[:32]}"


def _notification(
    job: Job, alerts: Sequence[NotifyAlert], notification_id: str, earlier_attempt: bool = False
) -> Notification:
    note = job.extra.get("acknowledged")
    if note:  # the notification that follows an acknowledgement says who made it, and when
        alerts = [replace(a, annotations={**a.annotations, "acknowledged": str(note)}) for a in alerts]
    return Notification(
        receiver=job.receiver,
        group_key=job.group_key,
        group_labels=dict(job.group_labels),
        alerts=tuple(alerts),
        external_url=str(job.extra.get("external_url", "")),
        extra={"job_id": job.job_id, "fallback_for": job.fallback_for} if job.fallback_for else {},
        notification_id=notification_id,
        earlier_attempt=earlier_attempt,
    )


def _send(integ: ReceiverIntegration, notification: Notification) -> None:
    try:
        integ.integration.send(notification)
    except DeliveryError:
        raise
    except Exception as exc:  # an integration bug or an unexpected client error: retry, and say what
        raise DeliveryError(f"{type(exc).__name__}: {exc}", retryable=True) from exc


def deliver(
    redis_client: redis.Redis,
    prefix: str,
    config: RoutingConfig,
    job: Job,
    now: float,
    *,
    lock_ttl: float | None = None,
    outbox: Sequence[str] = (),
    handoff: Handoff | None = None,
) -> bool:
    """Send one job; on success write the notification log. Raises ``DeliveryError`` on failure,
    ``ReceiverPaused`` while the receiver's pause lasts.

    Safe to call twice for the same job (a redelivered task): the second call finds the log entry
    of the first and sends nothing. True when a notification went out. When it returns (the job is
    settled: sent, or found sent, superseded or no longer needed), the ``outbox`` entries named are
    removed, in the round trip that writes the log. With ``handoff``, the lock of the job its
    thread delivers next is taken in that round trip too (see ``Handoff``).
    """
    store = NotifyStore(redis_client, prefix)
    integ = _find_integration(config, job.receiver, job.integration)
    bound = log.bind(
        job_id=job.job_id, group_key=job.group_key, receiver=job.receiver, integration=job.integration
    )
    if integ is None:
        bound.warning("notify.job_dropped", msg="receiver integration no longer configured")
        store.outbox_done(outbox)
        return False
    what = _what(job)
    ttl = LOCK_TTL if lock_ttl is None else lock_ttl
    with _delivery_lock(store, job, what, ttl, outbox, handoff) as locked:
        sent = _deliver_locked(store, integ, job, what, now, bound, locked)
    if locked.log is not None:
        acks.after_delivery(
            acks.AckStore.of(store), job.receiver, job.nflog_id, job.extra, job.reason, job.firing, now
        )
    return sent


class DeliveryBusy(DeliveryError):
    """Another delivery holds this group's lock for this integration: the receiver said nothing."""


class ReceiverPaused(Exception):  # noqa: N818 - a state, not a failure: nothing went wrong
    """The receiver asked for a pause (Retry-After) that has not ended: nothing was sent."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"the receiver asked for a pause; {seconds:.1f}s left")
        self.seconds = seconds


class _LockRenewer:
    """One thread per process renewing every delivery lock held in it, each every third of its TTL,
    however long its receiver takes. (A thread per delivery cost a thread start and join per send.)

    A renewal racing a release is harmless: extending checks the lock's token in Redis, so it never
    touches a lock released meanwhile or taken by someone else since.
    """

    def __init__(self) -> None:
        self._held: dict[int, tuple[NotifyStore, str, str, str, float, float]] = {}
        self._next_id = 0
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None
        self._pid = 0

    def hold(self, store: NotifyStore, nid: str, integration: str, token: str, ttl: float) -> int:
        with self._wake:
            self._next_id += 1
            handle = self._next_id
            renew_at = time.monotonic() + ttl / 3
            # The thread sleeps until the first renewal due: woken only when this one comes sooner
            # (a wake-up per delivery costs a storm's deliveries a thread switch each).
            sooner = renew_at < min((item[5] for item in self._held.values()), default=math.inf)
            self._held[handle] = (store, nid, integration, token, ttl, renew_at)
            # A process forked from one that had the thread running has no thread: start its own.
            if self._thread is None or self._pid != os.getpid() or not self._thread.is_alive():
                self._pid = os.getpid()
                self._thread = threading.Thread(target=self._run, name="delivery-lock", daemon=True)
                self._thread.start()
            elif sooner:
                self._wake.notify()
            return handle

    def drop(self, handle: int) -> None:
        with self._wake:
            self._held.pop(handle, None)

    def _run(self) -> None:
        while True:
            with self._wake:
                now = time.monotonic()
                due = [(h, item) for h, item in self._held.items() if item[5] <= now]
                if not due:
                    wait = min((item[5] for item in self._held.values()), default=now + 60.0) - now
                    self._wake.wait(max(0.0, wait))
                    continue
            for handle, (store, nid, integration, token, ttl, _) in due:
                try:
                    kept = store.extend(nid, integration, token, ttl)
                except redis.RedisError:
                    kept = True  # Redis away for a moment: try again next time; the TTL covers the gap
                with self._wake:
                    if handle in self._held:
                        if kept:
                            self._held[handle] = (store, nid, integration, token, ttl, now + ttl / 3)
                        else:  # no longer ours: stop renewing it
                            del self._held[handle]


_renewer = _LockRenewer()


@dataclass
class _Locked:
    """A delivery under its lock: what was read when it was taken, and the log entry to write."""

    held: Held
    log: LogEntry | None = None
    sending: bool = False  # a send has begun: the attempt mark stays


class Handoff(Protocol):
    """How a delivery thread that runs one job after another takes the next one's lock in the round
    trip that releases the last one's (one round trip per delivery instead of two). The next job is
    taken from those waiting as the thread would take it anyway, right after this one."""

    def next_job(self) -> Job | None:
        """The job this thread delivers right after the one under way, taken now; None when it
        delivers none next."""
        ...

    def prepare(self, job: Job, held: Held | None) -> None:
        """Keep the lock taken for ``job`` until its delivery begins (None: it was not taken)."""
        ...

    def prepared(self, job: Job) -> Held | None:
        """The lock taken for ``job`` ahead of its delivery, given out once. One that a delivery
        did not take (its receiver was removed, its attempt failed first) is the handoff's to let
        go of, with ``release_prepared``."""
        ...


def release_prepared(store: NotifyStore, handoff: Handoff, job: Job) -> None:
    """Let go of a lock taken for ``job`` ahead of a delivery that will not use it, putting its
    attempt mark back: nothing was sent."""
    held = handoff.prepared(job)
    if held is not None:
        store.settle(
            job.nflog_id, job.integration, held.token, repeat_interval=job.repeat_interval, take_back=held
        )


def _taking(job: Job, what: str, lock_ttl: float) -> Taking:
    """The lock a delivery of ``job`` takes, with its attempt mark (none for a fallback, which has
    marks of its own)."""
    mark = "" if job.fallback_for else hashlib.sha256(what.encode()).hexdigest()
    return Taking(job.nflog_id, job.integration, lock_ttl, mark, job.repeat_interval)


@contextlib.contextmanager
def _delivery_lock(
    store: NotifyStore,
    job: Job,
    what: str,
    lock_ttl: float,
    outbox: Sequence[str],
    handoff: Handoff | None = None,
) -> Iterator[_Locked]:
    """Hold the (group, integration) lock for the block, renewing it in the background; the block
    gets what was read under the lock (the newest flush number issued, the notification log entry,
    the receiver's pause). Taking it marks the attempt at sending ``what`` (see
    ``NotifyStore.acquire_and_read``): a worker that dies mid-send leaves the mark behind. When the
    block ends normally, the log entry it set is written, the ``outbox`` entries are removed and the
    lock is released, in one script; when it raises, the lock is only released. Either way, a block
    that sent nothing puts back the mark it found.

    With ``handoff``, the lock may have been taken already (by the delivery before, on this
    thread), and the next job's is taken in the round trip that releases this one."""
    held = handoff.prepared(job) if handoff is not None else None
    if held is None:
        held = store.take(_taking(job, what, lock_ttl))
    if held is None:
        raise DeliveryBusy(
            "another delivery to this receiver for this group is in progress", retryable=True, retry_after=1.0
        )
    handle = _renewer.hold(store, job.nflog_id, job.integration, held.token, lock_ttl)
    locked = _Locked(held)
    settled = False
    try:
        yield locked
        settled = True
    finally:
        _renewer.drop(handle)
        following = handoff.next_job() if handoff is not None else None
        taken = store.settle(
            job.nflog_id,
            job.integration,
            held.token,
            entry=locked.log if settled else None,
            repeat_interval=job.repeat_interval,
            outbox=outbox if settled else (),
            take_back=None if locked.sending else held,
            then=_taking(following, _what(following), lock_ttl) if following is not None else None,
        )
        if handoff is not None and following is not None:
            handoff.prepare(following, taken)


def _deliver_locked(
    store: NotifyStore,
    integ: ReceiverIntegration,
    job: Job,
    what: str,
    now: float,
    bound: Any,
    locked: _Locked,
) -> bool:
    """The delivery itself, under the group's lock: skip what was already sent or superseded,
    send, and set the notification log entry the lock's release writes. True when a notification
    went out."""
    held = locked.held
    if held.paused > 0:
        raise ReceiverPaused(held.paused)
    latest, entry = held.latest, held.entry
    if job.fallback_for:
        if store.was_sent(job.job_id):
            bound.info("notify.duplicate", msg="fallback already delivered")
            return False
        earlier = store.mark_attempt(job.nflog_id, job.integration, job.job_id, FALLBACK_SENT_TTL)
        _send(integ, _notification(job, job.alerts, job.job_id, earlier))
        store.mark_sent(job.job_id, FALLBACK_SENT_TTL)
        bound.info("notify.sent", msg=f"fallback for {job.fallback_for}", alerts=len(job.alerts))
        return True
    if latest is not None and latest > job.seq:
        bound.info("notify.superseded", msg="a newer flush of this group replaced this notification")
        return False
    if entry is not None and entry.seq >= job.seq:
        bound.info("notify.duplicate", msg="already delivered")
        return False
    needed, why = needs_update(entry, job.firing, job.resolved, integ.send_resolved, job.repeat_interval, now)
    if not needed and entry is None and job.resolved and integ.send_resolved and held.attempted:
        # A send began and was never logged (the worker died, or Redis failed over, after the
        # receiver had it): the receiver may have been told these alerts fired, so it is told they
        # resolved rather than left with a page that never clears.
        needed, why = True, REASON_AFTER_UNKNOWN
    if not needed:
        bound.info("notify.dedup", msg=f"nothing new since the last notification ({why})")
        return False
    alerts = job.alerts if integ.send_resolved else tuple(a for a in job.alerts if a.status == "firing")
    if alerts:
        if held.earlier:
            bound.info("notify.unknown_outcome", msg="an earlier attempt's outcome is unknown; sending again")
        locked.sending = True
        _send(integ, _notification(job, alerts, _notification_id(job, what, entry), held.earlier))
    else:
        bound.info("notify.not_sent", msg="only resolved alerts and send_resolved is off; logging them")
    locked.log = LogEntry(frozenset(job.firing), frozenset(job.resolved), now, job.seq)
    if alerts:
        bound.info("notify.sent", msg=job.reason, firing=len(job.firing), resolved=len(job.resolved))
    return bool(alerts)


def fallback_jobs(config: RoutingConfig, job: Job) -> list[Job]:
    """Jobs carrying a permanently failed notification to the receiver's ``fallback`` receiver."""
    receiver = config.receivers.get(job.receiver)
    if receiver is None or not receiver.fallback or job.fallback_for:
        return []
    target = config.receivers.get(receiver.fallback)
    if target is None:
        return []
    return [
        replace(
            job,
            job_id=_job_id(job.group_id, integ.key, job.seq, job.integration),
            receiver=target.name,
            integration=integ.key,
            fallback_for=job.integration,
        )
        for integ in target.integrations
    ]
