"""The shipped rule pack: it loads cleanly, promtool accepts its PromQL, every rule is complete,
rules/README.md maps every alert the specs define to a rule, and the SQL rules run on SQLite and
PostgreSQL against the demo schema, quiet on healthy data and firing on the demo's fault rows."""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import re2
import sqlalchemy
import yaml

from alerting.rules import load_paths
from demo import database
from demo.app import DB_FAULTS, FAULTS

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "rules"
PROMQL_FILES = sorted((RULES / "prometheus").glob("*.yml"))
ALL_RULE_FILES = sorted(RULES.rglob("*.yml"))
# The specs' rules, one file per spec (other rule files, such as the worker's own, may sit beside them).
PACK_FILES = sorted(RULES.glob("*/00[0-9]-*.yml"))
DEMO_FILES = sorted((ROOT / "demo" / "rules").glob("*.yml"))
RUNBOOK_BASE = "https://runbooks.example.com/alerting/"
PG_URL = os.environ.get("ALERTING_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
# 2026-01-01 13:00:00 UTC: mid-day, so "today" holds the whole seeded hour.
NOW = 1_767_272_400.0

# The shipped routing, as rules/README.md documents it (severity regexes, matched case-insensitively).
ROUTES = (
    ("(?i)critical|p1", "PagerDuty + SMS"),
    ("(?i)high|warning|p2|p3|medium", "Slack"),
    ("(?i)low|info|p4", "email"),
)
SPEC_SEVERITIES = {"P1", "P2", "P3", "critical", "warning", "info", "Critical", "High", "Medium", "Low"}
EXTENSION_FIELDS = {"sql", "probe", "celery", "datasource", "on_error", "condition"}


@dataclass(frozen=True)
class RuleDoc:
    file: Path
    group: str
    body: dict[str, Any]

    @property
    def name(self) -> str:
        return str(self.body["alert"])

    @property
    def labels(self) -> dict[str, str]:
        return self.body.get("labels") or {}

    @property
    def annotations(self) -> dict[str, str]:
        return self.body.get("annotations") or {}


def rule_docs(files: list[Path]) -> list[RuleDoc]:
    docs = []
    for file in files:
        for group in yaml.safe_load(file.read_text())["groups"]:
            docs.extend(RuleDoc(file, group["name"], rule) for rule in group["rules"])
    return docs


PACK = rule_docs(PACK_FILES)
DEMO = rule_docs(DEMO_FILES)


def routed_to(severity: str) -> str:
    for pattern, receivers in ROUTES:
        if re2.fullmatch(pattern, severity):
            return receivers
    return "default"


# --- loading and promtool -----------------------------------------------------------------------


@pytest.mark.parametrize("path", ALL_RULE_FILES + DEMO_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_rule_file_loads_without_problems(path: Path) -> None:
    result = load_paths([path])
    assert [str(p) for p in result.problems] == []
    assert result.warnings == []
    assert result.rule_count == len(rule_docs([path]))


def test_promtool_accepts_the_promql_rule_files() -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is needed (Debian package prometheus)"
    run = subprocess.run(
        [promtool, "check", "rules", *map(str, PROMQL_FILES)], capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stdout + run.stderr
    found = sum(int(n) for n in re.findall(r"SUCCESS: (\d+) rules found", run.stdout + run.stderr))
    assert found == len(rule_docs(PROMQL_FILES))


def test_spec_files_are_split_by_kind() -> None:
    assert {p.parent.name for p in PACK_FILES} == {"prometheus", "app"}
    assert len(PACK_FILES) == 5


def test_promql_files_hold_only_standard_prometheus_fields() -> None:
    for file in PROMQL_FILES:
        for group in yaml.safe_load(file.read_text())["groups"]:
            assert set(group) <= {"name", "interval", "limit", "rules"}, (file, group["name"])
            for rule in group["rules"]:
                assert not EXTENSION_FIELDS & set(rule), (file, rule["alert"])


def test_extension_rules_live_in_the_app_directory() -> None:
    for doc in PACK:
        if EXTENSION_FIELDS & set(doc.body):
            assert doc.file.parent.name == "app", doc.name


def test_alert_names_are_unique() -> None:
    names = [doc.name for doc in PACK + DEMO]
    assert sorted(n for n in set(names) if names.count(n) > 1) == []


# --- every rule is complete ---------------------------------------------------------------------


@pytest.mark.parametrize("doc", PACK + DEMO, ids=lambda d: d.name)
def test_every_rule_has_severity_service_summary_description_and_runbook(doc: RuleDoc) -> None:
    assert re.fullmatch(r"[A-Z][A-Za-z0-9]+", doc.name), "alert names are PascalCase"
    assert doc.labels.get("severity") in SPEC_SEVERITIES
    assert routed_to(doc.labels["severity"]) != "default"
    if doc.file.name != "004-kubernetes.yml":  # spec 004's alerts carry the exporters' job labels
        assert doc.labels.get("service")
    assert doc.annotations.get("summary", "").strip()
    description = doc.annotations.get("description", "")
    # An alert raised because its query failed carries the error, not a value.
    assert ("$labels.error" if doc.body.get("on_error") == "firing" else "$value") in description
    url = doc.annotations.get("runbook_url", "")
    assert url.startswith(RUNBOOK_BASE)
    assert (RULES / "runbooks" / f"{url.removeprefix(RUNBOOK_BASE)}.md").is_file()
    if doc in PACK:
        assert url == RUNBOOK_BASE + doc.name


def test_every_runbook_belongs_to_a_shipped_alert() -> None:
    shipped = {doc.name for doc in rule_docs(ALL_RULE_FILES)}
    assert sorted({p.stem for p in (RULES / "runbooks").glob("*.md")} - shipped) == []


# --- README table <-> rules <-> specs -----------------------------------------------------------


@dataclass(frozen=True)
class Row:
    spec: str
    as_written: str
    severity: str
    channel: str
    file: str
    alert: str
    routed: str


def readme_rows() -> list[Row]:
    rows = []
    for line in (RULES / "README.md").read_text().splitlines():
        if not re.match(r"^\| 00\d \|", line):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        assert len(cells) == 9, line
        spec, written, _condition, severity, channel, file, alert, routed, _notes = cells
        rows.append(Row(spec, written, severity, channel, file, alert, routed))
    return rows


def test_readme_table_maps_every_row_to_an_existing_rule() -> None:
    rows = readme_rows()
    by_name = {doc.name: doc for doc in PACK}
    for row in rows:
        doc = by_name.get(row.alert)
        assert doc is not None, f"{row.alert} is in the table but not in rules/"
        assert doc.file == RULES / row.file
        assert doc.labels["severity"] == row.severity, row.alert
        assert routed_to(row.severity) == row.routed, row.alert
    assert sorted(r.alert for r in rows) == sorted(by_name), "every rule has exactly one row"


def seeds_dir() -> Path:
    candidates = [os.environ.get("ALERTING_SEEDS_DIR", ""), ROOT.parent / "shared/seeds"]
    candidates.append(ROOT.parent.parent / "shared/seeds")
    for candidate in candidates:
        if candidate and (Path(candidate) / "README.md").is_file():
            return Path(candidate)
    raise AssertionError(f"spec seeds not found; set ALERTING_SEEDS_DIR (looked in {candidates[1:]})")


def spec_alerts(text: str) -> set[str]:
    """Alert names a spec defines: rows of tables headed "Alert", YAML ``- alert:`` entries, and the
    bullets of a "Thresholds" list (spec 004 has no table)."""
    names = set(re.findall(r"^\s*- alert:\s*(\w+)", text, re.M))
    header = None
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")] if line.startswith("|") else None
        if cells is None:
            header = None
        elif header is None:
            header = cells
        elif header[0] == "Alert" and not set(cells[0]) <= set("-: "):
            names.add(cells[0].strip("*"))
    thresholds = re.search(r"\*\*Thresholds:\*\*\n((?:\s+-\s+.*\n)+)", text)
    if thresholds:
        names.update(re.findall(r"-\s+\*\*(.+?):\*\*", thresholds.group(1)))
    return names


def test_readme_table_covers_every_alert_the_specs_define() -> None:
    seeds = seeds_dir()
    rows = readme_rows()
    total = 0
    for spec in sorted(seeds.glob("00*.txt")):
        number = spec.name[:3]
        expected = spec_alerts(spec.read_text())
        total += len(expected)
        assert expected, f"no alerts found in {spec.name}"
        assert {r.as_written for r in rows if r.spec == number} == expected, spec.name
    assert total == 4 + 13 + 4 + 10 + 6


# --- SQL rules on real databases ----------------------------------------------------------------

SQL_RULES = [doc for doc in PACK + DEMO if "sql" in doc.body]


def _fault_for(doc: RuleDoc) -> str | None:
    """The demo fault meant to trigger this rule (a demo rule shares its pack rule's runbook)."""
    target = doc.annotations["runbook_url"].removeprefix(RUNBOOK_BASE)
    return next((name for name, fault in FAULTS.items() if target in fault.rules), None)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    if request.param == "sqlite":
        engine = sqlalchemy.create_engine(f"sqlite:///{tmp_path_factory.mktemp('sql') / 'demo.db'}")
        yield engine
        engine.dispose()
        return
    schema = f"rulepack_{uuid.uuid4().hex[:12]}"
    admin = sqlalchemy.create_engine(PG_URL)
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    engine = sqlalchemy.create_engine(PG_URL, connect_args={"options": f"-csearch_path={schema}"})
    try:
        yield engine
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        admin.dispose()


def run_rule(engine: Any, sql: str, at: float) -> list[dict[str, Any]]:
    # The bind values the SQL datasource passes: the slot as an aware UTC datetime (text on SQLite,
    # which has no timestamp type) and as float unix seconds.
    now: Any = dt.datetime.fromtimestamp(at, tz=dt.UTC)
    if engine.dialect.name == "sqlite":
        now = now.strftime("%Y-%m-%d %H:%M:%S")
    with engine.connect() as conn:
        result = conn.execute(sqlalchemy.text(sql), {"now": now, "now_unix": at})
        return [dict(row._mapping) for row in result]


def test_schema_creates_the_tables_the_rules_read(engine: Any) -> None:
    database.create_schema(engine)
    database.create_schema(engine)  # idempotent, as `make demo` runs it on every start
    assert set(database.TABLES) <= set(sqlalchemy.inspect(engine).get_table_names())


@pytest.mark.parametrize("doc", SQL_RULES, ids=lambda d: d.name)
def test_sql_rule_is_quiet_on_healthy_data_and_fires_on_its_fault(engine: Any, doc: RuleDoc) -> None:
    database.seed(engine, now=NOW)
    for name in DB_FAULTS:
        database.delete_prefix(engine, f"fault-{name}-")
    healthy = run_rule(engine, doc.body["sql"], NOW)
    fault = _fault_for(doc)
    if fault is None:  # the database health check: one row with value 1 while the database answers
        assert doc.body.get("on_error") == "firing"
        assert healthy == [{"value": 1}]
        return
    assert healthy == []
    table, build = DB_FAULTS[fault]
    database.insert(engine, table, build(f"fault-{fault}-", NOW))
    try:
        firing = run_rule(engine, doc.body["sql"], NOW)
        assert len(firing) == 1 and set(firing[0]) == {"value"}
        assert float(firing[0]["value"]) > 0
        # A slot before the fault rows existed does not see them: rules are reproducible in time.
        assert run_rule(engine, doc.body["sql"], NOW - 3 * 86400) == []
    finally:
        database.delete_prefix(engine, f"fault-{fault}-")


# --- Prometheus itself judges the PromQL rules (and the fixes of the specs' expressions) --------

# (alert, input series at 1m steps, eval time, expected alerts' labels; [] = must stay quiet)
PROMTOOL_CASES = [
    (
        "HighAPIErrorRate",
        {'http_request_duration_seconds_count{status="500", path="/v1/recipes/{id}"}': "0+120x30"},
        "20m",
        [{"severity": "P1", "service": "api"}],
    ),
    (
        "HighAPIErrorRate",
        {'http_request_duration_seconds_count{status="500", path="/v1/recipes/{id}"}': "0+30x30"},
        "20m",
        [],
    ),
    (
        "SlowResponses",  # every request takes 7s: p95 lands in the (5, 10] bucket
        {
            'http_request_duration_seconds_bucket{route="/v1/jobs", le="5"}': "0x30",
            'http_request_duration_seconds_bucket{route="/v1/jobs", le="10"}': "0+60x30",
            'http_request_duration_seconds_bucket{route="/v1/jobs", le="+Inf"}': "0+60x30",
        },
        "20m",
        [{"severity": "warning", "service": "api", "route": "/v1/jobs"}],
    ),
    (
        "HighJobFailureRate",  # 30 more FAILED jobs every minute: 0.5/s
        {'jobs_by_status{status="FAILED"}': "0+30x120"},
        "100m",
        [{"severity": "critical", "service": "worker", "status": "FAILED"}],
    ),
    (
        "HighJobFailureRate",  # a gauge that drops and refills (failed jobs cleaned up) is no failure rate
        {'jobs_by_status{status="FAILED"}': " ".join(["100 40"] * 60)},
        "100m",
        [],
    ),
    (
        "SchedulerConcurrencySaturated",  # 2 jobs in each of 4 types: no type alone reaches 5
        {f'scheduler_concurrent_jobs{{job_type="{t}"}}': "2x30" for t in ("A", "B", "C", "D")},
        "20m",
        [{"severity": "info", "service": "scheduler"}],
    ),
    (
        "GenerationSuccessRateLow",  # success counted per user, attempts without labels
        {
            'generation_success_total{user_id="u1"}': "0+25x150",
            'generation_success_total{user_id="u2"}': "0+25x150",
            "generation_attempts_total": "0+100x150",
        },
        "120m",
        [{"severity": "critical", "service": "generation-engine"}],
    ),
    (
        "GenerationEngineSlow",  # two users' histograms: the engine's p99, not one per user
        {
            f'generation_execution_time_seconds_bucket{{user_id="{u}", week_of="2026-W01", le="{le}"}}': v
            for u in ("u1", "u2")
            for le, v in (("1", "0+9x40"), ("2", "0+9x40"), ("5", "0+10x40"), ("+Inf", "0+10x40"))
        },
        "30m",
        [{"severity": "warning", "service": "generation-engine"}],
    ),
]


@pytest.mark.parametrize(
    ("alert", "series", "at", "expected"),
    PROMTOOL_CASES,
    ids=[f"{c[0]}-{'fires' if c[3] else 'quiet'}" for c in PROMTOOL_CASES],
)
def test_promtool_unit_tests_the_promql_rules(
    tmp_path: Path, alert: str, series: dict[str, str], at: str, expected: list[dict[str, str]]
) -> None:
    promtool = shutil.which("promtool")
    assert promtool
    # promtool compares annotations too; the rules are copied without them so that the expected
    # alerts are their labels (templates are the template engine's business).
    rule_files = []
    for file in PROMQL_FILES:
        doc = yaml.safe_load(file.read_text())
        for group in doc["groups"]:
            for rule in group["rules"]:
                rule.pop("annotations", None)
        rule_files.append(str(tmp_path / file.name))
        Path(rule_files[-1]).write_text(yaml.safe_dump(doc))
    test = {
        "rule_files": rule_files,
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [{"series": s, "values": v} for s, v in series.items()],
                "alert_rule_test": [
                    {"eval_time": at, "alertname": alert, "exp_alerts": [{"exp_labels": e} for e in expected]}
                ],
            }
        ],
    }
    (tmp_path / "test.yml").write_text(yaml.safe_dump(test))
    run = subprocess.run(
        [promtool, "test", "rules", str(tmp_path / "test.yml")], capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stdout + run.stderr
