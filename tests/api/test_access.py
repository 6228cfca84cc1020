"""``ALERTING_WEB_CONFIG``: basic auth and TLS (with client certificates) on the real server, amtool
with its ``--http.config.file``, body limits, the warning for an exposed address, and the
configuration's errors at ``file:line:col`` (at start and in ``alerting check``)."""

from __future__ import annotations

import json
import shutil
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import bcrypt
import httpx
import pytest
import trustme

from alerting.api.alertmanager import AlertmanagerAPI
from alerting.api.health import HealthServer, Readiness, start_server
from alerting.api.webconfig import WebConfig, load_web_config
from alerting.config.settings import Settings
from alerting.core import rfc3339
from alerting.errors import ConfigError
from alerting.notify.store import NotifyStore
from tests.support.logs import json_log
from tests.support.net import REDIS_URL, free_port, wait_until
from tests.support.prometheus import PrometheusServer
from tests.support.worker import alerting

AMTOOL = shutil.which("amtool") or "/usr/bin/amtool"
# Cost 4: the lowest bcrypt allows, so the tests spend no time hashing; the server checks any cost.
HASH = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=4)).decode()


def silence(**extra: Any) -> dict[str, Any]:
    import time

    return {
        "matchers": [{"name": "alertname", "value": "DiskFull", "isRegex": False}],
        "startsAt": rfc3339(time.time()),
        "endsAt": rfc3339(time.time() + 3600),
        "createdBy": "ops",
        "comment": "disk swap",
        **extra,
    }


def serve(store: NotifyStore, config_file: Path, web: WebConfig | None) -> HealthServer:
    readiness = Readiness(redis_url=REDIS_URL, broker_url=REDIS_URL, prefix=store.p.removesuffix(":notify"))
    api = AlertmanagerAPI(store, config_file, version="0.1.0")
    return HealthServer(("127.0.0.1", 0), readiness, alertmanager=api, web_config=web)


@pytest.fixture
def protected(store: NotifyStore, config_file: Path, tmp_path: Path) -> Iterator[HealthServer]:
    path = tmp_path / "web.yml"
    path.write_text(f"basic_auth_users:\n  alice: {HASH}\n")
    with serve(store, config_file, load_web_config(path)) as server:
        yield server


@pytest.mark.parametrize(
    "auth",
    [None, ("alice", "wrong"), ("bob", "s3cret"), ("alice", "")],
    ids=["none", "wrong", "unknown", "empty"],
)
def test_requests_without_valid_credentials_are_refused_and_change_nothing(
    protected: HealthServer, store: NotifyStore, auth: tuple[str, str] | None
) -> None:
    with json_log() as log:
        posted = httpx.post(f"{protected.url}/api/v2/silences", json=silence(), auth=auth)
        listed = httpx.get(f"{protected.url}/api/v2/silences", auth=auth)
        alerts = httpx.post(f"{protected.url}/api/v2/alerts", json=[{"labels": {"a": "b"}}], auth=auth)
        reload = httpx.post(f"{protected.url}/-/reload", auth=auth)
    for response in (posted, listed, alerts, reload):
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith("Basic")
    assert store.silences(0) == []
    assert httpx.get(f"{protected.url}/api/v2/alerts", auth=("alice", "s3cret")).json() == []
    assert not log.records("api.silence_set") and not log.records("api.reloaded")
    assert len(log.records("http.unauthorized")) == 4


def test_the_user_who_made_a_change_is_logged(protected: HealthServer, store: NotifyStore) -> None:
    with json_log() as log:
        posted = httpx.post(f"{protected.url}/api/v2/silences", json=silence(), auth=("alice", "s3cret"))
        sid = posted.json()["silenceID"]
        httpx.post(f"{protected.url}/api/v2/alerts", json=[{"labels": {"a": "b"}}], auth=("alice", "s3cret"))
        httpx.delete(f"{protected.url}/api/v2/silence/{sid}", auth=("alice", "s3cret"))
        httpx.post(f"{protected.url}/-/reload", auth=("alice", "s3cret"))
    assert posted.status_code == 200
    assert [s.id for s in store.silences(0)] == [sid]
    for event in ("api.silence_set", "api.alerts_received", "api.silence_expired", "api.reloaded"):
        assert [r["client"] for r in log.records(event)] == ["alice"], event


def test_without_credentials_configured_changes_are_logged_with_the_remote_address(
    store: NotifyStore, config_file: Path
) -> None:
    with serve(store, config_file, None) as server, json_log() as log:
        httpx.post(f"{server.url}/api/v2/silences", json=silence())
    [record] = log.records("api.silence_set")
    assert record["client"].startswith("127.0.0.1:")


