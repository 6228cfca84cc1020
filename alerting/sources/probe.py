"""HTTP probe datasource: a rule requests a URL and fires while the answer is not the healthy one.

A probe that fails is the rule's condition being true, not a datasource failure: the query returns
one sample labelled with ``url``, ``status_code`` (when the server answered) and ``error`` (a short
reason that stays the same from tick to tick, such as ``status 503``, ``timeout``, ``connection
refused``, ``invalid JSON`` or ``json field status is "down", expected "ok"``), whose value is the
latency in seconds. A healthy probe returns no sample.

Rule syntax (``probe:`` holds a URL, or a mapping)::

    probe:
      url: https://api.internal/health
      method: GET                 # GET HEAD POST PUT PATCH DELETE OPTIONS
      headers: {Accept: application/json}
      timeout: 5s                 # default: the datasource's timeout (10s)
      expect_status: [200, 204]   # a code, "2xx", or a list of them; default 200
      expect_json: {status: healthy, checks.database.healthy: true}   # dotted paths
      body: {ping: 1}             # a string, or JSON for a mapping or list
      follow_redirects: false
"""

from __future__ import annotations

import errno
import json
import re
import socket
import ssl
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import httpx

from alerting.config.yamlfile import suggest, type_name
from alerting.durations import parse_duration
from alerting.errors import ConfigError, DurationError, Position, QueryError, RuleFileError
from alerting.sources import Kind, QuerySpec, Sample, reject_unknown_settings, settings_error
from alerting.transport import HTTPConfig, TLSFilesError, new_client, parse_tls_config

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
_FIELDS = ("url", "method", "headers", "timeout", "expect_status", "expect_json", "body", "follow_redirects")
_CONFIG_FIELDS = ("type", "timeout", "headers", "tls_config")
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_STATUS_CLASS = re.compile(r"^[1-5]xx$")
_DEFAULT_TIMEOUT = 10.0
_MAX_BODY = 1 << 20  # bytes read when a JSON expectation needs the body
# A probe answers for the present only; asked about a time long past (a backtest), it refuses
# rather than pass today's answer off as history.
_PAST_TOLERANCE = 3600.0
_SHOWN = 40  # characters of a JSON value quoted in an error label


@dataclass(frozen=True)
class Probe(QuerySpec):
    """A checked ``probe:`` spec. Hashable, and readable as a mapping of the fields that are set."""

    url: str
    method: str = "GET"
    headers: tuple[tuple[str, str], ...] = ()
    timeout: float | None = None
    expect_status: tuple[str, ...] = ("200",)
    expect_json: tuple[tuple[str, str | int | float | bool | None], ...] = ()
    body: str | None = None
    follow_redirects: bool = False

    always_shown: ClassVar[tuple[str, ...]] = ("url", "method")

    def _shown(self, key: str, value: Any) -> Any:
        if key in ("headers", "expect_json"):
            return dict(value)
        if key == "expect_status":
            return list(value)
        return value

    def status_ok(self, code: int) -> bool:
        return any(
            str(code) == want or (want.endswith("xx") and str(code)[0] == want[0])
            for want in self.expect_status
        )


# --- offline check ------------------------------------------------------------------------------


def check_probe(spec: Any, pos: Position) -> Probe:
    """Validate a rule's ``probe`` offline; every problem points at the offending key or value."""
    if isinstance(spec, str):
        spec = {"url": spec}
    if not isinstance(spec, Mapping):
        raise RuleFileError(f"probe must be a URL or a mapping with a url, got {type_name(spec)}", pos)

    def value_at(key: str) -> Position:
        at = getattr(spec, "at", None)
        return at(key) if callable(at) else pos

    def key_at(key: str) -> Position:
        return getattr(spec, "key_pos", {}).get(key, pos)

    for key in spec:
        if key not in _FIELDS:
            raise RuleFileError(f'unknown field "{key}" in probe{suggest(str(key), _FIELDS)}', key_at(key))
    if "url" not in spec:
        raise RuleFileError("probe needs a url", getattr(spec, "pos", pos))
    url = spec["url"]
    if not isinstance(url, str):
        raise RuleFileError(f"probe url must be a string, got {type_name(url)}", value_at("url"))
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise RuleFileError(f"probe url is not a valid URL: {exc}", value_at("url")) from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise RuleFileError(
            f'probe url must be an absolute http:// or https:// URL, got "{url}"', value_at("url")
        )
    method = spec.get("method", "GET")
    if not isinstance(method, str) or method.upper() not in METHODS:
        raise RuleFileError(
            f"probe method must be one of {', '.join(METHODS)}, got {method!r}", value_at("method")
        )
    method = method.upper()
    headers = _check_headers(spec.get("headers"), value_at("headers"), "probe headers")
    timeout = None
    if "timeout" in spec:
        timeout = _check_duration(spec["timeout"], value_at("timeout"), "probe timeout", RuleFileError)
    expect_status = _check_status(spec.get("expect_status", 200), value_at("expect_status"))
    expect_json = _check_json(spec.get("expect_json"), value_at("expect_json"))
    if expect_json and method == "HEAD":
        raise RuleFileError(
            "expect_json needs a response body, which HEAD requests do not get", value_at("expect_json")
        )
    body = spec.get("body")
    if body is not None:
        if isinstance(body, Mapping | list):
            body = json.dumps(body, separators=(",", ":"), sort_keys=True)
            if not any(name.lower() == "content-type" for name, _ in headers):
                headers = (*headers, ("Content-Type", "application/json"))
        elif not isinstance(body, str):
            raise RuleFileError(
                f"probe body must be a string or a mapping, got {type_name(body)}", value_at("body")
            )
    follow = spec.get("follow_redirects", False)
    if not isinstance(follow, bool):
        raise RuleFileError(
            f"follow_redirects must be true or false, got {follow!r}", value_at("follow_redirects")
        )
    return Probe(
        url=url,
        method=method,
        headers=headers,
        timeout=timeout,
        expect_status=expect_status,
        expect_json=expect_json,
        body=body,
        follow_redirects=follow,
    )


