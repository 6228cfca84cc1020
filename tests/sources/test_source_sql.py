"""SQL rules against real SQLite and PostgreSQL: rows become samples, and a rule can never write."""

from __future__ import annotations

import datetime as dt
import multiprocessing
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from alerting.errors import ConfigError, DatasourceError, Position, QueryError, RuleFileError
from alerting.rules.loader import load_file_groups
from alerting.sources import Sample
from alerting.sources.sql import SqlSource, check_sql
from tests.support.databases import APPROVALS, PG_URL, Database, postgres_database, sqlite_database
from tests.support.logs import json_log
from tests.support.net import free_port

AT = dt.datetime(2024, 5, 3, 12, 0, tzinfo=dt.UTC).timestamp()
# "Two days before the slot time" in each dialect, from the :now bind.
CUTOFF = {"sqlite": "datetime(:now, '-2 days')", "postgresql": ":now - interval '2 days'"}
SLEEP = {
    "sqlite": "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT max(x) AS value FROM c",
    "postgresql": "SELECT 1 AS value FROM pg_sleep(30)",
}


@contextmanager
def database(backend: str, tmp_path: Path) -> Iterator[Database]:
    with sqlite_database(tmp_path) if backend == "sqlite" else postgres_database() as found:
        yield found


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    with database(request.param, tmp_path) as found:
        yield found


@pytest.fixture
def pg(tmp_path: Path) -> Iterator[Database]:
    with postgres_database() as found:
        yield found


def open_source(db: Database, **settings: Any) -> SqlSource:
    return SqlSource(f"app-{db.backend}", {"type": "sql", "url": db.url, **settings})


def labels_and_values(samples: list[Sample]) -> list[tuple[dict[str, str], float]]:
    return [(dict(s.labels), s.value) for s in samples]


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        (
            "SELECT team, count(*) AS value FROM approvals WHERE status = 'pending' "
            "AND requested_at < {cutoff} GROUP BY team ORDER BY team",
            [({"team": "payments"}, 1.0), ({"team": "search"}, 1.0)],
        ),
        (
            "SELECT id, note FROM approvals ORDER BY id",
            [
                ({"id": "1"}, 1.0),
                ({"id": "2", "note": "urgent"}, 1.0),
                ({"id": "3"}, 1.0),
                ({"id": "4"}, 1.0),
            ],
        ),
        (
            "SELECT id, amount AS value FROM approvals WHERE amount IS NOT NULL ORDER BY id",
            [({"id": "1"}, 120.5), ({"id": "2"}, 80.0), ({"id": "4"}, 10.0)],
        ),
        ("SELECT '42.5' AS value, 'x' AS kind", [({"kind": "x"}, 42.5)]),
        ("SELECT :now_unix AS value", [({}, AT)]),
        (
            "SELECT team FROM approvals WHERE status = 'pending' ORDER BY team",
            [({"team": "payments"}, 1.0), ({"team": "payments"}, 1.0), ({"team": "search"}, 1.0)],
        ),
        ("SELECT team FROM approvals WHERE team = 'nobody'", []),
        (
            "SELECT '100%' AS share, count(*) AS value FROM approvals WHERE team LIKE 'pay%'",
            [({"share": "100%"}, 2.0)],
        ),
    ],
    ids=[
        "count-per-team-at-slot-time",
        "null-and-empty-labels-absent",
        "numeric-value",
        "numeric-string",
        "now-unix-bind",
        "duplicate-label-sets-returned-as-is",
        "no-rows",
        "percent-signs-are-literal",
    ],
)
def test_each_row_is_one_sample(db: Database, sql: str, expected: list) -> None:
    source = open_source(db)
    samples = source.query(sql.format(cutoff=CUTOFF[db.backend]), AT)
    assert labels_and_values(samples) == expected


