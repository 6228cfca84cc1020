"""Webhook receiver: Alertmanager's webhook payload (version 4), so its consumers consume ours.

``max_alerts`` truncates the alert list (``truncatedAlerts`` says by how many); ``http_config``
supports basic auth, bearer/authorization credentials (inline or ``*_file``) and TLS options. Files
are read at send time so rotated secrets apply without a restart.
"""

from __future__ import annotations

import email.utils
import json
import ssl
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from alerting import __version__
from alerting.durations import parse_duration
from alerting.errors import ConfigError, DurationError, Position
from alerting.notify.base import DeliveryError, Notification, NotifyAlert
from alerting.routing.matchers import alert_sort_key, fingerprint

_FIELDS = ("url", "url_file", "send_resolved", "max_alerts", "http_config", "timeout")
_HTTP_FIELDS = (
    "basic_auth",
    "authorization",
    "bearer_token",
    "bearer_token_file",
    "tls_config",
    "follow_redirects",
    "proxy_url",
)
_TLS_FIELDS = ("ca_file", "cert_file", "key_file", "insecure_skip_verify", "server_name", "min_version")
_GO_ZERO_TIME = "0001-01-01T00:00:00Z"
_REGEX_META = set("\\.+*?()|[]{}^$")


def go_time(ts: float | None) -> str:
    """A unix time as Go marshals a time.Time to JSON (RFC3339 with trimmed nanoseconds)."""
    if ts is None:
        return _GO_ZERO_TIME
    moment = datetime.fromtimestamp(ts, tz=UTC)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if moment.microsecond:
        text += "." + f"{moment.microsecond:06d}".rstrip("0")
    return text + "Z"


def _quote_meta(text: str) -> str:
    # Alertmanager hands integrations the receiver name regex-quoted; consumers see it that way.
    return "".join("\\" + ch if ch in _REGEX_META else ch for ch in text)


def alert_json(alert: NotifyAlert) -> dict[str, Any]:
    return {
        "status": alert.status,
        "labels": dict(alert.labels),
        "annotations": dict(alert.annotations),
        "startsAt": go_time(alert.starts_at),
        "endsAt": go_time(alert.ends_at if alert.status == "resolved" else None),
        "generatorURL": alert.generator_url,
        "fingerprint": fingerprint(alert.labels),
    }


def payload(notification: Notification, max_alerts: int = 0) -> dict[str, Any]:
    """The webhook v4 body for a notification."""
    alerts = sorted(notification.alerts, key=lambda a: alert_sort_key(a.labels))
    shown = alerts[:max_alerts] if max_alerts else alerts
    return {
        "receiver": _quote_meta(notification.receiver),
        "status": notification.status,
        "alerts": [alert_json(a) for a in shown],
        "groupLabels": dict(notification.group_labels),
        "commonLabels": notification.common_labels,
        "commonAnnotations": notification.common_annotations,
        "externalURL": notification.external_url,
        "version": "4",
        "groupKey": notification.group_key,
        "truncatedAlerts": len(alerts) - len(shown),
    }


@dataclass(frozen=True)
class HttpConfig:
    """The parts of Prometheus's common ``http_config`` a webhook needs."""

    basic_auth: tuple[str, str | None, str | None] | None = None  # username, password, password_file
    auth_type: str = "Bearer"
    credentials: str | None = None
    credentials_file: str | None = None
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    insecure_skip_verify: bool = False
    server_name: str | None = None  # the name sent in SNI and checked against the certificate
    follow_redirects: bool = True
    proxy_url: str | None = None

    def headers(self) -> dict[str, str]:
        secret = self.credentials
        if self.credentials_file:
            secret = _read_secret(self.credentials_file)
        return {"Authorization": f"{self.auth_type} {secret}"} if secret else {}

    def auth(self) -> httpx.BasicAuth | None:
        if self.basic_auth is None:
            return None
        user, password, password_file = self.basic_auth
        if password_file:
            password = _read_secret(password_file)
        return httpx.BasicAuth(user, password or "")

    def verify(self) -> ssl.SSLContext | bool:
        """What httpx verifies against: the system trust store unless TLS options say otherwise."""
        if not (self.insecure_skip_verify or self.ca_file or self.cert_file):
            return True
        context = ssl.create_default_context(cafile=self.ca_file)
        if self.insecure_skip_verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if self.cert_file:
            context.load_cert_chain(self.cert_file, self.key_file)
        return context


