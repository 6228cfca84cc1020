"""The shared transport: http_config parsing, authentication on the wire, secret files, TLS,
Retry-After and pooled clients, against real local servers."""

from __future__ import annotations

import base64
import os
import ssl
import textwrap
import threading
import time
from collections.abc import Iterator
from email.utils import formatdate
from pathlib import Path
from typing import Any

import httpx
import pytest

from alerting import httppool
from alerting.config.yamlfile import load_text
from alerting.errors import ConfigError
from alerting.transport import (
    Authorization,
    HTTPConfig,
    SecretFileError,
    SetupError,
    TLSConfig,
    client_for,
    new_client,
    parse_http_config,
    read_secret_file,
    retry_after,
)
from tests.support.fakes import LocalCA, make_ca
from tests.support.httpfake import FakeHTTPServer, Reply, Request
from tests.support.net import wait_until


def ok(_: Request) -> Reply:
    return Reply(200, "ok")


@pytest.fixture
def server() -> Iterator[FakeHTTPServer]:
    with FakeHTTPServer(ok) as fake:
        yield fake


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def sent_authorization(server: FakeHTTPServer, raw: dict[str, Any]) -> str:
    with new_client(parse_http_config(raw), 5.0) as client:
        client.get(server.url + "/")
    return server.requests[-1].headers.get("authorization", "")


@pytest.mark.parametrize(
    ("raw", "header"),
    [
        ({}, ""),
        ({"basic_auth": {"username": "alice", "password": "pw"}}, basic("alice", "pw")),
        ({"basic_auth": {"username": "alice", "password_file": "{secret}"}}, basic("alice", "s3cret")),
        ({"basic_auth": {"username_file": "{secret}"}}, basic("s3cret", "")),
        ({"authorization": {"credentials": "tok"}}, "Bearer tok"),
        ({"authorization": {"type": "Token", "credentials_file": "{secret}"}}, "Token s3cret"),
        ({"bearer_token": "tok"}, "Bearer tok"),
        ({"bearer_token_file": "{secret}"}, "Bearer s3cret"),
    ],
)
def test_each_kind_of_authentication_reaches_the_server_as_its_header(
    server: FakeHTTPServer, tmp_path: Path, raw: dict[str, Any], header: str
) -> None:
    secret = tmp_path / "secret"
    secret.write_text("s3cret\n")
    text = repr(raw).replace("{secret}", str(secret))
    assert sent_authorization(server, eval(text)) == header  # noqa: S307 - a literal of this test


