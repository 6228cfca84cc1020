"""Alert history: every state transition and every notification attempt, in one SQL table.

Redis holds the *current* state; this table answers "what happened to this alert last night, and
who was told?". It is SQLAlchemy Core over a SQLite file by default (``ALERTING_HISTORY_URL``,
default ``sqlite:///var/history.db``) or PostgreSQL (``postgresql://...``, driven by psycopg).
Rows older than ``ALERTING_HISTORY_RETENTION`` (default ``30d``) are deleted by the writers
themselves, at most once an hour per process, so no extra scheduled job is needed.

Writing history must never break evaluation or delivery: a failed write is logged, counted in
``alerting_history_write_failures_total`` and dropped. After a failure, writes are skipped (and
counted) for a short back-off so an unreachable database does not add a connect timeout to every
tick.

Table ``alerting_history``, one row per event; notification attempts get one row per alert they
carried (so ``--alertname`` finds them), tied together by ``group_key`` and ``at``:

====================  =======================================================================
``at``                unix seconds (the slot time for transitions)
``kind``              ``transition`` or ``notification``
``group_name, rule``  where the alert comes from (transitions)
``alertname``         the alert's name; ``fingerprint`` its label-set hash; ``labels`` JSON
``state``             transitions: ``pending``, ``firing``, ``resolved``; notifications: the
                      alert's status in it (``firing``, ``resolved``)
``value``             the sample value at the transition
``receiver``          notifications: receiver, ``integration``, ``outcome`` (``sent``/``failed``),
                      ``error`` (secrets redacted), ``attempt`` (1 = first try)
``eval_id``           the evaluation that caused it (ties notifications to transitions)
====================  =======================================================================
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url

from alerting.config.settings import Settings
from alerting.core import fingerprint
from alerting.durations import parse_duration
from alerting.errors import ConfigError, DurationError
from alerting.ops import metrics
from alerting.ops.logs import context_value, get_logger, redact_text
from alerting.rules.state import json_number

if TYPE_CHECKING:
    from alerting.rules.model import Group
    from alerting.rules.tick import Evaluated, GroupOutcome

log = get_logger(__name__)

DEFAULT_URL = "sqlite:///var/history.db"
DEFAULT_RETENTION = "30d"
PRUNE_EVERY = 3600.0
FAILURE_BACKOFF = 30.0
MAX_ERROR = 2000

metadata = sa.MetaData()
TABLE = sa.Table(
    "alerting_history",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("group_name", sa.String(255)),
    sa.Column("rule", sa.String(255)),
    sa.Column("alertname", sa.String(255)),
    sa.Column("fingerprint", sa.String(32)),
    sa.Column("state", sa.String(16)),
    sa.Column("value", sa.Float),
    sa.Column("labels", sa.Text),
    sa.Column("receiver", sa.String(255)),
    sa.Column("integration", sa.String(64)),
    sa.Column("outcome", sa.String(16)),
    sa.Column("error", sa.Text),
    sa.Column("attempt", sa.Integer),
    sa.Column("group_key", sa.Text),
    sa.Column("eval_id", sa.String(64)),
    sa.Index("ix_alerting_history_at", "at"),
    sa.Index("ix_alerting_history_alertname_at", "alertname", "at"),
)


@dataclass(frozen=True)
class HistoryEntry:
    """One row of history."""

    at: float
    kind: str
    alertname: str | None
    state: str | None
    labels: Mapping[str, str] = field(default_factory=dict)
    group: str | None = None
    rule: str | None = None
    fingerprint: str | None = None
    value: float | None = None
    receiver: str | None = None
    integration: str | None = None
    outcome: str | None = None
    error: str | None = None
    attempt: int | None = None
    group_key: str | None = None
    eval_id: str | None = None

    def as_json(self) -> dict[str, Any]:
        from alerting.core import rfc3339

        data: dict[str, Any] = {"time": rfc3339(self.at), **self.__dict__}
        data["labels"] = dict(self.labels)
        if self.value is not None:
            data["value"] = json_number(self.value)
        return {k: v for k, v in data.items() if v is not None and k != "at"}


def normalize_url(url: str) -> str:
    """``postgresql://`` means psycopg (3), the driver we ship, not SQLAlchemy's psycopg2 default."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


