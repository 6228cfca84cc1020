"""Application-database datasource: a SQL rule runs read-only over SQLAlchemy, one row per alert.

Each row of the result is one sample. A column named ``value`` is the sample value (a number or a
numeric string; without it every row has value 1); every other column is a label, stringified, and
NULL or empty means the label is absent. The statement sees two bind parameters, ``:now`` (the slot
time as an aware UTC datetime) and ``:now_unix`` (the same as unix seconds), so a rule gives the same
answer whenever it is evaluated for the same slot, which is what makes backtests possible.

A rule can never write. It must be one query (``SELECT``, ``WITH``, ``VALUES`` or ``TABLE``; checked
when the file loads and again before running), and the database itself refuses writes hidden
inside a query:

* PostgreSQL: every query runs in its own ``READ ONLY`` transaction (on a session whose default is
  ``default_transaction_read_only=on``) under ``SET LOCAL statement_timeout``, behind a server-side
  cursor (which accepts nothing but a query), and is always rolled back.
* SQLite: the file is opened with ``mode=ro`` and ``PRAGMA query_only``; while a rule's statement
  runs, an authorizer refuses ``ATTACH``/``DETACH``/``PRAGMA`` (the ways out of read-only) and a
  progress handler enforces the statement timeout.

At most ``max_rows`` rows are read. Engines are cached per datasource and per process, so a Celery
prefork child never shares a pooled connection with its parent. The database account should still
be a read-only role: these guards are the second line, not the first, and a datasource that logs
in as a PostgreSQL superuser is warned about (``sql.superuser``) when its pool first connects.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import math
import os
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection, Engine, make_url

from alerting.durations import parse_duration
from alerting.errors import ConfigError, DatasourceError, DurationError, Position, QueryError, RuleFileError
from alerting.ops.logs import get_logger
from alerting.sources import Kind, Sample

log = get_logger(__name__)

BIND_PARAMETERS = ("now", "now_unix")
_CONFIG_FIELDS = ("type", "url", "statement_timeout", "connect_timeout", "max_rows", "pool_size")
_DEFAULTS = {"statement_timeout": "10s", "connect_timeout": "5s", "max_rows": 1000, "pool_size": 2}
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_NUMBER = re.compile(r"^\s*[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|inf|infinity|nan)\s*$", re.IGNORECASE)
# How a query starts. Anything else (DELETE, COPY, DO, CALL, PRAGMA, ...) is refused before it
# reaches the database, and every accepted statement can run behind a PostgreSQL server-side
# cursor, which takes queries only: a huge result is never held in memory just to learn that it is
# over the row limit. Writes hidden inside a query (a function that deletes, SELECT ... FOR
# UPDATE, WITH ... DELETE) are left to the read-only transaction and the read-only file.
QUERY_KEYWORDS = ("SELECT", "WITH", "VALUES", "TABLE")
_PG_DRIVERS = ("psycopg", "psycopg2")
_SQLITE_PROGRESS_STEPS = 1000  # VM instructions between two deadline checks
_SQLITE_DENIED = {sqlite3.SQLITE_ATTACH, sqlite3.SQLITE_DETACH, sqlite3.SQLITE_PRAGMA}


# --- offline check ------------------------------------------------------------------------------


def check_sql(query: Any, pos: Position) -> str:
    """Validate a rule's ``sql`` offline: one non-empty statement using only the known binds."""
    if not isinstance(query, str) or not query.strip():
        raise RuleFileError("sql must be a non-empty SQL statement", pos)
    try:
        statement = single_statement(query)
    except ValueError as exc:
        raise RuleFileError(f"sql: {exc}", pos) from None
    unknown = sorted(set(sqlalchemy.text(statement).compile().params) - set(BIND_PARAMETERS))
    if unknown:
        names = ", ".join(f":{name}" for name in unknown)
        raise RuleFileError(
            f"sql uses unknown bind parameter {names} (only :now and :now_unix are provided; "
            r"write \: for a literal colon)",
            pos,
        )
    return statement