def test_secret_files_are_read_per_request(server: FakeHTTPServer, tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("first")
    with new_client(parse_http_config({"bearer_token_file": str(token)}), 5.0) as client:
        client.get(server.url + "/")
        token.write_text("second\n")
        client.get(server.url + "/")
        token.unlink()
        with pytest.raises(SetupError, match=f"cannot read bearer_token_file {token}"):
            client.get(server.url + "/")
    assert [r.headers["authorization"] for r in server.requests] == ["Bearer first", "Bearer second"]


class TokenEndpoint:
    """An OAuth 2 token endpoint handing out numbered tokens that live ``lifetime`` seconds."""

    def __init__(self, lifetime: float) -> None:
        self.lifetime = lifetime
        self.issued = 0

    def __call__(self, request: Request) -> Reply:
        if request.basic_auth() != ("client-a", "shh") or request.form()["grant_type"] != [
            "client_credentials"
        ]:
            return Reply(401, {"error": "invalid_client"})
        self.issued += 1
        return Reply(
            200, {"access_token": f"t{self.issued}", "token_type": "bearer", "expires_in": self.lifetime}
        )


@pytest.mark.parametrize(
    ("lifetime", "tokens"),
    [
        (3600, ["Bearer t1", "Bearer t1"]),  # reused while valid
        (10, ["Bearer t1", "Bearer t2"]),  # within the expiry margin: expired at once, fetched anew
    ],
)
def test_oauth2_client_credentials_token_is_reused_until_it_expires(
    server: FakeHTTPServer, tmp_path: Path, lifetime: float, tokens: list[str]
) -> None:
    secret = tmp_path / "client-secret"
    secret.write_text("shh\n")
    endpoint = TokenEndpoint(lifetime)
    with FakeHTTPServer(endpoint) as issuer:
        raw = {
            "oauth2": {
                "client_id": "client-a",
                "client_secret_file": str(secret),
                "token_url": issuer.url + "/token",
                "scopes": ["read", "write"],
                "endpoint_params": {"audience": "alerts"},
            }
        }
        with new_client(parse_http_config(raw), 5.0) as client:
            client.get(server.url + "/")
            client.get(server.url + "/")
        form = issuer.requests[0].form()
    assert [r.headers["authorization"] for r in server.requests] == tokens
    assert endpoint.issued == len(set(tokens))
    assert form["scope"] == ["read write"] and form["audience"] == ["alerts"]


def test_a_refused_oauth2_token_is_a_setup_error(server: FakeHTTPServer) -> None:
    with FakeHTTPServer(lambda _: Reply(401, {"error": "invalid_client"})) as issuer:
        raw = {"oauth2": {"client_id": "x", "client_secret": "y", "token_url": issuer.url + "/token"}}
        with new_client(parse_http_config(raw), 5.0) as client, pytest.raises(SetupError, match="HTTP 401"):
            client.get(server.url + "/")
    assert server.requests == []


def test_secret_files_lose_surrounding_whitespace_only(tmp_path: Path) -> None:
    path = tmp_path / "s"
    path.write_text("  tok en \t\n\n")
    assert read_secret_file(str(path), "password_file") == "tok en"
    with pytest.raises(SecretFileError, match=f"cannot read password_file {tmp_path}/nope: No such file"):
        read_secret_file(str(tmp_path / "nope"), "password_file")


@pytest.fixture
def named_ca(tmp_path: Path) -> LocalCA:
    return make_ca(tmp_path, "hooks.internal.example")


def test_server_name_is_sent_in_sni_and_the_certificate_is_checked_against_it(named_ca: LocalCA) -> None:
    seen: list[str | None] = []
    named_ca.server_context.sni_callback = lambda _sock, name, _ctx: seen.append(name)  # type: ignore[assignment,misc,return-value]
    with FakeHTTPServer(ok, named_ca.server_context) as server:
        tls = {"ca_file": named_ca.ca_file}
        unnamed = new_client(parse_http_config({"tls_config": tls}), 5.0)
        with unnamed as client, pytest.raises(httpx.ConnectError, match="certificate"):
            client.get(server.url + "/")
        named = {"tls_config": {**tls, "server_name": "hooks.internal.example"}}
        with new_client(parse_http_config(named), 5.0) as client:
            assert client.get(server.url + "/").status_code == 200
    assert seen[-1] == "hooks.internal.example"


def test_min_version_refuses_a_server_that_speaks_only_an_older_tls(tmp_path: Path) -> None:
    ca = make_ca(tmp_path)
    ca.server_context.maximum_version = ssl.TLSVersion.TLSv1_2
    with FakeHTTPServer(ok, ca.server_context) as server:
        for version, works in (("TLS12", True), ("TLS13", False)):
            raw = {"tls_config": {"ca_file": ca.ca_file, "min_version": version}}
            with new_client(parse_http_config(raw), 5.0) as client:
                if works:
                    assert client.get(server.url + "/").status_code == 200
                else:
                    with pytest.raises(httpx.ConnectError):
                        client.get(server.url + "/")


def test_insecure_skip_verify_accepts_an_unknown_certificate(tmp_path: Path) -> None:
    ca = make_ca(tmp_path, "elsewhere.example")
    with FakeHTTPServer(ok, ca.server_context) as server:
        raw = {"tls_config": {"insecure_skip_verify": True}}
        with new_client(parse_http_config(raw), 5.0) as client:
            assert client.get(server.url + "/").status_code == 200


NOW = 1_700_000_000.0


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"Retry-After": "30"}, 30.0),
        ({"retry-after": " 7 "}, 7.0),
        ({"Retry-After": ["12"]}, 12.0),
        ({"Retry-After": formatdate(NOW + 120, usegmt=True)}, 120.0),
        ({"Retry-After": formatdate(NOW - 120, usegmt=True)}, 0.0),
        ({"Retry-After": "-5"}, 0.0),
        ({"Retry-After": "soon"}, None),
        ({"Retry-After": ""}, None),
        ({"Retry-After": "inf"}, None),
        ({}, None),
        (None, None),
    ],
)
def test_retry_after_reads_seconds_and_http_dates(
    headers: dict[str, Any] | None, seconds: float | None
) -> None:
    assert retry_after(headers, now=NOW) == seconds


