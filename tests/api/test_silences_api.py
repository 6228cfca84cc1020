"""Alertmanager's API v2 silences, status and receivers, in-process: the answers Alertmanager 0.25
gives (status codes and texts were taken from a running 0.25), one store shared with the CLI."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from starlette.testclient import TestClient

from alerting.notify.store import NotifyStore
from alerting.routing.matchers import Matcher
from alerting.routing.silences import new_silence
from tests.support.logs import json_log
from tests.support.worker import alerting

FUTURE, LATER, PAST = "2030-01-01T00:00:00Z", "2031-01-01T00:00:00Z", "2020-01-01T00:00:00Z"


def silence(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "matchers": [{"name": "alertname", "value": "DiskFull", "isRegex": False}],
        "startsAt": PAST,
        "endsAt": LATER,
        "createdBy": "ops",
        "comment": "disk swap",
    }
    body.update(overrides)
    return body


ERRORS = [
    # (body, status, answer) as Alertmanager 0.25 answers
    (
        silence(startsAt=LATER, endsAt=FUTURE),
        400,
        "Failed to create silence: start time must be before end time",
    ),
    (silence(endsAt="2021-01-01T00:00:00Z"), 400, "Failed to create silence: end time can't be in the past"),
    (
        silence(matchers=[{"name": "a", "value": "", "isRegex": False}]),
        400,
        "silence invalid: at least one matcher must not match the empty string",
    ),
    (
        silence(matchers=[{"name": "1a", "value": "b", "isRegex": False}]),
        400,
        'silence invalid: invalid label matcher 0: invalid label name "1a"',
    ),
    (silence(matchers=[]), 422, {"code": 612, "message": "matchers in body should have at least 1 items"}),
    (
        {k: v for k, v in silence().items() if k != "createdBy"},
        422,
        {"code": 602, "message": "createdBy in body is required"},
    ),
    (silence(id="6d3f6b5e-0000-4000-8000-000000000000"), 404, "silence not found"),
]


@pytest.mark.parametrize(("body", "status", "answer"), ERRORS)
def test_silences_alertmanager_refuses_are_refused_with_its_status_and_text(
    client: TestClient, body: dict[str, Any], status: int, answer: Any
) -> None:
    response = client.post("/api/v2/silences", json=body)
    assert (response.status_code, response.json()) == (status, answer)


def test_a_bad_regex_is_refused_naming_the_matcher(client: TestClient) -> None:
    response = client.post(
        "/api/v2/silences", json=silence(matchers=[{"name": "a", "value": "(", "isRegex": True}])
    )
    assert response.status_code == 400
    assert response.json().startswith(
        'silence invalid: invalid label matcher 0: invalid regular expression "(": '
    )


@pytest.mark.parametrize("body", [b"{bad", b"[]", b'"x"', b'{"matchers": "a"}'])
def test_malformed_json_is_a_400_in_go_swaggers_shape(client: TestClient, body: bytes) -> None:
    response = client.post("/api/v2/silences", content=body, headers={"content-type": "application/json"})
    answer = response.json()
    if body == b'{"matchers": "a"}':  # the required fields are checked first, as go-swagger does
        assert (response.status_code, answer["code"]) == (422, 602)
        return
    assert (response.status_code, answer["code"]) == (400, 400)
    assert answer["message"].startswith('parsing silence body from "" failed, because ')


def test_a_body_over_the_limit_is_refused_and_stores_nothing(client: TestClient, store: NotifyStore) -> None:
    big = silence(comment="x" * (2 << 20))
    response = client.post("/api/v2/silences", json=big)
    assert response.status_code == 413
    assert store.silences(time.time()) == []


def test_unknown_and_malformed_ids(client: TestClient) -> None:
    unknown = "6d3f6b5e-0000-4000-8000-000000000000"
    assert (
        client.get(f"/api/v2/silence/{unknown}").status_code,
        client.get(f"/api/v2/silence/{unknown}").content,
    ) == (404, b"")
    deleted = client.delete(f"/api/v2/silence/{unknown}")
    assert (deleted.status_code, deleted.json()) == (500, "silence not found")  # 0.25 says 500 here
    bad = client.get("/api/v2/silence/abc")
    assert (bad.status_code, bad.json()) == (
        422,
        {"code": 601, "message": 'silenceID in path must be of type uuid: "abc"'},
    )


def test_a_silence_made_through_the_api_is_listed_fetched_and_expired(
    client: TestClient, store: NotifyStore
) -> None:
    made = client.post("/api/v2/silences", json=silence())
    assert made.status_code == 200
    sid = made.json()["silenceID"]
    got = client.get(f"/api/v2/silence/{sid}").json()
    assert got["status"] == {"state": "active"}
    assert got["matchers"] == [{"isEqual": True, "isRegex": False, "name": "alertname", "value": "DiskFull"}]
    assert (got["createdBy"], got["comment"], got["endsAt"]) == (
        "ops",
        "disk swap",
        "2031-01-01T00:00:00.000Z",
    )
    assert [s["id"] for s in client.get("/api/v2/silences").json()] == [sid]
    # the notification pipeline reads this store: the silence mutes the alert
    stored = store.get_silence(sid)
    assert stored is not None and stored.mutes({"alertname": "DiskFull"}, time.time())

    assert client.delete(f"/api/v2/silence/{sid}").status_code == 200
    assert client.get(f"/api/v2/silence/{sid}").json()["status"] == {"state": "expired"}
    again = client.delete(f"/api/v2/silence/{sid}")
    assert (again.status_code, again.content) == (200, b"")  # Alertmanager 0.25: nothing to do


def test_updating_an_active_silence_keeps_its_id_unless_its_matchers_change(client: TestClient) -> None:
    sid = client.post("/api/v2/silences", json=silence()).json()["silenceID"]
    current = client.get(f"/api/v2/silence/{sid}").json()
    longer = client.post(
        "/api/v2/silences", json=silence(id=sid, startsAt=current["startsAt"], endsAt="2032-01-01T00:00:00Z")
    )
    assert longer.json() == {"silenceID": sid}
    other = silence(id=sid, matchers=[{"name": "alertname", "value": "Other", "isRegex": False}])
    replaced = client.post("/api/v2/silences", json=other).json()["silenceID"]
    assert replaced != sid
    assert client.get(f"/api/v2/silence/{sid}").json()["status"] == {"state": "expired"}


def test_filters_and_order_follow_alertmanager(client: TestClient) -> None:
    soon = client.post("/api/v2/silences", json=silence(endsAt=FUTURE)).json()["silenceID"]
    late = client.post("/api/v2/silences", json=silence()).json()["silenceID"]
    regex = client.post(
        "/api/v2/silences", json=silence(matchers=[{"name": "service", "value": "db|cache", "isRegex": True}])
    ).json()["silenceID"]
    listed = [s["id"] for s in client.get("/api/v2/silences").json()]
    assert listed.index(soon) < listed.index(late)  # active ones ending soonest first
    assert {
        s["id"] for s in client.get("/api/v2/silences", params={"filter": "alertname=DiskFull"}).json()
    } == {soon, late}
    # a filter finds the silences having that very matcher, as Alertmanager 0.25 filters
    found = client.get("/api/v2/silences", params={"filter": 'service=~"db|cache"'}).json()
    assert [s["id"] for s in found] == [regex]
    assert client.get("/api/v2/silences", params={"filter": "service=~db.*"}).json() == []
    assert client.get("/api/v2/silences", params={"filter": "alertname=~Disk.*"}).json() == []
    bad = client.get("/api/v2/silences", params={"filter": "{a"})
    assert (bad.status_code, bad.json()) == (400, "bad matcher format: {a")


def test_cli_and_api_share_one_store(client: TestClient, store: NotifyStore, tmp_path: Path) -> None:
    now = time.time()
    from_cli = new_silence([Matcher("job", "=", "api")], now, now + 3600, "alice", "deploy", now)
    store.put_silence(from_cli)
    assert [s["id"] for s in client.get("/api/v2/silences").json()] == [from_cli.id]
    sid = client.post("/api/v2/silences", json=silence()).json()["silenceID"]
    env = {
        "ALERTING_REDIS_PREFIX": store.silence_key.rsplit(":", 1)[0],
        "ALERTING_CONFIG": str(tmp_path / "none.yml"),
    }
    listed = alerting("silence", "list", "--format", "json", env=env)
    assert listed.returncode == 0, listed.stderr
    assert sid in listed.stdout and from_cli.id in listed.stdout


def test_status_shows_the_configuration_with_secrets_masked(client: TestClient) -> None:
    body = client.get("/api/v2/status").json()
    assert body["cluster"]["status"] == "ready" and len(body["cluster"]["peers"]) == 1
    assert body["versionInfo"]["version"] == "0.1.0"
    original = body["config"]["original"]
    assert "hunter2" not in original and "hooks.slack.com" not in original
    shown = yaml.safe_load(original)
    assert shown["global"]["smtp_auth_password"] == "<secret>"
    assert shown["receivers"][0]["webhook_configs"][0]["http_config"]["basic_auth"] == {
        "username": "u",
        "password": "<secret>",
    }
    assert (
        shown["receivers"][0]["webhook_configs"][0]["url"] == "http://127.0.0.1:1/hook"
    )  # not a secret in 0.25
    assert client.get("/api/v2/receivers").json() == [{"name": "team"}, {"name": "pager"}, {"name": "db"}]


def test_health_ready_and_reload(client: TestClient, config_file: Path) -> None:
    assert (client.get("/-/healthy").text, client.get("/-/ready").text) == ("OK", "OK")
    config_file.write_text(
        config_file.read_text()
        .replace("name: db", "name: database")
        .replace("receiver: db", "receiver: database")
    )
    assert client.post("/-/reload").status_code == 200
    assert client.get("/api/v2/receivers").json()[-1] == {"name": "database"}
    config_file.write_text("route: {receiver: nowhere}\nreceivers: []\n")
    failed = client.post("/-/reload")
    assert failed.status_code == 500 and failed.text.startswith("failed to reload config: ")
    assert client.get("/api/v2/receivers").json()[-1] == {"name": "database"}  # the last good one stays
    assert client.get("/-/reload").status_code == 405


def test_alert_queries_refuse_bad_filters_as_alertmanager(client: TestClient) -> None:
    assert client.get("/api/v2/alerts").json() == []
    bad = client.get("/api/v2/alerts", params={"filter": "{a"})
    assert (bad.status_code, bad.json()) == (400, "bad matcher format: {a")
    assert client.get("/api/v2/alerts/groups", params={"receiver": "("}).status_code == 400


def test_every_silence_change_is_logged_with_its_author_and_client(client: TestClient) -> None:
    with json_log() as logs:
        sid = client.post("/api/v2/silences", json=silence()).json()["silenceID"]
        client.delete(f"/api/v2/silence/{sid}")
    made, expired = logs.records("api.silence_set"), logs.records("api.silence_expired")
    assert [(r["silence_id"], r["created_by"]) for r in made] == [(sid, "ops")]
    assert [r["silence_id"] for r in expired] == [sid]
    assert all(r["client"].startswith("testclient") for r in made + expired)
