"""The beat scheduler: one entry per rule group on its own slot grid, sent only by the lease holder.

Beat fires each group on its own slot grid (interval plus a stable per-group offset) and passes the
slot to the task; only the holder of a Redis lease schedules, so two ``-B`` workers do not double the
work, and slot claims make any duplicate harmless anyway.
"""

from __future__ import annotations

import os
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from celery.beat import ScheduleEntry, Scheduler
from celery.schedules import schedstate, schedule

from alerting.core import slot_at
from alerting.ops import metrics
from alerting.ops.logs import get_logger
from alerting.rules.state import DATASOURCES_GROUP

log = get_logger(__name__)
_EPOCH = datetime.fromtimestamp(0, UTC)
FLUSH_EVERY = 2.0  # seconds
RETIRE_AFTER = 60.0  # seconds a group must be gone from the rule files before its alerts resolve


class SlotSchedule(schedule):
    """Due at every slot ``base + offset`` of the group's interval grid."""

    def __init__(self, interval: float, offset: float, app: Any = None) -> None:
        super().__init__(run_every=timedelta(seconds=interval), app=app)
        self.interval, self.offset = interval, offset

    def slot_at(self, t: float) -> float:
        return slot_at(t, self.interval, self.offset)

    def is_due(self, last_run_at: datetime) -> schedstate:
        now = time.time()
        current = self.slot_at(now)
        wait = current + self.interval - now
        if last_run_at.timestamp() < current:
            return schedstate(True, wait)
        return schedstate(False, wait)

    def __reduce__(self) -> Any:
        return (self.__class__, (self.interval, self.offset))


class GroupScheduler(Scheduler):
    """One entry per rule group, refreshed when rule files change; sends only while leader."""

    owner = f"{os.uname().nodename}:{os.getpid()}:{uuid.uuid4().hex[:8]}"

    # Seconds a leader's lease outlives its last renewal (renewed every third of that): how long
    # evaluation pauses when the leading worker dies before another takes over.
    @property
    def lease(self) -> float:
        from alerting.worker.runtime import get_runtime

        return get_runtime().settings.beat_lease

    def setup_schedule(self) -> None:
        self._last_sync = 0.0
        self.data: dict[str, ScheduleEntry] = {}
        self._refresh()

    @property
    def schedule(self) -> dict[str, ScheduleEntry]:
        return self.data

    def _refresh(self) -> None:
        from alerting.worker.runtime import get_runtime

        runtime = get_runtime()
        groups = runtime.rules.groups()
        metrics.observe_reload(runtime.rules.last_reload_ok)
        entries: dict[str, ScheduleEntry] = {}
        for group in groups:
            name = f"group:{group.id}"
            old = self.data.get(name)
            sched = SlotSchedule(group.interval, group.offset, app=self.app)
            if (
                old is not None
                and isinstance(old.schedule, SlotSchedule)
                and (old.schedule.interval, old.schedule.offset) == (sched.interval, sched.offset)
            ):
                entries[name] = old
                continue
            entries[name] = ScheduleEntry(
                name=name,
                task="tasks.evaluate_group",
                schedule=sched,
                args=(group.id,),
                kwargs={},
                options={"expires": group.interval},
                app=self.app,
                last_run_at=old.last_run_at if old else _EPOCH,
            )
        # The notification pipeline's timers (group_wait, group_interval) tick at this resolution.
        entries["flush"] = self.data.get("flush") or ScheduleEntry(
            name="flush",
            task="tasks.flush_groups",
            schedule=schedule(timedelta(seconds=FLUSH_EVERY)),
            options={"expires": 4 * FLUSH_EVERY},
            app=self.app,
            last_run_at=_EPOCH,
        )
        self.data = entries
        self._last_sync = time.monotonic()
        self._retire_missing(runtime, {g.id for g in groups})

    def _retire_missing(self, runtime: Any, live: set[str]) -> None:
        """Groups whose file was deleted (or renamed) resolve their firing alerts once they have
        been gone for RETIRE_AFTER, so a file briefly missing during a deploy changes nothing."""
        if not hasattr(self, "_missing_since"):
            self._missing_since: dict[str, float] = {}
        try:
            stored = set(runtime.store.groups()) - {DATASOURCES_GROUP}
        except Exception as exc:  # Redis down: try at the next refresh
            log.warning("beat.retire_check_failed", msg=f"cannot list stored groups: {exc}")
            return
        now = time.monotonic()
        for group_id in stored - live:
            first = self._missing_since.setdefault(group_id, now)
            if now - first >= RETIRE_AFTER and self._is_leader(runtime):
                self.app.send_task("tasks.retire_group", args=(group_id,))
                self._missing_since[group_id] = now  # ask again later if it is still there
        for group_id in list(self._missing_since):
            if group_id in live or group_id not in stored:
                del self._missing_since[group_id]

    def _is_leader(self, runtime: Any) -> bool:
        return runtime.store.leader() == self.owner

    def tick(self, *args: Any, **kwargs: Any) -> float:
        from alerting.worker.runtime import get_runtime

        if time.monotonic() - self._last_sync > 5:
            self._refresh()
        try:
            leader = get_runtime().store.hold_leadership(self.owner, self.lease)
        except Exception as exc:  # Redis down: do not schedule, try again shortly
            log.warning("beat.leader_check_failed", msg=f"cannot reach Redis for the beat lease: {exc}")
            return 2.0
        if not leader:
            return min(2.0, self.lease / 3)
        return min(super().tick(*args, **kwargs), self.lease / 3)

    def apply_async(
        self, entry: ScheduleEntry, producer: Any = None, advance: bool = True, **kwargs: Any
    ) -> Any:
        if isinstance(entry.schedule, SlotSchedule):
            entry.kwargs = {"slot": entry.schedule.slot_at(time.time())}
        return super().apply_async(entry, producer, advance, **kwargs)
