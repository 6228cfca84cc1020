"""Acknowledgements and escalation state in Redis, and the places an acknowledgement comes from.

Keys (``N`` is the deployment's ``<prefix>:notify``)::

    N:acks            HASH  nid -> acknowledgement JSON (group key, firing set, who, when, until)
    N:esc:<nid>       HASH  since (first notification to the route's own receiver in this episode),
                            group_key, labels, step:<receiver> (when that step's receiver was told)

``nid`` is the notification log's id of the group (a hash of its group key). The flush reads both
for every group it flushes (:class:`Escalations`). The flush that issues a group's first notification
to its route's own receiver starts the episode's clock (``since``: a page that keeps failing still
escalates), and the logged notification that tells that receiver everything resolved ends it.

An acknowledgement comes from the CLI, the HTTP API, or a source the flush asks before a step or a
repeat would go out (:class:`AckSource`: a Slack reaction, a PagerDuty incident acknowledged).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

import redis
import structlog

from alerting import durable
from alerting.core import rfc3339
from alerting.notify.store import NotifyStore, nflog_id
from alerting.ops import metrics
from alerting.routing.escalation import REASON_ESCALATION, Acknowledgement
from alerting.routing.matchers import Matcher, matches_all

log = structlog.get_logger(__name__)

ESCALATION_RETENTION = 120 * 3600.0  # an episode nobody ends (worker gone for days) is forgotten


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class AckStore:
    """Redis access for acknowledgements and escalation episodes."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self.r = client
        self.n = f"{prefix}:notify"

    @classmethod
    def of(cls, store: NotifyStore) -> AckStore:
        """The one beside the pipeline's store (same client, same prefix)."""
        return cls(store.r, store.p.removesuffix(":notify"))

    @property
    def acks_key(self) -> str:
        return f"{self.n}:acks"

    def esc_key(self, nid: str) -> str:
        return f"{self.n}:esc:{nid}"

    # -- acknowledgements -------------------------------------------------------------------------

    def put(self, ack: Acknowledgement) -> str:
        nid = nflog_id(ack.group_key)
        # An acknowledgement is part of the durability contract: a failover must not bring back
        # the pages someone said they are handling.
        pipe = durable.pipeline(self.r, "ack", transaction=False)
        pipe.hset(self.acks_key, nid, json.dumps(ack.to_dict(), sort_keys=True))
        pipe.execute()
        return nid

    def get_many(self, nids: Sequence[str]) -> dict[str, Acknowledgement]:
        if not nids:
            return {}
        values = self.r.hmget(self.acks_key, list(nids))
        return {
            nid: Acknowledgement.from_dict(json.loads(v)) for nid, v in zip(nids, values, strict=True) if v
        }

    def delete(self, nid: str) -> bool:
        pipe = durable.pipeline(self.r, "ack", transaction=False)
        pipe.hdel(self.acks_key, nid)
        return bool(pipe.execute()[0])

    def all(self, now: float) -> list[tuple[str, Acknowledgement]]:
        """Every acknowledgement still in force, oldest first; expired ones are deleted."""
        out: list[tuple[str, Acknowledgement]] = []
        gone: list[tuple[str, Acknowledgement]] = []
        for nid, raw in self.r.hgetall(self.acks_key).items():
            ack = Acknowledgement.from_dict(json.loads(raw))
            (gone if ack.expired(now) else out).append((_s(nid), ack))
        if gone:
            self.r.hdel(self.acks_key, *[nid for nid, _ in gone])
        return sorted(out, key=lambda item: (item[1].at, item[0]))

    # -- escalation episodes ----------------------------------------------------------------------

    def since_many(self, nids: Sequence[str]) -> dict[str, float]:
        pipe = self.r.pipeline(transaction=False)
        for nid in nids:
            pipe.hget(self.esc_key(nid), "since")
        return {nid: float(v) for nid, v in zip(nids, pipe.execute(), strict=True) if v}

    def start(self, groups: Sequence[tuple[str, str, Mapping[str, str]]], now: float) -> None:
        """The route's own receiver is being told something fires: each group's clock starts (once).
        ``groups`` holds (nid, group key, group labels)."""
        if not groups:
            return
        pipe = durable.pipeline(self.r, "escalation", transaction=False)
        for nid, group_key, labels in groups:
            key = self.esc_key(nid)
            pipe.hsetnx(key, "since", repr(now))
            pipe.hset(
                key, mapping={"group_key": group_key, "labels": json.dumps(dict(labels), sort_keys=True)}
            )
            pipe.expire(key, int(ESCALATION_RETENTION))
        pipe.execute()

    def ended(self, nid: str) -> None:
        self.r.delete(self.esc_key(nid))

    def record_step(self, nid: str, receiver: str, now: float) -> None:
        pipe = durable.pipeline(self.r, "escalation", transaction=False)
        pipe.hset(self.esc_key(nid), f"step:{receiver}", repr(now))
        pipe.execute()

    def episodes(self) -> list[dict[str, Any]]:
        """Every group with a running escalation clock: group key, since, steps reached so far."""
        out = []
        for key in self.r.scan_iter(match=f"{self.n}:esc:*", count=500):
            data = {_s(k): _s(v) for k, v in self.r.hgetall(key).items()}
            if "since" not in data:
                continue
            steps = {k.removeprefix("step:"): float(v) for k, v in data.items() if k.startswith("step:")}
            out.append(
                {
                    "group_key": data.get("group_key", ""),
                    "labels": json.loads(data.get("labels", "{}")),
                    "since": float(data["since"]),
                    "steps": steps,
                }
            )
        return sorted(out, key=lambda e: (e["since"], e["group_key"]))


