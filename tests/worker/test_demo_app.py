"""The demo app as a real process: it exposes every metric the spec rules read, its faults move
those metrics and write (and remove) database rows, /health has spec 003's shape, and the demo's
Prometheus and docker-compose files hang together."""

from __future__ import annotations

import os
import queue
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import promql_parser
import pytest
import redis
import yaml
from prometheus_client.parser import text_string_to_metric_families

from demo.app import BACKLOG_MESSAGES, FAULTS
from tests.support.net import REDIS_URL

ROOT = Path(__file__).resolve().parents[2]
DEADLINE = 10.0  # seconds to wait for the traffic loop to show a fault's effect


@dataclass(frozen=True)
class Demo:
    url: str
    db_path: Path
    queue: str

    def get(self, path: str) -> httpx.Response:
        return httpx.get(self.url + path, timeout=5)

    def switch(self, fault: str, on: bool) -> httpx.Response:
        if on:
            return httpx.post(f"{self.url}/faults/{fault}", timeout=5)
        return httpx.delete(f"{self.url}/faults/{fault}", timeout=5)

    def samples(self) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        response = self.get("/metrics")
        assert response.status_code == 200
        return {
            (s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(response.text)
            for s in family.samples
        }


def _first_line(stream: Any, timeout: float) -> str:
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: lines.put(stream.readline()), daemon=True).start()
    try:
        return lines.get(timeout=timeout)
    except queue.Empty:
        return ""


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    db_path = tmp_path_factory.mktemp("demo") / "demo.db"
    backlog_queue = f"rulepack-test-{uuid.uuid4().hex}"
    env = dict(
        os.environ,
        PYTHONPATH=str(ROOT),
        DEMO_TICK="0.2",
        DEMO_BROKER_URL=REDIS_URL,
        DEMO_CELERY_QUEUE=backlog_queue,
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "demo.app", "--port", "0", "--database-url", f"sqlite:///{db_path}"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = _first_line(process.stdout, 20)
        assert line.startswith("demo app listening on http://"), line + (
            process.stderr.read() if process.poll() else ""
        )
        yield Demo(line.split()[-1], db_path, backlog_queue)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        redis.Redis.from_url(REDIS_URL).delete(backlog_queue)


@pytest.fixture
def clean(demo: Demo) -> Iterator[Demo]:
    yield demo
    assert httpx.delete(demo.url + "/faults", timeout=10).status_code == 200


def wait_for(check: Callable[[], Any]) -> Any:
    end = time.monotonic() + DEADLINE
    while True:
        result = check()
        if result or time.monotonic() > end:
            return result
        time.sleep(0.1)


def spec_metric_names() -> set[str]:
    """Every series name the PromQL rules of specs 000-002 select (spec 004 reads Kubernetes exporters)."""
    names: set[str] = set()

    def visit(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector) and node.name:
            names.add(node.name)

    for file in ("000-api-llm-router.yml", "001-meal-planner.yml", "002-video-pipeline.yml"):
        for group in yaml.safe_load((ROOT / "rules/prometheus" / file).read_text())["groups"]:
            for rule in group["rules"]:
                promql_parser.walk(promql_parser.parse(rule["expr"]), visit)
    return names


def value(samples: dict[Any, float], name: str, **labels: str) -> float:
    """Sum of the samples named ``name`` whose labels include ``labels``."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= ls)


def test_metrics_expose_every_series_the_spec_rules_read(demo: Demo) -> None:
    exposed = {name for name, _ in demo.samples()}
    assert sorted(spec_metric_names() - exposed) == []


# (fault, what to read from the samples, how it must move once the fault is on)
METRIC_FAULTS = [
    ("errors_5xx", lambda s: value(s, "http_requests_total", status="500"), "grows"),
    ("auth_failures", lambda s: value(s, "auth_attempts_total", status="failed"), "grows"),
    (
        "slow_llm",
        lambda s: (
            value(s, "llm_call_latency_seconds_count")
            - value(s, "llm_call_latency_seconds_bucket", le="10.0")
        ),
        "grows",
    ),
    ("queue_backlog", lambda s: value(s, "job_queue_depth"), "equals 150"),
    ("external_api_down", lambda s: value(s, "api_availability", api="fatsecret"), "equals 0"),
    ("pool_saturated", lambda s: value(s, "database_connection_pool_usage", pool="api"), "equals 0.95"),
    ("generation_failures", lambda s: value(s, "generation_failures_total"), "grows"),
]


@pytest.mark.parametrize(("fault", "read", "effect"), METRIC_FAULTS, ids=[f[0] for f in METRIC_FAULTS])
def test_fault_moves_its_metric(clean: Demo, fault: str, read: Callable[[Any], float], effect: str) -> None:
    before = read(clean.samples())
    assert clean.switch(fault, True).json() == {"fault": fault, "on": True}
    if effect == "grows":
        assert wait_for(lambda: read(clean.samples()) > before)
    else:
        target = float(effect.split()[-1])
        assert before != target
        assert wait_for(lambda: read(clean.samples()) == target)
        clean.switch(fault, False)
        assert wait_for(lambda: read(clean.samples()) != target)


def test_health_has_the_spec_003_shape(demo: Demo) -> None:
    response = demo.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "healthy"
    assert isinstance(body["version"], str) and isinstance(body["uptime_seconds"], int)
    checks = body["checks"]
    assert set(checks) == {"database", "redis", "odoo", "claude_api", "celery_workers"}
    assert checks["database"]["status"] == "up"
    assert set(checks["database"]["connection_pool"]) == {"active", "idle", "max"}
    assert checks["redis"]["status"] == "up"
    assert {"status", "last_successful_call", "daily_spend"} <= set(checks["claude_api"])
    assert {"active_workers", "queued_tasks", "failed_tasks_24h"} <= set(checks["celery_workers"])


def test_unhealthy_fault_answers_503(clean: Demo) -> None:
    clean.switch("unhealthy", True)
    response = clean.get("/health")
    assert (response.status_code, response.json()["status"]) == (503, "unhealthy")


def test_odoo_down_degrades_health_and_fails_odoo_health(clean: Demo) -> None:
    assert clean.get("/odoo/web/health").json() == {"status": "pass"}
    clean.switch("odoo_down", True)
    odoo = clean.get("/odoo/web/health")
    assert (odoo.status_code, odoo.json()) == (503, {"status": "fail"})
    health = clean.get("/health")
    assert (health.status_code, health.json()["status"]) == (200, "degraded")
    assert health.json()["checks"]["odoo"]["status"] == "down"


def test_overspend_writes_a_spend_row_and_removes_it_when_off(clean: Demo) -> None:
    def spend() -> float:
        return float(clean.get("/health").json()["checks"]["claude_api"]["daily_spend"])

    assert spend() < 5
    clean.switch("overspend", True)
    assert spend() > 5
    clean.switch("overspend", False)
    assert spend() < 5


@pytest.mark.parametrize(
    ("fault", "table"),
    [
        ("stuck_approvals", "approvals"),
        ("llm_errors", "llm_calls"),
        ("automation_failures", "automation_runs"),
        ("webhook_lag", "webhook_events"),
    ],
)
def test_database_fault_rows_come_and_go(clean: Demo, fault: str, table: str) -> None:
    def count() -> int:
        with sqlite3.connect(clean.db_path) as conn:
            row = conn.execute(f"SELECT COUNT(*) FROM {table} WHERE id LIKE ?", (f"fault-{fault}-%",))
            return int(row.fetchone()[0])

    assert count() == 0
    clean.switch(fault, True)
    assert count() > 0
    clean.switch(fault, False)
    assert count() == 0


def test_queue_backlog_fills_the_celery_queue_and_drains_it_when_off(clean: Demo) -> None:
    broker = redis.Redis.from_url(REDIS_URL)
    assert broker.llen(clean.queue) == 0
    clean.switch("queue_backlog", True)
    assert broker.llen(clean.queue) == BACKLOG_MESSAGES > 50  # spec 003's backlog threshold
    clean.switch("queue_backlog", False)
    assert broker.llen(clean.queue) == 0


def test_faults_endpoint_lists_every_fault_and_rejects_bad_requests(demo: Demo) -> None:
    listed = demo.get("/faults").json()
    assert set(listed) == set(FAULTS)
    assert all(entry["on"] is False and entry["alerts"] for entry in listed.values())
    assert httpx.post(demo.url + "/faults/no_such_fault", timeout=5).status_code == 404
    assert httpx.post(demo.url + "/faults/errors_5xx", content=b"maybe", timeout=5).status_code == 400
    assert demo.get("/faults").json()["errors_5xx"]["on"] is False
    assert (
        httpx.post(demo.url + "/faults/errors_5xx", content=b'{"on": false}', timeout=5).json()["on"] is False
    )


def test_every_fault_names_alerts_that_exist() -> None:
    shipped = set()
    for path in (ROOT / "rules").rglob("*.yml"):
        for group in yaml.safe_load(path.read_text())["groups"]:
            shipped.update(rule["alert"] for rule in group["rules"])
    assert sorted({a for f in FAULTS.values() for a in f.rules} - shipped) == []


def test_seed_creates_the_schema_and_is_repeatable(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'seed.db'}"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    for _ in range(2):
        run = subprocess.run(
            [sys.executable, "-m", "demo.seed", "--database-url", url],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert run.returncode == 0, run.stderr
    with sqlite3.connect(tmp_path / "seed.db") as conn:
        counts = {
            t: conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in ("approvals", "llm_calls")
        }
    assert counts == {"approvals": 7, "llm_calls": 30}


def test_demo_prometheus_configs_scrape_the_demo_app_every_5s() -> None:
    for name, target in (("prometheus.yml", "127.0.0.1:8000"), ("prometheus.docker.yml", "demo:8000")):
        path = ROOT / "demo" / name
        config = yaml.safe_load(path.read_text())
        assert config["global"]["scrape_interval"] == "5s"
        assert config["scrape_configs"][0]["static_configs"][0]["targets"] == [target]
        promtool = shutil.which("promtool")
        assert promtool
        run = subprocess.run(
            [promtool, "check", "config", str(path)], capture_output=True, text=True, timeout=60
        )
        assert run.returncode == 0, run.stdout + run.stderr


def test_docker_compose_runs_the_whole_stack() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) == {"redis", "postgres", "demo", "prometheus", "worker", "mailpit"}
    assert "--appendonly" in services["redis"]["command"]
    assert services["redis"]["command"][services["redis"]["command"].index("--appendonly") + 1] == "yes"
    assert services["worker"]["command"][:5] == ["celery", "-A", "alerting", "worker", "-B"]
    assert services["demo"]["environment"]["DATABASE_URL"].startswith("postgresql+psycopg://")
    assert services["mailpit"]["image"].startswith("axllent/mailpit")
    for service in services.values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).is_file(), source
    assert (ROOT / services["demo"]["build"]["dockerfile"]).is_file()


def test_demo_readme_documents_every_fault_and_its_alerts() -> None:
    rows = {}
    for line in (ROOT / "demo" / "README.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| `") and len(cells) == 3:
            rows[cells[0].strip("`")] = {a.strip() for a in cells[2].split(",")}
    assert set(rows) == set(FAULTS)
    for name, fault in FAULTS.items():
        assert set(fault.rules) <= rows[name], name


def test_docker_compose_file_is_valid_for_compose_itself(tmp_path: Path) -> None:
    """`docker compose config -q` (or Debian's docker-compose) accepts the file as written."""
    plugin = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True)
    command = ["docker", "compose"] if plugin.returncode == 0 else ["docker-compose"]
    result = subprocess.run(
        [*command, "-f", str(ROOT / "docker-compose.yml"), "config", "-q"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