def _read_secret(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise DeliveryError(f"cannot read secret file {path}: {exc.strerror}", retryable=True) from None


_clients: dict[tuple[Any, ...], httpx.Client] = {}
_clients_lock = threading.Lock()


def _shared_client(http: HttpConfig, timeout: float) -> httpx.Client:
    """One pooled client per distinct transport setting, shared by every webhook of the process.

    Building a TLS context costs more than a local POST, so it happens once, not per send or per
    receiver; auth headers are per request and not part of the key.
    """
    key = (
        timeout,
        http.insecure_skip_verify,
        http.ca_file,
        http.cert_file,
        http.key_file,
        http.follow_redirects,
        http.proxy_url,
    )
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            client = _clients[key] = httpx.Client(
                timeout=timeout,
                verify=http.verify(),
                follow_redirects=http.follow_redirects,
                proxy=http.proxy_url,
            )
        return client


class WebhookIntegration:
    kind = "webhook"

    def __init__(
        self,
        url: str | None,
        url_file: str | None = None,
        send_resolved: bool = True,
        max_alerts: int = 0,
        http: HttpConfig | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.url, self.url_file = url, url_file
        self.send_resolved = send_resolved
        self.max_alerts = max_alerts
        self.http = http or HttpConfig()
        self.timeout = timeout

    def send(self, notification: Notification) -> None:
        url = _read_secret(self.url_file) if self.url_file else self.url
        body = json.dumps(payload(notification, self.max_alerts)).encode()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": f"alerting/{__version__}",
            **self.http.headers(),
        }
        if notification.notification_id:
            # Repeats of one notification carry the same key, so a receiver can answer them once.
            headers["Idempotency-Key"] = notification.notification_id
        try:
            auth = self.http.auth()
            client = _shared_client(self.http, self.timeout)
            # httpx sends this name in SNI and verifies the certificate against it.
            extensions = {"sni_hostname": self.http.server_name} if self.http.server_name else None
            response = client.post(
                str(url),
                content=body,
                headers=headers,
                auth=auth or httpx.USE_CLIENT_DEFAULT,
                extensions=extensions,
            )
        except httpx.TimeoutException:
            raise DeliveryError(f"webhook timed out after {self.timeout:g}s", retryable=True) from None
        except httpx.HTTPError as exc:
            raise DeliveryError(
                f"webhook request failed: {type(exc).__name__}: {exc}", retryable=True
            ) from None
        status = response.status_code
        if 200 <= status < 300:
            return
        detail = f"webhook answered HTTP {status}: {response.text[:200]}"
        if status == 429 or status >= 500:
            raise DeliveryError(detail, retryable=True, retry_after=_retry_after(response))
        raise DeliveryError(detail, retryable=False)


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    if value.strip().isdigit():
        return float(value.strip())
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(tz=UTC)).total_seconds())


def _check(cfg: Mapping[str, Any], allowed: tuple[str, ...], what: str) -> None:
    for key in cfg:
        if key not in allowed:
            pos = getattr(cfg, "key_pos", {}).get(key) or getattr(cfg, "pos", None)
            raise ConfigError(f'unknown field "{key}" in {what}', pos)


def _pos(cfg: Mapping[str, Any], key: str) -> Position | None:
    at = getattr(cfg, "at", None)
    return at(key) if at else None


