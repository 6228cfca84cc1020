"""Requests for httpx clients (and the PagerDuty client's httpx fork) over keep-alive connections
pooled per origin: the request written as it goes on the wire, the answer read by ``httptools``
(llhttp, the HTTP parser Node.js uses, in C).

httpx's own transport (httpcore and h11, pure Python) costs about twice the CPU per request of the
standard library's ``http.client``, and ``http.client`` in turn spends most of its own in Python
around the exchange: checking each header it writes, reading the answer's headers through the
``email`` package. Over ``http.client``, the transport took 0.29 ms of the 0.38 ms of CPU a webhook
post costs through httpx (to a receiver that answers at once); this one takes 0.16 ms of 0.25 ms.
A storm is hundreds of requests a second per process. Everything above the transport
(authentication, redirects, headers, decoding the answer) stays httpx's, as do proxies: a client
with a ``proxy_url`` keeps httpx's transport.

HTTP/1.1 only (as the receivers send anyway). Before a pooled connection is reused, its socket is
checked: an idle connection that has become readable was closed by the server (or sent something
unasked), so it is dropped instead of failing the request.
"""

from __future__ import annotations

import select
import socket
import ssl
import threading
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any

import httptools
import httpx
import httpx2

MAX_IDLE = 128  # idle connections kept per origin: as many as a process has deliveries in flight
READ_SIZE = 65536  # bytes asked of the socket at a time: a receiver's answer, mostly, in one read

# The threads of this process waiting for an answer to a request they sent, and since when
# (time.monotonic()).
_awaiting: dict[int, float] = {}


# Called with a thread's ident as it begins waiting for an answer (see ``on_awaiting``); replaced
# as a whole when one is added or removed, so that a send reads it without a lock.
_listeners: tuple[Callable[[int], None], ...] = ()
_listeners_lock = threading.Lock()


def on_awaiting(listener: Callable[[int], None]) -> Callable[[], None]:
    """Have ``listener(thread)`` called in each thread that has sent a request on one of these
    transports and begins waiting for the answer; returns what removes it again."""
    global _listeners
    with _listeners_lock:
        _listeners = (*_listeners, listener)

    def remove() -> None:
        global _listeners
        with _listeners_lock:
            _listeners = tuple(known for known in _listeners if known is not listener)

    return remove


def awaiting_since(thread: int) -> float | None:
    """Since when the thread ``thread`` (a ``threading.get_ident()``) has been waiting for the
    answer to a request it sent on one of these transports; None while it is not."""
    return _awaiting.get(thread)


