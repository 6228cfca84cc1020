"""Hostile input (hypothesis): whatever a rule file, a duration, a routing file, a Prometheus answer
or a database row holds, the answer is our own error type with a message, never another exception
and never a hang; and a broken rule does not stop the other rules of its group.

Matchers, routing documents built from the right keys, and templates have their own property tests
next to their modules; this file covers the rest and the raw-text forms.
"""

from __future__ import annotations

import json
import sqlite3
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alerting.durations import format_duration, parse_duration
from alerting.errors import (
    AlertingError,
    ConfigError,
    DatasourceError,
    DurationError,
    QueryError,
    RuleFileError,
)
from alerting.rules.evaluation import State
from alerting.rules.loader import load_file_groups
from alerting.rules.state import StateStore
from alerting.rules.tick import Evaluator
from alerting.sources import Sample
from alerting.sources.probe import ProbeSource
from alerting.sources.prometheus import PrometheusSource
from alerting.sources.sql import SqlSource
from alerting.worker.compose import check_routing_config, load_routing_config
from tests.support.httpfake import FakeHTTPServer, Reply, Request

HOSTILE = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))

# --- rule files ---------------------------------------------------------------------------------

YAMLISH = st.text(
    alphabet=st.sampled_from(
        list("groups:rules-alertexprfor {}[]\"'|>&*!%@#,?\n\t  01.5hm$") + ["\x00", "é", "\ufeff", "\x85"]
    ),
    max_size=200,
)
RULE_KEYS = st.sampled_from(
    [
        "groups", "name", "interval", "query_offset", "limit", "labels", "rules", "alert", "record",
        "expr", "for", "keep_firing_for", "annotations", "sql", "probe", "celery", "datasource",
        "on_error", "condition", "url", "exprr",
    ]
)  # fmt: skip
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(
        ["5m", "0", "1.5h", "-1m", "up > 0", "sum(", "{{ $value }}", "{{ ", "SELECT 1", "firing"]
    ),
)
DOCUMENTS = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(RULE_KEYS, inner, max_size=5)),
    max_leaves=30,
)
# Documents in the right shape with wrong values: groups of rules whose fields hold anything.
SHAPED = st.fixed_dictionaries(
    {
        "groups": st.lists(
            st.fixed_dictionaries(
                {
                    "name": SCALARS,
                    "rules": st.lists(st.dictionaries(RULE_KEYS, DOCUMENTS, max_size=6), max_size=3),
                },
                optional={"interval": SCALARS, "limit": SCALARS, "labels": DOCUMENTS},
            ),
            max_size=3,
        )
    }
)


def load_rule_text(text: str | bytes) -> list[RuleFileError]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "rules.yml"
        path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass"))
        groups, problems, _ = load_file_groups(path, 300.0)
        for problem in problems:
            assert isinstance(problem, RuleFileError)
            assert str(problem).startswith(f"{path}"), str(problem)
            assert problem.message
        return problems


@HOSTILE
@given(YAMLISH)
def test_any_rule_file_text_loads_or_reports_located_rule_file_errors(text: str) -> None:
    load_rule_text(text)


@HOSTILE
@given(st.binary(max_size=200))
def test_any_rule_file_bytes_load_or_report_located_rule_file_errors(data: bytes) -> None:
    load_rule_text(data)


@HOSTILE
@given(st.one_of(DOCUMENTS, SHAPED))
def test_wrongly_typed_rule_documents_are_rule_file_errors(doc: Any) -> None:
    load_rule_text(yaml.safe_dump(doc, allow_unicode=True))


@pytest.mark.parametrize(
    "text",
    [
        "a: &x [*x]\n",  # a self-referencing alias
        "groups: " + "[" * 5000 + "]" * 5000 + "\n",  # nesting deep enough to exhaust recursion
        "groups:\n" + "".join(f"  - &a{i} {{name: g{i}, rules: []}}\n" for i in range(50)),
        "x: " + "&a [" * 30 + "]" * 30,
        "!!python/object/apply:os.system ['true']\n",  # never constructs Python objects
        "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: " + "(" * 3000 + "1" + ")" * 3000 + "\n",
    ],
    ids=["recursive-alias", "deep-nesting", "many-anchors", "nested-anchors", "python-tag", "deep-promql"],
)
def test_pathological_rule_files_are_rule_file_errors(text: str) -> None:
    load_rule_text(text)