def test_now_is_the_slot_time_so_a_rule_is_reproducible(db: Database) -> None:
    source = open_source(db)
    cutoff = CUTOFF[db.backend]
    sql = f"SELECT id FROM approvals WHERE status = 'pending' AND requested_at < {cutoff} ORDER BY id"
    assert labels_and_values(source.query(sql, AT)) == [({"id": "1"}, 1.0), ({"id": "3"}, 1.0)]
    three_days_later = AT + 3 * 86400
    assert labels_and_values(source.query(sql, three_days_later)) == [
        ({"id": "1"}, 1.0),
        ({"id": "2"}, 1.0),
        ({"id": "3"}, 1.0),
    ]


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        (
            "SELECT id, amount AS value FROM approvals ORDER BY id",
            'column "value" is NULL in row 3: it must be a number',
        ),
        (
            "SELECT id, team AS value FROM approvals ORDER BY id",
            'column "value" must be a number, got "payments" in row 1',
        ),
        (
            "SELECT id, note AS value FROM approvals WHERE id = 4",
            'column "value" must be a number, got "" in row 1',
        ),
        ("SELECT 1 AS value, 2 AS team, 3 AS team", 'duplicate column "team"'),
        ('SELECT 1 AS "bad label"', 'column "bad label" is not a valid label name'),
        ("SELECT * FROM no_such_table", "no_such_table"),
        ("SELECT 1 FROM WHERE", "syntax error"),
    ],
)
def test_a_bad_result_or_statement_is_a_rule_error_with_a_clear_message(
    db: Database, sql: str, message: str
) -> None:
    source = open_source(db)
    with pytest.raises(QueryError) as info:
        source.query(sql, AT)
    assert message in str(info.value)


def test_errors_are_stable_so_an_error_label_does_not_change_each_tick(db: Database) -> None:
    source = open_source(db, statement_timeout="300ms")
    for sql in (
        "SELECT * FROM no_such_table",
        "SELECT id, amount AS value FROM approvals ORDER BY id",
        SLEEP[db.backend],
    ):
        messages = set()
        for _ in range(2):
            with pytest.raises(QueryError) as info:
                source.query(sql, AT)
            messages.add(str(info.value))
        [message] = messages
        assert "\n" not in message
        assert not re.search(r"0x[0-9a-f]{6,}|\d{4}-\d\d-\d\d|LINE \d", message), message


def test_too_many_rows_is_a_rule_error(db: Database) -> None:
    source = open_source(db, max_rows=3)
    assert len(source.query("SELECT id FROM approvals WHERE id <= 3", AT)) == 3
    with pytest.raises(QueryError, match="more than 3 rows"):
        source.query("SELECT id FROM approvals", AT)


def test_statement_timeout_stops_a_slow_query(db: Database) -> None:
    source = open_source(db, statement_timeout="300ms")
    with pytest.raises(QueryError, match="statement timeout: the query ran longer than 0.3s"):
        source.query(SLEEP[db.backend], AT)
    assert labels_and_values(source.query("SELECT 1 AS value", AT)) == [({}, 1.0)]


# Statements that are not queries: refused when the rule file loads, and again by the source.
NOT_QUERIES = {
    "both": [
        "DELETE FROM approvals",
        "UPDATE approvals SET status = 'approved'",
        "INSERT INTO approvals (id, team, status) VALUES (9, 'x', 'pending')",
        "DROP TABLE approvals",
        "CREATE TABLE evil (x int)",
        "ALTER TABLE approvals ADD COLUMN evil int",
        "DELETE FROM approvals RETURNING id",
    ],
    "sqlite": [
        "REPLACE INTO approvals (id, team) VALUES (1, 'x')",
        "PRAGMA query_only = 0",
        "ATTACH DATABASE '{path}' AS other",
        "VACUUM",
    ],
    "postgresql": [
        "TRUNCATE approvals",
        "COPY approvals TO PROGRAM 'touch {path}'",
        "DO $$BEGIN DELETE FROM approvals; END$$",
        "SET TRANSACTION READ WRITE",
        "CALL nothing()",
    ],
}
# Queries that try to write anyway: the database itself must refuse them.
SNEAKY_WRITES = {
    "both": ["WITH gone AS (DELETE FROM approvals RETURNING id) SELECT count(*) AS value FROM gone"],
    "sqlite": [
        "WITH x AS (SELECT 1) DELETE FROM approvals",
        "WITH x AS (SELECT 1) UPDATE approvals SET status = 'approved'",
        "WITH x AS (SELECT 1) INSERT INTO approvals (id, team) VALUES (9, 'x')",
        "WITH x AS (SELECT 1) REPLACE INTO approvals (id, team) VALUES (1, 'x')",
        "SELECT load_extension('{path}')",
    ],
    "postgresql": [
        "SELECT wipe_approvals() AS value",
        "SELECT nextval('approval_ids') AS value",
        "SELECT set_config('transaction_read_only', 'off', true)",
        "SELECT * FROM approvals FOR UPDATE",
        "SELECT * INTO stolen FROM approvals",
        "WITH x AS (SELECT 1) DELETE FROM approvals",
    ],
}