def single_statement(sql: str) -> str:
    """Return the one query in ``sql`` (without trailing semicolons), or raise ValueError.

    Quotes (``'...'``, ``"..."``, PostgreSQL ``$tag$...$tag$``) and comments are skipped, so a
    semicolon inside them does not count. The statement must start like a query.
    """
    end = _statement_end(sql)
    rest = sql[end:]
    if _strip_comments(rest).strip(" \t\r\n;"):
        raise ValueError("only one statement is allowed (found more after a ';')")
    statement = sql[:end].strip()
    word = _first_word(statement)
    if not word:
        raise ValueError("the statement is empty")
    if word.upper() not in QUERY_KEYWORDS:
        raise ValueError(f"a rule must be a query ({', '.join(QUERY_KEYWORDS)}), not {word.upper()}")
    return statement


def _after_comment(sql: str, i: int) -> int:
    """Where the ``--`` or ``/* */`` comment starting at ``i`` ends; ``i`` when none starts there."""
    if sql.startswith("--", i):
        close = sql.find("\n", i)
        return len(sql) if close < 0 else close + 1
    if sql.startswith("/*", i):
        close = sql.find("*/", i + 2)
        return len(sql) if close < 0 else close + 2
    return i


def _first_word(sql: str) -> str:
    i, n = 0, len(sql)
    while i < n:
        if sql[i].isspace() or sql[i] == "(":
            i += 1
        elif (after := _after_comment(sql, i)) != i:
            i = after
        else:
            match = re.match(r"[A-Za-z_]+", sql[i:])
            return match.group(0) if match else sql[i]
    return ""


def _statement_end(sql: str) -> int:
    """Index of the first top-level ``;`` (or the length of ``sql``)."""
    i, n = 0, len(sql)
    while i < n:
        c = sql[i]
        if c in "'\"`":
            close = sql.find(c, i + 1)
            i = n if close < 0 else close + 1
        elif (after := _after_comment(sql, i)) != i:
            i = after
        elif c == "$":
            tag = re.match(r"\$(?:[A-Za-z_][A-Za-z0-9_]*)?\$", sql[i:])
            if tag and not (i and (sql[i - 1].isalnum() or sql[i - 1] == "_")):
                close = sql.find(tag.group(0), i + len(tag.group(0)))
                i = n if close < 0 else close + len(tag.group(0))
            else:
                i += 1
        elif c == ";":
            return i
        else:
            i += 1
    return n


def _strip_comments(sql: str) -> str:
    return re.sub(r"--[^\n]*|/\*.*?(?:\*/|$)", " ", sql, flags=re.S)


# --- datasource ---------------------------------------------------------------------------------


