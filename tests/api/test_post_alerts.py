"""``POST /api/v2/alerts``: posted alerts join the notification pipeline's aggregation groups, time out
after ``resolve_timeout`` when sent without an end, and bad bodies get Alertmanager 0.25's answers."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from alerting.api.alertmanager import AlertmanagerAPI
from alerting.api.app import build_app
from alerting.api.health import Readiness
from alerting.core import rfc3339
from alerting.notify.pipeline import deliver, flush_due
from alerting.notify.store import NotifyStore
from alerting.worker.compose import load_routing_config
from tests.support.routing_alertmanager import Alertmanager
from tests.support.webhook import WebhookRecorder

T0 = 1_800_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def timed(store: NotifyStore, config_file: Path, clock: Clock) -> Iterator[TestClient]:
    api = AlertmanagerAPI(store, config_file, version="0.1.0", clock=clock)
    readiness = Readiness(redis_url="redis://127.0.0.1:9", broker_url="redis://127.0.0.1:9", timeout=0.2)
    with TestClient(build_app(readiness, None, alertmanager=api), base_url="http://127.0.0.1:9464") as c:
        yield c
    readiness.close()


def shown(client: TestClient, *params: tuple[str, str]) -> list[dict[str, Any]]:
    response = client.get("/api/v2/alerts", params=list(params))
    assert response.status_code == 200
    return list(response.json())


def test_posted_alerts_are_listed_routed_and_grouped(timed: TestClient) -> None:
    alerts = [
        {
            "labels": {"alertname": "DiskFull", "service": "db", "severity": "warning"},
            "annotations": {"a": "b"},
        },
        {"labels": {"alertname": "DiskFull", "service": "web", "severity": "warning"}},
        {"labels": {"alertname": "Down", "severity": "critical"}, "generatorURL": "http://prom/graph"},
    ]
    response = timed.post("/api/v2/alerts", json=alerts)
    assert (response.status_code, response.content) == (200, b"")
    listed = {a["labels"].get("service", "-"): a for a in shown(timed)}
    assert listed["db"]["receivers"] == [{"name": "db"}]
    assert listed["web"]["receivers"] == [{"name": "team"}]
    assert listed["db"]["annotations"] == {"a": "b"}
    assert listed["db"]["startsAt"] == rfc3339(T0)
    assert listed["db"]["endsAt"] == rfc3339(T0 + 300)  # resolve_timeout: 5m
    assert listed["-"]["receivers"] == [{"name": "pager"}]
    assert listed["-"]["generatorURL"] == "http://prom/graph"
    groups = timed.get("/api/v2/alerts/groups").json()
    assert sorted((g["receiver"]["name"], g["labels"]["alertname"], len(g["alerts"])) for g in groups) == [
        ("db", "DiskFull", 1),
        ("pager", "Down", 1),
        ("team", "DiskFull", 1),
    ]


def test_posted_alerts_are_silenced_and_inhibited_like_the_workers_own(timed: TestClient) -> None:
    silence = {
        "matchers": [{"name": "service", "value": "web", "isRegex": False}],
        "startsAt": rfc3339(T0 - 1),
        "endsAt": rfc3339(T0 + 3600),
        "createdBy": "ops",
        "comment": "deploy",
    }
    sid = timed.post("/api/v2/silences", json=silence).json()["silenceID"]
    timed.post(
        "/api/v2/alerts",
        json=[
            {"labels": {"alertname": "Slow", "service": "web", "severity": "info"}},
            {"labels": {"alertname": "Slow", "service": "db", "severity": "warning"}},
            {"labels": {"alertname": "DbDown", "service": "db", "severity": "critical"}},
        ],
    )
    states = {a["labels"]["alertname"] + "/" + a["labels"]["service"]: a["status"] for a in shown(timed)}
    assert states["Slow/web"]["silencedBy"] == [sid]
    assert states["Slow/web"]["state"] == "suppressed"
    assert states["Slow/db"]["state"] == "suppressed" and len(states["Slow/db"]["inhibitedBy"]) == 1
    assert states["DbDown/db"]["state"] == "active"
    assert [
        a["labels"]["alertname"] for a in shown(timed, ("silenced", "false"), ("inhibited", "false"))
    ] == ["DbDown"]


def test_an_alert_sent_without_an_end_resolves_after_resolve_timeout_unless_sent_again(
    timed: TestClient, clock: Clock
) -> None:
    alert = {"labels": {"alertname": "Heartbeat"}}
    timed.post("/api/v2/alerts", json=[alert])
    clock.now = T0 + 200
    assert [a["endsAt"] for a in shown(timed)] == [rfc3339(T0 + 300)]
    timed.post("/api/v2/alerts", json=[alert])  # sent again: the timeout starts over, the start stays
    assert [(a["startsAt"], a["endsAt"]) for a in shown(timed)] == [(rfc3339(T0), rfc3339(T0 + 500))]
    clock.now = T0 + 499
    assert len(shown(timed)) == 1
    clock.now = T0 + 501
    assert shown(timed) == []


def test_a_timed_out_alert_is_notified_as_resolved(store: NotifyStore, tmp_path: Path, clock: Clock) -> None:
    with WebhookRecorder() as hook:
        path = tmp_path / "hook.yml"
        path.write_text(
            "global: {resolve_timeout: 5m}\n"
            "route: {receiver: hook, group_wait: 30s, group_interval: 1m}\n"
            f"receivers: [{{name: hook, webhook_configs: [{{url: '{hook.url}/hook'}}]}}]\n"
        )
        api = AlertmanagerAPI(store, path, clock=clock)
        readiness = Readiness(redis_url="redis://127.0.0.1:9", broker_url="redis://127.0.0.1:9", timeout=0.2)
        config = load_routing_config(path)
        prefix = store.p.removesuffix(":notify")
        with TestClient(build_app(readiness, None, alertmanager=api)) as client:
            client.post("/api/v2/alerts", json=[{"labels": {"alertname": "Heartbeat"}}])
        readiness.close()
        for at in (T0 + 31, T0 + 91, T0 + 331):  # group_wait, then every group_interval
            for job in flush_due(store.r, prefix, config, at):
                deliver(store.r, prefix, config, job, at)
        sent = [(r.body["status"], r.body["alerts"][0]["endsAt"]) for r in hook.delivered()]
        assert sent == [
            ("firing", "0001-01-01T00:00:00Z"),
            ("resolved", rfc3339(T0 + 300, trim_zero_millis=True)),
        ]


def test_an_explicit_end_is_honoured(timed: TestClient, clock: Clock) -> None:
    timed.post(
        "/api/v2/alerts",
        json=[
            {"labels": {"alertname": "A"}, "endsAt": rfc3339(T0 + 60)},
            {"labels": {"alertname": "B"}, "startsAt": rfc3339(T0 - 600), "endsAt": rfc3339(T0 - 10)},
        ],
    )
    assert [(a["labels"]["alertname"], a["endsAt"]) for a in shown(timed)] == [("A", rfc3339(T0 + 60))]
    clock.now = T0 + 61
    assert shown(timed) == []


def test_valid_alerts_of_a_partly_invalid_body_are_kept(timed: TestClient) -> None:
    response = timed.post(
        "/api/v2/alerts",
        json=[{"labels": {"alertname": "Good"}}, {"labels": {}}, {"labels": {"1x": "y"}}],
    )
    assert response.status_code == 400
    assert response.json() == 'at least one label pair required; invalid label set: invalid name "1x"'
    assert [a["labels"] for a in shown(timed)] == [{"alertname": "Good"}]


# Bodies Alertmanager refuses, and what it answers; each is sent to both servers.
REFUSED = [
    pytest.param("[{}]", id="no-labels"),
    pytest.param('[{"labels": null}]', id="null-labels"),
    pytest.param('[{"labels": {}}]', id="empty-labels"),
    pytest.param('[{"labels": {"a": ""}}]', id="only-empty-values"),
    pytest.param('[{"labels": {"a b": "c"}}]', id="bad-label-name"),
    pytest.param('[{"labels": {"a": "b"}, "annotations": {"x y": "z"}}]', id="bad-annotation-name"),
    pytest.param(
        '[{"labels": {"a": "b"}, "startsAt": "2024-01-01T00:00:00Z", "endsAt": "2023-01-01T00:00:00Z"}]',
        id="ends-before-starts",
    ),
    pytest.param('[{"labels": {"a": "b"}, "generatorURL": "x"}]', id="generator-not-a-uri"),
    pytest.param('[{"labels": {"a": "b"}, "generatorURL": "http://x y"}]', id="generator-with-space"),
    pytest.param('{"labels": {"a": "b"}}', id="object-not-array"),
    pytest.param('[{"labels": {"a": 1}}]', id="number-label-value"),
    pytest.param("", id="empty-body"),
    pytest.param('[{"labels": {"a": "b"}}, {"labels": {}}, {"labels": {"1x": "y"}}]', id="partly-invalid"),
]
ACCEPTED = [
    '[{"labels": {"a": "b"}, "generatorURL": "/graph"}]',
    '[{"labels": {"a": "b"}, "startsAt": "2024-01-01T00:00:00"}]',
    '[{"labels": {"a": "b"}, "startsAt": null, "endsAt": null, "annotations": null}]',
    '[{"labels": {"a": "b"}, "unknown": 1}]',
    '[{"labels": {"a": "b"}, "startsAt": "0001-01-01T00:00:00.000Z", "endsAt": "0001-01-01T00:00:00.000Z"}]',
    "[]",
    "null",
]


@pytest.fixture(scope="module")
def alertmanager(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Alertmanager]:
    from tests.api.conftest import CONFIG

    where = tmp_path_factory.mktemp("am")
    (where / "alerting.yml").write_text(CONFIG)
    with Alertmanager(where / "alerting.yml", where) as real:
        yield real


def _answer(response: httpx.Response) -> tuple[int, Any]:
    return response.status_code, response.json() if response.content else None


@pytest.mark.parametrize("body", REFUSED)
def test_refused_bodies_get_alertmanagers_answers(
    body: str, alertmanager: Alertmanager, client: TestClient
) -> None:
    headers = {"Content-Type": "application/json"}
    theirs = _answer(alertmanager.client.post("/api/v2/alerts", content=body, headers=headers))
    mine = client.post("/api/v2/alerts", content=body, headers=headers)
    assert _answer(mine) == theirs  # type: ignore[arg-type]
    assert theirs[0] in (400, 422)


def test_accepted_bodies_are_accepted_by_both(alertmanager: Alertmanager, client: TestClient) -> None:
    for body in ACCEPTED:
        headers = {"Content-Type": "application/json"}
        theirs = alertmanager.client.post("/api/v2/alerts", content=body, headers=headers)
        mine = client.post("/api/v2/alerts", content=body, headers=headers)
        assert (mine.status_code, mine.content) == (theirs.status_code, theirs.content) == (200, b""), body


def test_a_body_that_is_not_json_is_refused_with_415(alertmanager: Alertmanager, client: TestClient) -> None:
    theirs = alertmanager.client.post("/api/v2/alerts", content="a=b", headers={"Content-Type": "text/plain"})
    mine = client.post("/api/v2/alerts", content="a=b", headers={"Content-Type": "text/plain"})
    assert (
        (mine.status_code, mine.json())
        == (theirs.status_code, json.loads(theirs.content))
        == (
            415,
            {
                "code": 415,
                "message": 'unsupported media type "text/plain", only [application/json] are allowed',
            },
        )
    )


def test_a_posted_alert_is_processed_before_the_answer_as_in_alertmanager(
    alertmanager: Alertmanager, client: TestClient
) -> None:
    """Alertmanager 0.25 works an alert's state out when asked, so one just posted is never shown
    "unprocessed"; the worker routes it into its groups before answering, so neither is it there."""
    alert = [{"labels": {"alertname": "JustNow", "service": "web"}}]
    assert alertmanager.client.post("/api/v2/alerts", json=alert).status_code == 200
    assert client.post("/api/v2/alerts", json=alert).status_code == 200
    for params in ({}, {"unprocessed": "false"}):
        query = {"filter": 'alertname="JustNow"', **params}
        theirs = alertmanager.client.get("/api/v2/alerts", params=query).json()
        mine = client.get("/api/v2/alerts", params=query).json()
        assert [a["status"]["state"] for a in mine] == [a["status"]["state"] for a in theirs] == ["active"]


def test_an_alert_sent_again_merges_with_what_was_received_as_in_alertmanager(
    alertmanager: Alertmanager, client: TestClient
) -> None:
    now = float(int(time.time()))

    def alert(name: str, starts: float | None = None, ends: float | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {"labels": {"alertname": name, "case": "merge"}}
        if starts is not None:
            out["startsAt"] = rfc3339(starts)
        if ends is not None:
            out["endsAt"] = rfc3339(ends)
        return out

    batches = [
        # an earlier start stays; a stated later end wins over a nearer one
        [alert("Stated", now - 600, now + 600)],
        [alert("Stated", now - 60, now + 120)],
        # times that do not overlap: the new one replaces the old (no end: a timeout's guess)
        [alert("Guessed", ends=now + 1000)],
        [alert("Guessed", starts=now - 30)],
        # a timeout's guess gives way to a nearer stated end
        [alert("Timeout", starts=now - 300)],
        [alert("Timeout", starts=now - 100, ends=now + 100)],
        # resolved by the newer report
        [alert("Gone", now - 300, now + 600)],
        [alert("Gone", now - 300, now - 10)],
    ]
    for batch in batches:
        assert alertmanager.client.post("/api/v2/alerts", json=batch).status_code == 200
        assert client.post("/api/v2/alerts", json=batch).status_code == 200

    def times(answer: list[dict[str, Any]]) -> dict[str, tuple[str, str]]:
        return {a["labels"]["alertname"]: (a["startsAt"], a["endsAt"]) for a in answer}

    query = {"filter": 'case="merge"'}
    theirs = times(alertmanager.client.get("/api/v2/alerts", params=query).json())
    mine = times(client.get("/api/v2/alerts", params=query).json())
    assert (
        {**mine, "Guessed": mine["Guessed"][0]}
        == {**theirs, "Guessed": theirs["Guessed"][0]}
        == {
            "Stated": (rfc3339(now - 600), rfc3339(now + 600)),
            "Guessed": rfc3339(now - 30),
            "Timeout": (rfc3339(now - 300), rfc3339(now + 100)),
        }
    )
    for side in (mine, theirs):  # the guess: resolve_timeout (5m) after it was received
        guess = datetime.fromisoformat(side["Guessed"][1].replace("Z", "+00:00")).timestamp()
        assert now + 300 <= guess <= time.time() + 300