def cases(table: dict[str, list[str]]) -> list[Any]:
    return [
        pytest.param(backend, sql, id=f"{backend}: {sql[:45]}")
        for backend in ("sqlite", "postgresql")
        for sql in table["both"] + table[backend]
    ]


@pytest.mark.parametrize(("backend", "sql"), cases(NOT_QUERIES))
def test_a_rule_that_is_not_a_query_is_rejected_when_the_file_loads(
    tmp_path: Path, backend: str, sql: str
) -> None:
    path = tmp_path / "rules.yml"
    path.write_text(
        f"groups:\n  - name: db\n    rules:\n      - alert: A\n        sql: >-\n          {sql}\n"
    )
    _, problems, _ = load_file_groups(path)
    [problem] = problems
    assert problem.pos == Position(str(path), 5, 14)
    assert "a rule must be a query (SELECT, WITH, VALUES, TABLE), not" in problem.message


@pytest.mark.parametrize(("backend", "sql"), cases(NOT_QUERIES) + cases(SNEAKY_WRITES))
def test_a_rule_cannot_write_and_the_data_stays_intact(tmp_path: Path, backend: str, sql: str) -> None:
    touched = tmp_path / "touched"
    with database(backend, tmp_path) as db:
        source = open_source(db)
        before = db.snapshot()
        with pytest.raises(QueryError):
            source.query(sql.format(path=touched), AT)
        # Nothing the attempt did opened the door for the next one.
        with pytest.raises(QueryError):
            source.query("WITH x AS (SELECT 1) DELETE FROM approvals", AT)
        assert db.snapshot() == before
    assert not touched.exists()


@pytest.mark.parametrize(
    ("backend", "sql", "message"),
    [
        ("sqlite", "WITH x AS (SELECT 1) DELETE FROM approvals", "attempt to write a readonly database"),
        ("postgresql", "SELECT wipe_approvals()", "cannot execute DELETE in a read-only transaction"),
        (
            "sqlite",
            "PRAGMA query_only = 0",
            "sql: a rule must be a query (SELECT, WITH, VALUES, TABLE), not PRAGMA",
        ),
        (
            "postgresql",
            "DELETE FROM approvals",
            "sql: a rule must be a query (SELECT, WITH, VALUES, TABLE), not DELETE",
        ),
    ],
)
def test_a_refused_write_says_why(tmp_path: Path, backend: str, sql: str, message: str) -> None:
    with database(backend, tmp_path) as db, pytest.raises(QueryError) as info:
        open_source(db).query(sql, AT)
    assert str(info.value) == message


def test_session_settings_a_rule_changes_do_not_outlive_it(pg: Database) -> None:
    source = open_source(pg, pool_size=1)
    source.query("SELECT set_config('default_transaction_read_only', 'off', false) AS was", AT)
    source.query("SELECT set_config('statement_timeout', '0', false) AS was", AT)
    [sample] = source.query(
        "SELECT current_setting('default_transaction_read_only') AS ro, "
        "current_setting('statement_timeout') AS st",
        AT,
    )
    assert dict(sample.labels) == {"ro": "on", "st": "10s"}


def test_postgres_arrays_and_json_become_json_labels(pg: Database) -> None:
    source = open_source(pg)
    [sample] = source.query("""SELECT ARRAY['b', 'a'] AS teams, '{"x": 1}'::jsonb AS meta""", AT)
    assert dict(sample.labels) == {"teams": '["b", "a"]', "meta": '{"x": 1}'}


def test_postgres_interval_value_is_seconds(pg: Database) -> None:
    source = open_source(pg)
    samples = source.query(
        "SELECT id, :now - requested_at AS value FROM approvals WHERE status = 'pending' ORDER BY id", AT
    )
    assert labels_and_values(samples) == [
        ({"id": "1"}, 180000.0),
        ({"id": "2"}, 10800.0),
        ({"id": "3"}, 432000.0),
    ]


def test_a_dropped_connection_recovers_on_the_next_query(pg: Database) -> None:
    source = open_source(pg, pool_size=1)
    [first] = source.query("SELECT pg_backend_pid() AS pid", AT)
    [[terminated]] = pg.admin("SELECT pg_terminate_backend(%s)", (int(first.labels["pid"]),))
    assert terminated
    [second] = source.query("SELECT pg_backend_pid() AS pid", AT)
    assert second.labels["pid"] != first.labels["pid"]


def _query_in_child(source: SqlSource, out: Any) -> None:
    out.put(source.query("SELECT pg_backend_pid() AS pid", AT)[0].labels["pid"])