def _check_headers(raw: Any, pos: Position, what: str) -> tuple[tuple[str, str], ...]:
    if raw is None:
        return ()
    if not isinstance(raw, Mapping):
        raise RuleFileError(f"{what} must be a mapping, got {type_name(raw)}", pos)
    out = []
    for name, value in raw.items():
        at = getattr(raw, "key_pos", {}).get(name, pos)
        if not isinstance(name, str) or not _HEADER_NAME.match(name):
            raise RuleFileError(f"invalid header name {name!r} in {what}", at)
        if isinstance(value, Mapping | list) or value is None:
            raise RuleFileError(f'header "{name}" must be a string, got {type_name(value)}', at)
        text = str(value).lower() if isinstance(value, bool) else str(value)
        if "\n" in text or "\r" in text or not text.isascii():
            raise RuleFileError(f'header "{name}" must be one line of ASCII text', at)
        out.append((name, text))
    return tuple(out)


def _check_duration(
    raw: Any, pos: Position, what: str, error: type[RuleFileError] | type[ConfigError]
) -> float:
    try:
        seconds = parse_duration(raw if isinstance(raw, str) else str(raw))
    except DurationError as exc:
        raise error(f"{what}: {exc}", pos) from None
    if seconds <= 0:
        raise error(f"{what} must be greater than 0", pos)
    return seconds


def _check_status(raw: Any, pos: Position) -> tuple[str, ...]:
    items = raw if isinstance(raw, list) else [raw]
    if not items:
        raise RuleFileError("expect_status must list at least one status code", pos)
    out = []
    for item in items:
        text = str(item).lower() if isinstance(item, int | str) and not isinstance(item, bool) else ""
        if _STATUS_CLASS.match(text) or (text.isdigit() and 100 <= int(text) <= 599):
            out.append(text)
        else:
            raise RuleFileError(
                f'expect_status takes status codes (200) or classes ("2xx"), got {item!r}', pos
            )
    return tuple(out)


def _check_json(raw: Any, pos: Position) -> tuple[tuple[str, Any], ...]:
    if raw is None:
        return ()
    if not isinstance(raw, Mapping) or not raw:
        raise RuleFileError("expect_json must be a mapping of field path to expected value", pos)
    out = []
    for path, want in raw.items():
        at = getattr(raw, "at", None)
        where = at(path) if callable(at) else pos
        if not isinstance(path, str) or not path or any(not part for part in path.split(".")):
            raise RuleFileError(
                f"expect_json path {path!r} must be dotted field names (a.b.c)",
                getattr(raw, "key_pos", {}).get(path, pos),
            )
        if want is not None and not isinstance(want, str | int | float | bool):
            raise RuleFileError(
                f'expect_json "{path}" must expect a string, number, boolean or null, got {type_name(want)}',
                where,
            )
        out.append((path, want))
    return tuple(out)


# --- datasource ---------------------------------------------------------------------------------