def _closed(sock: socket.socket) -> bool:
    """Whether an idle connection is no longer usable: readable (the server closed it, or sent
    something nobody asked for), or its socket is gone."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


def _seconds(timeout: dict[str, float | None], which: str) -> float | None:
    value = timeout.get(which)
    return None if value is None else float(value)


class _Malformed(Exception):
    """The request cannot be written as asked (a header that would split the request)."""


class _HungUp(Exception):
    """The server closed the connection before its answer was complete."""


class _Unasked(Exception):
    """The server began another answer after the one asked for."""


def _head(request: Any) -> bytes:
    """The request line and headers, as they go on the wire. httpx has set Host and the body's
    framing (Content-Length, or Transfer-Encoding for a body it streams)."""
    lines = [b"%s %s HTTP/1.1" % (request.method.encode("ascii"), request.url.raw_path)]
    lines += [b"%s: %s" % pair for pair in request.headers.raw]
    head = b"\r\n".join(lines)
    # A line break or NUL inside a name or value would end the header early, or smuggle another
    # one in: refused, as http.client refuses it.
    breaks = len(lines) - 1
    if head.count(b"\n") != breaks or head.count(b"\r") != breaks or b"\0" in head:
        raise _Malformed("a header name or value holds a line break or NUL")
    return head + b"\r\n\r\n"


def _chunked(body: bytes) -> bytes:
    return b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body) if body else b"0\r\n\r\n"


class _Answer:
    """The answer to one request, as the parser reads it (its callbacks)."""

    __slots__ = ("parser", "reason", "headers", "body", "started", "complete", "keep_alive", "head_only")

    def __init__(self, head_only: bool) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.reason = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []
        self.started = False  # its headers are all read
        self.complete = False
        self.keep_alive = False  # the connection may carry another request
        self.head_only = head_only  # the answer to HEAD: headers only, whatever they announce

    def on_message_begin(self) -> None:
        if self.complete:  # more after the answer, unasked: stop reading (see ``read``)
            raise _Unasked

    def on_status(self, reason: bytes) -> None:
        self.reason = reason

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        if self.head_only and self.parser.get_status_code() >= 200:
            self.complete, self.keep_alive = True, self.parser.should_keep_alive()
        self.started = True

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        if self.parser.get_status_code() < 200:  # 1xx: an interim answer; the real one follows
            self.reason, self.headers, self.body, self.started = b"", [], [], False
            return
        # Read here: once the parser has moved past the answer, it no longer says.
        self.complete, self.keep_alive = True, self.parser.should_keep_alive()

    def read(self, sock: socket.socket) -> None:
        """Read from ``sock`` until the answer is complete. An answer that has no length of its
        own (neither Content-Length nor chunks) ends where the server closes the connection."""
        while not self.complete:
            data = sock.recv(READ_SIZE)
            if not data:
                if self.started and self._until_closed():
                    self.complete = True
                    return
                raise _HungUp(
                    "the server closed the connection "
                    + ("in the middle of its answer" if self.started else "without answering")
                )
            try:
                self.parser.feed_data(data)
            except httptools.HttpParserError:
                if not self.complete:
                    raise
                # The answer is whole, and the server sent more after it: the answer stands, and
                # the connection, no longer in step, is not reused.
                self.keep_alive = False

    def _until_closed(self) -> bool:
        names = {name.lower() for name, _ in self.headers}
        return b"content-length" not in names and b"transfer-encoding" not in names


class PooledTransport:
    """The pool and the request itself, for either httpx flavour (see :func:`transport`)."""

    def __init__(self, lib: ModuleType, context: ssl.SSLContext) -> None:
        self._lib = lib
        self._context = context
        self._idle: dict[tuple[str, str, int, str], list[socket.socket]] = {}
        self._lock = threading.Lock()

    def _checkout(self, origin: tuple[str, str, int, str]) -> socket.socket | None:
        with self._lock:
            idle = self._idle.get(origin)
            while idle:
                sock = idle.pop()
                if not _closed(sock):
                    return sock
                sock.close()
        return None

    def _checkin(self, origin: tuple[str, str, int, str], sock: socket.socket) -> None:
        with self._lock:
            idle = self._idle.setdefault(origin, [])
            if len(idle) < MAX_IDLE:
                idle.append(sock)
                return
        sock.close()

    def _connect(self, origin: tuple[str, str, int, str], connect: float | None) -> socket.socket:
        scheme, host, port, server_name = origin
        lib = self._lib
        sock: socket.socket | None = None
        try:
            sock = socket.create_connection((host, port), timeout=connect)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # a request goes in one write
            if scheme == "https":  # TLS for the named server (tls_config.server_name), else the host
                sock = self._context.wrap_socket(sock, server_hostname=server_name or host)
        except TimeoutError as exc:
            if sock is not None:
                sock.close()
            raise lib.ConnectTimeout(str(exc) or "timed out while connecting") from exc
        except OSError as exc:  # refused, unreachable, no such host, a TLS failure
            if sock is not None:
                sock.close()
            raise lib.ConnectError(f"{type(exc).__name__}: {exc}") from exc
        return sock

    def handle_request(self, request: Any) -> Any:
        lib = self._lib
        url = request.url
        scheme = url.scheme
        server_name = str(request.extensions.get("sni_hostname") or "") if scheme == "https" else ""
        origin = (scheme, url.host, url.port or (443 if scheme == "https" else 80), server_name)
        timeout = request.extensions.get("timeout", {})
        try:
            head = _head(request)
        except _Malformed as exc:
            raise lib.LocalProtocolError(str(exc)) from None
        body = request.read()
        if request.headers.get("transfer-encoding", "").lower() == "chunked":
            body = _chunked(body)
        answer = _Answer(head_only=request.method == "HEAD")
        sock = self._checkout(origin) or self._connect(origin, _seconds(timeout, "connect"))
        try:
            sock.settimeout(_seconds(timeout, "read"))
            sock.sendall(head + body)
            me = threading.get_ident()
            _awaiting[me] = time.monotonic()
            try:
                for listener in _listeners:
                    listener(me)
                answer.read(sock)
            finally:
                del _awaiting[me]
        except TimeoutError as exc:
            sock.close()
            raise lib.ReadTimeout(str(exc) or "timed out waiting for the answer") from exc
        except (_HungUp, httptools.HttpParserError) as exc:  # no answer, or not HTTP
            sock.close()
            raise lib.RemoteProtocolError(f"{type(exc).__name__}: {exc}") from exc
        except OSError as exc:
            sock.close()
            raise lib.ReadError(f"{type(exc).__name__}: {exc}") from exc
        if answer.keep_alive:
            self._checkin(origin, sock)
        else:
            sock.close()
        return lib.Response(
            answer.parser.get_status_code(),
            headers=answer.headers,
            stream=lib.ByteStream(b"".join(answer.body)),
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": answer.reason},
        )

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, {}
        for socks in idle.values():
            for sock in socks:
                sock.close()


class _NoCookies(httpx.Cookies):
    """A jar that keeps nothing an answer sets (see ``LeanRequests``)."""

    def extract_cookies(self, response: Any) -> None:
        return None


class NoCookies2(httpx2.Cookies):
    """The same for an ``httpx2`` client."""

    def extract_cookies(self, response: Any) -> None:
        return None


MERGED_URLS = 64  # request URLs a client remembers as parsed, joined to its base URL


class LeanRequests:
    """For an ``httpx.Client`` or ``httpx2.Client`` subclass (listed before it): two costs of
    httpx's per-request work left out. Together they were half of what httpx itself spent on a
    Prometheus query or a webhook post.

    - No cookie jar. Alertmanager's and Prometheus's HTTP clients keep none either (no receiver or
      datasource API works by cookies), and reading every answer's ``Set-Cookie`` headers into a
      jar cost a request more than building its headers. Cookies given for one request are still
      sent.
    - A URL given as text (``/api/v1/query``, or a whole URL) is parsed and joined to the base URL
      once, not on every request; the last ``MERGED_URLS`` are remembered.
    """

    base_url: Any
    _merge_url: Callable[[Any], Any]
    _no_cookies: Any = _NoCookies()  # an httpx2 client's class sets ``NoCookies2()``

    @property
    def cookies(self) -> Any:
        return self._no_cookies

    @cookies.setter
    def cookies(self, cookies: Any) -> None:
        if cookies:
            raise ValueError("this client keeps no cookies; give them with each request")

    def build_request(self, method: str, url: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(url, str):
            url = self._parsed(url)
        return super().build_request(method, url, *args, **kwargs)  # type: ignore[misc]

    def _parsed(self, url: str) -> Any:
        known: dict[str, Any] | None = self.__dict__.get("_lean_urls")
        if known is None or self.__dict__.get("_lean_base") is not self.base_url:
            known = self.__dict__["_lean_urls"] = {}  # new, or the base URL was changed
            self.__dict__["_lean_base"] = self.base_url
        parsed = known.get(url)
        if parsed is None:
            parsed = self._merge_url(url)
            if len(known) < MERGED_URLS:
                known[url] = parsed
        return parsed


class _HTTPXTransport(PooledTransport, httpx.BaseTransport):
    pass


class _HTTPX2Transport(PooledTransport, httpx2.BaseTransport):
    pass


def transport(context: ssl.SSLContext) -> httpx.BaseTransport:
    """A transport for an ``httpx.Client`` whose TLS is ``context``."""
    return _HTTPXTransport(httpx, context)


def transport2(context: ssl.SSLContext) -> httpx2.BaseTransport:
    """The same for an ``httpx2.Client`` (the PagerDuty client's)."""
    return _HTTPX2Transport(httpx2, context)
