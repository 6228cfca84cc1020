"""The HTTP transport every receiver and HTTP datasource shares: Prometheus's ``http_config``,
secret files, TLS contexts, ``Retry-After`` and one pooled client per destination.

A key means the same thing wherever it is written: ``http_config`` follows Prometheus's common
library (``basic_auth``, ``authorization``, ``bearer_token``, ``oauth2``, ``proxy_url``,
``follow_redirects``, ``enable_http2``, ``tls_config``). Secret files are read when a request is
made, so a rotated secret applies without a restart.
"""

from __future__ import annotations

import base64
import email.utils
import math
import os
import ssl
import threading
import time
from collections.abc import Generator, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from alerting import httppool
from alerting.config import yamlfile
from alerting.errors import AlertingError, ConfigError, Position

__all__ = [
    "BasicAuth",
    "Authorization",
    "OAuth2",
    "TLSConfig",
    "HTTPConfig",
    "SecretFileError",
    "TLSFilesError",
    "SetupError",
    "HTTP_CONFIG_FIELDS",
    "TLS_VERSIONS",
    "parse_http_config",
    "parse_tls_config",
    "read_secret_file",
    "tls_context",
    "check_tls_files",
    "retry_after",
    "auth",
    "new_client",
    "client_for",
    "JSON_HEADERS",
]

# The header of a body the caller has already written as JSON (orjson, mostly). A plain dict: the
# PagerDuty client only merges headers given as one. Nobody changes it.
JSON_HEADERS = {"Content-Type": "application/json"}

TLS_VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}
_TLS_FIELDS = (
    "ca_file",
    "cert_file",
    "key_file",
    "server_name",
    "insecure_skip_verify",
    "min_version",
    "max_version",
)
_BASIC_FIELDS = ("username", "username_file", "password", "password_file")
_AUTHORIZATION_FIELDS = ("type", "credentials", "credentials_file")
_OAUTH2_FIELDS = (
    "client_id",
    "client_secret",
    "client_secret_file",
    "scopes",
    "token_url",
    "endpoint_params",
    "tls_config",
    "proxy_url",
)
HTTP_CONFIG_FIELDS = (
    "basic_auth",
    "authorization",
    "bearer_token",
    "bearer_token_file",
    "oauth2",
    "proxy_url",
    "follow_redirects",
    "enable_http2",
    "tls_config",
)
# Go's oauth2 package treats a token as expired this long before it says so.
_TOKEN_EXPIRY_MARGIN = 10.0
_TOKEN_TIMEOUT = 10.0


# --- secret files -----------------------------------------------------------------------------


class SecretFileError(AlertingError):
    """A secret file that cannot be read; the message names the file and what it holds."""