class ProbeSource:
    """Probes over one httpx client. Thread-safe; every probe opens a fresh connection."""

    def __init__(self, name: str, config: Mapping[str, Any]) -> None:
        self.name = name
        pos = getattr(config, "pos", None)
        fail = settings_error(name, config)
        reject_unknown_settings(config, _CONFIG_FIELDS, fail)
        self.timeout = _DEFAULT_TIMEOUT
        if "timeout" in config:
            self.timeout = _check_duration(
                config["timeout"], pos or Position(name), f'datasource "{name}": timeout', ConfigError
            )
        try:
            headers = _check_headers(config.get("headers"), pos or Position(name), "headers")
        except RuleFileError as exc:
            raise fail(exc.message) from None
        tls = parse_tls_config(config.get("tls_config"), f'datasource "{name}" tls_config', pos)
        try:
            self._client = new_client(
                HTTPConfig(tls_config=tls),
                _DEFAULT_TIMEOUT,
                headers={"User-Agent": "alerting-probe", **dict(headers)},
                # Proxies from the environment are ignored: a probe checks the path it names.
                trust_env=False,
                # No keep-alive: each probe connects afresh, so "connection refused" is seen at once.
                limits=httpx.Limits(max_keepalive_connections=0),
            )
        except TLSFilesError as exc:
            raise fail(f"cannot load tls_config files: {exc}") from None

    def close(self) -> None:
        self._client.close()

    def query(self, query: Any, at: float) -> list[Sample]:
        """Probe now; [] when healthy, else one sample saying why, valued at the latency."""
        probe = query if isinstance(query, Probe) else check_probe(query, Position("<probe>"))
        if at < time.time() - _PAST_TOLERANCE:
            raise QueryError("a probe observes the present and cannot be evaluated in the past")
        timeout = probe.timeout or self.timeout
        start = time.perf_counter()
        status: int | None = None
        try:
            with self._client.stream(
                probe.method,
                probe.url,
                headers=dict(probe.headers),
                content=probe.body,
                timeout=httpx.Timeout(timeout),
                follow_redirects=probe.follow_redirects,
            ) as response:
                status = response.status_code
                if not probe.status_ok(status):
                    error = f"status {status}"
                elif probe.expect_json:
                    error = _json_problem(probe, _read_body(response, start + timeout))
                else:
                    error = ""
        except httpx.TimeoutException:
            error = "timeout"
        except _Deadline:
            error = "timeout"
        except httpx.HTTPError as exc:
            error = _transport_reason(exc)
        latency = time.perf_counter() - start
        if not error:
            return []
        labels = {"url": _safe_url(probe.url), "error": error}
        if status is not None:
            labels["status_code"] = str(status)
        return [Sample(labels, latency)]


class _Deadline(Exception):
    """The whole probe took longer than its timeout (a server trickling its body)."""


def _read_body(response: httpx.Response, deadline: float) -> bytes | None:
    """The body, or None when it is over the size limit."""
    chunks, size = [], 0
    for chunk in response.iter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size > _MAX_BODY:
            return None
        if time.perf_counter() > deadline:
            raise _Deadline
    return b"".join(chunks)


def _json_problem(probe: Probe, body: bytes | None) -> str:
    if body is None:
        return f"response body over {_MAX_BODY // (1 << 20)} MiB"
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):  # deep nesting: garbage too
        return "invalid JSON"
    for path, want in probe.expect_json:
        found, got = _lookup(document, path)
        if not found:
            return f"json field {path} is missing"
        if not _json_equal(got, want):
            return f"json field {path} is {_shown(got)}, expected {_shown(want)}"
    return ""


def _lookup(document: Any, path: str) -> tuple[bool, Any]:
    node = document
    for part in path.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return False, None
    return True, node


def _json_equal(got: Any, want: Any) -> bool:
    # JSON's types, not Python's: true is not 1, but 1 and 1.0 are the same number.
    if isinstance(got, bool) or isinstance(want, bool):
        return isinstance(got, bool) and isinstance(want, bool) and got == want
    if isinstance(got, int | float) and isinstance(want, int | float):
        return got == want
    return type(got) is type(want) and got == want


def _shown(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "..."


def _transport_reason(exc: httpx.HTTPError) -> str:
    """A short, stable reason for a request that got no usable response."""
    if isinstance(exc, httpx.TooManyRedirects):
        return "too many redirects"
    if isinstance(exc, httpx.UnsupportedProtocol):
        return "unsupported protocol"
    for cause in _causes(exc):
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        if isinstance(cause, ConnectionResetError):
            return "connection reset"
        if isinstance(cause, socket.gaierror):
            return "dns lookup failed"
        if isinstance(cause, ssl.SSLCertVerificationError):
            return "tls certificate verify failed"
        if isinstance(cause, ssl.SSLError):
            return "tls handshake failed"
        if isinstance(cause, OSError) and cause.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH):
            return "host unreachable"
    if isinstance(exc, httpx.RemoteProtocolError):
        return "connection closed without a valid response"
    if isinstance(exc, httpx.ConnectError):
        return "connection failed"
    if isinstance(exc, httpx.ReadError):
        return "read error"
    return "request failed"


def _causes(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    node: BaseException | None = exc
    while node is not None and id(node) not in seen:
        seen.add(id(node))
        yield node
        node = node.__cause__ or node.__context__


def _safe_url(url: str) -> str:
    """The URL as a label: any password in it is masked."""
    parsed = httpx.URL(url)
    if parsed.password:
        return str(parsed.copy_with(username=parsed.username, password="xxxxx"))
    return url


KIND: Kind = Kind(
    name="probe", field="probe", check=check_probe, open=ProbeSource, default_datasource="probe"
)
