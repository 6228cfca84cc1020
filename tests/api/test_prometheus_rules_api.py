"""``/api/v1/rules``, ``/api/v1/alerts`` and ``/api/v1/status/buildinfo``: the running worker and a real
Prometheus 2.42 evaluating the same rule file answer with the same structure, rule states and alerts
(times and durations normalised); the filters and errors Prometheus has, in-process."""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from alerting.api.app import build_app
from alerting.api.health import Readiness
from alerting.api.prometheus import PrometheusAPI
from alerting.core import RuleHealth
from alerting.notify.store import NotifyStore
from alerting.rules.evaluation import Alert, State
from alerting.rules.loader import load_paths
from alerting.rules.state import StateStore
from tests.support.net import free_port, wait_until
from tests.support.prometheus import PrometheusServer
from tests.support.worker import Worker, worker_env

RULES = """\
groups:
  - name: demo
    interval: 1s
    rules:
      - alert: Always
        expr: label_replace(vector(1), "service", "db", "", "")
        labels: {severity: page}
        annotations: {summary: "{{ $labels.service }} down"}
      - record: demo:value
        expr: label_replace(vector(2), "service", "db", "", "")
        labels: {source: recorded}
      - alert: Slow
        expr: vector(2.5) > 1
        for: 1h
        keep_firing_for: 5m
      - alert: Never
        expr: vector(1) < 0
  - name: other
    interval: 2s
    rules:
      - alert: Twice
        expr: >-
          label_replace(vector(3), "instance", "a", "", "")
          or label_replace(vector(4), "instance", "b", "", "")
"""

_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


def normalised(value: Any, key: str = "") -> Any:
    """Times become "TIME" (or "ZERO" when never set), durations measured "DURATION"; alerts are
    in label order (Prometheus lists a rule's alerts in no particular order)."""
    if isinstance(value, dict):
        return {k: normalised(v, k) for k, v in value.items()}
    if isinstance(value, list):
        items = [normalised(v) for v in value]
        if key == "alerts":
            items.sort(key=lambda a: sorted(a["labels"].items()))
        return items
    if key == "evaluationTime":
        return "DURATION"
    if isinstance(value, str) and _TIME.match(value):
        return "ZERO" if value.startswith("0001-") else "TIME"
    return value


def assert_same_json(mine: Any, theirs: Any, where: str) -> None:
    if mine != theirs:
        a = json.dumps(theirs, indent=1, sort_keys=True).splitlines()
        b = json.dumps(mine, indent=1, sort_keys=True).splitlines()
        diff = "\n".join(difflib.unified_diff(a, b, "prometheus", "worker", lineterm=""))
        pytest.fail(f"{where}:\n{diff}")


def settled(body: dict[str, Any]) -> bool:
    """Every rule evaluated, and the states the rule file leads to reached."""
    rules = {r["name"]: r for g in body["data"]["groups"] for r in g["rules"]}
    return all(r["lastEvaluation"] != "0001-01-01T00:00:00Z" for r in rules.values()) and [
        rules[n]["state"] for n in ("Always", "Slow", "Never", "Twice")
    ] == ["firing", "pending", "inactive", "firing"]


@pytest.mark.e2e
def test_rules_and_alerts_have_prometheus_structure_and_states(tmp_path: Path, store: NotifyStore) -> None:
    rules = tmp_path / "rules.yml"
    rules.write_text(RULES)
    port = free_port()
    ours = f"http://127.0.0.1:{port}"
    (tmp_path / "alerting.yml").write_text("route: {receiver: console}\nreceivers: [{name: console}]\n")
    with PrometheusServer(rule_files=[rules]) as prom:
        env = worker_env(
            tmp_path,
            rules=rules,
            config=tmp_path / "alerting.yml",
            prefix=store.silence_key.rsplit(":", 1)[0],
            prometheus_url=prom.url,
            ALERTING_HTTP_ADDR=f"127.0.0.1:{port}",
        )
        with Worker(env):
            for url in (prom.url, ours):
                wait_until(
                    lambda url=url: settled(httpx.get(f"{url}/api/v1/rules").json()),
                    timeout=60,
                    what=f"the rules' states at {url}",
                )
            answers = {
                path: (httpx.get(f"{prom.url}{path}"), httpx.get(f"{ours}{path}"))
                for path in (
                    "/api/v1/rules",
                    "/api/v1/rules?type=alert",
                    "/api/v1/rules?type=record",
                    "/api/v1/rules?type=nonsense",
                    "/api/v1/alerts",
                )
            }
            theirs_build, mine_build = (
                httpx.get(f"{prom.url}/api/v1/status/buildinfo"),
                httpx.get(f"{ours}/api/v1/status/buildinfo"),
            )
    for path, (theirs, mine) in answers.items():
        assert mine.status_code == theirs.status_code, path
        assert mine.headers["content-type"] == theirs.headers["content-type"] == "application/json"
        if path.endswith("alerts"):  # the same alerts, whatever the order
            key = lambda a: sorted(a["labels"].items())  # noqa: E731
            assert sorted(normalised(mine.json())["data"]["alerts"], key=key) == sorted(
                normalised(theirs.json())["data"]["alerts"], key=key
            )
        else:
            assert_same_json(normalised(mine.json()), normalised(theirs.json()), path)
    assert theirs_build.json()["status"] == mine_build.json()["status"] == "success"
    assert sorted(mine_build.json()["data"]) == sorted(theirs_build.json()["data"])


# --- in-process: filters Prometheus added after 2.42, errors and values --------------------------------


T0 = 1_800_000_000.0


