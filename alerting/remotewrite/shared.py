"""One remote_write target's queue in Redis, shared by every process and worker over that Redis and
prefix: writers append to one list, one lease holder sends it in the order written, and what is
queued outlives the process that wrote it.

A group's ticks run in whichever process is free, but never overlap (tick N is saved before N+1
starts), so the list's order is each series' time order, and one sender keeps it on the wire: the
receiver never sees a sample older than one it already has. Keys, under
``{prefix}:remotewrite:{remote}`` (``remote``: the target's name, else a hash of its URL):

* ``:queue``, the list: one entry per write, oldest first: ``<seq>|`` then a small header (flags, the
  time it was queued, its sample count) and its samples as an uncompressed WriteRequest (protobuf
  keeps a stale marker's NaN bits);
* ``:meta``, a hash: ``seq``, the last entry's number; ``samples``, what is queued (``capacity``
  bounds it); ``urgent``, the last entry someone waits for (entries up to it are sent without
  waiting for a batch); ``settled``, the last entry the sender removed;
* ``:sender``, the lease: a token of the one process sending, for ``_LEASE`` seconds plus the
  target's ``remote_timeout`` (one request never outlasts it), renewed while it sends and waits;
* ``:wake``, a list of at most one item a writer pushes so the holder, blocked on it, looks now;
* ``:free``, where a sender giving the lease up says so to the processes waiting to take it;
* ``:done:<seq>``, for an entry a writer waits on: ``1`` (accepted) or ``0`` (dropped), pushed by
  the holder when it settles the entry, kept a minute.

The holder reads entries from the head without taking them, sends, and only then removes what the
target settled, in a script that first checks it still holds the lease and that the head is the
entry it read: a sender that lost its lease removes nothing, and its batch is sent again by the
next one (at least once; a repeat has the same timestamp and value).
"""

from __future__ import annotations

import contextlib
import os
import struct
import threading
import time
import uuid
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import redis

from alerting import durable
from alerting.ops import metrics
from alerting.ops.logs import get_logger
from alerting.remotewrite.sending import Queued, Target, accepted, refused
from alerting.remotewrite.series import Labels, Series
from alerting.remotewrite.wire import decode_message, encode_message

__all__ = ["SharedQueue"]

log = get_logger(__name__)

# How long a sender's lease lasts past its last renewal, before the target's remote_timeout is
# added: a killed sender's queue waits this long for the next one.
_LEASE = 10.0
_RENEW_EVERY = _LEASE / 4
# How often a process that does not send tries to take the lease.
_TRY_EVERY = 2.0
# One blocking Redis call at most this long, so it stays within the client's socket timeout.
_BLOCK = 2.0
# How long a waited entry's outcome is kept for a writer that gave up waiting.
_DONE_TTL = 60
_JOIN_TIMEOUT = 5.0
# How often a flush looks whether the sender is done.
_FLUSH_POLL = 0.05

_WAITED = 1
# flags, queued at (Unix ms), sample count
_HEADER = struct.Struct(">BqI")

_APPEND = """
local n = tonumber(ARGV[1])
local queued = tonumber(redis.call('HGET', KEYS[2], 'samples') or '0')
if queued + n > tonumber(ARGV[2]) then return -1 - math.max(0, tonumber(ARGV[2]) - queued) end
local seq = redis.call('HINCRBY', KEYS[2], 'seq', 1)
redis.call('HINCRBY', KEYS[2], 'samples', n)
redis.call('RPUSH', KEYS[1], seq .. '|' .. ARGV[3])
if ARGV[4] == '1' then redis.call('HSET', KEYS[2], 'urgent', seq) end
if redis.call('LLEN', KEYS[3]) == 0 then redis.call('RPUSH', KEYS[3], '1') end
return seq
"""