# --- durations ----------------------------------------------------------------------------------


@HOSTILE
@given(
    st.one_of(
        st.text(alphabet=st.sampled_from(list("0123456789ywdhms.-+ µ_e")), max_size=30),
        st.text(max_size=10),
        st.integers(),
        st.none(),
        st.floats(),
    )
)
def test_any_duration_parses_to_non_negative_seconds_or_is_a_duration_error(text: Any) -> None:
    try:
        seconds = parse_duration(text)
    except DurationError as exc:
        assert str(exc)
        return
    assert seconds >= 0
    assert parse_duration(format_duration(seconds)) == seconds


# --- alerting.yml as raw text -------------------------------------------------------------------

AM_TEXT = st.text(
    alphabet=st.sampled_from(
        list("route:receivers-namegroup_bywebhook_configsurl{}[]\"'|>&*!,=~\n  01.5hm$") + ["\x00", "é"]
    ),
    max_size=200,
)


@HOSTILE
@given(st.one_of(AM_TEXT, st.binary(max_size=100).map(lambda b: b.decode("latin-1"))))
def test_any_routing_file_text_yields_config_errors(text: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "alerting.yml"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        problems = check_routing_config(path)
        assert all(isinstance(p, ConfigError) and str(p).startswith(str(path)) for p in problems)
        try:
            load_routing_config(path)
        except ConfigError as exc:
            assert str(exc).startswith(str(path))
        else:
            assert problems == []


# --- Prometheus answers -------------------------------------------------------------------------


class Scripted:
    """A Prometheus stand-in whose next answer the test sets."""

    def __init__(self) -> None:
        self.reply = Reply(200, {"status": "success", "data": {"resultType": "vector", "result": []}})
        self.by_query: dict[str, Reply] = {}
        self.server = FakeHTTPServer(self.answer)

    def answer(self, request: Request) -> Reply:
        query = request.form().get("query", [""])[0]
        return self.by_query.get(query, self.reply)


@pytest.fixture(scope="module")
def scripted() -> Iterator[Scripted]:
    fake = Scripted()
    with fake.server:
        yield fake


JSON_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=10)),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=15,
)
SAMPLE = st.fixed_dictionaries(
    {
        "metric": st.one_of(
            st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=3), JSON_VALUES
        ),
        "value": st.one_of(
            st.tuples(st.floats(), st.sampled_from(["1", "NaN", "+Inf", "-Inf", "x", "", "1e999"])).map(list),
            JSON_VALUES,
        ),
    }
)
ENVELOPES = st.one_of(
    JSON_VALUES,
    st.fixed_dictionaries(
        {
            "status": st.sampled_from(["success", "error", "SUCCESS", None, 1]),
            "data": st.one_of(
                JSON_VALUES,
                st.fixed_dictionaries(
                    {
                        "resultType": st.sampled_from(["vector", "scalar", "matrix", "string", None, 3]),
                        "result": st.one_of(st.lists(SAMPLE, max_size=3), JSON_VALUES),
                    }
                ),
            ),
        },
        optional={"errorType": JSON_VALUES, "error": JSON_VALUES},
    ),
)
BODIES = st.one_of(
    ENVELOPES.map(json.dumps),
    st.binary(max_size=100),
    st.text(max_size=100),
    st.sampled_from(["[" * 100_000, '{"a":' * 50_000, "\xff\xfe", "null", '"success"', "{}"]),
)


def check_answer(source: PrometheusSource) -> list[Sample] | None:
    try:
        samples = source.query("up", 1_700_000_000.0)
    except (QueryError, DatasourceError) as exc:
        assert str(exc)
        return None
    assert all(
        isinstance(s.value, float) and all(isinstance(v, str) for v in s.labels.values()) for s in samples
    )
    return samples