class History:
    """The history table behind ``url``; one engine per process (never shared across a fork)."""

    def __init__(
        self,
        url: str = DEFAULT_URL,
        retention: float = 30 * 86400.0,
        *,
        prune_every: float = PRUNE_EVERY,
        backoff: float = FAILURE_BACKOFF,
        connect_timeout: float = 5.0,
    ) -> None:
        try:
            self.url = normalize_url(url)
        except sa.exc.ArgumentError as exc:
            raise ConfigError(f"ALERTING_HISTORY_URL: not a database URL: {exc}") from None
        self.retention = retention
        self.prune_every = prune_every
        self.backoff = backoff
        self.connect_timeout = connect_timeout
        self._engine: Engine | None = None
        self._pid = 0
        self._lock = threading.Lock()
        self._last_prune = 0.0
        self._failed_until = 0.0

    @classmethod
    def from_settings(cls, settings: Settings) -> History:
        try:
            retention = parse_duration(settings.history_retention)
        except DurationError as exc:
            raise ConfigError(f"ALERTING_HISTORY_RETENTION: {exc}") from None
        return cls(settings.history_url, retention)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> History:
        """The history the environment (``ALERTING_HISTORY_*``, through Settings) describes."""
        return cls.from_settings(Settings.from_env(env))

    # --- connection ---------------------------------------------------------------------------
    @property
    def engine(self) -> Engine:
        with self._lock:
            if self._engine is None or self._pid != os.getpid():
                if self._engine is not None:
                    self._engine.dispose(close=False)  # the parent's connections are not ours
                self._engine = self._connect()
                self._pid = os.getpid()
            return self._engine

    def _connect(self) -> Engine:
        url = make_url(self.url)
        if url.get_backend_name() == "sqlite":
            if url.database and url.database != ":memory:":
                Path(url.database).parent.mkdir(parents=True, exist_ok=True)
            engine = sa.create_engine(url, connect_args={"timeout": self.connect_timeout})

            @sa.event.listens_for(engine, "connect")
            def _pragmas(dbapi: Any, _: Any) -> None:
                # WAL lets the pool's processes write while `alerting history` reads.
                cursor = dbapi.cursor()
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.close()

        else:
            args: dict[str, Any] = {}
            if url.get_backend_name() == "postgresql":
                args = {
                    "connect_timeout": max(1, int(self.connect_timeout)),
                    "options": f"-c statement_timeout={int(self.connect_timeout * 1000)}",
                }
            engine = sa.create_engine(url, connect_args=args, pool_pre_ping=True)
        try:
            metadata.create_all(engine, checkfirst=True)
        except sa.exc.DBAPIError:
            # Another process created the table between our check and our CREATE: fine if it exists.
            if not sa.inspect(engine).has_table(TABLE.name):
                raise
        return engine

    def close(self) -> None:
        with self._lock:
            if self._engine is not None and self._pid == os.getpid():
                self._engine.dispose()
            self._engine = None

    # --- writing ------------------------------------------------------------------------------
    def record_transitions(self, group: Group, outcome: GroupOutcome, eval_id: str | None = None) -> int:
        """Every transition of one tick (nothing if the tick was skipped). Returns rows written."""
        if outcome.skipped:
            return 0
        return self.record_evaluated(group.name, outcome.rules, outcome.slot, eval_id)

    def record_evaluated(
        self, group_name: str, evaluated: Sequence[Evaluated], slot: float, eval_id: str | None = None
    ) -> int:
        """Transitions of already-evaluated rules (e.g. what a dispatch receives, datasource alerts
        included)."""
        eval_id = eval_id or context_value("eval_id")
        rows = [
            {
                "at": slot,
                "kind": "transition",
                "group_name": group_name,
                "rule": item.rule.name,
                "alertname": event.alert.name,
                "fingerprint": event.alert.fingerprint,
                "state": event.kind,
                "value": event.alert.value,
                "labels": json.dumps(dict(event.alert.labels), sort_keys=True),
                "eval_id": eval_id,
            }
            for item in evaluated
            for event in item.events
        ]
        return self._write("transition", rows)

    def record_notification(
        self,
        receiver: str,
        outcome: str,
        *,
        alerts: Iterable[Any] = (),
        error: str | BaseException | None = None,
        integration: str = "",
        attempt: int = 1,
        group_key: str = "",
        eval_id: str | None = None,
        at: float | None = None,
    ) -> int:
        """One attempt to notify ``receiver`` (``outcome`` ``sent`` or ``failed``), one row per alert
        it carried. ``alerts`` are :class:`~alerting.notify.base.NotifyAlert` (or anything with
        ``labels`` and ``status``)."""
        at = time.time() if at is None else at
        eval_id = eval_id or context_value("eval_id")
        text = None if error is None else redact_text(str(error) or type(error).__name__)[:MAX_ERROR]
        base = {
            "at": at,
            "kind": "notification",
            "receiver": receiver,
            "integration": integration or None,
            "outcome": outcome,
            "error": text,
            "attempt": attempt,
            "group_key": group_key or None,
            "eval_id": eval_id,
        }
        rows = []
        for alert in alerts:
            labels = dict(alert.labels)
            fp = getattr(alert, "fingerprint", "") or fingerprint(tuple(sorted(labels.items())))
            rows.append(
                {
                    **base,
                    "alertname": labels.get("alertname"),
                    "fingerprint": fp,
                    "state": getattr(alert, "status", None),
                    "labels": json.dumps(labels, sort_keys=True),
                }
            )
        return self._write("notification", rows or [base])

    def _write(self, kind: str, rows: list[dict[str, Any]]) -> int:
        if not rows:
            return 0
        now = time.monotonic()
        if now < self._failed_until:
            metrics.observe_history_write(kind, False)
            return 0
        try:
            with self.engine.begin() as conn:
                conn.execute(TABLE.insert(), rows)
        except Exception as exc:
            self._failed_until = time.monotonic() + self.backoff
            metrics.observe_history_write(kind, False)
            log.error(
                "history.write_failed",
                msg=f"could not write {len(rows)} {kind} row(s) to history (skipping writes for "
                f"{self.backoff:g}s): {type(exc).__name__}: {exc}",
            )
            return 0
        metrics.observe_history_write(kind, True, len(rows))
        if time.time() - self._last_prune >= self.prune_every:
            self._last_prune = time.time()
            try:
                self.prune()
            except Exception as exc:
                log.error("history.prune_failed", msg=f"could not delete old history rows: {exc}")
        return len(rows)

    def prune(self, now: float | None = None) -> int:
        """Delete rows older than the retention; returns how many."""
        cutoff = (time.time() if now is None else now) - self.retention
        with self.engine.begin() as conn:
            deleted = conn.execute(TABLE.delete().where(TABLE.c.at < cutoff)).rowcount
        if deleted:
            log.info("history.pruned", msg=f"deleted {deleted} history rows older than the retention")
        return int(deleted or 0)

    # --- reading ------------------------------------------------------------------------------
    def query(
        self,
        alertname: str | None = None,
        since: float | None = None,
        limit: int = 100,
        *,
        until: float | None = None,
        kind: str | None = None,
        receiver: str | None = None,
        outcome: str | None = None,
    ) -> list[HistoryEntry]:
        """The latest ``limit`` matching rows, oldest first."""
        c = TABLE.c
        stmt = sa.select(TABLE)
        for column, value in (
            (c.alertname, alertname),
            (c.kind, kind),
            (c.receiver, receiver),
            (c.outcome, outcome),
        ):
            if value is not None:
                stmt = stmt.where(column == value)
        if since is not None:
            stmt = stmt.where(c.at >= since)
        if until is not None:
            stmt = stmt.where(c.at <= until)
        stmt = stmt.order_by(c.at.desc(), c.id.desc()).limit(limit)
        with self.engine.connect() as conn:
            rows = conn.execute(stmt).mappings().all()
        return [_entry(row) for row in reversed(rows)]


