"""HTTP probe rules against a real local HTTP server: healthy is silent, failing says why."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from alerting.config.yamlfile import load_text
from alerting.errors import ConfigError, Position, QueryError, RuleFileError
from alerting.rules.loader import load_file_groups
from alerting.sources import kinds
from alerting.sources.probe import Probe, ProbeSource, check_probe
from tests.support.fakes import LocalCA
from tests.support.httpfake import FakeHTTPServer, Handler, Reply, Request
from tests.support.net import free_port

HEALTHY = {"status": "healthy", "checks": {"database": {"healthy": True}}, "n": [1, 2]}


def by_path(answers: dict[str, Reply]) -> Handler:
    """Answer each path with what the test set for it, anything else with 404."""

    def answer(request: Request) -> Reply:
        return answers.get(request.path, Reply(404, {"error": "no such path"}))

    return answer


@pytest.fixture
def answers() -> dict[str, Reply]:
    return {}


@pytest.fixture
def server(answers: dict[str, Reply]) -> Iterator[FakeHTTPServer]:
    with FakeHTTPServer(by_path(answers)) as fake:
        yield fake


@pytest.fixture
def source() -> Iterator[ProbeSource]:
    src = ProbeSource("probe", {"timeout": "5s", "headers": {"X-Team": "sre"}})
    yield src
    src.close()


def probe(spec: object) -> Probe:
    return check_probe(spec, Position("rules.yml", 1, 1))


@pytest.mark.parametrize(
    ("answer", "spec", "expected"),
    [
        (Reply(200, HEALTHY), {}, None),
        (Reply(204), {"expect_status": "2xx"}, None),
        (Reply(201), {"expect_status": [200, 201]}, None),
        (Reply(500, "oops"), {}, {"error": "status 500", "status_code": "500"}),
        (
            Reply(503, HEALTHY),
            {"expect_json": {"status": "healthy"}},
            {"error": "status 503", "status_code": "503"},
        ),
        (Reply(204), {}, {"error": "status 204", "status_code": "204"}),
        (Reply(200, HEALTHY), {"expect_json": {"status": "healthy", "checks.database.healthy": True}}, None),
        (Reply(200, HEALTHY), {"expect_json": {"n.1": 2}}, None),
        (
            Reply(200, {"status": "unhealthy"}),
            {"expect_json": {"status": "healthy"}},
            {"error": 'json field status is "unhealthy", expected "healthy"', "status_code": "200"},
        ),
        (
            Reply(200, {"checks": {"database": {"healthy": 1}}}),
            {"expect_json": {"checks.database.healthy": True}},
            {"error": "json field checks.database.healthy is 1, expected true", "status_code": "200"},
        ),
        (
            Reply(200, {"status": "healthy"}),
            {"expect_json": {"checks.database.healthy": True}},
            {"error": "json field checks.database.healthy is missing", "status_code": "200"},
        ),
        (
            Reply(200, "<html>fine</html>", {"Content-Type": "text/html"}),
            {"expect_json": {"status": "healthy"}},
            {"error": "invalid JSON", "status_code": "200"},
        ),
        (
            Reply(200, {"status": "x" * 100}),
            {"expect_json": {"status": "healthy"}},
            {"error": f'json field status is "{"x" * 36}..., expected "healthy"', "status_code": "200"},
        ),
        (Reply(200, HEALTHY, delay=2.0), {"timeout": "200ms"}, {"error": "timeout"}),
    ],
    ids=[
        "200-healthy",
        "204-in-2xx",
        "201-in-list",
        "500",
        "503-status-checked-before-json",
        "204-not-default-200",
        "json-fields-match",
        "json-list-index",
        "json-field-mismatch",
        "json-true-is-not-1",
        "json-field-missing",
        "invalid-json",
        "long-value-shortened",
        "timeout",
    ],
)
def test_probe_fires_only_while_unhealthy_and_says_why(
    server: FakeHTTPServer,
    answers: dict[str, Reply],
    source: ProbeSource,
    answer: Reply,
    spec: dict,
    expected: dict | None,
) -> None:
    answers["/health"] = answer
    samples = source.query(probe({"url": f"{server.url}/health", **spec}), time.time())
    if expected is None:
        assert samples == []
        return
    assert len(samples) == 1
    assert dict(samples[0].labels) == {"url": f"{server.url}/health", **expected}
    assert math.isfinite(samples[0].value) and samples[0].value >= 0


def test_connection_refused_is_a_failing_probe_not_a_datasource_error(source: ProbeSource) -> None:
    url = f"http://127.0.0.1:{free_port()}/health"
    [sample] = source.query(probe(url), time.time())
    assert dict(sample.labels) == {"url": url, "error": "connection refused"}


def test_error_label_is_the_same_on_every_tick(
    server: FakeHTTPServer, answers: dict[str, Reply], source: ProbeSource
) -> None:
    answers["/health"] = Reply(200, {"status": "degraded"})
    spec = probe({"url": f"{server.url}/health", "expect_json": {"status": "healthy"}})
    first = source.query(spec, time.time())
    second = source.query(spec, time.time())
    assert first[0].labels == second[0].labels


def test_request_carries_method_headers_and_json_body(
    server: FakeHTTPServer, answers: dict[str, Reply], source: ProbeSource
) -> None:
    answers["/check"] = Reply(200, HEALTHY)
    spec = probe(
        {
            "url": f"{server.url}/check",
            "method": "post",
            "headers": {"Authorization": "Bearer t0k", "X-Team": "payments"},
            "body": {"ping": 1},
        }
    )
    assert source.query(spec, time.time()) == []
    [request] = server.requests
    assert request.method == "POST"
    assert request.headers["authorization"] == "Bearer t0k"
    assert request.headers["x-team"] == "payments"  # the rule's header wins over the datasource's
    assert request.headers["content-type"] == "application/json"
    assert json.loads(request.body) == {"ping": 1}


def test_datasource_headers_are_sent_when_the_rule_sets_none(
    server: FakeHTTPServer, answers: dict[str, Reply], source: ProbeSource
) -> None:
    answers["/health"] = Reply(200)
    source.query(probe(f"{server.url}/health"), time.time())
    assert server.requests[0].headers["x-team"] == "sre"


def test_redirect_fails_unless_followed(
    server: FakeHTTPServer, answers: dict[str, Reply], source: ProbeSource
) -> None:
    answers["/old"] = Reply(302, headers={"Location": "/new"})
    answers["/new"] = Reply(200)
    [sample] = source.query(probe(f"{server.url}/old"), time.time())
    assert sample.labels["error"] == "status 302"
    assert source.query(probe({"url": f"{server.url}/old", "follow_redirects": True}), time.time()) == []


def test_password_in_url_is_masked_in_the_label(source: ProbeSource) -> None:
    url = f"http://user:s3cret@127.0.0.1:{free_port()}/health"
    [sample] = source.query(probe(url), time.time())
    assert "s3cret" not in sample.labels["url"]
    assert sample.labels["url"].startswith("http://user:")


def test_probe_refuses_to_answer_for_a_time_long_past(
    server: FakeHTTPServer, answers: dict[str, Reply], source: ProbeSource
) -> None:
    answers["/health"] = Reply(200)
    with pytest.raises(QueryError, match="present"):
        source.query(probe(f"{server.url}/health"), time.time() - 86400)


def test_checked_probe_is_hashable_and_reads_as_a_mapping() -> None:
    spec = probe({"url": "https://api/health", "expect_status": "2xx", "expect_json": {"status": "ok"}})
    assert hash(spec) == hash(
        probe({"url": "https://api/health", "expect_status": "2xx", "expect_json": {"status": "ok"}})
    )
    assert dict(spec) == {
        "url": "https://api/health",
        "method": "GET",
        "expect_status": ["2xx"],
        "expect_json": {"status": "ok"},
    }


RULE_FILE = """\
groups:
  - name: health
    rules:
      - alert: ApiUnhealthy
        probe:
          url: http://api.internal/health
{extra}
"""


@pytest.mark.parametrize(
    ("extra", "line", "col", "message"),
    [
        ("          methd: GET", 7, 11, 'unknown field "methd" in probe (did you mean "method"?)'),
        ("          method: FETCH", 7, 19, "probe method must be one of"),
        ("          timeout: 10", 7, 20, 'probe timeout: not a valid duration string: "10"'),
        ("          timeout: 0s", 7, 20, "probe timeout must be greater than 0"),
        ("          expect_status: 2xy", 7, 26, 'expect_status takes status codes (200) or classes ("2xx")'),
        ("          expect_status: [200, 700]", 7, 26, "got 700"),
        ("          expect_json: {status: [a]}", 7, 33, "must expect a string, number, boolean or null"),
        ("          expect_json: {a..b: 1}", 7, 25, "dotted field names"),
        ("          headers: {Bad Name: x}", 7, 21, "invalid header name 'Bad Name'"),
        ("          headers: [a]", 7, 20, "probe headers must be a mapping"),
        ("          body: 12", 7, 17, "probe body must be a string or a mapping"),
        ("          headers: {X-Note: caf\u00e9}", 7, 21, 'header "X-Note" must be one line of ASCII text'),
        ("          method: HEAD\n          expect_json: {status: ok}", 8, 24, "HEAD"),
    ],
)
def test_bad_probe_is_reported_at_its_position(
    tmp_path: Path, extra: str, line: int, col: int, message: str
) -> None:
    path = tmp_path / "rules.yml"
    path.write_text(RULE_FILE.format(extra=extra))
    _, problems, _ = load_file_groups(path)
    [problem] = problems
    assert problem.pos == Position(str(path), line, col)
    assert message in problem.message


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("probe: 12", "probe must be a URL or a mapping with a url, got a number"),
        ("probe: {method: GET}", "probe needs a url"),
        ("probe: ftp://x/y", "must be an absolute http:// or https:// URL"),
        ("probe: /health", "must be an absolute http:// or https:// URL"),
    ],
)
def test_probe_without_a_usable_url_is_rejected(text: str, message: str) -> None:
    doc = load_text(text, "rules.yml", RuleFileError)
    with pytest.raises(RuleFileError, match=message):
        check_probe(doc["probe"], doc.at("probe"))


def test_probe_rule_loads_with_its_kind_and_default_datasource(tmp_path: Path) -> None:
    path = tmp_path / "rules.yml"
    path.write_text(RULE_FILE.format(extra="          expect_json: {status: healthy}"))
    [group], problems, _ = load_file_groups(path)
    assert problems == []
    [rule] = group.rules
    assert (rule.kind, rule.datasource) == ("probe", kinds()["probe"].default_datasource)
    assert rule.query == Probe(url="http://api.internal/health", expect_json=(("status", "healthy"),))
    assert rule.query_text == "expect_json={'status': 'healthy'} method=GET url=http://api.internal/health"


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"timeout": "soon"}, "timeout"),
        ({"tls_config": {"verify": False}}, "tls_config takes only"),
        ({"tls_config": {"ca_file": "/nonexistent/ca.pem"}}, "cannot load tls_config files"),
        ({"header": {}}, 'unknown field "header" (did you mean "headers"?)'),
    ],
)
def test_bad_probe_datasource_settings_are_config_errors(config: dict, message: str) -> None:
    with pytest.raises(ConfigError, match='datasource "probe"') as info:
        ProbeSource("probe", config)
    assert message in str(info.value)


def test_https_probe_checks_the_certificate_against_the_configured_ca(ca: LocalCA) -> None:
    with FakeHTTPServer(by_path({"/health": Reply(200)}), ca.server_context) as server:
        spec = probe(f"{server.url}/health")
        assert f"{server.url}/health".startswith("https://")
        untrusting = ProbeSource("probe", {})
        trusting = ProbeSource("probe", {"tls_config": {"ca_file": ca.ca_file}})
        careless = ProbeSource("probe", {"tls_config": {"insecure_skip_verify": True}})
        try:
            [sample] = untrusting.query(spec, time.time())
            assert sample.labels["error"] == "tls certificate verify failed"
            assert trusting.query(spec, time.time()) == []
            assert careless.query(spec, time.time()) == []
        finally:
            for source in (untrusting, trusting, careless):
                source.close()
