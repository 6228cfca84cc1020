"""One HTTP request of a receiver and what its answer means, for the integrations that speak plain
JSON or form APIs (Opsgenie, VictorOps, Pushover, Discord).

:func:`deliver` sends through the pooled client of :mod:`alerting.transport` and turns every way a
request can fail into a :class:`DeliveryError`: 429 and 5xx are retryable with the service's
``Retry-After``, other 4xx are permanent and carry the service's own error text. Secrets that ride
in a URL or a header are blanked out of every message. :class:`Secret` reads a ``*_file`` when a
request needs it, so a rotated key applies without a restart.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

import httpx

from alerting import __version__
from alerting.notify import entries, wording
from alerting.notify.base import DeliveryError
from alerting.transport import HTTPConfig, SecretFileError, client_for, read_secret_file, retry_after

TIMEOUT = 10.0
REDACTED = "<redacted>"
_ERROR_TEXT_LIMIT = 300
USER_AGENT = f"alerting/{__version__}"


@dataclass(frozen=True)
class Secret:
    """A credential written inline or in a file (``setting`` names the file's key for errors)."""

    inline: str = ""
    file: str = ""
    setting: str = ""

    def __bool__(self) -> bool:
        return bool(self.inline or self.file)

    def value(self) -> str:
        """The secret now; an unreadable or empty file is a retryable failure naming the file."""
        if not self.file:
            return self.inline
        try:
            text = read_secret_file(self.file, self.setting)
        except SecretFileError as exc:
            raise DeliveryError(str(exc), retryable=True) from None
        if not text:
            raise DeliveryError(f"{self.setting} {self.file} is empty", retryable=True)
        return text


def inline_or_file(config: Mapping[str, Any], key: str, what: str) -> tuple[str, str]:
    """The entry's ``key`` and ``key_file``, at most one of them set."""
    inline = entries.string(config, key, what)
    path = entries.string(config, f"{key}_file", what)
    if inline and path:
        raise entries.config_error(config, f"{key}_file", f"{what}: set at most one of {key} and {key}_file")
    return inline, path


def required_secret(config: Mapping[str, Any], key: str, what: str, missing_at: str | None = None) -> Secret:
    """The entry's ``key`` or ``key_file``, one of which must be set (else an error at ``missing_at``)."""
    inline, path = inline_or_file(config, key, what)
    if not inline and not path:
        raise entries.config_error(config, missing_at, f"{what}: {key} (or {key}_file) is required")
    return Secret(inline, path, f"{key}_file")


def api_key(
    config: Mapping[str, Any], global_config: Mapping[str, Any], what: str, global_key: str
) -> Secret:
    """The entry's ``api_key`` or ``api_key_file``, else the global ``global_key`` or its ``_file``."""
    for source, key, where in ((config, "api_key", what), (global_config, global_key, "global")):
        inline, path = inline_or_file(source, key, where)
        if inline or path:
            return Secret(inline, path, f"{key}_file")
    raise entries.config_error(
        config, None, f"{what}: api_key (or api_key_file) is required, or {global_key} in global"
    )


def api_url(
    config: Mapping[str, Any], global_config: Mapping[str, Any], what: str, global_key: str, default: str
) -> str:
    """The entry's ``api_url``, else the global ``global_key``, else ``default``: an http(s) URL."""
    url = entries.string(config, "api_url", what)
    where: Mapping[str, Any] = config
    if not url:
        url = entries.string(global_config, global_key, "global") or default
        where = global_config
    if not wording.is_web_link(url):
        name = "api_url" if where is config else global_key
        raise entries.config_error(where, name, f"{what}: {name} must be an http(s) URL, got {url!r}")
    return url


def answer_error(
    response: httpx.Response, service: str, detail: str, *, retryable: bool, answered: str = ""
) -> DeliveryError:
    """A retryable "answered ...; will retry" (with the service's ``Retry-After``) or a permanent
    "refused the message" error; ``answered`` replaces the default ``"<status>: <detail>"``."""
    status = response.status_code
    if retryable:
        return DeliveryError(
            f"{service} answered {answered or f'{status}: {detail}'}; will retry",
            retryable=True,
            retry_after=retry_after(response.headers),
        )
    return DeliveryError(f"{service} refused the message ({status}): {detail}", retryable=False)


# The fields of an entry for a :class:`KeyedAPI` integration besides its own.
KEYED_API_FIELDS = ("send_resolved", "http_config", "api_key", "api_key_file", "api_url")


class _Resolvable(Protocol):
    @property
    def send_resolved(self) -> bool: ...


SettingsT = TypeVar("SettingsT", bound=_Resolvable)


class KeyedAPI(Generic[SettingsT]):
    """An integration posting to ``api_url`` (kept ending in ``/``) with a key read at send time."""

    def __init__(self, settings: SettingsT, api_url: str, api_key: Secret, http: HTTPConfig) -> None:
        self.settings = settings
        self.send_resolved = settings.send_resolved
        self.api_url = api_url if api_url.endswith("/") else api_url + "/"
        self._key = api_key
        self.http = http

    def __repr__(self) -> str:
        return f"{type(self).__name__}(api_url={self.api_url!r})"


def group_hash(group_key: str) -> str:
    """The SHA-256 of an aggregation group's key: Alertmanager's stable id for the group."""
    return hashlib.sha256(group_key.encode()).hexdigest()


def truncate(text: str, limit: int) -> str:
    """At most ``limit`` characters, the last one an ellipsis when cut (Alertmanager's rule)."""
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def redact(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, REDACTED)
    return text


def error_text(response: httpx.Response) -> str:
    """What the service said went wrong: its JSON ``message``/``errors``/``description``, or text."""
    try:
        body: Any = response.json()
    except ValueError:
        body = None
    parts: list[str] = []
    if isinstance(body, dict):
        for key in ("message", "description", "error", "errors", "info"):
            value = body.get(key)
            if isinstance(value, dict | list):
                value = json.dumps(value, ensure_ascii=False)
            if value not in (None, ""):
                parts.append(str(value))
    text = "; ".join(parts) if parts else response.text.strip()
    return " ".join(text.split())[:_ERROR_TEXT_LIMIT] or f"HTTP {response.status_code}"


def _body_retry_after(response: httpx.Response) -> float | None:
    # Discord says how long to wait in its JSON answer as well as in the header.
    try:
        body = response.json()
    except ValueError:
        return None
    wait = body.get("retry_after") if isinstance(body, dict) else None
    if isinstance(wait, int | float) and not isinstance(wait, bool) and wait >= 0:
        return float(wait)
    return None


def classify(response: httpx.Response, service: str, secrets: Iterable[str] = ()) -> None:
    """Return for a 2xx answer; raise the DeliveryError the answer means otherwise."""
    status = response.status_code
    if 200 <= status < 300:
        return
    detail = redact(error_text(response), secrets)
    if status == 429:
        wait = retry_after(response.headers)
        raise DeliveryError(
            f"{service} rate limited the request: {detail}",
            retryable=True,
            retry_after=wait if wait is not None else _body_retry_after(response),
        )
    if status >= 500:
        raise DeliveryError(
            f"{service} answered {status}: {detail}",
            retryable=True,
            retry_after=retry_after(response.headers),
        )
    raise DeliveryError(f"{service} refused the request ({status}): {detail}", retryable=False)


def deliver(
    http: HTTPConfig,
    method: str,
    url: str,
    *,
    service: str,
    secrets: Iterable[str] = (),
    json_body: Any = None,
    params: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
    content: bytes | None = None,
    timeout: float = TIMEOUT,
) -> httpx.Response:
    """Send one request and return the 2xx answer; raise a DeliveryError for anything else."""
    secrets = tuple(secrets)
    sent_headers = dict(headers or {})
    if json_body is not None:
        content = json.dumps(json_body, ensure_ascii=False).encode()
        sent_headers.setdefault("Content-Type", "application/json")
    response = request(
        http,
        method,
        url,
        service,
        secrets,
        params=params,
        headers=sent_headers,
        content=content,
        timeout=timeout,
    )
    classify(response, service, secrets)
    return response


def request(
    http: HTTPConfig,
    method: str,
    url: str,
    service: str,
    secrets: Iterable[str] = (),
    *,
    params: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
    content: bytes | None = None,
    timeout: float = TIMEOUT,
) -> httpx.Response:
    """Send one request and return whatever the service answered; a timeout or a failed connection
    is a retryable DeliveryError (with ``secrets`` blanked out)."""
    sent_headers = {"User-Agent": USER_AGENT, **(headers or {})}
    try:
        return client_for(http, timeout).request(
            method, url, content=content, params=params, headers=sent_headers
        )
    except httpx.TimeoutException:
        raise DeliveryError(f"{service} timed out after {timeout:g}s", retryable=True) from None
    except httpx.HTTPError as exc:
        detail = redact(f"{type(exc).__name__}: {exc}", secrets)
        raise DeliveryError(f"{service} unreachable: {detail}", retryable=True) from None
