"""The pooled standard-library transport under httpx: what it owns (connections, their reuse, the
errors httpx callers handle) against a raw local server that does exactly what each test needs."""

from __future__ import annotations

import gzip
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from alerting import httppool
from tests.support.fakes import make_ca
from tests.support.net import wait_until

Answer = Callable[[socket.socket], bool]  # writes the answer; False closes the connection


def _read_request(conn: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return b""
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        (
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length")
        ),
        0,
    )
    while len(body) < length:
        body += conn.recv(65536)
    return head


@contextmanager
def raw_server(answer: Answer) -> Iterator[tuple[str, list[int]]]:
    """A server on 127.0.0.1 answering each request with ``answer``; yields its URL and the number
    of requests seen on each connection it accepted, in order (a connection it has closed counts
    its requests negated)."""
    listener = socket.create_server(("127.0.0.1", 0))
    seen: list[int] = []

    def serve(conn: socket.socket, index: int) -> None:
        with conn:
            while _read_request(conn):
                seen[index] += 1
                if not answer(conn):
                    break
        seen[index] = -seen[index]

    def accept() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            seen.append(0)
            threading.Thread(target=serve, args=(conn, len(seen) - 1), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}", seen
    finally:
        listener.close()


def ok(body: bytes = b"ok", headers: bytes = b"") -> Answer:
    def answer(conn: socket.socket) -> bool:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n%s" % (len(body), headers, body))
        return True

    return answer


def client(timeout: float = 5.0) -> httpx.Client:
    return httpx.Client(transport=httppool.transport(ssl.create_default_context()), timeout=timeout)


def test_a_connection_is_reused_for_the_next_request() -> None:
    with raw_server(ok()) as (url, seen), client() as http:
        for _ in range(3):
            assert http.post(url + "/hook", content=b"{}").text == "ok"
        assert seen == [3]


def test_an_idle_connection_the_server_closed_is_replaced_without_failing_the_request() -> None:
    def once(conn: socket.socket) -> bool:
        ok()(conn)
        return False  # answer, then hang up: the pooled connection is dead when reused

    with raw_server(once) as (url, seen), client() as http:
        assert http.post(url, content=b"1").status_code == 200
        wait_until(lambda: seen == [-1], timeout=5, what="the server to hang up")
        assert http.post(url, content=b"2").status_code == 200
        wait_until(lambda: seen == [-1, -1], timeout=5, what="the second request, on a new connection")


def test_an_answer_that_says_connection_close_is_not_pooled() -> None:
    with raw_server(ok(headers=b"Connection: close\r\n")) as (url, seen), client() as http:
        http.get(url)
        http.get(url)
    assert len(seen) == 2


def test_a_gzip_answer_is_decoded_and_repeated_headers_are_kept() -> None:
    body = gzip.compress(b'{"ok": true}')
    headers = b"Content-Encoding: gzip\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n"
    with raw_server(ok(body, headers)) as (url, _), client() as http:
        answer = http.get(url)
    assert answer.json() == {"ok": True}
    assert answer.headers.get_list("set-cookie") == ["a=1", "b=2"]


def test_a_chunked_answer_is_read_whole() -> None:
    def chunked(conn: socket.socket) -> bool:
        conn.sendall(
            b"HTTP/1.1 202 Accepted\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
        )
        return True

    with raw_server(chunked) as (url, _), client() as http:
        answer = http.post(url, json={"a": 1})
    assert (answer.status_code, answer.text, answer.reason_phrase) == (202, "abcde", "Accepted")


def test_a_server_that_does_not_answer_is_a_read_timeout() -> None:
    silent = threading.Event()
    with raw_server(lambda conn: silent.wait(5) or True) as (url, _), client(0.3) as http:
        with pytest.raises(httpx.ReadTimeout):  # noqa: SIM117 - the server must outlive the request
            http.post(url, content=b"{}")
        silent.set()


def test_a_refused_connection_is_a_connect_error() -> None:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    with client() as http, pytest.raises(httpx.ConnectError):
        http.get(f"http://127.0.0.1:{port}/")


def test_a_server_that_hangs_up_without_answering_is_a_protocol_error() -> None:
    with (
        raw_server(lambda conn: False) as (url, _),
        client() as http,
        pytest.raises(httpx.RemoteProtocolError),
    ):
        http.post(url, content=b"{}")