@HOSTILE
@given(body=BODIES, status=st.sampled_from([200, 400, 422, 500, 503]))
def test_any_prometheus_answer_is_samples_or_our_error(scripted: Scripted, body: Any, status: int) -> None:
    scripted.reply = Reply(status, body, headers={"Content-Type": "application/json"})
    source = PrometheusSource("prometheus", {"url": scripted.server.url, "timeout": "5s"})
    try:
        check_answer(source)
    finally:
        source.close()


def test_a_100k_series_vector_is_read_in_full(scripted: Scripted) -> None:
    result = [
        {"metric": {"instance": f"host-{i}", "job": "node"}, "value": [1, str(i)]} for i in range(100_000)
    ]
    scripted.reply = Reply(200, {"status": "success", "data": {"resultType": "vector", "result": result}})
    source = PrometheusSource("prometheus", {"url": scripted.server.url, "timeout": "30s"})
    try:
        samples = check_answer(source)
    finally:
        source.close()
    assert samples is not None and len(samples) == 100_000
    assert samples[-1] == Sample({"instance": "host-99999", "job": "node"}, 99999.0)


# --- SQL rows -----------------------------------------------------------------------------------

CELLS = st.one_of(
    st.none(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False),
    st.text(max_size=30),
    st.binary(max_size=20),
    st.sampled_from(["1.5", " 2 ", "NaN", "inf", "1e999", "0x10", "", "x" * 200_000]),
)


@HOSTILE
@given(rows=st.lists(st.tuples(CELLS, CELLS, CELLS), max_size=6))
def test_any_sql_rows_are_samples_or_a_rule_error(rows: list[tuple[Any, Any, Any]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "app.db"
        with sqlite3.connect(path) as conn:
            conn.execute("CREATE TABLE t (value, team, note)")
            conn.executemany("INSERT INTO t VALUES (?, ?, ?)", rows)
        conn.close()
        source = SqlSource(f"hostile-{uuid.uuid4().hex[:8]}", {"type": "sql", "url": f"sqlite:///{path}"})
        try:
            samples = source.query("SELECT value, team, note FROM t ORDER BY rowid", 1_700_000_000.0)
        except QueryError as exc:
            assert "value" in str(exc)
            assert any(not isinstance(r[0], int | float) for r in rows)
            return
        finally:
            source.close()
    assert len(samples) == len(rows)
    for sample, (_, team, note) in zip(samples, rows, strict=True):
        assert isinstance(sample.value, float)
        # NULL (and empty text) leaves the label out; anything else is its text.
        assert ("team" in sample.labels) == (team not in (None, "", b""))
        assert ("note" in sample.labels) == (note not in (None, "", b""))


# --- a broken rule among good ones --------------------------------------------------------------

BROKEN_ANSWERS = st.sampled_from(
    [
        Reply(200, "[" * 100_000),
        Reply(200, "not json at all"),
        Reply(200, {"status": "success", "data": {"resultType": "vector", "result": [{"metric": 1}]}}),
        Reply(200, {"status": "success", "data": {"resultType": "matrix", "result": []}}),
        Reply(422, {"status": "error", "errorType": "bad_data", "error": "parse error"}),
        Reply(503, "Service Unavailable"),
        Reply(
            200,
            {
                "status": "success",
                "data": {
                    "resultType": "vector",
                    "result": [
                        {"metric": {"a": "1"}, "value": [1, "1"]},
                        {"metric": {"a": "1"}, "value": [1, "2"]},
                    ],
                },
            },
        ),
    ]
)


@pytest.fixture
def store(redis_client: redis.Redis) -> Iterator[StateStore]:
    prefix = f"test-{uuid.uuid4().hex[:12]}"
    yield StateStore(redis_client, prefix)
    keys = list(redis_client.scan_iter(match=f"{prefix}:*"))
    if keys:
        redis_client.delete(*keys)


@settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck))
@given(broken=BROKEN_ANSWERS, position=st.integers(0, 2))
def test_a_broken_rule_does_not_stop_the_other_rules_of_its_group(
    scripted: Scripted,
    store: StateStore,
    tmp_path_factory: pytest.TempPathFactory,
    broken: Reply,
    position: int,
) -> None:
    names = ["First", "Second", "Third"]
    rules = [{"alert": n, "expr": f"metric_{n.lower()} > 0"} for n in names]
    path = tmp_path_factory.mktemp("rules") / "group.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "mixed", "interval": "1m", "rules": rules}]}))
    (group,), problems, _ = load_file_groups(path, 300.0)
    assert problems == []
    for n in names:
        result = [{"metric": {"rule": n}, "value": [1, "1"]}]
        scripted.by_query[f"metric_{n.lower()} > 0"] = Reply(
            200, {"status": "success", "data": {"resultType": "vector", "result": result}}
        )
    scripted.by_query[f"metric_{names[position].lower()} > 0"] = broken
    source = PrometheusSource("prometheus", {"url": scripted.server.url, "timeout": "5s"})
    slot = 1_700_000_040.0 + uuid.uuid4().int % 1000 * 60
    try:
        evaluator = Evaluator(store, lambda _: source, owner=f"hostile-{uuid.uuid4().hex[:6]}", concurrency=3)
        outcome = evaluator.tick(group, slot)
    finally:
        source.close()
        scripted.by_query.clear()
    by_name = {e.rule.name: e for e in outcome.rules}
    for n in names:
        evaluated = by_name[n]
        if n == names[position]:
            assert evaluated.health.health == "err" and evaluated.health.error
            assert not evaluated.health.error.startswith("internal error"), evaluated.health.error
            assert evaluated.alerts == {}
        else:
            assert evaluated.health.health == "ok", evaluated.health.error
            assert [a.state for a in evaluated.alerts.values()] == [State.FIRING]
    healths, _ = store.load_health(group.id)
    assert sorted(h.health for h in healths.values()) == ["err", "ok", "ok"]


