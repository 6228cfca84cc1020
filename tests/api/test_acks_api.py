"""``/api/v1/acks`` on the worker's API address: acknowledge the groups firing matching alerts, list
the acknowledgements, expire one; the same store ``alerting ack`` uses, and who asked is logged."""

from __future__ import annotations

import time
from pathlib import Path

from starlette.testclient import TestClient

from alerting.notify.acks import AckStore
from alerting.notify.base import NotifyAlert
from alerting.notify.pipeline import ingest
from alerting.notify.store import NotifyStore
from alerting.worker.compose import load_routing_config
from tests.support.logs import json_log
from tests.support.worker import alerting


def firing(store: NotifyStore, config_file: Path, **labels: str) -> None:
    alert = NotifyAlert(status="firing", labels=labels, annotations={}, starts_at=time.time())
    ingest(store.r, store.p.removesuffix(":notify"), load_routing_config(config_file), [alert], time.time())


def test_create_list_and_expire_an_acknowledgement(
    client: TestClient, store: NotifyStore, config_file: Path
) -> None:
    firing(store, config_file, alertname="DiskFull", severity="critical", instance="db1")
    firing(store, config_file, alertname="Other", severity="warning")
    with json_log() as logs:
        made = client.post(
            "/api/v1/acks",
            json={
                "matchers": ['alertname="DiskFull"'],
                "createdBy": "alice",
                "comment": "on it",
                "duration": "2h",
            },
        )
    assert made.status_code == 200, made.text
    (ack,) = made.json()
    assert (ack["by"], ack["source"], ack["comment"], ack["alerts"]) == ("alice", "api", "on it", 1)
    assert ack["group_labels"] == {"alertname": "DiskFull"}
    assert [
        (r["created_by"], r["client"].startswith("testclient")) for r in logs.records("api.ack_created")
    ] == [("alice", True)]

    listed = client.get("/api/v1/acks").json()
    assert [a["id"] for a in listed] == [ack["id"]]
    (stored,) = AckStore(store.r, store.p.removesuffix(":notify")).all(time.time())
    assert stored[1].expires_at - stored[1].at == 7200.0

    assert client.delete(f"/api/v1/acks/{ack['id']}").status_code == 200
    assert client.get("/api/v1/acks").json() == []
    assert client.delete(f"/api/v1/acks/{ack['id']}").status_code == 404


def test_bad_requests_say_what_is_wrong(client: TestClient, store: NotifyStore, config_file: Path) -> None:
    firing(store, config_file, alertname="DiskFull", severity="critical")
    cases = [
        ({"createdBy": "a"}, 400, "matchers must be a non-empty list"),
        ({"matchers": ["alertname=DiskFull"]}, 400, "createdBy is required"),
        (
            {"matchers": ["alertname=DiskFull"], "createdBy": "a", "duration": "soon"},
            400,
            "not a valid duration",
        ),
        ({"matchers": ["alertname=~("], "createdBy": "a"}, 400, ""),
        ({"matchers": ["alertname=Nothing"], "createdBy": "a"}, 404, "no alert group has a firing alert"),
    ]
    for body, status, text in cases:
        answer = client.post("/api/v1/acks", json=body)
        assert answer.status_code == status, (body, answer.text)
        assert text in answer.json()["error"]


def test_cli_sees_what_the_api_made(client: TestClient, store: NotifyStore, config_file: Path) -> None:
    firing(store, config_file, alertname="DiskFull", severity="critical")
    client.post("/api/v1/acks", json={"matchers": ["alertname=DiskFull"], "createdBy": "bob"})
    prefix = store.p.removesuffix(":notify")
    listed = alerting(
        "ack", "list", env={"ALERTING_REDIS_PREFIX": prefix, "ALERTING_CONFIG": str(config_file)}
    )
    assert listed.returncode == 0, listed.stderr
    assert "by bob via api" in listed.stdout