def test_retry_after_of_a_real_answer_counts_from_now(server: FakeHTTPServer) -> None:
    server.fail_next(Reply(503, "busy", {"Retry-After": formatdate(time.time() + 60, usegmt=True)}))
    with new_client(HTTPConfig(), 5.0) as client:
        after = retry_after(client.get(server.url + "/").headers)
    assert after is not None and 55 <= after <= 60


def test_one_pooled_client_per_destination_reuses_its_connection() -> None:
    connections = 0
    with FakeHTTPServer(ok) as server:
        accept = server.server.get_request

        def counted() -> Any:
            nonlocal connections
            connections += 1
            return accept()

        server.server.get_request = counted  # type: ignore[method-assign]
        http = parse_http_config({"follow_redirects": False})
        client = client_for(http, 7.0)
        assert client_for(parse_http_config({"follow_redirects": False}), 7.0) is client
        assert client_for(http, 8.0) is not client and client_for(HTTPConfig(), 7.0) is not client
        client.post(server.url + "/a", content=b"1")
        client.post(server.url + "/b", content=b"2")
    assert connections == 1 and [r.path for r in server.requests] == ["/a", "/b"]


def test_a_cookie_an_answer_sets_is_not_sent_back(server: FakeHTTPServer) -> None:
    """Like Alertmanager's and Prometheus's clients, ours keep no cookie jar; a request's own
    cookies still go out."""
    server.fail_next(Reply(200, "ok", {"Set-Cookie": "session=abc; Path=/"}))
    with new_client(HTTPConfig(), 5.0) as client:
        assert client.get(server.url + "/first").headers["set-cookie"].startswith("session=abc")
        client.get(server.url + "/second")
        client.send(client.build_request("GET", server.url + "/third", cookies={"mine": "1"}))
        with pytest.raises(ValueError, match="no cookies"):
            client.cookies = {"session": "abc"}
    assert [r.headers.get("cookie") for r in server.requests] == [None, None, "mine=1"]


def test_a_thread_waiting_for_an_answer_is_known_as_such_until_it_has_it() -> None:
    """What the deliveries' admission reads to tell a send held up by its receiver from one at work."""
    sent, answer = threading.Event(), threading.Event()

    def held(_: Request) -> Reply:
        sent.set()
        answer.wait(30)
        return Reply(200, "ok")

    caller: list[int] = []

    def request(client: Any, url: str) -> None:
        caller.append(threading.get_ident())
        client.get(url)

    with FakeHTTPServer(held) as server, new_client(HTTPConfig(), 10.0) as client:
        before = time.monotonic()
        thread = threading.Thread(target=request, args=(client, server.url + "/slow"))
        thread.start()
        assert sent.wait(10)
        since = wait_until(lambda: httppool.awaiting_since(caller[0]), timeout=10, what="the wait noted")
        assert isinstance(since, float) and before <= since <= time.monotonic()
        assert httppool.awaiting_since(threading.get_ident()) is None  # this thread sent nothing
        answer.set()
        thread.join(10)
        assert httppool.awaiting_since(caller[0]) is None


def test_listeners_hear_of_each_thread_that_begins_waiting_for_an_answer_until_removed() -> None:
    """What lets the deliveries' admission start the next send as soon as one waits on a slow
    receiver: the listener runs in the sending thread, with its wait already noted."""
    heard: list[tuple[int, float | None]] = []

    def listener(thread: int) -> None:
        heard.append((thread, httppool.awaiting_since(thread)))

    remove = httppool.on_awaiting(listener)
    try:
        with FakeHTTPServer(ok) as server, new_client(HTTPConfig(), 5.0) as client:
            client.get(server.url + "/first")
            client.get(server.url + "/second")
            remove()
            client.get(server.url + "/third")
    finally:
        remove()
    me = threading.get_ident()
    assert [thread for thread, _ in heard] == [me, me]
    assert all(isinstance(since, float) for _, since in heard)


def test_relative_urls_join_the_base_url_however_many_and_after_it_changes() -> None:
    paths = [f"/api/{i}" for i in range(100)]  # more than a client remembers joined
    with FakeHTTPServer(ok) as first, FakeHTTPServer(ok) as second:
        client = new_client(HTTPConfig(), 5.0, base_url=first.url + "/prefix")
        for path in paths + paths:
            client.post(path, data={"query": "up"}, params={"n": path})
        client.base_url = httpx.URL(second.url + "/other")
        client.get("/api/0")
        client.get(second.url + "/absolute")
        client.close()
    assert [(r.path, r.query["n"][0]) for r in first.requests] == [(f"/prefix{p}", p) for p in paths + paths]
    assert [r.path for r in second.requests] == ["/other/api/0", "/absolute"]