def test_a_forked_child_opens_its_own_connections(pg: Database) -> None:
    source = open_source(pg, pool_size=1)
    [parent] = source.query("SELECT pg_backend_pid() AS pid", AT)
    context = multiprocessing.get_context("fork")
    out = context.Queue()
    child = context.Process(target=_query_in_child, args=(source, out))
    child.start()
    child_pid = out.get(timeout=30)
    child.join(timeout=30)
    assert child.exitcode == 0
    assert child_pid != parent.labels["pid"]
    # The parent's pooled connection was not disturbed by the child.
    assert source.query("SELECT pg_backend_pid() AS pid", AT)[0].labels["pid"] == parent.labels["pid"]


@pytest.mark.parametrize(
    "url",
    [
        f"postgresql+psycopg://postgres:hunter2@127.0.0.1:{free_port()}/test",
        "postgresql://postgres:hunter2@127.0.0.1:5432/alerting_no_such_database",
        "sqlite:///{tmp}/missing.db",
    ],
    ids=["nothing-listening", "no-such-database", "no-such-file"],
)
def test_wrong_url_is_a_datasource_error(tmp_path: Path, url: str) -> None:
    source = SqlSource("appdb", {"url": url.format(tmp=tmp_path), "connect_timeout": "2s"})
    with pytest.raises(DatasourceError, match="cannot connect to") as info:
        source.query("SELECT 1 AS value", AT)
    assert info.value.datasource == "appdb"
    assert "hunter2" not in str(info.value)
    assert not (tmp_path / "missing.db").exists()


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({}, "url must be a database URL"),
        ({"url": "not a url"}, "url is not a database URL"),
        ({"url": "mysql://u@h/db"}, "'mysql' databases are not supported"),
        ({"url": "sqlite://"}, "must name a SQLite database file"),
        ({"url": "sqlite:///:memory:"}, "must name a SQLite database file"),
        ({"url": "postgresql+asyncpg://u@h/db"}, "driver 'asyncpg' is not supported"),
        ({"url": "sqlite:///a.db", "max_rows": 0}, "max_rows must be a positive integer"),
        (
            {"url": "sqlite:///a.db", "statement_timeout": "10"},
            'statement_timeout: not a valid duration string: "10"',
        ),
        ({"url": "sqlite:///a.db", "statement_timeout": "0s"}, "statement_timeout must be greater than 0"),
        ({"url": "sqlite:///a.db", "timeout": "1s"}, 'unknown field "timeout"'),
    ],
)
def test_bad_sql_datasource_settings_are_config_errors(config: dict, message: str) -> None:
    with pytest.raises(ConfigError, match='datasource "db"') as info:
        SqlSource("db", config)
    assert message in str(info.value)


def test_bare_postgres_url_uses_psycopg(pg: Database) -> None:
    source = SqlSource("db", {"url": pg.url.replace("postgresql+psycopg://", "postgres://")})
    assert labels_and_values(source.query("SELECT count(*) AS value FROM approvals", AT)) == [({}, 4.0)]


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("SELECT 1;", "SELECT 1"),
        ("  SELECT ';' AS semi ;  -- done\n", "SELECT ';' AS semi"),
        ("SELECT $$a;b$$ AS x", "SELECT $$a;b$$ AS x"),
        ("SELECT 1 /* ; */ AS x", "SELECT 1 /* ; */ AS x"),
        ("SELECT x::int AS value FROM t WHERE at < :now", "SELECT x::int AS value FROM t WHERE at < :now"),
    ],
)
def test_a_single_statement_is_accepted_as_written(sql: str, expected: str) -> None:
    assert check_sql(sql, Position("rules.yml", 5, 14)) == expected


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("SELECT 1; DELETE FROM approvals", "only one statement is allowed"),
        ("SELECT 1; -- fine\n SELECT 2", "only one statement is allowed"),
        (";", "the statement is empty"),
        ("-- nothing", "the statement is empty"),
        ("SELECT * FROM t WHERE team = :team", "unknown bind parameter :team"),
    ],
)
def test_a_bad_sql_rule_is_reported_at_its_position(tmp_path: Path, sql: str, message: str) -> None:
    path = tmp_path / "rules.yml"
    path.write_text(
        "groups:\n  - name: db\n    rules:\n      - alert: A\n        sql: |\n"
        + "".join(f"          {line}\n" for line in sql.splitlines())
    )
    _, problems, _ = load_file_groups(path)
    [problem] = problems
    assert problem.pos == Position(str(path), 5, 14)
    assert message in problem.message