class SqlSource:
    """One database, opened read-only. Thread-safe; the pool is shared per process and datasource."""

    def __init__(self, name: str, config: Mapping[str, Any]) -> None:
        self.name = name
        settings = _Settings.parse(name, config)
        self.url = settings.url
        self.statement_timeout = settings.statement_timeout
        self.max_rows = settings.max_rows
        self._settings = settings

    def close(self) -> None:
        """Dispose this datasource's pool in this process (a later query opens a new one)."""
        _ENGINES.drop(self.name, self._settings)

    def query(self, query: Any, at: float) -> list[Sample]:
        """Run the rule's statement as of ``at`` and turn its rows into samples."""
        try:
            statement = single_statement(str(query))
        except ValueError as exc:
            raise QueryError(f"sql: {exc}") from None  # a rule built without the loader's check
        now = dt.datetime.fromtimestamp(at, tz=dt.UTC)
        params: dict[str, Any] = {"now": now, "now_unix": float(at)}
        if self._settings.dialect == "sqlite":
            # SQLite has no timestamp type: bind UTC text in the very format of its own datetime()
            # so that comparing against CURRENT_TIMESTAMP-style columns works as text too.
            params["now"] = _sqlite_timestamp(now)
        # A connection the server dropped (restart, pg_terminate_backend) surfaces once as an
        # invalidated connection; the pool replaces it, so one retry hides it from the rule.
        for attempt in range(2):
            try:
                columns, rows = self._run(statement, params)
            except sa_exc.DBAPIError as exc:
                if exc.connection_invalidated and attempt == 0:
                    continue
                raise self._error(exc) from None
            if len(rows) > self.max_rows:
                raise QueryError(f"query returned more than {self.max_rows} rows (the datasource's max_rows)")
            return _samples(columns, rows)
        raise AssertionError("unreachable")

    def _run(self, statement: str, params: dict[str, Any]) -> tuple[list[str], list[tuple[Any, ...]]]:
        engine = _ENGINES.get(self.name, self._settings)
        try:
            conn = engine.connect()
        except sa_exc.DBAPIError as exc:
            raise DatasourceError(
                f"cannot connect to {self._settings.safe_url}: {_db_message(exc)}", self.name
            ) from None
        except sa_exc.TimeoutError:
            raise DatasourceError(
                f"no free connection to {self._settings.safe_url} within "
                f"{self._settings.connect_timeout:g}s (pool_size {self._settings.pool_size})",
                self.name,
            ) from None
        with conn:
            try:
                if self._settings.dialect == "sqlite":
                    return self._run_sqlite(conn, statement, params)
                return self._run_postgres(conn, statement, params)
            finally:
                # Never commit: whatever the statement did, if anything, is undone. A rollback
                # on a connection that just died must not hide the error that killed it.
                if not conn.invalidated:
                    with suppress(sa_exc.DBAPIError):
                        conn.rollback()

    def _run_postgres(
        self, conn: Connection, statement: str, params: dict[str, Any]
    ) -> tuple[list[str], list[tuple[Any, ...]]]:
        millis = max(1, round(self.statement_timeout * 1000))
        conn.exec_driver_sql("SET TRANSACTION READ ONLY")
        conn.exec_driver_sql(f"SET LOCAL statement_timeout = {millis}")
        conn.exec_driver_sql(f"SET LOCAL lock_timeout = {millis}")
        # Taking the transaction's snapshot now makes READ ONLY final: it can no longer be
        # switched back to READ WRITE from inside the rule's statement.
        conn.exec_driver_sql("SELECT 1")
        conn = conn.execution_options(stream_results=True, max_row_buffer=self.max_rows + 1)
        return self._fetch(conn, statement, params)

    def _run_sqlite(
        self, conn: Connection, statement: str, params: dict[str, Any]
    ) -> tuple[list[str], list[tuple[Any, ...]]]:
        raw = conn.connection.dbapi_connection
        assert isinstance(raw, sqlite3.Connection)
        raw.execute("PRAGMA query_only = 1")  # a rule cannot have turned it off: PRAGMA is denied
        deadline = time.monotonic() + self.statement_timeout
        raw.set_progress_handler(lambda: int(time.monotonic() > deadline), _SQLITE_PROGRESS_STEPS)
        raw.set_authorizer(_sqlite_authorizer)
        try:
            return self._fetch(conn, statement, params)
        finally:
            raw.set_authorizer(None)
            raw.set_progress_handler(None, 0)

    def _fetch(
        self, conn: Connection, statement: str, params: dict[str, Any]
    ) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Columns and at most one row past the limit: enough to know it was exceeded."""
        result = conn.execute(sqlalchemy.text(statement), params)
        try:
            if not result.returns_rows:
                raise QueryError("sql statement returned no result set (rules must be queries)")
            return list(result.keys()), [tuple(r) for r in result.fetchmany(self.max_rows + 1)]
        finally:
            result.close()  # also closes a PostgreSQL server-side cursor left with rows unread

    def _error(self, exc: sa_exc.DBAPIError) -> DatasourceError | QueryError:
        """Sort a database error into the rule's fault or the datasource's."""
        message = _db_message(exc)
        if exc.connection_invalidated:
            return DatasourceError(f"lost connection to {self._settings.safe_url}: {message}", self.name)
        if self._settings.dialect == "sqlite":
            if message == "interrupted":
                return QueryError(_timeout_message(self.statement_timeout))
            if message in ("not authorized", "authorization denied"):
                return QueryError(
                    "not authorized: SQL rules are read-only (ATTACH, DETACH and PRAGMA are refused)"
                )
            if message in ("database is locked", "disk I/O error", "unable to open database file"):
                return DatasourceError(f"{self._settings.safe_url}: {message}", self.name)
            return QueryError(message)
        sqlstate = getattr(exc.orig, "sqlstate", None) or ""
        if sqlstate == "57014":  # query_canceled: our statement_timeout fired
            return QueryError(_timeout_message(self.statement_timeout))
        # Connection trouble, server shutting down or out of resources: not the rule's fault.
        # (Errors without a SQLSTATE come from the driver reading the result: the rule's.)
        if sqlstate[:2] in ("08", "53", "57", "58", "XX"):
            return DatasourceError(f"{self._settings.safe_url}: {message}", self.name)
        return QueryError(message)


def _sqlite_authorizer(action: int, *_: Any) -> int:
    return sqlite3.SQLITE_DENY if action in _SQLITE_DENIED else sqlite3.SQLITE_OK


def _sqlite_timestamp(now: dt.datetime) -> str:
    text = now.strftime("%Y-%m-%d %H:%M:%S")
    millis = now.microsecond // 1000
    return f"{text}.{millis:03d}" if millis else text


def _timeout_message(seconds: float) -> str:
    return f"statement timeout: the query ran longer than {seconds:g}s"


def _db_message(exc: sa_exc.DBAPIError) -> str:
    """The database's own message, first line only: no SQL echo, no caret, no parameters."""
    orig = exc.orig
    diag = getattr(orig, "diag", None)
    primary = getattr(diag, "message_primary", None) if diag is not None else None
    text = primary or str(orig) or type(orig).__name__
    return text.strip().splitlines()[0].strip() if text.strip() else type(orig).__name__