def _http_config(raw: Any) -> HttpConfig:
    if raw is None:
        return HttpConfig()
    if not isinstance(raw, Mapping):
        raise ConfigError("http_config must be a mapping", getattr(raw, "pos", None))
    _check(raw, _HTTP_FIELDS, "http_config")
    values: dict[str, Any] = {}
    schemes = [k for k in ("basic_auth", "authorization", "bearer_token", "bearer_token_file") if raw.get(k)]
    if len(schemes) > 1 and not set(schemes) <= {"bearer_token", "bearer_token_file"}:
        raise ConfigError(
            "http_config: use only one of basic_auth, authorization and bearer_token"
            f" (got {', '.join(schemes)})",
            _pos(raw, schemes[1]),
        )
    if raw.get("bearer_token") and raw.get("bearer_token_file"):
        raise ConfigError(
            "http_config: use bearer_token or bearer_token_file, not both", _pos(raw, "bearer_token")
        )
    if raw.get("basic_auth"):
        basic = raw["basic_auth"]
        _check(basic, ("username", "password", "password_file"), "basic_auth")
        if not basic.get("username"):
            raise ConfigError("basic_auth needs a username", _pos(raw, "basic_auth"))
        values["basic_auth"] = (str(basic["username"]), basic.get("password"), basic.get("password_file"))
    if raw.get("authorization"):
        authz = raw["authorization"]
        _check(authz, ("type", "credentials", "credentials_file"), "authorization")
        if authz.get("credentials") and authz.get("credentials_file"):
            raise ConfigError(
                "authorization: use credentials or credentials_file, not both", _pos(raw, "authorization")
            )
        values["auth_type"] = str(authz.get("type") or "Bearer")
        if str(values["auth_type"]).lower() == "basic":
            raise ConfigError(
                "authorization type Basic is not allowed: use basic_auth", _pos(raw, "authorization")
            )
        values["credentials"] = authz.get("credentials")
        values["credentials_file"] = authz.get("credentials_file")
    if raw.get("bearer_token"):
        values["credentials"] = str(raw["bearer_token"])
    if raw.get("bearer_token_file"):
        values["credentials_file"] = str(raw["bearer_token_file"])
    if raw.get("tls_config"):
        tls = raw["tls_config"]
        _check(tls, _TLS_FIELDS, "tls_config")
        for key in ("ca_file", "cert_file", "key_file"):
            if tls.get(key):
                values[key] = str(tls[key])
        values["insecure_skip_verify"] = bool(tls.get("insecure_skip_verify", False))
        if tls.get("server_name"):
            values["server_name"] = str(tls["server_name"])
    if "follow_redirects" in raw:
        values["follow_redirects"] = bool(raw["follow_redirects"])
    if raw.get("proxy_url"):
        values["proxy_url"] = str(raw["proxy_url"])
    return HttpConfig(**values)


def webhook_integration(cfg: Mapping[str, Any], global_config: Mapping[str, Any]) -> WebhookIntegration:
    _check(cfg, _FIELDS, "webhook_configs")
    pos = getattr(cfg, "pos", None)
    url, url_file = cfg.get("url"), cfg.get("url_file")
    if url and url_file:
        raise ConfigError("webhook_configs: use url or url_file, not both", _pos(cfg, "url"))
    if not url and not url_file:
        raise ConfigError("webhook_configs: url (or url_file) is required", pos)
    if url and not str(url).startswith(("http://", "https://")):
        raise ConfigError(
            f"webhook_configs: url must start with http:// or https://, got {url!r}", _pos(cfg, "url")
        )
    send_resolved = cfg.get("send_resolved", True)
    if not isinstance(send_resolved, bool):
        raise ConfigError("send_resolved must be true or false", _pos(cfg, "send_resolved"))
    max_alerts = cfg.get("max_alerts", 0)
    if not isinstance(max_alerts, int) or isinstance(max_alerts, bool) or max_alerts < 0:
        raise ConfigError("max_alerts must be a whole number, 0 for no limit", _pos(cfg, "max_alerts"))
    timeout = 10.0
    if cfg.get("timeout") is not None:
        try:
            timeout = parse_duration(str(cfg["timeout"]))
        except DurationError as exc:
            raise ConfigError(f"timeout: {exc}", _pos(cfg, "timeout")) from None
    http = _http_config(cfg.get("http_config", global_config.get("http_config")))
    return WebhookIntegration(
        str(url) if url else None,
        str(url_file) if url_file else None,
        send_resolved,
        max_alerts,
        http,
        timeout or 10.0,
    )