def after_delivery(
    store: AckStore,
    receiver: str,
    nid: str,
    extra: Mapping[str, Any],
    reason: str,
    firing: Sequence[str],
    now: float,
) -> None:
    """After a logged notification: the route's own receiver told that everything resolved ends the
    episode, its clock and its acknowledgement; a step's first notification is remembered for
    ``alerting status``."""
    step = int(extra.get("step", 0))
    if step == 0 and not firing:
        store.ended(nid)
        store.delete(nid)
    elif step and reason == REASON_ESCALATION and firing:
        store.record_step(nid, receiver, now)


# --- where acknowledgements come from ---------------------------------------------------------------


@dataclass(frozen=True)
class AckSeen:
    """Someone acknowledged a group somewhere else (a reaction, an incident's status)."""

    by: str
    at: float
    source: str


class AckSource(Protocol):
    """Asked before an escalation step or a repeat goes out: did someone acknowledge this group?"""

    name: str

    def acknowledged(
        self, store: AckStore, nid: str, group_key: str, group_labels: Mapping[str, str]
    ) -> AckSeen | None: ...


@dataclass
class GroupState:
    """What the flush knows about one group's escalation."""

    since: float | None = None
    ack: Acknowledgement | None = None  # holds for the current firing set
    voided: Acknowledgement | None = None  # ended by this flush: the next notification tells of it
    polled: bool = False

    @property
    def acknowledged(self) -> bool:
        return self.ack is not None

    def note(self) -> str:
        """What the notification says about the acknowledgement ("" when there is none)."""
        ack = self.ack or self.voided
        return ack.describe(rfc3339(ack.at)) if ack else ""