def read_secret_file(path: str, purpose: str) -> str:
    """The secret in ``path``, with surrounding whitespace trimmed (Prometheus's rule).

    Editors and ``kubectl create secret`` leave a trailing newline; no secret starts or ends with
    whitespace on purpose. ``purpose`` names the setting the file stands for (``password_file``).
    """
    try:
        return Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise SecretFileError(f"cannot read {purpose} {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise SecretFileError(f"cannot read {purpose} {path}: not UTF-8 text") from None


def _secret(inline: str, path: str, purpose: str) -> str:
    return read_secret_file(path, purpose) if path else inline


# --- the parsed configuration -----------------------------------------------------------------


@dataclass(frozen=True)
class TLSConfig:
    """``tls_config``: whom to trust, what to present, the name to check, which versions."""

    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    server_name: str = ""  # sent in SNI and checked against the certificate instead of the URL's host
    insecure_skip_verify: bool = False
    min_version: str = ""  # one of TLS_VERSIONS; "" for the library's default
    max_version: str = ""


@dataclass(frozen=True)
class BasicAuth:
    username: str = ""
    username_file: str = ""
    password: str = ""
    password_file: str = ""


@dataclass(frozen=True)
class Authorization:
    """An ``Authorization: <type> <credentials>`` header; ``bearer_token`` is the older spelling."""

    type: str = "Bearer"
    credentials: str = ""
    credentials_file: str = ""
    # The setting the file was named by, for errors; not part of what the configuration means.
    file_setting: str = field(default="authorization credentials_file", compare=False)


@dataclass(frozen=True)
class OAuth2:
    """The client-credentials grant: a token from ``token_url`` sent as the Authorization header."""

    client_id: str
    token_url: str
    client_secret: str = ""
    client_secret_file: str = ""
    scopes: tuple[str, ...] = ()
    endpoint_params: tuple[tuple[str, str], ...] = ()
    tls_config: TLSConfig = field(default_factory=TLSConfig)
    proxy_url: str = ""


@dataclass(frozen=True)
class HTTPConfig:
    """Prometheus's common ``http_config``. Hashable: equal configurations share one client."""

    basic_auth: BasicAuth | None = None
    authorization: Authorization | None = None
    oauth2: OAuth2 | None = None
    proxy_url: str = ""
    follow_redirects: bool = True
    enable_http2: bool = True  # accepted for compatibility; requests go out over HTTP/1.1
    tls_config: TLSConfig = field(default_factory=TLSConfig)

    @property
    def has_auth(self) -> bool:
        return bool(self.basic_auth or self.authorization or self.oauth2)


# --- parsing ----------------------------------------------------------------------------------


def _pos(raw: Mapping[str, Any], key: str | None, fallback: Position | None) -> Position | None:
    if isinstance(raw, yamlfile.Mapping):
        return raw.at(key) if key else raw.pos
    return fallback


def _key_pos(raw: Mapping[str, Any], key: str, fallback: Position | None) -> Position | None:
    if isinstance(raw, yamlfile.Mapping):
        return raw.key_pos.get(key, raw.pos)
    return fallback


def _check_fields(raw: Mapping[str, Any], allowed: Iterable[str], what: str, pos: Position | None) -> None:
    allowed = tuple(allowed)
    for key in raw:
        if key not in allowed:
            hint = yamlfile.suggest(str(key), allowed) or f" ({what} takes only {', '.join(allowed)})"
            raise ConfigError(f'unknown field "{key}" in {what}{hint}', _key_pos(raw, key, pos))


def optional_mapping(raw: Any, what: str, pos: Position | None) -> Mapping[str, Any]:
    """A section that may be left out (None reads as empty) but must be a mapping when given."""
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{what} must be a mapping, got {yamlfile.type_name(raw)}", pos)
    return raw


def _string(raw: Mapping[str, Any], key: str, what: str, pos: Position | None) -> str:
    value = raw.get(key)
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ConfigError(
            f"{what}: {key} must be a string, got {yamlfile.type_name(value)}", _pos(raw, key, pos)
        )
    return str(value)


def _boolean(raw: Mapping[str, Any], key: str, what: str, default: bool, pos: Position | None) -> bool:
    value = raw.get(key, default)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise ConfigError(f"{what}: {key} must be true or false, got {value!r}", _pos(raw, key, pos))
    return value


def _one_of(raw: Mapping[str, Any], keys: tuple[str, str], what: str, pos: Position | None) -> None:
    if raw.get(keys[0]) and raw.get(keys[1]):
        raise ConfigError(f"{what}: use {keys[0]} or {keys[1]}, not both", _pos(raw, keys[1], pos))


def parse_tls_config(raw: Any, what: str = "tls_config", pos: Position | None = None) -> TLSConfig:
    """Parse a ``tls_config`` mapping (None: verification against the system trust store)."""
    tls = optional_mapping(raw, what, pos)
    pos = _pos(tls, None, pos)
    _check_fields(tls, _TLS_FIELDS, what, pos)
    values = {key: _string(tls, key, what, pos) for key in _TLS_FIELDS if key != "insecure_skip_verify"}
    for key in ("min_version", "max_version"):
        if values[key] and values[key] not in TLS_VERSIONS:
            raise ConfigError(
                f"{what}: unknown TLS version {values[key]!r} in {key} (use {', '.join(TLS_VERSIONS)})",
                _pos(tls, key, pos),
            )
    low, high = values["min_version"], values["max_version"]
    if low and high and TLS_VERSIONS[low] > TLS_VERSIONS[high]:
        raise ConfigError(
            f"{what}: max_version {high} is older than min_version {low}", _pos(tls, "max_version", pos)
        )
    if bool(values["cert_file"]) != bool(values["key_file"]):
        given = "cert_file" if values["cert_file"] else "key_file"
        raise ConfigError(
            f"{what}: cert_file and key_file go together (only {given} is set)", _pos(tls, given, pos)
        )
    return TLSConfig(insecure_skip_verify=_boolean(tls, "insecure_skip_verify", what, False, pos), **values)


def _basic_auth(raw: Any, what: str, pos: Position | None) -> BasicAuth:
    basic = optional_mapping(raw, f"{what} basic_auth", pos)
    where = f"{what} basic_auth"
    pos = _pos(basic, None, pos)
    _check_fields(basic, _BASIC_FIELDS, where, pos)
    _one_of(basic, ("username", "username_file"), where, pos)
    _one_of(basic, ("password", "password_file"), where, pos)
    values = {key: _string(basic, key, where, pos) for key in _BASIC_FIELDS}
    if not values["username"] and not values["username_file"]:
        raise ConfigError(f"{what}: basic_auth needs a username (or username_file)", pos)
    return BasicAuth(**values)


def _authorization(raw: Any, what: str, pos: Position | None) -> Authorization:
    authz = optional_mapping(raw, f"{what} authorization", pos)
    where = f"{what} authorization"
    pos = _pos(authz, None, pos)
    _check_fields(authz, _AUTHORIZATION_FIELDS, where, pos)
    _one_of(authz, ("credentials", "credentials_file"), where, pos)
    kind = _string(authz, "type", where, pos) or "Bearer"
    if kind.lower() == "basic":
        raise ConfigError(
            f"{what}: authorization type Basic is not allowed: use basic_auth", _pos(authz, "type", pos)
        )
    return Authorization(
        kind, _string(authz, "credentials", where, pos), _string(authz, "credentials_file", where, pos)
    )


def _oauth2(raw: Any, what: str, pos: Position | None) -> OAuth2:
    where = f"{what} oauth2"
    oauth = optional_mapping(raw, where, pos)
    pos = _pos(oauth, None, pos)
    _check_fields(oauth, _OAUTH2_FIELDS, where, pos)
    _one_of(oauth, ("client_secret", "client_secret_file"), where, pos)
    client_id = _string(oauth, "client_id", where, pos)
    token_url = _string(oauth, "token_url", where, pos)
    if not client_id:
        raise ConfigError(f"{where}: client_id is required", pos)
    if not token_url.startswith(("http://", "https://")):
        raise ConfigError(f"{where}: token_url (an http(s) URL) is required", _pos(oauth, "token_url", pos))
    scopes = oauth.get("scopes") or []
    if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
        raise ConfigError(f"{where}: scopes must be a list of strings", _pos(oauth, "scopes", pos))
    params = optional_mapping(
        oauth.get("endpoint_params"), f"{where} endpoint_params", _pos(oauth, "endpoint_params", pos)
    )
    return OAuth2(
        client_id=client_id,
        token_url=token_url,
        client_secret=_string(oauth, "client_secret", where, pos),
        client_secret_file=_string(oauth, "client_secret_file", where, pos),
        scopes=tuple(scopes),
        endpoint_params=tuple(sorted((str(k), str(v)) for k, v in params.items())),
        tls_config=parse_tls_config(
            oauth.get("tls_config"), f"{where} tls_config", _pos(oauth, "tls_config", pos)
        ),
        proxy_url=_proxy_url(oauth, where, pos),
    )


def _proxy_url(raw: Mapping[str, Any], what: str, pos: Position | None) -> str:
    # Any text is accepted here, as Prometheus's configuration accepts any URL; one no proxy can be
    # reached through fails each request with a message naming it (see new_client).
    url = _string(raw, "proxy_url", what, pos)
    return url


def parse_http_config(
    raw: Any, what: str = "http_config", pos: Position | None = None, *, beside: Iterable[str] = ()
) -> HTTPConfig:
    """Parse Prometheus's ``http_config`` into an :class:`HTTPConfig`.

    ``beside`` names other fields allowed in the same mapping, for configurations that write the
    HTTP settings inline next to their own (a Prometheus datasource: ``url``, ``timeout``, ...).
    Rejects what Prometheus rejects: unknown fields, two ways to authenticate, a Basic
    ``authorization``, a secret given inline and as a file, an unknown TLS version.
    """
    http = optional_mapping(raw, what, pos)
    pos = _pos(http, None, pos)
    _check_fields(http, (*HTTP_CONFIG_FIELDS, *beside), what, pos)
    _one_of(http, ("bearer_token", "bearer_token_file"), what, pos)
    schemes = [
        k
        for k in ("basic_auth", "authorization", "oauth2", "bearer_token", "bearer_token_file")
        if http.get(k)
    ]
    if len(schemes) > 1:
        raise ConfigError(
            f"{what}: use only one of basic_auth, authorization and bearer_token (or oauth2),"
            f" got {' and '.join(schemes)}",
            _pos(http, schemes[1], pos),
        )
    authorization = None
    if http.get("authorization"):
        authorization = _authorization(http["authorization"], what, _pos(http, "authorization", pos))
    elif http.get("bearer_token") or http.get("bearer_token_file"):
        authorization = Authorization(
            "Bearer",
            _string(http, "bearer_token", what, pos),
            _string(http, "bearer_token_file", what, pos),
            file_setting="bearer_token_file",
        )
    return HTTPConfig(
        basic_auth=_basic_auth(http["basic_auth"], what, _pos(http, "basic_auth", pos))
        if http.get("basic_auth")
        else None,
        authorization=authorization,
        oauth2=_oauth2(http["oauth2"], what, _pos(http, "oauth2", pos)) if http.get("oauth2") else None,
        proxy_url=_proxy_url(http, what, pos),
        follow_redirects=_boolean(http, "follow_redirects", what, True, pos),
        enable_http2=_boolean(http, "enable_http2", what, True, pos),
        tls_config=parse_tls_config(
            http.get("tls_config"), f"{what} tls_config", _pos(http, "tls_config", pos)
        ),
    )


# --- TLS --------------------------------------------------------------------------------------


class TLSFilesError(AlertingError):
    """A CA, certificate or key file of a ``tls_config`` that cannot be loaded."""


def tls_context(tls: TLSConfig) -> ssl.SSLContext:
    """A client context: verification on unless ``insecure_skip_verify``, the system trust store
    unless ``ca_file``, a client certificate when ``cert_file``/``key_file``, version bounds.

    ``server_name`` is not part of the context: it is the name each connection sends in SNI and
    checks the certificate against (see :func:`client_for`, SMTP passes it as ``server_hostname``).
    """
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    for purpose, load in (
        ("ca_file", lambda: context.load_verify_locations(cafile=tls.ca_file) if tls.ca_file else None),
        (
            "cert_file",
            lambda: context.load_cert_chain(tls.cert_file, tls.key_file or None) if tls.cert_file else None,
        ),
    ):
        try:
            load()
        except (OSError, ssl.SSLError) as exc:
            path = tls.ca_file if purpose == "ca_file" else f"{tls.cert_file} (key {tls.key_file})"
            raise TLSFilesError(f"{purpose} {path}: {getattr(exc, 'strerror', None) or exc}") from None
    if tls.insecure_skip_verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if tls.min_version:
        context.minimum_version = TLS_VERSIONS[tls.min_version]
    if tls.max_version:
        context.maximum_version = TLS_VERSIONS[tls.max_version]
    return context


def check_tls_files(tls: TLSConfig, what: str, pos: Position | None = None) -> None:
    """Load the files a ``tls_config`` names now, so a missing one is a configuration error."""
    if tls.ca_file or tls.cert_file:
        try:
            tls_context(tls)
        except TLSFilesError as exc:
            raise ConfigError(f"{what}: cannot load TLS files: {exc}", pos) from None


# --- Retry-After ------------------------------------------------------------------------------


def retry_after(headers: Mapping[str, Any] | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date (counted from
    ``now``, never negative); None when the header is absent or unreadable."""
    if not headers:
        return None
    value = next((v for k, v in headers.items() if str(k).lower() == "retry-after"), None)
    if isinstance(value, list | tuple):
        value = value[0] if value else None
    text = str(value).strip() if value is not None else ""
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        moment = time.time() if now is None else now
        seconds = (when - datetime.fromtimestamp(moment, tz=UTC)).total_seconds()
    return max(0.0, seconds) if math.isfinite(seconds) else None


# --- authentication ---------------------------------------------------------------------------


_PROXY_SCHEMES = ("http://", "https://", "socks5://")


class SetupError(httpx.HTTPError):
    """A request that could not be made ready: an unreadable secret or TLS file, a refused token.

    An ``httpx.HTTPError``, so whoever handles a failed request handles this one the same way."""


class _TokenSource:
    """OAuth 2 client credentials: one token, reused until shortly before it expires."""

    def __init__(self, config: OAuth2) -> None:
        self.config = config
        self._lock = threading.Lock()
        self._header = ""
        self._expires = 0.0

    def header(self) -> str:
        with self._lock:
            if not self._header or time.monotonic() >= self._expires:
                self._header, self._expires = self._fetch()
            return self._header

    def _fetch(self) -> tuple[str, float]:
        c = self.config
        try:
            secret = _secret(c.client_secret, c.client_secret_file, "oauth2 client_secret_file")
        except SecretFileError as exc:
            raise SetupError(str(exc)) from None
        form = {"grant_type": "client_credentials", **dict(c.endpoint_params)}
        if c.scopes:
            form["scope"] = " ".join(c.scopes)
        verify = tls_context(c.tls_config)
        started = time.monotonic()
        try:
            with httpx.Client(verify=verify, proxy=c.proxy_url or None, timeout=_TOKEN_TIMEOUT) as client:
                response = client.post(c.token_url, data=form, auth=httpx.BasicAuth(c.client_id, secret))
        except (httpx.HTTPError, TLSFilesError) as exc:
            raise SetupError(f"oauth2 token endpoint {c.token_url}: {exc}") from None
        try:
            body = response.json()
            token, kind = str(body["access_token"]), str(body.get("token_type") or "Bearer")
        except (ValueError, KeyError, TypeError):
            raise SetupError(
                f"oauth2 token endpoint {c.token_url} answered HTTP {response.status_code}"
                f" without an access_token: {response.text[:200]}"
            ) from None
        if not response.is_success or not token:
            raise SetupError(f"oauth2 token endpoint {c.token_url} answered HTTP {response.status_code}")
        lifetime = body.get("expires_in")
        expires = math.inf
        if isinstance(lifetime, int | float) and not isinstance(lifetime, bool) and lifetime > 0:
            expires = started + float(lifetime) - _TOKEN_EXPIRY_MARGIN
        # Go's oauth2 package writes "bearer" (any case) as "Bearer"; other types as given.
        return f"{'Bearer' if kind.lower() == 'bearer' else kind} {token}", expires


def _basic_header(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")


class _HTTPConfigAuth(httpx.Auth):
    """The Authorization header of an ``http_config``, with secret files read per request."""

    def __init__(self, http: HTTPConfig) -> None:
        self.http = http
        self._tokens = _TokenSource(http.oauth2) if http.oauth2 else None

    def header(self) -> str:
        try:
            if self._tokens is not None:
                return self._tokens.header()
            if self.http.basic_auth is not None:
                b = self.http.basic_auth
                user = _secret(b.username, b.username_file, "basic_auth username_file")
                password = _secret(b.password, b.password_file, "basic_auth password_file")
                return _basic_header(user, password)
            if self.http.authorization is not None:
                a = self.http.authorization
                credentials = _secret(a.credentials, a.credentials_file, a.file_setting)
                return f"{a.type} {credentials}" if credentials else ""
        except SecretFileError as exc:
            raise SetupError(str(exc)) from None
        return ""

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        value = self.header()
        if value:
            request.headers["Authorization"] = value
        yield request


def authorization_header(http: HTTPConfig) -> str:
    """The Authorization header value an ``http_config`` sends ("" for none), for clients that are
    not httpx (slack-sdk); secret files are read on each call. Raises SetupError on a bad file."""
    return _HTTPConfigAuth(http).header() if http.has_auth else ""


def auth(http: HTTPConfig) -> httpx.Auth | None:
    """The ``http_config``'s authentication as an httpx auth flow, or None when it has none."""
    return _HTTPConfigAuth(http) if http.has_auth else None


# --- clients ----------------------------------------------------------------------------------


class _Client(httppool.LeanRequests, httpx.Client):
    """An httpx client that sends ``server_name`` in SNI (and checks the certificate against it)."""

    def __init__(self, *, server_name: str, **options: Any) -> None:
        super().__init__(**options)
        self._server_name = server_name

    def build_request(self, *args: Any, **kwargs: Any) -> httpx.Request:
        request = super().build_request(*args, **kwargs)
        if self._server_name:
            request.extensions["sni_hostname"] = self._server_name
        return request


_clients: dict[tuple[Any, ...], httpx.Client] = {}
_clients_lock = threading.Lock()


def _forget_clients_in_child() -> None:
    # A forked child must not use the parent's connections (both would read the same sockets), nor a
    # lock some other thread of the parent happened to hold at the fork.
    global _clients_lock
    _clients_lock = threading.Lock()
    _clients.clear()


os.register_at_fork(after_in_child=_forget_clients_in_child)


def new_client(http: HTTPConfig, timeout: float | httpx.Timeout, **options: Any) -> httpx.Client:
    """A client configured by ``http`` (TLS, proxy, redirects, authentication); the caller owns it.

    Raises TLSFilesError when a file of the ``tls_config`` cannot be loaded."""
    # Always our own context, so every destination trusts the same store (the system's, unless
    # ca_file) whatever library defaults would say.
    verify = tls_context(http.tls_config)
    if http.proxy_url and not http.proxy_url.startswith(_PROXY_SCHEMES):
        raise SetupError(f"proxy_url {http.proxy_url!r} is not an http(s) or socks5 URL")
    # Keep as many idle connections as a worker process has deliveries in flight (httpx keeps 20).
    options.setdefault(
        "limits", httpx.Limits(max_connections=httppool.MAX_IDLE, max_keepalive_connections=httppool.MAX_IDLE)
    )
    if not http.proxy_url:  # (a proxy, and the environment's proxies, go through httpx's own)
        options.setdefault("transport", httppool.transport(verify))
    return _Client(
        server_name=http.tls_config.server_name,
        timeout=timeout,
        verify=verify,
        proxy=http.proxy_url or None,
        follow_redirects=http.follow_redirects,
        auth=auth(http),
        **options,
    )


def client_for(http: HTTPConfig, timeout: float) -> httpx.Client:
    """The one pooled client of this process for ``http`` and ``timeout``: connections are reused
    across sends and receivers that share both. A forked child starts with no clients, since
    connections inherited from the parent are not its own."""
    key = (http, timeout)
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            try:
                client = _clients[key] = new_client(http, timeout)
            except TLSFilesError as exc:
                raise SetupError(f"cannot load TLS files: {exc}") from None
        return client
