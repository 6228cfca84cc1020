"""The Prometheus source: result types, special values, error envelopes, auth and TLS."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import pytest

from alerting.config.settings import Settings, load_datasources
from alerting.errors import ConfigError, DatasourceError, QueryError
from alerting.sources.prometheus import PrometheusSource
from tests.support.fakes import LocalCA
from tests.support.httpfake import FakeHTTPServer, Reply, Request
from tests.support.net import free_port
from tests.support.prometheus import PrometheusServer


@pytest.fixture(scope="module")
def prometheus() -> PrometheusServer:
    with PrometheusServer() as prom:
        yield prom


@pytest.mark.parametrize(
    "expr,expected",
    [
        ('label_replace(vector(1.5), "job", "api", "", "")', [({"job": "api"}, 1.5)]),
        ("vector(0) / 0", [({}, math.nan)]),
        ("vector(1) / 0", [({}, math.inf)]),
        ("vector(-1) / 0", [({}, -math.inf)]),
        ("scalar(vector(7))", [({}, 7.0)]),
        ("vector(1)[0:0] > 5", None),
    ],
)
def test_real_prometheus_results_become_samples(
    prometheus: PrometheusServer, expr: str, expected: list | None
) -> None:
    source = PrometheusSource("prometheus", {"url": prometheus.url})
    if expected is None:
        with pytest.raises(QueryError):
            source.query(expr, 1767225600)
        return
    got = [(dict(s.labels), s.value) for s in source.query(expr, 1767225600)]
    assert len(got) == len(expected)
    for (labels, value), (want_labels, want) in zip(got, expected, strict=True):
        assert labels == want_labels
        assert (math.isnan(value) and math.isnan(want)) or value == want


def test_query_is_sent_with_explicit_time_and_timeout() -> None:
    with FakeHTTPServer(
        lambda r: Reply(body={"status": "success", "data": {"resultType": "vector", "result": []}})
    ) as fake:
        PrometheusSource("p", {"url": fake.url, "timeout": "7s"}).query("up", 1767225600.5)
    form = fake.requests[0].form()
    assert fake.requests[0].path == "/api/v1/query"
    assert form == {"query": ["up"], "time": ["1767225600.500"], "timeout": ["7s"]}


def test_bad_data_is_a_rule_error_with_prometheus_message(prometheus: PrometheusServer) -> None:
    source = PrometheusSource("prometheus", {"url": prometheus.url})
    with pytest.raises(QueryError, match="bad_data: .*parse error"):
        source.query("sum(", 1767225600)


ANSWERS = [
    ("plain-text 503", Reply(503, "Service Unavailable"), "HTTP 503 .*Service Unavailable"),
    (
        "500 error envelope",
        Reply(500, {"status": "error", "errorType": "internal", "error": "boom"}),
        "internal: boom",
    ),
    (
        "timeout envelope",
        Reply(503, {"status": "error", "errorType": "timeout", "error": "query timed out"}),
        "timeout: query timed out",
    ),
    ("malformed JSON", Reply(200, "{not json"), "HTTP 200"),
    (
        "wrong shape",
        Reply(200, {"status": "success", "data": {"resultType": "vector", "result": [{"metric": 1}]}}),
        "malformed query result",
    ),
    ("not an envelope", Reply(200, [1, 2]), "not a Prometheus API envelope"),
    ("slow server", Reply(200, {"status": "success"}, delay=3), "timeout querying"),
]


@pytest.mark.parametrize("name,reply,message", ANSWERS, ids=[a[0] for a in ANSWERS])
def test_server_failures_are_datasource_errors(name: str, reply: Reply, message: str) -> None:
    with FakeHTTPServer(lambda r: reply) as fake:
        source = PrometheusSource("p", {"url": fake.url, "timeout": "1s"})
        with pytest.raises(DatasourceError, match=message) as info:
            source.query("up", 0)
    assert info.value.datasource == "p"


def test_connection_refused_is_a_datasource_error() -> None:
    source = PrometheusSource("p", {"url": f"http://127.0.0.1:{free_port()}"})
    with pytest.raises(DatasourceError, match="cannot reach"):
        source.query("up", 0)


def _ok(request: Request) -> Reply:
    return Reply(body={"status": "success", "data": {"resultType": "scalar", "result": [0, "1"]}})


def test_basic_auth_password_file_and_bearer_token_are_sent(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("s3cret\n")
    with FakeHTTPServer(_ok) as fake:
        PrometheusSource(
            "p", {"url": fake.url, "basic_auth": {"username": "alice", "password_file": str(secret)}}
        ).query("up", 0)
        PrometheusSource("p", {"url": fake.url, "bearer_token": "tok"}).query("up", 0)
    assert fake.requests[0].headers["authorization"] == "Basic YWxpY2U6czNjcmV0"
    assert fake.requests[1].headers["authorization"] == "Bearer tok"


def test_tls_with_custom_ca(ca: LocalCA) -> None:
    with FakeHTTPServer(_ok, ssl_context=ca.server_context) as fake:
        good = PrometheusSource("p", {"url": fake.url, "tls_config": {"ca_file": ca.ca_file}})
        assert [s.value for s in good.query("up", 0)] == [1.0]
        with pytest.raises(DatasourceError, match="cannot reach"):
            PrometheusSource("p", {"url": fake.url}).query("up", 0)


def test_environment_and_datasources_entry_go_through_one_http_config(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("  from-file\n")
    with FakeHTTPServer(_ok) as fake:
        settings = Settings.from_env({"PROMETHEUS_URL": fake.url, "PROMETHEUS_BEARER_TOKEN_FILE": str(token)})
        PrometheusSource("prometheus", settings.prometheus).query("up", 0)
        config = tmp_path / "alerting.yml"
        config.write_text(
            "datasources:\n"
            "  metrics:\n"
            "    type: prometheus\n"
            f"    url: {fake.url}\n"
            "    authorization: {type: Token, credentials_file: " + str(token) + "}\n"
        )
        sources = load_datasources(replace(settings, config_path=str(config)), env={})
        PrometheusSource("metrics", sources["metrics"].options).query("up", 0)
    assert [r.headers["authorization"] for r in fake.requests] == ["Bearer from-file", "Token from-file"]


def test_a_datasources_entry_with_a_bad_http_setting_is_a_located_config_error(tmp_path: Path) -> None:
    config = tmp_path / "alerting.yml"
    config.write_text(
        "datasources:\n"
        "  metrics:\n"
        "    type: prometheus\n"
        "    url: http://127.0.0.1:9\n"
        "    basic_auth: {username: a}\n"
        "    bearer_tokn: b\n"
    )
    sources = load_datasources(Settings(config_path=str(config)), env={})
    with pytest.raises(ConfigError) as caught:
        PrometheusSource("metrics", sources["metrics"].options)
    assert str(caught.value) == (
        f'{config}:6:5: unknown field "bearer_tokn" in datasource "metrics" (did you mean "bearer_token"?)'
    )