def test_a_body_over_the_limit_is_refused_with_413(protected: HealthServer, store: NotifyStore) -> None:
    big = silence(comment="x" * (2 << 20))
    response = httpx.post(f"{protected.url}/api/v2/silences", json=big, auth=("alice", "s3cret"))
    assert response.status_code == 413
    assert store.silences(0) == []


def test_amtool_uses_its_http_config_file_for_basic_auth(protected: HealthServer, tmp_path: Path) -> None:
    good, bad = tmp_path / "amtool-good.yml", tmp_path / "amtool-bad.yml"
    good.write_text("basic_auth:\n  username: alice\n  password: s3cret\n")
    bad.write_text("basic_auth:\n  username: alice\n  password: nope\n")

    def amtool(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [AMTOOL, f"--alertmanager.url={protected.url}", f"--http.config.file={config}", *args],
            capture_output=True,
            text=True,
            timeout=30,
        )

    added = amtool(good, "silence", "add", "alertname=DiskFull", "--comment=swap", "--author=ops", "-d", "1h")
    assert added.returncode == 0, added.stderr
    queried = amtool(good, "silence", "query", "-o", "json")
    assert [s["id"] for s in json.loads(queried.stdout)] == [added.stdout.strip()]
    refused = amtool(bad, "silence", "query")
    assert refused.returncode != 0
    assert "401" in refused.stdout + refused.stderr or "nauthorized" in refused.stdout + refused.stderr


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def tls_files(tmp_path: Path, ca: trustme.CA) -> None:
    ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(tmp_path / "server.pem")
    ca.cert_pem.write_to_path(tmp_path / "ca.pem")


def test_tls_with_a_client_ca_refuses_clients_without_a_certificate(
    store: NotifyStore, config_file: Path, tmp_path: Path, ca: trustme.CA
) -> None:
    tls_files(tmp_path, ca)
    (tmp_path / "web.yml").write_text(
        "tls_server_config:\n"
        "  cert_file: server.pem\n"
        "  key_file: server.pem\n"
        "  client_ca_file: ca.pem\n"
        "  client_auth_type: RequireAndVerifyClientCert\n"
        "  min_version: TLS12\n"
        "http_server_config:\n"
        "  headers: {Strict-Transport-Security: max-age=31536000}\n"
    )
    web = load_web_config(tmp_path / "web.yml")
    client_cert = ca.issue_cert("ops@example.com")
    trusted = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))
    with_cert = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))
    client_cert.configure_cert(with_cert)
    with serve(store, config_file, web) as server:
        assert server.url.startswith("https://")
        with pytest.raises(httpx.HTTPError):  # the handshake fails (or the connection is closed)
            httpx.post(f"{server.url}/api/v2/silences", json=silence(), verify=trusted)
        assert store.silences(0) == []
        with pytest.raises(httpx.TransportError):  # and plain HTTP gets nowhere
            httpx.get(server.url.replace("https", "http") + "/-/healthy").raise_for_status()
        response = httpx.post(f"{server.url}/api/v2/silences", json=silence(), verify=with_cert)
        assert response.status_code == 200
        assert response.headers["strict-transport-security"] == "max-age=31536000"
    assert len(store.silences(0)) == 1


@pytest.mark.parametrize(
    ("text", "where", "message"),
    [
        (
            "tls_server_config:\n  cert_fil: a.pem\n",
            "2:3",
            'unknown field "cert_fil" in tls_server_config (did you mean "cert_file"?)',
        ),
        ("tls_server_config:\n  cert_file: missing.pem\n  key_file: missing.pem\n", "2:14", "cannot read"),
        ("tls_server_config:\n  cert_file: server.pem\n", "2:3", "key_file is required"),
        (
            "tls_server_config:\n  cert_file: server.pem\n  key_file: server.pem\n  client_auth_type: Any\n",
            "4:21",
            'unknown "Any"',
        ),
        (
            "tls_server_config:\n  cert_file: server.pem\n  key_file: server.pem\n"
            "  client_auth_type: RequireAndVerifyClientCert\n",
            "4:21",
            "needs client_ca_file",
        ),
        (
            "tls_server_config:\n  cert_file: server.pem\n  key_file: server.pem\n  min_version: TLS14\n",
            "4:16",
            'unknown TLS version "TLS14"',
        ),
        ("basic_auth_users:\n  alice: plaintext\n", "2:10", "not a bcrypt hash"),
        ("basic_auth_user:\n  alice: x\n", "1:1", 'did you mean "basic_auth_users"?'),
        ("basic_auth_users: [alice]\n", "1:19", "basic_auth_users must be a mapping"),
        (
            "tls_server_config:\n  cipher_suites: [TLS_AES_128_GCM_SHA256]\n",
            "2:3",
            "cipher_suites is not supported",
        ),
    ],
)
def test_web_config_errors_name_file_line_and_column(
    tmp_path: Path, ca: trustme.CA, text: str, where: str, message: str
) -> None:
    tls_files(tmp_path, ca)
    path = tmp_path / "web.yml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_web_config(path)
    assert str(caught.value).startswith(f"{path}:{where}: "), str(caught.value)
    assert message in str(caught.value)
    checked = alerting("check", "--web-config", str(path), "rules")
    assert checked.returncode == 1
    assert f"{path}:{where}: " in checked.stdout


