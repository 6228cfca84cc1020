"""Who may use the HTTP endpoints and how much they may send: basic authentication against the web
configuration's bcrypt hashes, a cap on request bodies (413), and the configuration's extra response
headers. An ASGI middleware around the whole app, so no endpoint can forget it.

The user a request authenticated as is kept in the ASGI scope (``alerting.user``): every change
(silences, alerts, reloads) is logged with it.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import threading
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import bcrypt
from starlette.concurrency import run_in_threadpool

from alerting.api.webconfig import WebConfig
from alerting.ops.logs import get_logger

log = get_logger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

USER = "alerting.user"
MAX_BODY = 1 << 20  # the largest request accepted; an import of thousands of silences fits


class Passwords:
    """bcrypt checks, with the outcome of a correct password remembered (a hash costs tens of
    milliseconds by design; a client sends the same credentials with every request)."""

    def __init__(self, users: dict[str, bytes]) -> None:
        self.users = users
        self._known: dict[str, bytes] = {}  # user -> digest of the password that last proved right
        self._lock = threading.Lock()

    def check(self, user: str, password: str) -> bool:
        hashed = self.users.get(user)
        if hashed is None:
            bcrypt.checkpw(password.encode(), _dummy())  # the same time whether or not the user exists
            return False
        digest = hashlib.sha256(hashed + b"\x00" + password.encode()).digest()
        with self._lock:
            known = self._known.get(user)
        if known is not None and hmac.compare_digest(known, digest):
            return True
        if not bcrypt.checkpw(password.encode(), hashed):
            return False
        with self._lock:
            self._known[user] = digest
        return True


@functools.cache
def _dummy() -> bytes:
    return bcrypt.hashpw(b"-", bcrypt.gensalt(rounds=10))


def _credentials(header: bytes) -> tuple[str, str] | None:
    scheme, _, encoded = header.decode("latin-1").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, sep, password = base64.b64decode(encoded.strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return (user, password) if sep else None


async def _answer(send: Send, status: int, text: str, headers: list[tuple[bytes, bytes]]) -> None:
    body = text.encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class AccessControl:
    """``AccessControl(app, web_config)``: the app, behind the web configuration's rules."""

    def __init__(self, app: Any, web: WebConfig | None, *, max_body: int = MAX_BODY) -> None:
        self.app = app
        self.web = web
        self.max_body = max_body
        self.passwords = Passwords(dict(web.users)) if web is not None and web.users else None
        self.headers = [(k.lower().encode(), v.encode()) for k, v in (web.headers if web else {}).items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        if self.passwords is not None:
            user = await self._user(headers.get(b"authorization"))
            if user is None:
                client = scope.get("client")
                log.info(
                    "http.unauthorized",
                    msg=f"{scope.get('method')} {scope.get('path')} refused: no valid credentials",
                    client=f"{client[0]}:{client[1]}" if client else "unknown",
                )
                challenge = (b"www-authenticate", b'Basic realm="alerting"')
                await _answer(send, 401, "Unauthorized\n", [challenge, *self.headers])
                return
            scope[USER] = user
        declared = headers.get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_body:
            await _answer(send, 413, f"request body larger than {self.max_body} bytes\n", self.headers)
            return
        if not self.headers:
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *self.headers]}
            await send(message)

        await self.app(scope, receive, with_headers)

    async def _user(self, header: bytes | None) -> str | None:
        found = _credentials(header) if header else None
        if found is None:
            return None
        assert self.passwords is not None
        ok = await run_in_threadpool(self.passwords.check, *found)
        return found[0] if ok else None