class Escalations:
    """The flush's view of acknowledgements and escalation clocks, read once per batch."""

    def __init__(
        self,
        client: redis.Redis,
        prefix: str,
        sources: Sequence[AckSource] = (),
        default_duration: float = 24 * 3600.0,
    ) -> None:
        self.store = AckStore(client, prefix)
        self.sources = tuple(sources)
        self.default_duration = default_duration

    def load(self, groups: Sequence[tuple[str, str, Sequence[str]]], now: float) -> dict[str, GroupState]:
        """(nid, group key, firing fingerprints) of each group -> its state. An acknowledgement that
        no longer covers the firing set ends here; when an alert joined the set the escalation
        starts over with the next notification."""
        nids = [nid for nid, _, _ in groups]
        acks = self.store.get_many(nids)
        since = self.store.since_many(nids)
        states: dict[str, GroupState] = {}
        for nid, group_key, firing in groups:
            state = GroupState(since=since.get(nid))
            ack = acks.get(nid)
            if ack is not None and ack.covers(firing, now):
                state.ack = ack
            elif ack is not None:
                self.store.delete(nid)
                if ack.expired(now):
                    log.info("notify.ack_expired", group_key=group_key, by=ack.by)
                elif firing:
                    state.voided, state.since = ack, None
                    self.store.ended(nid)
                    log.info(
                        "notify.ack_ended",
                        msg="a new alert joined the acknowledged group; escalation starts over",
                        group_key=group_key,
                        by=ack.by,
                    )
            states[nid] = state
        return states

    def start_clocks(self, groups: Sequence[tuple[str, str, Mapping[str, str]]], now: float) -> None:
        """The flush issued the first notification of these groups' episodes to their route's receiver."""
        self.store.start(groups, now)

    def keep_logs(self, items: Sequence[tuple[str, str, float]]) -> None:
        """Keep these notification-log entries ((nid, integration, seconds) each) that long: an
        acknowledged group sends no repeats, so nothing rewrites its entries before they would expire
        and make the next flush take the group for one never notified."""
        if not items:
            return
        pipe = self.store.r.pipeline(transaction=False)
        for nid, integration, seconds in items:
            pipe.pexpire(f"{self.store.n}:nflog:{nid}:{integration}", max(1000, int(seconds * 1000)))
        pipe.execute()

    def poll(
        self,
        state: GroupState,
        nid: str,
        group_key: str,
        labels: Mapping[str, str],
        firing: Sequence[str],
        now: float,
    ) -> GroupState:
        """Ask the sources (once per flush of the group) whether someone acknowledged it."""
        if state.polled or state.ack is not None or not self.sources or not firing:
            return state
        state.polled = True
        for source in self.sources:
            try:
                seen = source.acknowledged(self.store, nid, group_key, labels)
            except Exception as exc:  # a source that cannot answer must not hold up notifications
                log.warning("notify.ack_source_failed", source=source.name, group_key=group_key, msg=str(exc))
                continue
            if seen is None:
                continue
            ack = Acknowledgement(
                group_key=group_key,
                firing=frozenset(firing),
                by=seen.by,
                at=seen.at,
                expires_at=now + self.default_duration,
                source=seen.source,
                group_labels=dict(labels),
            )
            self.store.put(ack)
            metrics.observe_acknowledgement(seen.source)
            log.info("notify.acknowledged", group_key=group_key, by=seen.by, source=seen.source)
            return replace(state, ack=ack)
        return state


# --- acknowledging by matchers (CLI and API) ---------------------------------------------------------


def acknowledge(
    client: redis.Redis,
    prefix: str,
    matchers: Sequence[Matcher],
    *,
    by: str,
    comment: str,
    duration: float,
    now: float,
    source: str,
) -> list[tuple[str, Acknowledgement]]:
    """Acknowledge every aggregation group with a firing alert matching ``matchers``, for the alerts
    firing in it now; returns (id, acknowledgement) of each."""
    notify = NotifyStore(client, prefix)
    gids = [_s(g) for g in client.zrange(notify.due_key, 0, -1)]
    acks: dict[str, Acknowledgement] = {}
    for group in notify.load_groups(gids):
        firing = [a for a in (json.loads(raw) for raw in group.alerts.values()) if _firing(a, now)]
        if not any(matches_all(matchers, a["labels"]) for a in firing):
            continue
        ack = Acknowledgement(
            group_key=group.group_key,
            firing=frozenset(a["fingerprint"] for a in firing),
            by=by,
            at=now,
            expires_at=now + duration,
            comment=comment,
            source=source,
            group_labels=dict(group.group_labels),
        )
        acks[nflog_id(group.group_key)] = ack  # one group key may sit in several routes' groups
    store = AckStore(client, prefix)
    for ack in acks.values():
        store.put(ack)
        log.info("notify.acknowledged", group_key=ack.group_key, by=by, source=source, comment=comment)
    return sorted(acks.items(), key=lambda item: item[1].group_key)


def _firing(alert: Mapping[str, Any], now: float) -> bool:
    ends_at = alert.get("ends_at")
    return ends_at is None or ends_at > now


def ack_json(nid: str, ack: Acknowledgement) -> dict[str, Any]:
    """How the CLI and the API show an acknowledgement."""
    return {
        "id": nid,
        "group_key": ack.group_key,
        "group_labels": dict(ack.group_labels),
        "alerts": len(ack.firing),
        "by": ack.by,
        "source": ack.source,
        "comment": ack.comment,
        "at": rfc3339(ack.at),
        "expires_at": rfc3339(ack.expires_at),
    }


def expire(client: redis.Redis, prefix: str, ids: Iterable[str]) -> list[str]:
    """End the acknowledgements with these ids; returns the ids that existed."""
    store = AckStore(client, prefix)
    return [nid for nid in ids if store.delete(nid)]
