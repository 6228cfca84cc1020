"""Redis side of notification routing: aggregation groups and their timers, the notification log,
the alert index inhibition reads, delivery locks, and silences.

Key scheme (``P`` is the deployment's prefix; every key lives under it)::

    P:notify:due                        ZSET    group id -> when its timer fires next (unix seconds);
                                                while a flusher works on it, the end of its lease
    P:notify:group:<gid>                HASH    route_id, route_key, group_key, labels (JSON),
                                                flushed ("0"/"1"), due (the timer's time, which also
                                                numbers the flush), claimed (lease end, "0" when free)
    P:notify:group:<gid>:alerts         HASH    fingerprint -> alert JSON (labels, annotations,
                                                starts_at, ends_at, generator_url, value, updated_at)
    P:notify:alerts                     HASH    fingerprint -> {labels, ends_at, seen}: every alert
                                                reported, whatever its route (inhibition sources)
    P:notify:nflog:<nid>:<integration>  STRING  last successful notification (firing and resolved
                                                fingerprints, time, flush number); expires after
                                                min(120h, 2 x repeat_interval)
    P:notify:latest:<nid>:<integration> STRING  number of the newest flush that issued a job; older
                                                jobs still queued are superseded by it
    P:notify:lock:<nid>:<integration>   STRING  delivery lock (random token, expires by itself)
    P:notify:attempt:<nid>:<integration> STRING notification id of the latest send begun: the same
                                                id again means an attempt of unknown outcome
    P:notify:sent:<job id>              STRING  a fallback delivery that already went out
    P:notify:gc                         STRING  held for a minute by whoever cleans the alert index
    P:notify:wake                       CHANNEL a group's timer was set earlier than before (its time)
    P:notify:outbox                     ZSET    job id -> when another flusher may take the job over
                                                (its holder keeps pushing this out while it has it)
    P:notify:job:<job id>               STRING  a job handed to a worker process's deliveries (JSON)
    P:notify:pause:<integration>        STRING  the receiver asked for no requests until this expires
                                                (Retry-After)
    P:silences                          HASH    silence id -> silence JSON

The notification log, fallback marks and silences are durable writes (:mod:`alerting.durable`):
with replicas, a replica has them before the write returns.

``gid`` hashes the route's position in the tree and the group key; ``nid`` hashes the group key
alone, so the notification log survives a config reload that only reorders routes, as Alertmanager's
does. Timers are absolute times, so a restarted worker continues them instead of starting over.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
import redis

from alerting import durable
from alerting.routing.dedup import LogEntry
from alerting.routing.silences import EXPIRED, Silence

NFLOG_MAX_RETENTION = 120 * 3600.0
RESOLVED_RETENTION = 15 * 60.0  # how long the evaluator keeps reporting a resolved alert
SOURCE_STALE_AFTER = 3600.0  # an alert not reported for this long no longer inhibits anything
SILENCE_RETENTION = 120 * 3600.0  # expired silences stay listable this long

_INGEST = """
-- KEYS: due index, group meta, group alerts, alert index
-- ARGV: gid, now, group_wait, route_id, route_key, group_key, labels, the wake-up channel, then one
--       per alert: fingerprint LF create ("1"/"0") starts_at LF index entry JSON LF alert JSON
local now = tonumber(ARGV[2])
local wait = tonumber(ARGV[3])
local any_create, any_overdue = false, false
local indexed, alerts = {}, {}
-- Fields are set a few hundred at a time (one HSET each), within what unpack can pass on.
local function hset_all(key, pairs)
  for i = 1, #pairs, 400 do
    redis.call('HSET', key, unpack(pairs, i, math.min(i + 399, #pairs)))
  end
end
for i = 9, #ARGV do
  local item = ARGV[i]
  local a = string.find(item, '\\n', 1, true)
  local b = string.find(item, '\\n', a + 1, true)
  local c = string.find(item, '\\n', b + 1, true)
  local fp = string.sub(item, 1, a - 1)
  if string.sub(item, a + 1, a + 1) == '1' then any_create = true end
  if tonumber(string.sub(item, a + 2, b - 1)) + wait < now then any_overdue = true end
  indexed[#indexed + 1] = fp
  indexed[#indexed + 1] = string.sub(item, b + 1, c - 1)
  alerts[#alerts + 1] = fp
  alerts[#alerts + 1] = string.sub(item, c + 1)
end
hset_all(KEYS[4], indexed)
local woke = nil  -- the group's new timer, when it is earlier than before
if redis.call('EXISTS', KEYS[2]) == 0 then
  if not any_create then return 0 end
  woke = now + wait
  if any_overdue then woke = now end
  redis.call('HSET', KEYS[2], 'route_id', ARGV[4], 'route_key', ARGV[5], 'group_key', ARGV[6],
             'labels', ARGV[7], 'flushed', '0', 'due', string.format('%.6f', woke), 'claimed', '0')
elseif any_overdue and redis.call('HGET', KEYS[2], 'flushed') == '0'
       and tonumber(redis.call('HGET', KEYS[2], 'claimed') or '0') < now
       and tonumber(redis.call('HGET', KEYS[2], 'due')) > now then
  -- Alertmanager flushes a never-flushed group at once when an alert's own wait is already over.
  redis.call('HSET', KEYS[2], 'due', string.format('%.6f', now))
  woke = now
end
if woke then
  -- Flushers sleep until the earliest timer: only one earlier than every other needs to wake them.
  local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  redis.call('ZADD', KEYS[1], woke, ARGV[1])
  if first[2] == nil or woke < tonumber(first[2]) then
    redis.call('PUBLISH', ARGV[8], string.format('%.6f', woke))
  end
end
hset_all(KEYS[3], alerts)
return 0
"""
_CLAIM = """
-- ARGV: now, the lease, the most groups to take, the group key prefix, n (take at most an n-th of
--       the groups due) and the fewest to take; returns the ids taken and how many are left due
local due = redis.call('ZCOUNT', KEYS[1], '-inf', ARGV[1])
local take = math.min(tonumber(ARGV[3]), math.max(math.ceil(due / tonumber(ARGV[5])), tonumber(ARGV[6])))
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, take)
local out = {}
for _, id in ipairs(ids) do
  if redis.call('EXISTS', ARGV[4] .. id) == 1 then
    redis.call('ZADD', KEYS[1], ARGV[2], id)
    redis.call('HSET', ARGV[4] .. id, 'claimed', ARGV[2])
    out[#out + 1] = id
  else  -- a timer left behind by a group that is gone: nothing to flush
    redis.call('ZREM', KEYS[1], id)
  end
end
return {out, due - #ids}
"""

_UNCLAIM = """
-- ARGV: the lease the claims were taken with, when the groups are due again, the group key
--       prefix, then group ids
for i = 4, #ARGV do
  local meta = ARGV[3] .. ARGV[i]
  if redis.call('HGET', meta, 'claimed') == ARGV[1] then
    redis.call('HSET', meta, 'claimed', '0')
    redis.call('ZADD', KEYS[1], ARGV[2], ARGV[i])
  end
end
return 0
"""

_FINISH = """
for i = 3, #ARGV, 2 do
  if redis.call('HGET', KEYS[3], ARGV[i]) == ARGV[i + 1] then
    redis.call('HDEL', KEYS[3], ARGV[i])
  end
end
if redis.call('HLEN', KEYS[3]) == 0 then
  redis.call('DEL', KEYS[2], KEYS[3])
  redis.call('ZREM', KEYS[1], ARGV[1])
  return 0
end
redis.call('HSET', KEYS[2], 'flushed', '1', 'due', ARGV[2], 'claimed', '0')
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
return 1
"""

_OUTBOX_TAKE = """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
local out = {}
for _, id in ipairs(ids) do
  local job = redis.call('GET', ARGV[4] .. id)
  if job then
    redis.call('ZADD', KEYS[1], ARGV[2], id)
    table.insert(out, id)
    table.insert(out, job)
  else
    redis.call('ZREM', KEYS[1], id)
  end
end
return out
"""

# KEYS: the lock, the newest flush number issued, the notification log entry, the receiver's pause,
# the attempt mark; ARGV: the token, the lock's TTL in ms, what is to be sent ('' to mark nothing),
# the mark's TTL in ms. Nothing is read unless the lock is taken. The mark names what is to be sent
# and the log entry it follows; it is made only while the receiver is not paused, and the mark it
# replaced (and that one's TTL) comes back, so that it can be put back when nothing is sent after all.
_ACQUIRE = """
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return false end
local entry = redis.call('GET', KEYS[3])
local paused = redis.call('PTTL', KEYS[4])
local mark, before, before_ttl = false, false, -2
if ARGV[3] ~= '' and paused <= 0 then
  mark = 'at-' .. redis.sha1hex(ARGV[3] .. '|' .. (entry or '-'))
  before_ttl = redis.call('PTTL', KEYS[5])
  before = redis.call('SET', KEYS[5], mark, 'PX', ARGV[4], 'GET')
end
return {redis.call('GET', KEYS[2]), entry, paused, mark, before, before_ttl}
"""

# KEYS: the lock, the notification log entry, the attempt mark, the outbox; ARGV: the token, the
# entry to write ('' for none), its TTL in ms, a mark to take back ('' for none), the mark it
# replaced ('' for none), that one's TTL in ms (-1: none), the prefix of job keys, then the ids of
# jobs to take out of the outbox. The log and the outbox are written whoever holds the lock now;
# the lock is released, and the mark taken back, only if they are still ours.
_SETTLE = """
if ARGV[2] ~= '' then redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3]) end
if ARGV[4] ~= '' and redis.call('GET', KEYS[3]) == ARGV[4] then
  if ARGV[5] == '' then
    redis.call('DEL', KEYS[3])
  elseif tonumber(ARGV[6]) > 0 then
    redis.call('SET', KEYS[3], ARGV[5], 'PX', ARGV[6])
  else
    redis.call('SET', KEYS[3], ARGV[5])
  end
end
for i = 8, #ARGV do
  redis.call('ZREM', KEYS[4], ARGV[i])
  redis.call('DEL', ARGV[7] .. ARGV[i])
end
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 0
"""

_EXTEND = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""


def _retention_ms(repeat_interval: float) -> int:
    """How long a notification log entry (and the attempt mark of a send it follows) is kept, in
    ms: two repeat intervals, at most ``NFLOG_MAX_RETENTION``."""
    return max(1000, int(min(NFLOG_MAX_RETENTION, 2 * repeat_interval) * 1000))


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def group_id(route_id: str, group_key: str) -> str:
    return _hash(f"{route_id}\x00{group_key}")


def nflog_id(group_key: str) -> str:
    return _hash(group_key)


@dataclass(frozen=True)
class Held:
    """A delivery lock taken, and what was read under it."""

    token: str
    latest: float | None  # the number of the newest flush that issued a job for it
    entry: LogEntry | None  # the notification log
    paused: float  # seconds until the receiver's own pause (Retry-After) ends; 0 without one
    mark: str | None = None  # the attempt mark made (see acquire_and_read)
    marked_before: str | None = None  # the mark it replaced, if there was one
    marked_before_ttl: int = -1  # that one's TTL in ms (-1: none)

    @property
    def earlier(self) -> bool:
        """An attempt at sending the same notification after the same log entry began before, and
        was never logged as sent: its outcome is unknown."""
        return self.mark is not None and self.marked_before == self.mark

    @property
    def attempted(self) -> bool:
        """A send to this (group, integration) began before and is remembered, never logged."""
        return self.marked_before is not None


@dataclass(frozen=True)
class Taking:
    """A delivery lock about to be taken (see ``NotifyStore.acquire_and_read``)."""

    nid: str
    integration: str
    ttl: float
    mark: str = ""
    repeat_interval: float = 0.0


def _held(token: str, read: Any) -> Held | None:
    """The acquire script's answer as a ``Held`` (None: another holds the lock)."""
    if read is None:
        return None
    latest, entry, pause_ms, made, before, before_ttl = read
    return Held(
        token=token,
        latest=float(latest) if latest else None,
        entry=LogEntry.from_dict(orjson.loads(entry)) if entry else None,
        paused=pause_ms / 1000 if pause_ms and pause_ms > 0 else 0.0,
        mark=_s(made) if made else None,
        marked_before=_s(before) if before else None,
        marked_before_ttl=int(before_ttl),
    )


_registered: weakref.WeakKeyDictionary[redis.Redis, dict[str, Any]] = weakref.WeakKeyDictionary()


def _scripts(client: redis.Redis) -> dict[str, Any]:
    """The store's scripts registered with ``client``, once per client: a store is made per
    delivery, and registering hashes each script's text."""
    scripts = _registered.get(client)
    if scripts is None:
        texts = (_INGEST, _CLAIM, _UNCLAIM, _FINISH, _SETTLE, _ACQUIRE, _EXTEND, _OUTBOX_TAKE)
        scripts = {text: client.register_script(text) for text in texts}
        _registered[client] = scripts  # two threads may both register: the same scripts either way
    return scripts


def execute(pipe: Any) -> list[Any]:
    """Run a pipeline that calls scripts without first asking Redis whether it holds them (redis-py
    asks with SCRIPT EXISTS, a round trip of its own, on every run). A script Redis no longer holds
    (it restarted, or failed over to a replica that never ran it) answers NOSCRIPT: that call alone
    is run again once the script is loaded, after the rest. Each script is atomic on its own and the
    pipelines here put no command after a script that depends on it, so the order stays sound.
    """
    scripts = {script.sha: script for script in pipe.scripts}
    pipe.scripts.clear()
    stack = [args for args, _ in pipe.command_stack]
    results = pipe.execute(raise_on_error=False)
    for i, result in enumerate(results):
        if isinstance(result, redis.exceptions.NoScriptError) and stack[i][1] in scripts:
            client = scripts[stack[i][1]].registered_client
            client.script_load(scripts[stack[i][1]].script)
            results[i] = client.execute_command(*stack[i])
    for result in results:
        if isinstance(result, Exception):
            raise result
    return results


@dataclass
class GroupInsert:
    """Alerts going into one aggregation group."""

    gid: str
    route_id: str
    route_key: str
    group_key: str
    group_labels: Mapping[str, str]
    group_wait: float
    alerts: list[bytes] = field(default_factory=list)  # each made by ``GroupInsert.item``

    @staticmethod
    def item(fingerprint: str, create: bool, starts_at: float, indexed: bytes, stored: bytes) -> bytes:
        """One alert for the group, as the ingest script reads it: its fingerprint, whether it may
        open a group (False for a resolved alert re-reported after its group already closed), its
        start, its alert index entry and its stored JSON, in one argument (a script argument costs
        the client more than its length: a storm hands over hundreds of thousands)."""
        # Neither JSON holds a raw line feed (it is escaped), nor does a fingerprint.
        flag = b"1" if create else b"0"
        return b"%s\n%s%r\n%s\n%s" % (fingerprint.encode(), flag, starts_at, indexed, stored)


@dataclass(frozen=True)
class OutboxWrite:
    """Jobs to put in the outbox: id -> JSON, taken over by another process after ``until``,
    forgotten after ``ttl`` seconds."""

    jobs: Mapping[str, bytes | str]
    until: float
    ttl: float


@dataclass(frozen=True)
class GroupSnapshot:
    gid: str
    route_id: str
    route_key: str
    group_key: str
    group_labels: Mapping[str, str]
    due: float
    flushed: bool
    # fingerprint -> stored JSON, exactly as read (for compare-and-delete): bytes, unless the client
    # decodes answers
    alerts: Mapping[str, bytes | str]


class NotifyStore:
    """All Redis access of the notification pipeline."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self.r = client
        self.p = f"{prefix}:notify"
        self.silence_key = f"{prefix}:silences"
        scripts = _scripts(client)
        self._ingest = scripts[_INGEST]
        self._claim = scripts[_CLAIM]
        self._unclaim = scripts[_UNCLAIM]
        self._finish = scripts[_FINISH]
        self._settle = scripts[_SETTLE]
        self._acquire = scripts[_ACQUIRE]
        self._extend = scripts[_EXTEND]
        self._outbox_take = scripts[_OUTBOX_TAKE]

    # -- key names --------------------------------------------------------------------------------

    @property
    def due_key(self) -> str:
        return f"{self.p}:due"

    def meta_key(self, gid: str) -> str:
        return f"{self.p}:group:{gid}"

    def alerts_key(self, gid: str) -> str:
        return f"{self.p}:group:{gid}:alerts"

    @property
    def index_key(self) -> str:
        return f"{self.p}:alerts"

    @property
    def wake_channel(self) -> str:
        return f"{self.p}:wake"

    @property
    def outbox_key(self) -> str:
        return f"{self.p}:outbox"

    @property
    def job_prefix(self) -> str:
        """Outbox jobs live under this prefix and their id."""
        return f"{self.p}:job:"

    def _nf(self, kind: str, nid: str, integration: str) -> str:
        return f"{self.p}:{kind}:{nid}:{integration}"

    # -- aggregation groups -----------------------------------------------------------------------

    def insert(self, inserts: Iterable[GroupInsert], now: float) -> None:
        """Put alerts into their groups (and the alert index), creating groups and starting their
        timers as needed.

        One script call per group, all in one round trip. A timer set earlier than every other is
        announced on the wake-up channel by the script itself (flushers sleep until the earliest).
        """
        pipe = self.r.pipeline(transaction=False)
        for group in inserts:
            args: list[Any] = [
                group.gid,
                repr(now),
                repr(group.group_wait),
                group.route_id,
                group.route_key,
                group.group_key,
                json.dumps(dict(group.group_labels), sort_keys=True),
                self.wake_channel,
                *group.alerts,
            ]
            keys = [self.due_key, self.meta_key(group.gid), self.alerts_key(group.gid), self.index_key]
            self._ingest(keys=keys, args=args, client=pipe)
        execute(pipe)

    def claim_due(
        self, now: float, lease_until: float, limit: int, share: int = 1, least: int = 1
    ) -> tuple[list[str], int]:
        """Atomically take groups whose timer is due (no other flusher gets them until the lease
        ends): ``limit`` at most, and at most one ``share``-th of those due, but ``least`` when
        there are as many. Returns the ids taken and how many groups are left due."""
        ids, left = self._claim(
            keys=[self.due_key],
            args=[repr(now), repr(lease_until), limit, f"{self.p}:group:", max(1, share), least],
        )
        return [_s(i) for i in ids], int(left)

    def unclaim(self, gids: list[str], lease_until: float, due: float) -> None:
        """Give back groups claimed with ``lease_until`` that could not be flushed, due again at
        ``due`` rather than when the lease ends. A group claimed by someone else since is left alone."""
        if gids:
            self._unclaim(keys=[self.due_key], args=[repr(lease_until), repr(due), f"{self.p}:group:", *gids])

    def load_groups(self, gids: list[str]) -> list[GroupSnapshot]:
        pipe = self.r.pipeline(transaction=False)
        for gid in gids:
            pipe.hgetall(self.meta_key(gid))
            pipe.hgetall(self.alerts_key(gid))
        raw = pipe.execute()
        out = []
        for gid, meta, alerts in zip(gids, raw[0::2], raw[1::2], strict=True):
            if not meta:
                continue
            m = {_s(k): _s(v) for k, v in meta.items()}
            out.append(
                GroupSnapshot(
                    gid=gid,
                    route_id=m["route_id"],
                    route_key=m["route_key"],
                    group_key=m["group_key"],
                    group_labels=json.loads(m["labels"]),
                    due=float(m["due"]),
                    flushed=m.get("flushed") == "1",
                    alerts={_s(k): v for k, v in alerts.items()},
                )
            )
        return out

    def finish_groups(
        self,
        groups: Iterable[tuple[str, Mapping[str, bytes | str], float]],
        latest: Iterable[tuple[str, str, float, float]] = (),
        outbox: OutboxWrite | None = None,
    ) -> None:
        """After a flush: record the jobs issued, and for each group drop the resolved alerts handed
        on (unless re-reported meanwhile) and set its next timer, or remove it when it is empty.

        ``groups`` holds (gid, {fingerprint: stored JSON}, next due); ``latest`` holds
        (nid, integration, flush number, ttl) of each job issued. ``outbox`` puts the jobs in the
        outbox (see :meth:`outbox_put`) in the same round trip, before the groups let go of the
        alerts they carry: no moment exists when a job is in neither place.
        """
        if outbox is not None and outbox.jobs:
            pipe: Any = durable.pipeline(self.r, "outbox", transaction=False)
            self._outbox_put_on(pipe, outbox)
        else:
            pipe = self.r.pipeline(transaction=False)
        for nid, integration, seq, ttl in latest:
            pipe.set(self._nf("latest", nid, integration), repr(seq), px=max(1000, int(ttl * 1000)))
        for gid, delete, next_due in groups:
            args: list[Any] = [gid, f"{next_due:.6f}"]
            for fp, stored in delete.items():
                args.extend([fp, stored])
            self._finish(
                keys=[self.due_key, self.meta_key(gid), self.alerts_key(gid)], args=args, client=pipe
            )
        execute(pipe)

    def drop_group(self, gid: str, fingerprints: Iterable[str] = ()) -> None:
        """Remove a group without flushing it.

        Its alerts are also forgotten by the index, so that a resolved one reported again opens a
        group under the new routes and its resolve is still told, instead of being taken for old news.
        """
        pipe = self.r.pipeline(transaction=True)
        pipe.delete(self.meta_key(gid), self.alerts_key(gid))
        pipe.zrem(self.due_key, gid)
        fps = list(fingerprints)
        if fps:
            pipe.hdel(self.index_key, *fps)
        pipe.execute()

    def group_count(self) -> int:
        return int(self.r.zcard(self.due_key))

    def next_due(self) -> float | None:
        first = self.r.zrange(self.due_key, 0, 0, withscores=True)
        return float(first[0][1]) if first else None

    # -- alert index (inhibition sources) ---------------------------------------------------------

    def index_get(self, fingerprints: list[str]) -> dict[str, dict[str, Any]]:
        if not fingerprints:
            return {}
        values = self.r.hmget(self.index_key, fingerprints)
        return {fp: orjson.loads(v) for fp, v in zip(fingerprints, values, strict=True) if v}

    def collect_garbage(self, now: float, every: float = 60.0) -> None:
        """Forget resolved and stale alerts in the index, at most once per ``every`` seconds overall."""
        if self.r.set(f"{self.p}:gc", "1", nx=True, px=int(every * 1000)):
            self.active_sources(now)

    def active_sources(self, now: float) -> list[dict[str, str]]:
        """Labels of every alert firing at ``now``; forgets resolved and stale entries as it goes."""
        active, stale = [], []
        for fp, raw in self.r.hgetall(self.index_key).items():
            entry = orjson.loads(raw)
            ends_at = entry.get("ends_at")
            if ends_at is not None and ends_at <= now:
                if ends_at < now - RESOLVED_RETENTION:
                    stale.append(fp)
                continue
            if entry.get("seen", now) < now - SOURCE_STALE_AFTER:
                stale.append(fp)
                continue
            active.append(entry["labels"])
        if stale:
            self.r.hdel(self.index_key, *stale)
        return active

    # -- notification log and delivery ------------------------------------------------------------

    def nflog_get_pairs(self, pairs: list[tuple[str, str]]) -> list[LogEntry | None]:
        """Log entries for (nid, integration) pairs, in one round trip."""
        if not pairs:
            return []
        values = self.r.mget([self._nf("nflog", nid, i) for nid, i in pairs])
        return [LogEntry.from_dict(json.loads(v)) if v else None for v in values]

    def nflog_and_issued(self, pairs: list[tuple[str, str]]) -> list[tuple[LogEntry | None, float | None]]:
        """Per (nid, integration): its log entry and the number of the newest flush that issued a
        job for it (None when none is remembered), in one round trip."""
        if not pairs:
            return []
        keys = [self._nf("nflog", nid, i) for nid, i in pairs] + [
            self._nf("latest", nid, i) for nid, i in pairs
        ]
        values = self.r.mget(keys)
        entries, issued = values[: len(pairs)], values[len(pairs) :]
        return [
            (LogEntry.from_dict(json.loads(e)) if e else None, float(n) if n else None)
            for e, n in zip(entries, issued, strict=True)
        ]

    def nflog_get(self, nid: str, integration: str) -> LogEntry | None:
        return self.nflog_get_pairs([(nid, integration)])[0]

    def nflog_put(self, nid: str, integration: str, entry: LogEntry, repeat_interval: float) -> None:
        """Record a notification as sent; durable: it returns once a replica has the entry."""
        pipe = durable.pipeline(self.r, "nflog", transaction=False)
        self._nflog_put_on(pipe, nid, integration, entry, repeat_interval)
        pipe.execute()

    def _nflog_put_on(
        self, pipe: Any, nid: str, integration: str, entry: LogEntry, repeat_interval: float
    ) -> None:
        pipe.set(
            self._nf("nflog", nid, integration),
            json.dumps(entry.to_dict()),
            px=_retention_ms(repeat_interval),
        )

    def acquire(self, nid: str, integration: str, ttl: float) -> str | None:
        token = secrets.token_hex(8)
        ok = self.r.set(self._nf("lock", nid, integration), token, nx=True, px=int(ttl * 1000))
        return token if ok else None

    def _run(self, script: Any, keys: list[str], args: list[Any], durable_as: str = "") -> Any:
        """Run one of the store's scripts; with ``durable_as``, as a durable write of that name (see
        ``alerting.durable``: it returns once a replica has it, when the primary has replicas)."""
        if durable_as and durable.replica_count(self.r) > 0:
            pipe = durable.pipeline(self.r, durable_as, transaction=False)
            script(keys=keys, args=args, client=pipe)
            return execute(pipe)[0]
        return script(keys=keys, args=args)

    def acquire_and_read(
        self, nid: str, integration: str, ttl: float, *, mark: str = "", repeat_interval: float = 0.0
    ) -> Held | None:
        """:meth:`acquire`, then the newest flush number issued, :meth:`nflog_get` and the receiver's
        pause (see :meth:`pause`), in one script; None when another holds the lock (and then
        nothing is read).

        Given ``mark`` (what is about to be sent, as a digest), it also notes that a send of it
        after the log entry read begins (unless the receiver's pause lasts), kept as long as that
        send's log entry would be (two ``repeat_interval``): durable, so that a failover keeps it.
        ``Held.earlier`` then says whether the same send began before and was never logged;
        ``settle(take_back=...)`` puts back the mark it replaced when nothing is sent after all."""
        return self.take(Taking(nid, integration, ttl, mark, repeat_interval))

    def take(self, taking: Taking) -> Held | None:
        """:meth:`acquire_and_read` of the lock ``taking`` names."""
        keys, args = self._acquire_call(taking)
        return _held(args[0], self._run(self._acquire, keys, args, "attempt" if taking.mark else ""))

    def _acquire_call(self, taking: Taking) -> tuple[list[str], list[Any]]:
        nid, integration = taking.nid, taking.integration
        keys = [
            self._nf("lock", nid, integration),
            self._nf("latest", nid, integration),
            self._nf("nflog", nid, integration),
            self._pause_key(integration),
            self._nf("attempt", nid, integration),
        ]
        token = secrets.token_hex(8)
        return keys, [token, int(taking.ttl * 1000), taking.mark, _retention_ms(taking.repeat_interval)]

    def settle(
        self,
        nid: str,
        integration: str,
        token: str,
        *,
        entry: LogEntry | None = None,
        repeat_interval: float = 0.0,
        outbox: Iterable[str] = (),
        take_back: Held | None = None,
        then: Taking | None = None,
    ) -> Held | None:
        """Release a delivery lock; before that, in the same script, write the notification log
        (``entry``, as :meth:`nflog_put`, durable), take the delivered jobs out of the outbox, and
        put back the attempt mark that ``take_back`` (the lock as taken) replaced, if it is still
        the one it made: nothing was sent after all.

        Redis runs the script at once and replicates it as one: whoever takes the lock next, here
        or on a promoted replica, finds the log entry written.

        ``then`` names the lock the same thread takes next (its next delivery): it is taken, as
        :meth:`acquire_and_read` takes it, in the same round trip, after the release, and returned
        (None when another holds it, or without ``then``).
        """
        ids = list(outbox)
        undo = take_back if take_back is not None and take_back.mark else None
        keys = [
            self._nf("lock", nid, integration),
            self._nf("nflog", nid, integration),
            self._nf("attempt", nid, integration),
            self.outbox_key,
        ]
        args = [
            token,
            orjson.dumps(entry.to_dict()) if entry is not None else "",
            _retention_ms(repeat_interval),
            undo.mark if undo else "",
            (undo.marked_before or "") if undo else "",
            undo.marked_before_ttl if undo else -1,
            self.job_prefix,
            *ids,
        ]
        durable_as = "nflog" if entry is not None or ids else ""
        if then is None:
            self._run(self._settle, keys, args, durable_as)
            return None
        # One round trip for both, and one WAIT for both writes when the primary has replicas and
        # either needs it (as each would on its own: see ``_run``).
        then_keys, then_args = self._acquire_call(then)
        durable_as = durable_as or ("attempt" if then.mark else "")
        pipe: Any = (
            durable.pipeline(self.r, durable_as, transaction=False)
            if durable_as
            else self.r.pipeline(transaction=False)
        )
        self._settle(keys=keys, args=args, client=pipe)
        self._acquire(keys=then_keys, args=then_args, client=pipe)
        return _held(then_args[0], execute(pipe)[1])

    def extend(self, nid: str, integration: str, token: str, ttl: float) -> bool:
        """Push a held lock's expiry ``ttl`` seconds out; False when it is no longer ours."""
        return bool(self._extend(keys=[self._nf("lock", nid, integration)], args=[token, int(ttl * 1000)]))

    def mark_attempt(self, nid: str, integration: str, notification_id: str, ttl: float) -> bool:
        """Note that a send of ``notification_id`` begins; True when one had already begun (and
        was never logged as sent: its outcome is unknown). Durable, so a failover keeps it. (A
        delivery's own sends are marked as its lock is taken: see :meth:`acquire_and_read`.)"""
        pipe = durable.pipeline(self.r, "attempt", transaction=False)
        pipe.set(
            self._nf("attempt", nid, integration), notification_id, px=max(1000, int(ttl * 1000)), get=True
        )
        previous = pipe.execute()[0]
        return _s(previous) == notification_id if previous is not None else False

    def _pause_key(self, integration: str) -> str:
        return f"{self.p}:pause:{integration}"

    def pause(self, integration: str, seconds: float) -> None:
        """The receiver asked for no requests for ``seconds`` (Retry-After); its latest answer counts."""
        self.r.set(self._pause_key(integration), "1", px=max(1, int(seconds * 1000)))

    # -- the outbox: jobs handed to a worker process's deliveries ---------------------------------

    def outbox_put(self, jobs: Mapping[str, bytes | str], until: float, ttl: float) -> None:
        """Record jobs (id -> JSON) a process is about to deliver; another may take them after ``until``."""
        if not jobs:
            return
        # Durable: the flush that made these jobs has taken their alerts out of the group, so the
        # outbox is where they live until delivered; a failover must not lose them.
        pipe = durable.pipeline(self.r, "outbox", transaction=False)
        self._outbox_put_on(pipe, OutboxWrite(jobs, until, ttl))
        pipe.execute()

    def _outbox_put_on(self, pipe: Any, write: OutboxWrite) -> None:
        for job_id, data in write.jobs.items():
            pipe.set(f"{self.job_prefix}{job_id}", data, px=max(1000, int(write.ttl * 1000)))
        pipe.zadd(self.outbox_key, dict.fromkeys(write.jobs, write.until))

    def outbox_take(self, now: float, until: float, limit: int) -> dict[str, str]:
        """Jobs whose holder stopped renewing them (it died, or gave them back): now ours until ``until``."""
        raw = self._outbox_take(keys=[self.outbox_key], args=[repr(now), repr(until), limit, self.job_prefix])
        return {_s(raw[i]): _s(raw[i + 1]) for i in range(0, len(raw), 2)}

    def outbox_renew(self, job_ids: Iterable[str], until: float) -> None:
        ids = list(job_ids)
        if ids:
            self.r.zadd(self.outbox_key, dict.fromkeys(ids, until), xx=True)

    def outbox_done(self, job_ids: Iterable[str]) -> None:
        ids = list(job_ids)
        if ids:
            pipe = self.r.pipeline(transaction=False)
            self._outbox_done_on(pipe, ids)
            pipe.execute()

    def _outbox_done_on(self, pipe: Any, ids: list[str]) -> None:
        if ids:
            pipe.zrem(self.outbox_key, *ids)
            pipe.delete(*(f"{self.job_prefix}{i}" for i in ids))

    def outbox_next(self) -> float | None:
        first = self.r.zrange(self.outbox_key, 0, 0, withscores=True)
        return float(first[0][1]) if first else None

    def was_sent(self, job_id: str) -> bool:
        return bool(self.r.exists(f"{self.p}:sent:{job_id}"))

    def mark_sent(self, job_id: str, ttl: float) -> None:
        pipe = durable.pipeline(self.r, "nflog", transaction=False)
        pipe.set(f"{self.p}:sent:{job_id}", "1", px=int(ttl * 1000))
        pipe.execute()

    # -- silences ---------------------------------------------------------------------------------

    def put_silence(self, silence: Silence) -> None:
        """Create or change a silence; durable: it returns once a replica has it."""
        pipe = durable.pipeline(self.r, "silence", transaction=False)
        pipe.hset(self.silence_key, silence.id, json.dumps(silence.to_dict()))
        pipe.execute()

    def get_silence(self, silence_id: str) -> Silence | None:
        raw = self.r.hget(self.silence_key, silence_id)
        return Silence.from_dict(json.loads(raw)) if raw else None

    def silences(self, now: float) -> list[Silence]:
        """Every silence not yet past its retention, oldest first; older ones are deleted."""
        out, gone = [], []
        for sid, raw in self.r.hgetall(self.silence_key).items():
            silence = Silence.from_dict(json.loads(raw))
            if silence.state(now) == EXPIRED and silence.ends_at < now - SILENCE_RETENTION:
                gone.append(sid)
            else:
                out.append(silence)
        if gone:
            self.r.hdel(self.silence_key, *gone)
        return sorted(out, key=lambda s: (s.starts_at, s.id))


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