@pytest.mark.parametrize("value", ["", "   ", 12, None])
def test_sql_must_be_a_non_empty_string(value: Any) -> None:
    with pytest.raises(RuleFileError, match="sql must be a non-empty SQL statement"):
        check_sql(value, Position("rules.yml", 5, 14))


def test_sql_rule_uses_the_group_datasource_or_db(tmp_path: Path) -> None:
    path = tmp_path / "rules.yml"
    path.write_text(
        "groups:\n"
        "  - name: plain\n    rules:\n      - {alert: A, sql: SELECT 1}\n"
        "  - name: billing\n    datasource: billing\n    rules:\n      - {alert: B, sql: SELECT 1}\n"
    )
    groups, problems, _ = load_file_groups(path)
    assert problems == []
    assert [(g.rules[0].kind, g.rules[0].datasource) for g in groups] == [("sql", "db"), ("sql", "billing")]


def test_a_datasource_reopened_in_the_same_process_shares_the_pool(pg: Database) -> None:
    first, second = open_source(pg, pool_size=1), open_source(pg, pool_size=1)
    pid = first.query("SELECT pg_backend_pid() AS pid", AT)[0].labels["pid"]
    assert second.query("SELECT pg_backend_pid() AS pid", AT)[0].labels["pid"] == pid
    first.close()
    assert second.query("SELECT pg_backend_pid() AS pid", AT)[0].labels["pid"] != pid


def test_postgres_url_without_schema_options_still_reaches_the_database() -> None:
    source = SqlSource("plain", {"url": PG_URL})
    [sample] = source.query(
        "SELECT current_database() AS db, current_setting('transaction_read_only') AS ro", AT
    )
    assert dict(sample.labels) == {"db": "test", "ro": "on"}


def test_concurrent_rules_share_the_pool_and_wait_no_longer_than_connect_timeout(pg: Database) -> None:
    marker = f"alerting_{pg.schema}"  # the application_name the URL sets, to find our sessions
    # pool_size 1 allows one connection plus one overflow.
    source = SqlSource(
        "db", {"url": f"{pg.url}&application_name={marker}", "pool_size": 1, "connect_timeout": "1s"}
    )
    sleepers = [
        threading.Thread(target=source.query, args=("SELECT 1 AS value FROM pg_sleep(3)", AT))
        for _ in range(2)
    ]
    for thread in sleepers:
        thread.start()
    try:
        deadline = time.monotonic() + 10
        active = "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s AND state = 'active'"
        while pg.admin(active, (marker,))[0][0] < 2:
            assert time.monotonic() < deadline, "the two slow rules never started"
            time.sleep(0.05)
        with pytest.raises(DatasourceError, match=r"no free connection to .* within 1s \(pool_size 1\)"):
            source.query("SELECT 1 AS value", AT)
    finally:
        for thread in sleepers:
            thread.join()
    assert labels_and_values(source.query("SELECT 1 AS value", AT)) == [({}, 1.0)]


def test_a_superuser_account_is_warned_about_once(pg: Database) -> None:
    # The test server's "postgres" account is a superuser, as many quick setups are.
    source = SqlSource(f"db-{pg.schema}", {"url": pg.url, "pool_size": 1})
    with json_log() as log:
        for _ in range(3):
            source.query("SELECT 1 AS value", AT)
        source.close()
    [warning] = log.records("sql.superuser")
    assert warning["level"] == "WARN" and warning["user"] == "postgres"
    assert f'datasource "db-{pg.schema}" connects to' in warning["msg"]
    assert "granted only SELECT" in warning["msg"]


def test_a_role_granted_only_select_raises_no_warning(pg: Database) -> None:
    role = pg.schema.replace("alerting_test_", "reader_")
    pg.admin(f'CREATE ROLE "{role}" LOGIN')
    try:
        pg.admin(f'GRANT USAGE ON SCHEMA "{pg.schema}" TO "{role}"')
        pg.admin(f'GRANT SELECT ON approvals TO "{role}"')
        url = pg.url.replace("postgres@", f"{role}@")
        source = SqlSource(f"db-{role}", {"url": url, "pool_size": 1})
        with json_log() as log:
            [sample] = source.query("SELECT count(*) AS value FROM approvals", AT)
            source.close()
        assert sample.value == len(APPROVALS)
        assert log.records("sql.superuser") == []
    finally:
        pg.admin(f'REVOKE ALL ON approvals FROM "{role}"')
        pg.admin(f'REVOKE ALL ON SCHEMA "{pg.schema}" FROM "{role}"')
        pg.admin(f'DROP ROLE "{role}"')
