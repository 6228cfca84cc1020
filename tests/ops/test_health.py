"""/healthz and /readyz over real HTTP, against a real Redis that the tests stop and start."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from alerting.api.health import (
    DEFAULT_ADDR,
    HealthServer,
    Readiness,
    http_addr,
    parse_addr,
    reload_status_of,
    start_server,
)
from alerting.config.settings import Settings
from alerting.errors import ConfigError
from alerting.rules import Group, load_paths
from alerting.rules.state import StateStore
from alerting.rules.tick import Evaluator
from alerting.sources.prometheus import PrometheusSource
from alerting.worker.runtime import RuleRegistry
from tests.support.net import REDIS_URL, celery_queue, free_port
from tests.support.promapi import PromAPI
from tests.support.redis_server import RedisServer

GROUP = """\
groups:
  - name: probe
    interval: 1m
    rules:
      - alert: Up
        expr: up == 0
"""


@pytest.fixture
def private_redis() -> Iterator[RedisServer]:
    with RedisServer(appendonly=False) as server:
        yield server


def get(server: HealthServer, path: str) -> tuple[int, dict[str, Any]]:
    response = httpx.get(server.url + path, timeout=10)
    return response.status_code, response.json()


def readiness(url: str, prefix: str, **kwargs: Any) -> Readiness:
    return Readiness(redis_url=url, broker_url=kwargs.pop("broker_url", url), prefix=prefix, **kwargs)


def test_readiness_flips_to_unhealthy_when_redis_stops_and_back_when_it_returns(
    private_redis: RedisServer,
) -> None:
    store = StateStore(redis.Redis.from_url(private_redis.url), "alerting")
    store.hold_leadership("beat-1", 60)
    with HealthServer(("127.0.0.1", 0), readiness(private_redis.url, "alerting", timeout=1)) as server:
        status, body = get(server, "/readyz")
        assert (status, body["status"]) == (200, "healthy"), body

        private_redis.stop()
        status, body = get(server, "/readyz")
        assert (status, body["status"]) == (503, "unhealthy")
        assert body["checks"]["redis"]["status"] == "down"
        assert "Connection" in body["checks"]["redis"]["error"]
        assert get(server, "/healthz")[0] == 200  # alive, just not ready

        private_redis.start()  # an empty Redis: the beat takes its lease again
        store.hold_leadership("beat-1", 60)
        status, body = get(server, "/readyz")
        assert (status, body["status"]) == (200, "healthy"), body


def test_healthy_answer_has_the_enhanced_health_check_shape(redis_client: redis.Redis, prefix: str) -> None:
    StateStore(redis_client, prefix).hold_leadership("host:1:abc", 30)
    queue = celery_queue()
    redis_client.lpush(queue, "m1", "m2")
    try:
        with HealthServer(("127.0.0.1", 0), readiness(REDIS_URL, prefix, queues=(queue,))) as server:
            status, body = get(server, "/readyz")
    finally:
        redis_client.delete(queue)
    assert status == 200
    assert body["status"] == "healthy"
    assert {"version", "uptime_seconds", "checks"} <= set(body)
    checks = body["checks"]
    assert set(checks) == {"redis", "broker", "beat_leader", "datasources"}
    assert checks["redis"]["status"] == "up" and checks["redis"]["latency_ms"] >= 0
    assert checks["redis"]["memory_used_mb"] > 0
    assert checks["broker"]["queued_tasks"] == 2 and checks["broker"]["queues"] == {queue: 2}
    assert checks["beat_leader"]["leader"] == "host:1:abc"
    assert 0 < checks["beat_leader"]["lease_ttl_seconds"] <= 30
    assert checks["datasources"] == {"status": "up", "down": [], "up": []}


@pytest.mark.parametrize(
    ("leader", "broker_up", "status", "failing"),
    [
        (True, True, "healthy", set()),
        (False, True, "unhealthy", {"beat_leader"}),
        (True, False, "unhealthy", {"broker"}),
        (False, False, "unhealthy", {"beat_leader", "broker"}),
    ],
)
def test_critical_checks_decide_between_healthy_and_unhealthy(
    redis_client: redis.Redis, prefix: str, leader: bool, broker_up: bool, status: str, failing: set[str]
) -> None:
    if leader:
        StateStore(redis_client, prefix).hold_leadership("beat", 30)
    broker = REDIS_URL if broker_up else f"redis://127.0.0.1:{free_port()}/0"
    result = readiness(REDIS_URL, prefix, broker_url=broker, timeout=1).run()
    assert result["status"] == status
    assert {name for name, check in result["checks"].items() if check["status"] != "up"} == failing


@pytest.fixture
def led_store(redis_client: redis.Redis, prefix: str) -> StateStore:
    """The state store with a beat holding its lease, as while a worker runs."""
    store = StateStore(redis_client, prefix)
    store.hold_leadership("beat", 30)
    return store


def probe_group(tmp_path: Path) -> Group:
    (tmp_path / "r.yml").write_text(GROUP)
    return load_paths([tmp_path / "r.yml"]).groups[0]


def test_a_datasource_that_is_down_degrades_readiness_but_keeps_it_ready(
    tmp_path: Path, led_store: StateStore, prefix: str, prom_api: PromAPI
) -> None:
    store, group = led_store, probe_group(tmp_path)
    prom_api.down = True
    source = PrometheusSource("prometheus", {"url": prom_api.url, "timeout": "2s"})
    outcome = Evaluator(store, lambda _rule: source, owner="t").tick(group, 1767225600.0)
    assert outcome.datasources_down == ["prometheus"]
    with HealthServer(("127.0.0.1", 0), readiness(REDIS_URL, prefix)) as server:
        status, body = get(server, "/readyz")
    assert (status, body["status"]) == (200, "degraded")
    assert body["checks"]["datasources"] == {"status": "degraded", "down": ["prometheus"], "up": []}


def test_a_broken_rule_file_degrades_readiness_and_names_the_place(
    tmp_path: Path, led_store: StateStore, prefix: str
) -> None:
    path = tmp_path / "r.yml"
    path.write_text(GROUP)
    registry = RuleRegistry((str(tmp_path),), 300.0)
    check = readiness(REDIS_URL, prefix, reload_status=reload_status_of(registry))
    assert check.run()["checks"]["rules"] == {"status": "up", "last_reload_successful": True, "problems": []}
    time.sleep(0.01)
    path.write_text(GROUP.replace("expr: up == 0", "expr: up ==="))
    result = check.run()
    assert result["status"] == "degraded"
    rules = result["checks"]["rules"]
    assert rules["status"] == "degraded" and rules["last_reload_successful"] is False
    assert rules["problems"][0].startswith(f"{path}:6:")


def test_a_group_without_a_recent_evaluation_is_reported_stale(
    tmp_path: Path, led_store: StateStore, prefix: str
) -> None:
    store, group = led_store, probe_group(tmp_path)
    now = time.time()
    store.save_group(group.id, {}, {}, {"last_slot": now - 30, "duration": 0.1, "missed": 0})
    check = readiness(REDIS_URL, prefix, groups=lambda: [group])
    assert check.run()["checks"]["evaluations"] == {"status": "up", "groups": 1, "stale": []}
    store.save_group(group.id, {}, {}, {"last_slot": now - 600, "duration": 0.1, "missed": 0})
    result = check.run()
    assert result["status"] == "degraded"
    (stale,) = result["checks"]["evaluations"]["stale"]
    assert stale["group"] == "probe" and stale["age_seconds"] >= 600


def test_healthz_answers_without_any_dependency_and_unknown_paths_are_404() -> None:
    nowhere = f"redis://127.0.0.1:{free_port()}/0"
    with HealthServer(("127.0.0.1", 0), readiness(nowhere, "x", timeout=1)) as server:
        status, body = get(server, "/healthz")
        assert status == 200 and body["status"] == "alive" and body["pid"] > 0
        status, body = get(server, "/nope")
        assert status == 404 and "/readyz" in body["error"]
        metrics_page = httpx.get(server.url + "/metrics", timeout=10)
        assert metrics_page.status_code == 200
        assert "alerting_state_up 0.0" in metrics_page.text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (DEFAULT_ADDR, ("127.0.0.1", 9464)),
        ("0.0.0.0:9100", ("0.0.0.0", 9100)),
        (":9100", ("0.0.0.0", 9100)),
        ("[::1]:9464", ("::1", 9464)),
        ("off", None),
        ("", None),
    ],
)
def test_listen_address_forms(text: str, expected: tuple[str, int] | None) -> None:
    assert parse_addr(text) == expected


@pytest.mark.parametrize("text", ["9464", "localhost:http", "host:99999"])
def test_a_bad_listen_address_says_what_is_expected(text: str) -> None:
    with pytest.raises(ConfigError, match=r"ALERTING_HTTP_ADDR: expected \"host:port\""):
        parse_addr(text)


def test_the_server_listens_on_loopback_unless_configured(tmp_path: Path) -> None:
    assert http_addr(Settings()) == ("127.0.0.1", 9464)
    settings = Settings.from_env({"ALERTING_REDIS_URL": REDIS_URL})
    server = start_server(settings, addr="127.0.0.1:0", registry=RuleRegistry((str(tmp_path),), 60.0))
    assert server is not None
    try:
        assert server.address[0] == "127.0.0.1"
        assert httpx.get(server.url + "/healthz", timeout=10).status_code == 200
        checks = httpx.get(server.url + "/readyz", timeout=10).json()["checks"]
        assert {"rules", "evaluations"} <= set(checks)  # the registry feeds them
    finally:
        server.stop()
    assert start_server(settings, addr="off") is None


def test_a_port_in_use_does_not_stop_the_worker() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        settings = Settings.from_env({"ALERTING_REDIS_URL": REDIS_URL})
        assert start_server(settings, addr=f"127.0.0.1:{port}") is None