# --- probes reading a hostile health endpoint ---------------------------------------------------


@pytest.mark.parametrize(
    "body",
    ["[" * 100_000, "{" * 10, "\xff", '{"status": ' * 30_000],
    ids=["deep-array", "unclosed", "not-utf8", "deep-object"],
)
def test_a_health_endpoint_answering_garbage_fails_the_probe_not_the_rule(body: str) -> None:
    with FakeHTTPServer(lambda _: Reply(200, body, headers={"Content-Type": "application/json"})) as fake:
        source = ProbeSource("probe", {})
        spec = {"url": f"{fake.url}/health", "expect_json": {"status": "ok"}, "timeout": "5s"}
        try:
            samples = source.query(spec, time.time())
        except AlertingError as exc:  # pragma: no cover - what the test guards against
            pytest.fail(f"a garbage body should fail the probe, not the rule: {exc}")
        finally:
            source.close()
    assert [s.labels.get("error") for s in samples] == ["invalid JSON"]


def test_a_100k_series_answer_over_the_group_limit_freezes_only_its_rule(
    scripted: Scripted, store: StateStore, tmp_path: Path
) -> None:
    flood = [{"metric": {"instance": f"host-{i}"}, "value": [1, "1"]} for i in range(100_000)]
    scripted.by_query["flood > 0"] = Reply(
        200, {"status": "success", "data": {"resultType": "vector", "result": flood}}
    )
    scripted.by_query["calm > 0"] = Reply(
        200,
        {
            "status": "success",
            "data": {"resultType": "vector", "result": [{"metric": {}, "value": [1, "1"]}]},
        },
    )
    path = tmp_path / "group.yml"
    rules = [{"alert": "Flood", "expr": "flood > 0"}, {"alert": "Calm", "expr": "calm > 0"}]
    path.write_text(yaml.safe_dump({"groups": [{"name": "limited", "limit": 1000, "rules": rules}]}))
    (group,), problems, _ = load_file_groups(path, 300.0)
    assert problems == []
    source = PrometheusSource("prometheus", {"url": scripted.server.url, "timeout": "30s"})
    try:
        outcome = Evaluator(store, lambda _: source, owner="flood", concurrency=2).tick(
            group, 1_700_000_040.0
        )
    finally:
        source.close()
        scripted.by_query.clear()
    flood_rule, calm = outcome.rules
    assert flood_rule.health.error == "exceeded limit of 1000 with 100000 alerts"
    assert flood_rule.alerts == {}
    assert calm.health.health == "ok" and len(calm.alerts) == 1