def test_an_invalid_web_config_keeps_the_endpoints_off_and_says_where(tmp_path: Path) -> None:
    path = tmp_path / "web.yml"
    path.write_text("basic_auth_users:\n  alice: plaintext\n")
    settings = Settings(redis_url=REDIS_URL, http_addr=f"127.0.0.1:{free_port()}", web_config=str(path))
    with json_log() as log:
        assert start_server(settings) is None
    [record] = log.records("http.web_config_invalid")
    assert f"{path}:2:10: " in record["msg"]


@pytest.mark.parametrize(("host", "warned"), [("0.0.0.0", True), ("127.0.0.1", False)])
def test_binding_beyond_loopback_without_credentials_is_warned_about(host: str, warned: bool) -> None:
    settings = Settings(
        redis_url=REDIS_URL, http_addr=f"{host}:{free_port()}", config_path="/nonexistent.yml"
    )
    with json_log() as log:
        server = start_server(settings)
    assert server is not None
    server.stop()
    assert bool(log.records("http.unprotected")) is warned
    if warned:
        assert "ALERTING_WEB_CONFIG" in log.records("http.unprotected")[0]["msg"]


def test_prometheus_sends_alerts_over_tls_with_basic_auth(
    store: NotifyStore, config_file: Path, tmp_path: Path, ca: trustme.CA
) -> None:
    """The README's advice for a protected worker: `scheme: https` and `basic_auth` in Prometheus's
    `alertmanagers` entry."""
    tls_files(tmp_path, ca)
    (tmp_path / "web.yml").write_text(
        "tls_server_config: {cert_file: server.pem, key_file: server.pem}\n"
        f"basic_auth_users: {{alice: '{HASH}'}}\n"
    )
    (tmp_path / "rules.yml").write_text(
        "groups:\n  - name: g\n    rules:\n      - alert: FromPrometheus\n        expr: vector(1)\n"
    )
    with serve(store, config_file, load_web_config(tmp_path / "web.yml")) as server:
        entry = {
            "scheme": "https",
            "basic_auth": {"username": "alice", "password": "s3cret"},
            "tls_config": {"ca_file": str(tmp_path / "ca.pem")},
            "static_configs": [{"targets": [f"127.0.0.1:{server.port}"]}],
        }
        with PrometheusServer(rule_files=[tmp_path / "rules.yml"], alertmanagers=[entry], resend_delay="1s"):
            trusted = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))
            wait_until(
                lambda: (
                    [
                        a["labels"]["alertname"]
                        for a in httpx.get(
                            f"{server.url}/api/v2/alerts", auth=("alice", "s3cret"), verify=trusted
                        ).json()
                    ]
                    == ["FromPrometheus"]
                ),
                timeout=60,
                what="Prometheus's alert at the worker",
            )


def test_alerting_check_reads_the_web_config_the_environment_names(tmp_path: Path, config_file: Path) -> None:
    path = tmp_path / "web.yml"
    path.write_text("basic_auth_users:\n  alice: plaintext\n")
    (tmp_path / "rules").mkdir()
    env = {
        "ALERTING_WEB_CONFIG": str(path),
        "ALERTING_RULES": str(tmp_path / "rules"),
        "ALERTING_CONFIG": str(config_file),
    }
    checked = alerting("check", env=env)
    assert checked.returncode == 1
    assert f"{path}:2:10: basic_auth_users.alice: not a bcrypt hash" in checked.stdout
    path.write_text(f"basic_auth_users:\n  alice: '{HASH}'\n")
    assert alerting("check", env=env).returncode == 0
