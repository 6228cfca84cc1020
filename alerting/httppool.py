"""Requests over the standard library's ``http.client``, for httpx clients (and the PagerDuty
client's httpx fork): a transport with keep-alive connections pooled per origin.

httpx's own transport (httpcore and h11, pure Python) costs about twice the CPU per request of
``http.client``, and a storm is hundreds of requests a second per process: the difference was a
third of a notification's delivery CPU. Everything above the transport (authentication, redirects,
headers, decoding the answer) stays httpx's, as do proxies: a client with a ``proxy_url`` keeps
httpx's transport.

HTTP/1.1 only (as the receivers send anyway). Before a pooled connection is reused, its socket is
checked: an idle connection that has become readable was closed by the server (or sent something
unasked), so it is dropped instead of failing the request.
"""

from __future__ import annotations

import http.client
import select
import ssl
import threading
import time
from collections.abc import Callable, Iterable
from types import ModuleType
from typing import Any

import httpx
import httpx2

MAX_IDLE = 128  # idle connections kept per origin: as many as a process has deliveries in flight

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


class _TLSConnection(http.client.HTTPSConnection):
    """An HTTPS connection that may name another server than the host it connects to (SNI and the
    certificate check: ``tls_config.server_name``)."""

    def __init__(
        self, host: str, port: int, *, context: ssl.SSLContext, server_name: str, timeout: float | None
    ) -> None:
        super().__init__(host, port, context=context, timeout=timeout)
        self._tls = context
        self._server_name = server_name or host

    def connect(self) -> None:
        # As http.client's own, which also turns Nagle's algorithm off, then TLS for the named server.
        http.client.HTTPConnection.connect(self)
        self.sock = self._tls.wrap_socket(self.sock, server_hostname=self._server_name)


def _closed(conn: http.client.HTTPConnection) -> bool:
    """Whether an idle connection is no longer usable: its socket is gone, or readable (the server
    closed it, or sent something nobody asked for)."""
    sock = conn.sock
    if sock is None:
        return True
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


def _seconds(timeout: dict[str, float | None], which: str) -> float | None:
    value = timeout.get(which)
    return None if value is None else float(value)


class StdlibTransport:
    """The pool and the request itself, for either httpx flavour (see :func:`transport`)."""

    def __init__(self, lib: ModuleType, context: ssl.SSLContext) -> None:
        self._lib = lib
        self._context = context
        self._idle: dict[tuple[str, str, int, str], list[http.client.HTTPConnection]] = {}
        self._lock = threading.Lock()

    def _checkout(self, origin: tuple[str, str, int, str]) -> http.client.HTTPConnection | None:
        with self._lock:
            idle = self._idle.get(origin)
            while idle:
                conn = idle.pop()
                if not _closed(conn):
                    return conn
                conn.close()
        return None

    def _checkin(self, origin: tuple[str, str, int, str], conn: http.client.HTTPConnection) -> None:
        with self._lock:
            idle = self._idle.setdefault(origin, [])
            if len(idle) < MAX_IDLE:
                idle.append(conn)
                return
        conn.close()

    def _connect(
        self, origin: tuple[str, str, int, str], connect: float | None
    ) -> http.client.HTTPConnection:
        scheme, host, port, server_name = origin
        conn: http.client.HTTPConnection
        if scheme == "https":
            conn = _TLSConnection(host, port, context=self._context, server_name=server_name, timeout=connect)
        else:
            conn = http.client.HTTPConnection(host, port, timeout=connect)
        lib = self._lib
        try:
            conn.connect()
        except TimeoutError as exc:
            conn.close()
            raise lib.ConnectTimeout(str(exc) or "timed out while connecting") from exc
        except OSError as exc:  # refused, unreachable, no such host, a TLS failure
            conn.close()
            raise lib.ConnectError(f"{type(exc).__name__}: {exc}") from exc
        return conn

    def handle_request(self, request: Any) -> Any:
        lib = self._lib
        url = request.url
        scheme = url.scheme
        server_name = str(request.extensions.get("sni_hostname") or "") if scheme == "https" else ""
        origin = (scheme, url.host, url.port or (443 if scheme == "https" else 80), server_name)
        timeout = request.extensions.get("timeout", {})
        body = request.read()
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers.raw]
        conn = self._checkout(origin) or self._connect(origin, _seconds(timeout, "connect"))
        try:
            conn.sock.settimeout(_seconds(timeout, "read"))
            conn.putrequest(
                request.method, url.raw_path.decode("ascii"), skip_host=True, skip_accept_encoding=True
            )
            for name, value in headers:
                conn.putheader(name, value)
            conn.endheaders(body or None)
            me = threading.get_ident()
            _awaiting[me] = time.monotonic()
            try:
                for listener in _listeners:
                    listener(me)
                answer = conn.getresponse()
                content = answer.read()
            finally:
                del _awaiting[me]
        except TimeoutError as exc:
            conn.close()
            raise lib.ReadTimeout(str(exc) or "timed out waiting for the answer") from exc
        except http.client.HTTPException as exc:  # a malformed answer, or none (the server hung up)
            conn.close()
            raise lib.RemoteProtocolError(f"{type(exc).__name__}: {exc}") from exc
        except OSError as exc:
            conn.close()
            raise lib.ReadError(f"{type(exc).__name__}: {exc}") from exc
        if answer.will_close:
            conn.close()
        else:
            self._checkin(origin, conn)
        return lib.Response(
            answer.status,
            headers=_raw(answer.getheaders()),
            stream=lib.ByteStream(content),
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": answer.reason.encode("latin-1")},
        )

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, {}
        for conns in idle.values():
            for conn in conns:
                conn.close()


def _raw(headers: Iterable[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    return [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers]


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


class _HTTPXTransport(StdlibTransport, httpx.BaseTransport):
    pass


class _HTTPX2Transport(StdlibTransport, httpx2.BaseTransport):
    pass


def transport(context: ssl.SSLContext) -> httpx.BaseTransport:
    """A transport for an ``httpx.Client`` whose TLS is ``context``."""
    return _HTTPXTransport(httpx, context)


def transport2(context: ssl.SSLContext) -> httpx2.BaseTransport:
    """The same for an ``httpx2.Client`` (the PagerDuty client's)."""
    return _HTTPX2Transport(httpx2, context)