@pytest.fixture
def api_client(tmp_path: Path, store: NotifyStore) -> Iterator[tuple[TestClient, StateStore, list[Any]]]:
    (tmp_path / "rules.yml").write_text(RULES)
    groups = load_paths([tmp_path / "rules.yml"]).groups
    states = StateStore(store.r, store.silence_key.rsplit(":", 1)[0])
    readiness = Readiness(redis_url="redis://127.0.0.1:9", broker_url="redis://127.0.0.1:9", timeout=0.2)
    app = build_app(readiness, None, prometheus=PrometheusAPI(states, lambda: list(groups), "1.2.3"))
    with TestClient(app) as client:
        yield client, states, groups
    readiness.close()


def names(client: TestClient, query: str) -> list[tuple[str, list[str]]]:
    body = client.get(f"/api/v1/rules{query}").json()
    assert body["status"] == "success"
    return [(g["name"], [r["name"] for r in g["rules"]]) for g in body["data"]["groups"]]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", [("demo", ["Always", "demo:value", "Slow", "Never"]), ("other", ["Twice"])]),
        ("?type=alert", [("demo", ["Always", "Slow", "Never"]), ("other", ["Twice"])]),
        ("?type=record", [("demo", ["demo:value"]), ("other", [])]),
        ("?rule_name[]=Slow&rule_name[]=Twice", [("demo", ["Slow"]), ("other", ["Twice"])]),
        ("?rule_group[]=other", [("other", ["Twice"])]),
        ("?rule_name[]=Slow&rule_group[]=other", []),
        ("?file[]=nowhere.yml", []),
    ],
)
def test_rules_are_filtered_by_type_name_group_and_file(
    api_client: tuple[TestClient, StateStore, list[Any]], query: str, expected: list[Any]
) -> None:
    assert names(api_client[0], query) == expected


def test_a_filter_by_file_names_the_rule_file(api_client: tuple[TestClient, StateStore, list[Any]]) -> None:
    client, _, groups = api_client
    assert names(client, f"?file[]={groups[0].file}") == [
        ("demo", ["Always", "demo:value", "Slow", "Never"]),
        ("other", ["Twice"]),
    ]


def test_an_unknown_type_is_prometheus_bad_data_error(
    api_client: tuple[TestClient, StateStore, list[Any]],
) -> None:
    response = api_client[0].get("/api/v1/rules?type=x")
    assert response.status_code == 400
    assert response.json() == {
        "status": "error",
        "errorType": "bad_data",
        "error": 'invalid parameter "type": not supported value "x"',
    }


def test_a_failing_rule_shows_its_error_and_its_frozen_alerts(
    api_client: tuple[TestClient, StateStore, list[Any]],
) -> None:
    client, states, groups = api_client
    demo = groups[0]
    always = demo.rules[0]
    alert = Alert(
        labels=(("alertname", "Always"), ("service", "db"), ("severity", "page")),
        annotations=(("summary", "db down"),),
        state=State.FIRING,
        active_at=T0,
        value=0.25,
    )
    states.save_group(
        demo.id,
        {always.key: {alert.fingerprint: alert}},
        {always.key: RuleHealth("err", "query failed: connection refused", T0 + 60, 0.5)},
        {"last_slot": T0 + 60, "duration": 0.75},
    )
    group = client.get("/api/v1/rules").json()["data"]["groups"][0]
    assert (group["lastEvaluation"], group["evaluationTime"]) == ("2027-01-15T08:01:00.000Z", 0.75)
    rule = group["rules"][0]
    assert (rule["state"], rule["health"], rule["lastError"]) == (
        "firing",
        "err",
        "query failed: connection refused",
    )
    assert rule["alerts"] == [
        {
            "labels": {"alertname": "Always", "service": "db", "severity": "page"},
            "annotations": {"summary": "db down"},
            "state": "firing",
            "activeAt": "2027-01-15T08:00:00.000Z",
            "value": "2.5e-01",
        }
    ]
    assert [r["health"] for r in group["rules"][1:]] == [
        "unknown",
        "unknown",
        "unknown",
    ]  # the others, recording rule too
    assert "lastError" not in group["rules"][1]
    assert client.get("/api/v1/alerts").json()["data"]["alerts"] == rule["alerts"]


def test_sql_and_probe_rules_show_their_spec_as_the_query(tmp_path: Path, store: NotifyStore) -> None:
    (tmp_path / "app.yml").write_text(
        "groups:\n"
        "  - name: app\n"
        "    rules:\n"
        "      - alert: ApprovalsStuck\n"
        "        sql: SELECT team, COUNT(*) AS value FROM approvals GROUP BY team\n"
        "        for: 10m\n"
        "      - alert: ServiceDown\n"
        "        probe: {url: 'http://127.0.0.1:8000/health', timeout: 5s}\n"
    )
    groups = load_paths([tmp_path / "app.yml"]).groups
    states = StateStore(store.r, store.silence_key.rsplit(":", 1)[0])
    readiness = Readiness(redis_url="redis://127.0.0.1:9", broker_url="redis://127.0.0.1:9", timeout=0.2)
    app = build_app(readiness, None, prometheus=PrometheusAPI(states, lambda: list(groups)))
    with TestClient(app) as client:
        [group] = client.get("/api/v1/rules").json()["data"]["groups"]
    readiness.close()
    assert [(r["name"], r["query"], r["duration"], r["health"]) for r in group["rules"]] == [
        ("ApprovalsStuck", "SELECT team, COUNT(*) AS value FROM approvals GROUP BY team", 600, "unknown"),
        ("ServiceDown", "method=GET timeout=5.0 url=http://127.0.0.1:8000/health", 0, "unknown"),
    ]


def test_buildinfo_answers_in_the_envelope(api_client: tuple[TestClient, StateStore, list[Any]]) -> None:
    body = api_client[0].get("/api/v1/status/buildinfo").json()
    assert body["status"] == "success" and body["data"]["version"] == "1.2.3"
