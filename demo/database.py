"""The demo app's database: schema creation, healthy seed rows and fault rows (SQLite or PostgreSQL).

Every timestamp is unix seconds (see ``schema.sql``). Rows that a fault adds carry ids starting with
``fault-<fault name>-`` so switching the fault off deletes exactly those rows.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import sqlalchemy
from sqlalchemy.engine import Engine, make_url

SCHEMA_FILE = Path(__file__).with_name("schema.sql")
DEFAULT_URL = "sqlite:///var/demo.db"
TABLES = ("approvals", "llm_calls", "automation_runs", "webhook_events")


def normalize_url(url: str) -> str:
    """Accept the ``postgres://`` and ``postgresql://`` URLs platforms export; we ship psycopg 3."""
    parsed = make_url(url)
    backend, _, driver = parsed.drivername.partition("+")
    if backend in ("postgres", "postgresql") and not driver:
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def make_engine(url: str) -> Engine:
    """An engine for the demo database; a SQLite file's directory is created if missing."""
    url = normalize_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = sqlalchemy.create_engine(url, connect_args={"timeout": 10})

        # WAL lets the alerting worker read (read-only) while the demo writes.
        @sqlalchemy.event.listens_for(engine, "connect")
        def _wal(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.execute("PRAGMA journal_mode=WAL")

        return engine
    return sqlalchemy.create_engine(url, pool_pre_ping=True, pool_size=2, connect_args={"connect_timeout": 3})


def schema_statements(text: str | None = None) -> list[str]:
    """The DDL statements of ``schema.sql`` (comments removed), one per entry."""
    source = SCHEMA_FILE.read_text(encoding="utf-8") if text is None else text
    source = re.sub(r"--[^\n]*", "", source)
    return [s.strip() for s in source.split(";") if s.strip()]


def create_schema(engine: Engine) -> None:
    with engine.begin() as conn:
        for statement in schema_statements():
            conn.exec_driver_sql(statement)


def insert(engine: Engine, table: str, rows: Iterable[Mapping[str, Any]]) -> int:
    rows = list(rows)
    if not rows:
        return 0
    if table not in TABLES:
        raise ValueError(f"unknown demo table {table!r}")
    columns = list(rows[0])
    statement = sqlalchemy.text(
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join(':' + c for c in columns)})"
    )
    with engine.begin() as conn:
        conn.execute(statement, [dict(r) for r in rows])
    return len(rows)


def delete_prefix(engine: Engine, prefix: str) -> int:
    """Delete every row, in every demo table, whose id starts with ``prefix``."""
    removed = 0
    with engine.begin() as conn:
        for table in TABLES:
            result = conn.execute(
                sqlalchemy.text(f"DELETE FROM {table} WHERE id LIKE :pattern"), {"pattern": prefix + "%"}
            )
            removed += result.rowcount or 0
    return removed


def new_id(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4()}"


def seed(engine: Engine, now: float | None = None) -> dict[str, int]:
    """Create the schema and replace the ``seed-`` rows with a healthy recent history."""
    now = int(time.time() if now is None else now)
    create_schema(engine)
    delete_prefix(engine, "seed-")
    counts = {
        "llm_calls": insert(
            engine,
            "llm_calls",
            (
                llm_call("seed-", now - 60 * i, status="ok", cost_usd=0.01, latency_ms=1200 + 10 * i)
                for i in range(30)
            ),
        ),
        "automation_runs": insert(
            engine,
            "automation_runs",
            (automation_run("seed-", now - 90 * i, status="success") for i in range(30)),
        ),
        "webhook_events": insert(
            engine,
            "webhook_events",
            (webhook_event("seed-", now - 30 * i, lag=2) for i in range(20)),
        ),
        "approvals": insert(
            engine,
            "approvals",
            [approval("seed-", now - 3600 * (i + 1), status="approved", decided=True) for i in range(5)]
            + [approval("seed-", now - 600 * (i + 1), status="pending") for i in range(2)],
        ),
    }
    return counts


# --- row builders -------------------------------------------------------------------------------


def llm_call(
    prefix: str,
    at: float,
    *,
    status: str,
    cost_usd: float,
    latency_ms: int = 1500,
    provider: str = "anthropic",
    model: str = "claude-sonnet-4",
) -> dict[str, Any]:
    return {
        "id": new_id(prefix),
        "provider": provider,
        "model": model,
        "status": status,
        "error": None if status == "ok" else "overloaded_error",
        "latency_ms": latency_ms,
        "input_tokens": 800,
        "output_tokens": 250,
        "cost_usd": cost_usd,
        "created_at": int(at),
    }


def automation_run(prefix: str, finished: float, *, status: str) -> dict[str, Any]:
    return {
        "id": new_id(prefix),
        "automation_type": "accounting",
        "action": "categorize_transaction",
        "status": status,
        "error": None if status == "success" else "OdooRPCError: record locked",
        "trace_id": str(uuid.uuid4()),
        "started_at": int(finished) - 4,
        "finished_at": int(finished),
    }


def webhook_event(prefix: str, received: float, *, lag: float | None) -> dict[str, Any]:
    return {
        "id": new_id(prefix),
        "model": "account.move",
        "event_type": "write",
        "trace_id": str(uuid.uuid4()),
        "received_at": int(received),
        "processed_at": None if lag is None else int(received + lag),
    }


def approval(prefix: str, created: float, *, status: str, decided: bool = False) -> dict[str, Any]:
    return {
        "id": new_id(prefix),
        "action": "categorize_transaction",
        "status": status,
        "requested_by": "ai-service",
        "created_at": int(created),
        "decided_at": int(created) + 300 if decided else None,
    }