def test_an_unknown_certificate_is_a_connect_error(tmp_path: Path) -> None:
    # A TLS server whose certificate nobody trusts: the handshake fails before any request.
    ca = make_ca(tmp_path)
    listener = socket.create_server(("127.0.0.1", 0))

    def accept() -> None:
        try:
            conn, _ = listener.accept()
            with ca.server_context.wrap_socket(conn, server_side=True):
                pass
        except (OSError, ssl.SSLError):
            pass

    threading.Thread(target=accept, daemon=True).start()
    try:
        with client() as http, pytest.raises(httpx.ConnectError):
            http.get(f"https://127.0.0.1:{listener.getsockname()[1]}/")
    finally:
        listener.close()


def test_a_header_that_would_split_the_request_is_refused_before_anything_is_sent() -> None:
    with raw_server(ok()) as (url, seen), client() as http:
        with pytest.raises(httpx.LocalProtocolError):
            http.post(url, content=b"{}", headers={"X-Note": "a\r\nX-Injected: 1"})
        assert http.post(url, content=b"{}").text == "ok"
        assert seen == [1]


def test_an_answer_that_ends_where_the_server_hangs_up_is_read_whole_and_not_pooled() -> None:
    def until_closed(conn: socket.socket) -> bool:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nall of it")
        return False

    with raw_server(until_closed) as (url, seen), client() as http:
        assert http.get(url).text == "all of it"
        assert http.get(url).text == "all of it"
    assert seen == [-1, -1]


def test_an_interim_answer_is_skipped_for_the_one_that_follows() -> None:
    def early_hints(conn: socket.socket) -> bool:
        conn.sendall(b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n")
        conn.sendall(b"HTTP/1.1 201 Created\r\nContent-Length: 4\r\nX-Id: 7\r\n\r\ndone")
        return True

    with raw_server(early_hints) as (url, seen), client() as http:
        answer = http.post(url, content=b"{}")
        assert (answer.status_code, answer.text, answer.headers.get("x-id")) == (201, "done", "7")
        assert "link" not in answer.headers
        assert http.post(url, content=b"{}").status_code == 201
        assert seen == [2]


def test_a_server_that_hangs_up_in_the_middle_of_its_answer_is_a_protocol_error() -> None:
    def cut_short(conn: socket.socket) -> bool:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part")
        return False

    with (
        raw_server(cut_short) as (url, _),
        client() as http,
        pytest.raises(httpx.RemoteProtocolError, match="in the middle of its answer"),
    ):
        http.get(url)


def test_an_answer_that_is_not_http_is_a_protocol_error() -> None:
    def gibberish(conn: socket.socket) -> bool:
        conn.sendall(b"SSH-2.0-OpenSSH_9.2\r\n")
        return False

    with raw_server(gibberish) as (url, _), client() as http, pytest.raises(httpx.RemoteProtocolError):
        http.get(url)


def test_the_answer_to_head_has_no_body_whatever_its_length_says() -> None:
    def head(conn: socket.socket) -> bool:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n")
        return True

    with raw_server(head) as (url, seen), client() as http:
        for _ in range(2):
            answer = http.head(url)
            assert (answer.status_code, answer.headers["content-length"]) == (200, "1234")
            assert answer.content == b""
        assert seen == [2]


def test_a_body_httpx_streams_goes_in_chunks() -> None:
    bodies: list[bytes] = []

    def parts() -> Iterator[bytes]:
        yield b'{"a":'
        yield b"1}"

    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            data = b""
            while not data.endswith(b"0\r\n\r\n"):
                data += conn.recv(65536)
            bodies.append(data)
            ok()(conn)

    threading.Thread(target=serve, daemon=True).start()
    try:
        with client() as http:
            answer = http.post(f"http://127.0.0.1:{listener.getsockname()[1]}/", content=parts())
        assert answer.text == "ok"
    finally:
        listener.close()
    head, _, body = bodies[0].partition(b"\r\n\r\n")
    assert b"transfer-encoding: chunked" in head.lower()
    assert body == b'7\r\n{"a":1}\r\n0\r\n\r\n'


def test_what_a_server_sends_after_its_answer_leaves_the_answer_whole_and_the_connection_unused() -> None:
    def twice(conn: socket.socket) -> bool:
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 500 Oops\r\nContent-Length: 0\r\n\r\n"
        )
        return True

    with raw_server(twice) as (url, seen), client() as http:
        first, second = http.get(url), http.get(url)
        assert (first.status_code, first.text, second.status_code, second.text) == (200, "ok", 200, "ok")
        wait_until(lambda: len(seen) == 2, timeout=5, what="the second request, on a new connection")