# --- rows to samples ----------------------------------------------------------------------------


def _samples(columns: list[str], rows: list[tuple[Any, ...]]) -> list[Sample]:
    seen: set[str] = set()
    for column in columns:
        if column in seen:
            raise QueryError(f'duplicate column "{column}": give each column its own name')
        seen.add(column)
        if column != "value" and not _LABEL_NAME.match(column):
            raise QueryError(f'column "{column}" is not a valid label name: alias it (... AS some_name)')
    value_at = columns.index("value") if "value" in columns else None
    samples = []
    for number, row in enumerate(rows, start=1):
        labels = {
            column: text
            for i, column in enumerate(columns)
            if i != value_at and (text := _label_text(row[i]))
        }
        value = 1.0 if value_at is None else _number(row[value_at], number)
        samples.append(Sample(labels, value))
    return samples


def _number(raw: Any, row: int) -> float:
    if isinstance(raw, bool):
        return float(raw)
    if isinstance(raw, int | float | decimal.Decimal):
        return float(raw)
    if isinstance(raw, dt.timedelta):
        return raw.total_seconds()
    if isinstance(raw, str) and _NUMBER.match(raw):
        return float(raw)
    if raw is None:
        raise QueryError(f'column "value" is NULL in row {row}: it must be a number')
    if isinstance(raw, str):
        shown = raw if len(raw) <= 40 else raw[:37] + "..."
        raise QueryError(f'column "value" must be a number, got "{shown}" in row {row}')
    raise QueryError(f'column "value" must be a number, got {type(raw).__name__} in row {row}')


