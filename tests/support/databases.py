"""Real databases for SQL-rule tests: a SQLite file, or a PostgreSQL schema of its own.

Both hold the same small ``approvals`` table; the PostgreSQL schema is uniquely named per use and
dropped afterwards, so parallel runs on the shared server never see each other.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

PG_ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=test"
PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"

# (id, team, status, requested_at UTC, amount, note)
APPROVALS = [
    (1, "payments", "pending", "2024-05-01 10:00:00", 120.5, None),
    (2, "payments", "pending", "2024-05-03 09:00:00", 80, "urgent"),
    (3, "search", "pending", "2024-04-28 12:00:00", None, None),
    (4, "search", "approved", "2024-04-20 08:00:00", 10, ""),
]


@dataclass(frozen=True)
class Database:
    """A database with the approvals table: ``url`` for the datasource, ``admin`` to set up and inspect."""

    backend: str
    url: str
    schema: str = ""
    path: str = ""

    def admin(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Run ``sql`` with full rights, outside the datasource, and return its rows."""
        if self.backend == "sqlite":
            with sqlite3.connect(self.path) as conn:
                rows = conn.execute(sql, params).fetchall()
            conn.close()
            return rows
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'SET search_path = "{self.schema}"')
            cursor = conn.execute(sql, params)
            return cursor.fetchall() if cursor.description else []

    def snapshot(self) -> tuple[Any, ...]:
        """Everything a write could change: the rows and the tables that exist."""
        rows = self.admin("SELECT * FROM approvals ORDER BY id")
        if self.backend == "sqlite":
            tables = self.admin("SELECT name, sql FROM sqlite_master ORDER BY name")
        else:
            tables = self.admin(
                "SELECT table_name, column_name FROM information_schema.columns "
                "WHERE table_schema = %s ORDER BY table_name, column_name",
                (self.schema,),
            )
        return tuple(rows), tuple(tables)


@contextmanager
def sqlite_database(directory: Path) -> Iterator[Database]:
    path = directory / "app.db"
    with sqlite3.connect(path) as conn:
        conn.execute(
            "CREATE TABLE approvals (id INTEGER PRIMARY KEY, team TEXT, status TEXT, "
            "requested_at TEXT, amount REAL, note TEXT)"
        )
        conn.executemany("INSERT INTO approvals VALUES (?, ?, ?, ?, ?, ?)", APPROVALS)
    conn.close()
    yield Database("sqlite", f"sqlite:///{path}", path=str(path))


@contextmanager
def postgres_database() -> Iterator[Database]:
    schema = f"alerting_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
        conn.execute(f'SET search_path = "{schema}"')
        conn.execute(
            "CREATE TABLE approvals (id int PRIMARY KEY, team text, status text, "
            "requested_at timestamptz, amount numeric, note text)"
        )
        with conn.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO approvals VALUES (%s, %s, %s, %s::timestamptz, %s, %s)",
                [(i, t, s, f"{r}+00", a, n) for i, t, s, r, a, n in APPROVALS],
            )
        conn.execute("CREATE SEQUENCE approval_ids")
        # A function that writes: a read-only rule must not be able to call it to do its dirty work.
        conn.execute(
            "CREATE FUNCTION wipe_approvals() RETURNS bigint LANGUAGE sql AS "
            "'DELETE FROM approvals; SELECT 0::bigint'"
        )
    try:
        yield Database("postgresql", f"{PG_URL}?options=-csearch_path%3D{schema}", schema=schema)
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