# KEYS: lease, queue, meta, then one done key per waited entry; ARGV: token, entries, samples,
# the head's "<seq>|", the last entry's seq, how long an outcome is kept, then one outcome per done key.
_SETTLE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
local head = redis.call('LINDEX', KEYS[2], 0)
if not head or string.sub(head, 1, #ARGV[4]) ~= ARGV[4] then return 0 end
redis.call('LTRIM', KEYS[2], tonumber(ARGV[2]), -1)
local left = redis.call('HINCRBY', KEYS[3], 'samples', -tonumber(ARGV[3]))
if left < 0 or redis.call('LLEN', KEYS[2]) == 0 then redis.call('HSET', KEYS[3], 'samples', 0) end
redis.call('HSET', KEYS[3], 'settled', ARGV[5])
for i = 4, #KEYS do
  redis.call('RPUSH', KEYS[i], ARGV[i + 3])
  redis.call('EXPIRE', KEYS[i], tonumber(ARGV[6]))
end
return 1
"""

# KEYS: meta, wake. Everything queued now is sent without waiting for a batch; returns the last seq.
_HURRY = """
local seq = tonumber(redis.call('HGET', KEYS[1], 'seq') or '0')
if tonumber(redis.call('HGET', KEYS[1], 'urgent') or '0') < seq then
  redis.call('HSET', KEYS[1], 'urgent', seq)
end
if redis.call('LLEN', KEYS[2]) == 0 then redis.call('RPUSH', KEYS[2], '1') end
return seq
"""

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""

# KEYS: lease, free. A released lease says so on ``free``, where a process that does not send waits.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('del', KEYS[1])
  redis.call('DEL', KEYS[2])
  redis.call('RPUSH', KEYS[2], '1')
  redis.call('EXPIRE', KEYS[2], 10)
  return 1
end
return 0
"""


@dataclass(frozen=True)
class _Head:
    """One queued entry as read from the list, its samples still encoded."""

    seq: int
    waited: bool
    queued_at: float  # Unix seconds
    count: int
    payload: bytes

    @classmethod
    def parse(cls, raw: bytes | str) -> _Head:
        if isinstance(raw, str):
            raise TypeError("the shared remote-write queue needs a Redis client without decode_responses")
        seq, _, rest = raw.partition(b"|")
        flags, queued_ms, count = _HEADER.unpack_from(rest)
        return cls(int(seq), bool(flags & _WAITED), queued_ms / 1000, count, rest[_HEADER.size :])


@dataclass(slots=True)
class _Sample:
    labels: Labels
    value: float
    timestamp_ms: int
    entry: int  # index of its entry in the batch


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _chunks(items: list[_Sample], size: int) -> Iterator[list[_Sample]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class _Lease:
    """One run of a sender thread's claim to send a queue: taken with SET NX under a token of its
    own, renewed while held, given back at the end. A run never takes it anew once it lost it
    mid-batch, so a batch read under one lease is never sent under another."""

    def __init__(self, client: redis.Redis, key: str, free: str, ms: int, remote: str) -> None:
        self.redis, self.key, self.free, self.ms, self.remote = client, key, free, ms, remote
        self.token: str | None = None
        self._renewed = 0.0
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)

    def hold(self) -> bool:
        """Keep the lease, or take it if it is free."""
        if self.token is not None and self.renew():
            return True
        now = time.monotonic()
        token = f"{os.uname().nodename}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
        if not self.redis.set(self.key, token, nx=True, px=self.ms):
            return False
        self.token, self._renewed = token, now
        log.info(
            "remote_write.sending",
            msg=f"remote_write {self.remote}: this process sends the shared queue",
            remote=self.remote,
        )
        return True

    def renew(self) -> bool:
        """True while the lease is still held (renewed when due); never takes it anew."""
        if self.token is None:
            return False
        now = time.monotonic()
        if now - self._renewed < _RENEW_EVERY:
            return True
        try:
            held = bool(self._renew(keys=[self.key], args=[self.token, self.ms]))
        except redis.RedisError:
            return False  # unknown: this batch stops; the sender's loop asks again
        if held:
            self._renewed = now
        else:
            self.lost()
        return held

    def lost(self) -> None:
        self.token = None
        metrics.observe_remote_write_pending(self.remote, 0)  # the new holder reports it
        log.info(
            "remote_write.lease_lost",
            msg=f"remote_write {self.remote}: another process sends the shared queue now",
            remote=self.remote,
        )

    def release(self) -> None:
        token, self.token = self.token, None
        if token is None:
            return
        metrics.observe_remote_write_pending(self.remote, 0)
        with contextlib.suppress(redis.RedisError):  # else it lapses on its own
            self._release(keys=[self.key, self.free], args=[token])


class SharedQueue:
    """A target's queue in Redis: ``put`` from any process; one thread per process takes part in
    the lease, and the one holding it sends."""

    def __init__(self, target: Target, client: redis.Redis, prefix: str) -> None:
        self.sending = target
        self.target = target.target
        self.remote = target.remote
        self.redis = client
        self._base = f"{prefix}:remotewrite:{self.remote}"
        # Every key ends in a part of its own (done keys in a number): no target's name makes one
        # target's key another's.
        self.key = f"{self._base}:queue"
        self._meta = f"{self._base}:meta"
        self._lease = f"{self._base}:sender"
        self._wake = f"{self._base}:wake"
        self._free = f"{self._base}:free"
        self._append = client.register_script(_APPEND)
        self._settle = client.register_script(_SETTLE)
        self._hurry = client.register_script(_HURRY)
        self._lease_ms = int((_LEASE + self.target.remote_timeout) * 1000)
        self._closed = False
        self._reset()
        _live_queues.add(self)
        # Sending from the start, not from the first write: a queue left by a process that died is
        # sent even if this one has nothing to write.
        self._start()

    def _reset(self) -> None:
        """A fresh state: at construction, and in a forked child, where the parent's thread and lease
        are not this process's."""
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()

    def done_key(self, seq: int) -> str:
        return f"{self._base}:done:{seq}"

    # -- the writer's side ------------------------------------------------------------------------

    def put(self, series: list[Series], waiting: bool) -> Queued:
        """Append ``series`` as one entry, or as much of it as fits within ``capacity`` (the rest is
        dropped)."""
        if not series:
            return Queued(True, accepted)
        if self._closed:
            self.sending.refused_new("closed", len(series))
            return Queued(False, refused)
        self._start()
        kept = series
        try:
            while kept:
                seq = self._append_entry(kept, waiting)
                if seq > 0:
                    break
                kept = kept[: -1 - seq]  # what the queue had room for when it answered
        except redis.RedisError as exc:
            log.warning(
                "remote_write.unqueued",
                msg=f"remote_write {self.remote}: cannot queue {len(series)} samples in Redis: {exc}",
                remote=self.remote,
            )
            self.sending.refused_new("redis", len(series))
            return Queued(False, refused)
        if len(kept) < len(series):
            self.sending.refused_new("queue_full", len(series) - len(kept))
            return Queued(False, refused)  # the write is incomplete: no need to wait for the rest
        if not waiting:
            return Queued(True, accepted)
        return Queued(True, lambda deadline: self._outcome(seq, deadline))

    def _append_entry(self, series: list[Series], waiting: bool) -> int:
        """The new entry's seq; when ``series`` does not fit, ``-1 - room`` (room: what would)."""
        entry = _HEADER.pack(_WAITED if waiting else 0, int(time.time() * 1000), len(series))
        entry += encode_message(series)
        # Queued samples are the only copy of what was recorded: the append waits for a replica as
        # the evaluation state does (see alerting.durable).
        pipe = durable.pipeline(self.redis, "remote_write", transaction=False)
        self._append(
            keys=[self.key, self._meta, self._wake],
            args=[len(series), self.target.queue.capacity, entry, int(waiting)],
            client=pipe,
        )
        (seq,) = pipe.execute()
        return int(seq)

    def _outcome(self, seq: int, deadline: float) -> bool:
        """True once the sender says the target accepted entry ``seq``; False when it dropped some
        of it, or ``deadline`` passed first."""
        key = self.done_key(seq)
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                got = self.redis.blpop([key], timeout=max(0.01, min(remaining, _BLOCK)))
            except redis.RedisError as exc:
                log.warning(
                    "remote_write.wait_failed",
                    msg=f"remote_write {self.remote}: cannot learn whether entry {seq} was sent: {exc}",
                    remote=self.remote,
                )
                return False
            if got is not None:
                return _text(got[1]) == "1"
        return False

    def flush(self, deadline: float) -> bool:
        """Have what is queued sent now, wait until ``deadline`` for whichever process sends to
        settle it, then hand over: stop sending and give up the lease, so another process takes the
        queue at once. True: nothing is lost by this process stopping, since what is still queued
        waits in Redis for the next sender (logged)."""
        if self._thread is None:
            return True  # this process never wrote nor sent here
        left = 0
        try:
            last = int(self._hurry(keys=[self._meta, self._wake]))
            while (remaining := deadline - time.monotonic()) > 0:
                settled, samples = self.redis.hmget(self._meta, ["settled", "samples"])
                left = int(samples or 0)
                if not left or int(settled or 0) >= last:
                    break
                time.sleep(min(remaining, _FLUSH_POLL))
        except redis.RedisError as exc:
            log.warning(
                "remote_write.flush_failed",
                msg=f"remote_write {self.remote}: cannot see what is still queued: {exc}",
                remote=self.remote,
            )
        self._halt(deadline)
        if left:
            log.info(
                "remote_write.left_queued",
                msg=f"remote_write {self.remote}: {left} samples stay queued in Redis for the next sender",
                remote=self.remote,
                samples=left,
            )
        return True

    def close(self) -> None:
        """Stop sending and give up the lease; what is queued stays in Redis for the next sender."""
        self._closed = True
        self._halt(time.monotonic() + _JOIN_TIMEOUT)

    def _halt(self, deadline: float) -> None:
        if self._pid != os.getpid():
            return
        with self._lock:
            thread, stop = self._thread, self._stop
            self._thread, self._stop = None, threading.Event()
        if thread is None:
            return
        stop.set()
        # Out of its wait at once, whether it sends (wake) or waits for the lease (free); else it
        # sees the stop after its current wait.
        with contextlib.suppress(redis.RedisError):
            pipe = self.redis.pipeline(transaction=False)
            pipe.rpush(self._wake, "1")
            pipe.rpush(self._free, "1")
            pipe.expire(self._free, 10)
            pipe.execute()
        if thread is not threading.current_thread():
            thread.join(max(0.0, deadline - time.monotonic()))

    def _start(self) -> None:
        if self._pid != os.getpid():
            self._reset()
        if self._thread is not None:
            return
        with self._lock:
            if self._thread is None and not self._closed:
                self._thread = threading.Thread(
                    target=self._run, args=(self._stop,), name=f"remote-write-{self.remote}", daemon=True
                )
                self._thread.start()

    # -- the sender thread ------------------------------------------------------------------------

    def _run(self, stop: threading.Event) -> None:
        client = self.sending.client()
        if client is None:
            return
        lease = _Lease(self.redis, self._lease, self._free, self._lease_ms, self.remote)
        try:
            while not stop.is_set():
                try:
                    if lease.hold():
                        self._serve(client, stop, lease)
                    else:
                        # Until a sender gives the lease up (at once), or now and then in case it
                        # died (its lease lapses).
                        self.redis.blpop([self._free], timeout=_TRY_EVERY)
                except redis.RedisError as exc:
                    log.warning(
                        "remote_write.redis_error",
                        msg=f"remote_write {self.remote}: {type(exc).__name__}: {exc}",
                        remote=self.remote,
                    )
                    stop.wait(_TRY_EVERY)
        finally:
            lease.release()
            client.close()

    def _sleep(self, seconds: float) -> None:
        """Wait for a writer's signal, at most ``seconds`` (and never past the next renewal)."""
        self.redis.blpop([self._wake], timeout=max(0.01, min(seconds, _RENEW_EVERY, _BLOCK)))

    def _serve(self, client: httpx.Client, stop: threading.Event, lease: _Lease) -> None:
        """One look at the queue: send a batch if one is due, else wait for a writer."""
        q = self.target.queue
        # The head alone says whether a batch is due; the batch is read only when it is.
        pipe = self.redis.pipeline(transaction=False)
        pipe.lindex(self.key, 0)
        pipe.hmget(self._meta, ["samples", "urgent"])
        first, (queued, urgent) = pipe.execute()
        queued = int(queued or 0)
        metrics.observe_remote_write_pending(self.remote, queued)
        if stop.is_set():
            return
        if first is None:
            self._sleep(_RENEW_EVERY)
            return
        head = _Head.parse(first)
        due = head.queued_at + q.batch_send_deadline
        now = time.time()
        if now < due and queued < q.max_samples_per_send and int(urgent or 0) < head.seq:
            self._sleep(due - now)
            return
        batch: list[_Head] = []
        total = 0
        for raw in self.redis.lrange(self.key, 0, q.max_samples_per_send - 1):
            entry = _Head.parse(raw)
            if batch and total + entry.count > q.max_samples_per_send:
                break
            batch.append(entry)
            total += entry.count
        if not batch or batch[0].seq != head.seq:
            return  # another sender moved the head: look again under the lease
        samples = [
            _Sample(s.labels, s.value, s.timestamp_ms, index)
            for index, entry in enumerate(batch)
            for s in decode_message(entry.payload)
        ]
        ok = [True] * len(batch)

        def pause(seconds: float) -> bool:
            # Renews the lease through a long Retry-After; stops when closed or the lease is gone.
            until = time.monotonic() + seconds
            while (left := until - time.monotonic()) > 0:
                if stop.wait(min(left, _RENEW_EVERY)) or not lease.renew():
                    return False
            return True

        for chunk in _chunks(samples, q.max_samples_per_send):
            done = self.sending.deliver(client, chunk, pause=pause, proceed=lease.renew)
            if done is None:
                return  # stopped, or the lease is gone: the entries stay for the next sender
            for sample in done.dropped:
                ok[sample.entry] = False
        self._remove(lease, batch, ok, total, queued)

    def _remove(self, lease: _Lease, batch: list[_Head], ok: list[bool], total: int, queued: int) -> None:
        """Take the settled entries off the head, and tell whoever waits on them how they went."""
        waited = [(entry, good) for entry, good in zip(batch, ok, strict=True) if entry.waited]
        removed = self._settle(
            keys=[self._lease, self.key, self._meta, *(self.done_key(e.seq) for e, _ in waited)],
            args=[
                lease.token or "",
                len(batch),
                total,
                f"{batch[0].seq}|",
                batch[-1].seq,
                _DONE_TTL,
                *("1" if good else "0" for _, good in waited),
            ],
        )
        if not removed:
            lease.lost()
            return
        metrics.observe_remote_write_pending(self.remote, max(0, queued - total))


_live_queues: weakref.WeakSet[SharedQueue] = weakref.WeakSet()


def _reset_in_child() -> None:
    # A lock held by one of the parent's threads at the fork would stay held in the child forever.
    for queue in list(_live_queues):
        queue._reset()


os.register_at_fork(after_in_child=_reset_in_child)