def _label_text(raw: Any) -> str:
    if raw is None:
        return ""
    if isinstance(raw, bool):
        return "true" if raw else "false"
    if isinstance(raw, float) and math.isfinite(raw) and raw == int(raw):
        return str(int(raw)) if abs(raw) < 1e15 else repr(raw)
    if isinstance(raw, dt.datetime | dt.date | dt.time):
        return raw.isoformat()
    if isinstance(raw, list | dict):  # PostgreSQL arrays and json columns
        return json.dumps(raw, default=str, sort_keys=True, ensure_ascii=False)
    if isinstance(raw, bytes | bytearray | memoryview):
        return bytes(raw).decode("utf-8", errors="replace")
    return str(raw)


# --- settings and the per-process engine cache -------------------------------------------------


@dataclass(frozen=True)
class _Settings:
    """A datasource's validated settings; equal settings share one engine."""

    name: str
    url: str
    safe_url: str
    dialect: str
    statement_timeout: float
    connect_timeout: float
    max_rows: int
    pool_size: int
    sqlite_path: str

    def key(self) -> tuple[Any, ...]:
        return (self.url, self.statement_timeout, self.connect_timeout, self.pool_size)

    @classmethod
    def parse(cls, name: str, config: Mapping[str, Any]) -> _Settings:
        def fail(message: str, key: str | None = None) -> ConfigError:
            at = getattr(config, "at", None)
            pos = at(key) if callable(at) and key else getattr(config, "pos", None)
            return ConfigError(f'datasource "{name}": {message}', pos)

        for key in config:
            if key not in _CONFIG_FIELDS:
                raise fail(f'unknown field "{key}" (known: {", ".join(_CONFIG_FIELDS)})', key)
        raw_url = config.get("url")
        if not isinstance(raw_url, str) or not raw_url.strip():
            raise fail("url must be a database URL such as sqlite:///app.db", "url")
        try:
            url = make_url(raw_url.strip())
        except sa_exc.ArgumentError:
            raise fail("url is not a database URL (dialect://user@host/db)", "url") from None
        backend, _, driver = url.drivername.partition("+")
        if backend in ("postgres", "postgresql"):
            # Bare postgres:// URLs (as many platforms export them) mean psycopg 3, which we ship.
            driver = driver or "psycopg"
            if driver not in _PG_DRIVERS:
                raise fail(f"PostgreSQL driver {driver!r} is not supported (use postgresql+psycopg)", "url")
            url = url.set(drivername=f"postgresql+{driver}")
            dialect = "postgresql"
        elif backend == "sqlite":
            if driver not in ("", "pysqlite"):
                raise fail(f"SQLite driver {driver!r} is not supported (use sqlite:///path)", "url")
            if not url.database or url.database == ":memory:" or url.database.startswith("file:"):
                raise fail("url must name a SQLite database file (sqlite:///path/to/app.db)", "url")
            dialect = "sqlite"
        else:
            raise fail(
                f"{backend!r} databases are not supported: read-only enforcement exists for "
                "sqlite and postgresql",
                "url",
            )
        try:
            url.get_dialect()
        except (sa_exc.NoSuchModuleError, ImportError) as exc:
            raise fail(f"cannot load the database driver: {exc}", "url") from None

        def duration(key: str) -> float:
            value = config.get(key, _DEFAULTS[key])
            try:
                seconds = parse_duration(str(value))
            except DurationError as exc:
                raise fail(f"{key}: {exc}", key) from None
            if seconds <= 0:
                raise fail(f"{key} must be greater than 0", key)
            return seconds

        def positive(key: str) -> int:
            value = config.get(key, _DEFAULTS[key])
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise fail(f"{key} must be a positive integer, got {value!r}", key)
            return value

        return cls(
            name=name,
            url=url.render_as_string(hide_password=False),
            safe_url=url.render_as_string(hide_password=True),
            dialect=dialect,
            statement_timeout=duration("statement_timeout"),
            connect_timeout=duration("connect_timeout"),
            max_rows=positive("max_rows"),
            pool_size=positive("pool_size"),
            sqlite_path=str(Path(url.database).absolute()) if dialect == "sqlite" and url.database else "",
        )