def _entry(row: Any) -> HistoryEntry:
    return HistoryEntry(
        at=row["at"],
        kind=row["kind"],
        alertname=row["alertname"],
        state=row["state"],
        labels=json.loads(row["labels"]) if row["labels"] else {},
        group=row["group_name"],
        rule=row["rule"],
        fingerprint=row["fingerprint"],
        value=row["value"],
        receiver=row["receiver"],
        integration=row["integration"],
        outcome=row["outcome"],
        error=row["error"],
        attempt=row["attempt"],
        group_key=row["group_key"],
        eval_id=row["eval_id"],
    )


# --- the process-wide history -------------------------------------------------------------------


class UnusableHistory:
    """Stands in for a history the environment configures wrongly: every write is logged and
    counted as a failed write, and writes nothing (writing history never fails the caller)."""

    def __init__(self, error: ConfigError) -> None:
        self.error = error

    def _refuse(self, kind: str) -> int:
        log.error("history.config_invalid", msg=str(self.error))
        metrics.observe_history_write(kind, False)
        return 0

    def record_transitions(self, group: Group, outcome: GroupOutcome, eval_id: str | None = None) -> int:
        return self._refuse("transition")

    def record_evaluated(
        self, group_name: str, evaluated: Sequence[Evaluated], slot: float, eval_id: str | None = None
    ) -> int:
        return self._refuse("transition")

    def record_notification(self, receiver: str, outcome: str, **kwargs: Any) -> int:
        return self._refuse("notification")

    def close(self) -> None:
        pass


HistoryWriter = History | UnusableHistory


def open_history(settings: Settings) -> HistoryWriter:
    """The history the settings describe, or a stand-in that says on every write why there is
    none. The worker's runtime builds it once per process and installs it with
    :func:`set_history`, so the module functions below write through the same connections."""
    try:
        return History.from_settings(settings)
    except ConfigError as exc:
        return UnusableHistory(exc)


_default: History | None = None
_default_lock = threading.Lock()


def default_history() -> History:
    """The installed history, else the one the environment configures (built on first use)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = History.from_env()
        return _default


def set_history(history: History | None) -> None:
    """Install the process's history (the runtime, tests)."""
    global _default
    with _default_lock:
        _default = history


def _writer() -> HistoryWriter:
    try:
        return default_history()
    except ConfigError as exc:
        return UnusableHistory(exc)


def record_notification(receiver: str, outcome: str, **kwargs: Any) -> int:
    """Write one notification attempt; never raises. Keyword arguments as
    :meth:`History.record_notification`."""
    return _writer().record_notification(receiver, outcome, **kwargs)


def query(
    alertname: str | None = None, since: float | None = None, limit: int = 100, **kwargs: Any
) -> list[HistoryEntry]:
    return default_history().query(alertname, since, limit, **kwargs)