def test_a_forked_child_does_not_share_the_parents_clients() -> None:
    http = HTTPConfig(proxy_url="")
    parent = client_for(http, 3.0)
    pid = os.fork()
    if pid == 0:  # the child: exit status says whether it got a client of its own
        os._exit(0 if client_for(http, 3.0) is not parent else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert client_for(http, 3.0) is parent


def test_parsed_config_is_frozen_data_and_bearer_token_is_the_older_spelling() -> None:
    old = parse_http_config({"bearer_token": "t"})
    new = parse_http_config({"authorization": {"credentials": "t"}})
    assert old == new and old.authorization == Authorization("Bearer", "t", "")
    assert hash(old) == hash(new)
    defaults = parse_http_config(None)
    assert defaults == HTTPConfig() and defaults.follow_redirects and defaults.tls_config == TLSConfig()


def located_error(body: str) -> str:
    doc = load_text(
        "http_config:\n" + textwrap.indent(textwrap.dedent(body), "  "), "alerting.yml", ConfigError
    )
    with pytest.raises(ConfigError) as caught:
        parse_http_config(doc["http_config"], "http_config", doc.at("http_config"))
    return str(caught.value)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            "tls_config:\n  ca_fil: /ca.pem\n",
            'alerting.yml:3:5: unknown field "ca_fil" in http_config tls_config (did you mean "ca_file"?)',
        ),
        (
            "bearer_tokn: x\n",
            'alerting.yml:2:3: unknown field "bearer_tokn" in http_config (did you mean "bearer_token"?)',
        ),
        (
            "basic_auth: {username: u}\nbearer_token: t\n",
            "alerting.yml:3:17: http_config: use only one of basic_auth, authorization and bearer_token"
            " (or oauth2), got basic_auth and bearer_token",
        ),
        (
            "authorization: {credentials: c}\noauth2: {client_id: i, token_url: 'http://t'}\n",
            "alerting.yml:3:11: http_config: use only one of basic_auth, authorization and bearer_token"
            " (or oauth2), got authorization and oauth2",
        ),
        (
            "bearer_token: a\nbearer_token_file: /b\n",
            "alerting.yml:3:22: http_config: use bearer_token or bearer_token_file, not both",
        ),
        (
            "authorization: {type: basic, credentials: c}\n",
            "alerting.yml:2:25: http_config: authorization type Basic is not allowed: use basic_auth",
        ),
        (
            "tls_config: {min_version: TLS9}\n",
            "alerting.yml:2:29: http_config tls_config: unknown TLS version 'TLS9' in min_version"
            " (use TLS10, TLS11, TLS12, TLS13)",
        ),
        (
            "tls_config: {min_version: TLS13, max_version: TLS12}\n",
            "alerting.yml:2:49: http_config tls_config: max_version TLS12 is older than min_version TLS13",
        ),
        (
            "tls_config: {cert_file: /c.pem}\n",
            "alerting.yml:2:27: http_config tls_config: cert_file and key_file go together"
            " (only cert_file is set)",
        ),
        (
            "oauth2: {client_id: i}\n",
            "alerting.yml:2:11: http_config oauth2: token_url (an http(s) URL) is required",
        ),
        (
            "basic_auth: {password: p}\n",
            "alerting.yml:2:15: http_config: basic_auth needs a username (or username_file)",
        ),
        (
            "follow_redirects: sometimes\n",
            "alerting.yml:2:21: http_config: follow_redirects must be true or false",
        ),
    ],
)
def test_config_errors_name_the_file_line_and_column(body: str, message: str) -> None:
    assert located_error(body).startswith(message)


def test_a_proxy_url_prometheus_accepts_loads_and_fails_each_request_by_name() -> None:
    # Alertmanager loads `proxy_url: foo` (Go parses it as a URL); no request can go through it.
    http = parse_http_config({"proxy_url": "foo"})
    assert http.proxy_url == "foo"
    with pytest.raises(SetupError, match="proxy_url 'foo' is not an http"):
        new_client(http, 5.0)