def _create_engine(settings: _Settings) -> Engine:
    common: dict[str, Any] = {
        "pool_size": settings.pool_size,
        "max_overflow": settings.pool_size,
        "pool_timeout": settings.connect_timeout,
        "pool_pre_ping": True,  # a connection the server dropped is replaced before use
        "pool_recycle": 1800,
    }
    if settings.dialect == "sqlite":
        uri = Path(settings.sqlite_path).as_uri() + "?mode=ro"

        def connect() -> sqlite3.Connection:
            conn = sqlite3.connect(uri, uri=True, check_same_thread=False, timeout=settings.connect_timeout)
            conn.execute("PRAGMA query_only = 1")
            return conn

        return sqlalchemy.create_engine(settings.url, creator=connect, **common)
    url = make_url(settings.url)
    millis = max(1, round(settings.statement_timeout * 1000))
    # Options the URL carries (say -csearch_path=app) are kept; ours come last, so they win.
    options = " ".join(
        filter(None, [str(url.query.get("options") or ""), "-c default_transaction_read_only=on"])
    )
    connect_args = {
        "connect_timeout": max(1, math.ceil(settings.connect_timeout)),
        "options": f"{options} -c statement_timeout={millis}",
    }
    if "application_name" not in url.query:
        connect_args["application_name"] = "alerting"
    engine = sqlalchemy.create_engine(
        url.difference_update_query(["options"]), connect_args=connect_args, **common
    )
    sqlalchemy.event.listen(engine, "first_connect", lambda conn, _record: _warn_if_superuser(settings, conn))
    return engine


def _warn_if_superuser(settings: _Settings, dbapi_connection: Any) -> None:
    """Say once per pool when the datasource logs in as a superuser: read-only transactions still
    refuse writes, but a superuser's rule can call admin functions (pg_terminate_backend,
    pg_read_file, ...) that a role granted only SELECT could not."""
    try:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("SELECT current_user, current_setting('is_superuser')")
            user, superuser = cursor.fetchone()
        finally:
            cursor.close()
            dbapi_connection.rollback()
    except Exception as exc:  # the warning is advice; a failed check must not fail the connection
        log.debug("sql.role_check_failed", datasource=settings.name, error=str(exc))
        return
    if superuser == "on":
        log.warning(
            "sql.superuser",
            msg=(
                f'datasource "{settings.name}" connects to {settings.safe_url} as superuser "{user}": '
                "rules cannot write, but they can call admin functions; connect with a role "
                "granted only SELECT on the tables the rules read"
            ),
            datasource=settings.name,
            user=user,
        )


class _EngineCache:
    """Engines by datasource name, remade when the settings change or the process forked."""

    def __init__(self, factory: Callable[[_Settings], Engine]) -> None:
        self._factory = factory
        self._lock = threading.Lock()
        self._engines: dict[str, tuple[int, tuple[Any, ...], Engine]] = {}

    def get(self, name: str, settings: _Settings) -> Engine:
        pid, key = os.getpid(), settings.key()
        with self._lock:
            entry = self._engines.get(name)
            if entry and entry[0] == pid and entry[1] == key:
                return entry[2]
            if entry:
                # In a forked child the parent's sockets must be left alone (close=False);
                # in the same process, changed settings retire the old pool.
                entry[2].dispose(close=entry[0] == pid)
            engine = self._factory(settings)
            self._engines[name] = (pid, key, engine)
            return engine

    def drop(self, name: str, settings: _Settings) -> None:
        with self._lock:
            entry = self._engines.get(name)
            if entry and entry[1] == settings.key():
                del self._engines[name]
                entry[2].dispose(close=entry[0] == os.getpid())


_ENGINES = _EngineCache(_create_engine)


KIND: Kind = Kind(name="sql", field="sql", check=check_sql, open=SqlSource, default_datasource="db")
