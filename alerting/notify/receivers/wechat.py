"""WeChat Work receiver (``wechat_configs``): an application message through the corporate API.

On the wire it is what Alertmanager sends: ``GET {api_url}gettoken?corpid=...&corpsecret=...`` for
an access token (kept two hours), then ``POST {api_url}message/send?access_token=...`` with
``touser``/``toparty``/``totag``, ``agentid``, ``safe: "0"``, ``msgtype`` and the content under
``text`` or ``markdown``. ``api_url``, ``api_secret`` and ``corp_id`` fall back on the global
``wechat_api_url`` (default ``https://qyapi.weixin.qq.com/cgi-bin/``), ``wechat_api_secret`` (or
``wechat_api_secret_file``, like the entry's ``api_secret_file`` read when a token is fetched) and
``wechat_api_corp_id``. Like Alertmanager, resolved notifications are off unless ``send_resolved``.

The API answers HTTP 200 with an ``errcode``: 0 is success, an expired token (42001) is fetched
again on the retry, rate limits and "system busy" are retried, the rest is permanent. The secret
and the token ride in query strings: they are kept out of every error this module raises.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from alerting import __version__
from alerting.notify import entries, templates, wording
from alerting.notify.base import DeliveryError, Notification
from alerting.notify.receivers import posting
from alerting.notify.receivers.posting import Secret
from alerting.transport import HTTPConfig, client_for, retry_after

DEFAULT_API = "https://qyapi.weixin.qq.com/cgi-bin/"
TOKEN_LIFETIME = 2 * 3600.0  # seconds Alertmanager (and WeChat) keep an access token
TEXT_LIMIT = 2048  # bytes of a text message WeChat delivers
MARKDOWN_LIMIT = 4096
TIMEOUT = 10.0
MESSAGE_TYPES = ("text", "markdown")
_EXPIRED = {42001, 40014}  # token expired / invalid: fetch a new one
_BUSY = {-1, 45009, 45033}  # system busy, API rate limit, too many concurrent calls
_REDACTED = "<redacted>"

_FIELDS = (
    "send_resolved",
    "http_config",
    "api_secret",
    "api_secret_file",
    "corp_id",
    "message",
    "api_url",
    "to_user",
    "to_party",
    "to_tag",
    "agent_id",
    "message_type",
)


@dataclass(frozen=True)
class WeChatSettings:
    to_user: str = ""  # templates
    to_party: str = ""
    to_tag: str = ""
    agent_id: str = ""
    message: str = ""  # "" means our default
    message_type: str = "text"
    send_resolved: bool = False


def _truncate(text: str, limit: int) -> str:
    data = text.encode()
    if len(data) <= limit:
        return text
    return data[: limit - len("\u2026".encode())].decode("utf-8", "ignore") + "\u2026"


def markdown_message(notification: Notification) -> str:
    """Our default in WeChat Work Markdown (bold, links, coloured severity)."""
    colour = "info" if notification.status == "resolved" else "warning"
    lines = [f'**<font color="{colour}">{wording.title(notification)}</font>**']
    where = wording.key_labels(notification)
    if where:
        lines.append(" \u00b7 ".join(f"{k}: **{v}**" for k, v in where))
    for alert in (notification.firing + notification.resolved)[:20]:
        value = wording.format_value(alert.value)
        line = f"> {wording.alert_summary(alert)}" + (f" `{value}`" if value else "")
        lines.append(line + (" (resolved)" if alert.status == "resolved" else ""))
    runbook = wording.runbook_url(notification)
    if runbook:
        lines.append(f"[Runbook]({runbook})")
    if notification.firing:
        lines.append(f"Silence: `{wording.silence_command(notification)}`")
    return "\n".join(lines)


def default_message(notification: Notification, message_type: str = "text") -> str:
    if message_type == "markdown":
        return markdown_message(notification)
    return wording.default_text(notification).rstrip()


def wechat_defaults(notification: Notification, message_type: str) -> templates.Defaults:
    return {
        "wechat.default.message": lambda: default_message(notification, message_type),
        "wechat.default.to_user": lambda: "",
        "wechat.default.to_party": lambda: "",
        "wechat.default.to_tag": lambda: "",
        "wechat.default.agent_id": lambda: "",
    }


def request_body(notification: Notification, settings: WeChatSettings) -> dict[str, Any]:
    """message/send's body, keys in Alertmanager's order; both content objects present as it sends them."""
    defaults = wechat_defaults(notification, settings.message_type)

    def field(name: str, text: str, fallback: str) -> str:
        return templates.render_or(text, notification, name, lambda: fallback, defaults=defaults)

    fallback = default_message(notification, settings.message_type)
    content = field("message", settings.message, fallback)
    limit = MARKDOWN_LIMIT if settings.message_type == "markdown" else TEXT_LIMIT
    content = _truncate(content if content.strip() else fallback, limit)
    body: dict[str, Any] = {"text": {"content": content if settings.message_type == "text" else ""}}
    for key, name in (
        ("touser", "to_user"),
        ("toparty", "to_party"),
        ("totag", "to_tag"),
        ("agentid", "agent_id"),
    ):
        value = field(name, getattr(settings, name), "")
        if value:
            body[key] = value
    body["safe"] = "0"
    body["msgtype"] = settings.message_type
    body["markdown"] = {"content": content if settings.message_type == "markdown" else ""}
    return body


class WeChat:
    kind = "wechat"

    def __init__(
        self,
        settings: WeChatSettings,
        api_url: str,
        corp_id: str,
        api_secret: str | Secret,
        http: HTTPConfig | None = None,
        timeout: float = TIMEOUT,
    ) -> None:
        self.settings = settings
        self.send_resolved = settings.send_resolved
        self.api_url = api_url if api_url.endswith("/") else api_url + "/"
        self.corp_id = corp_id
        # A secret file is read when a token is fetched, so a rotated secret applies without a restart.
        self._secret_source = api_secret if isinstance(api_secret, Secret) else Secret(api_secret)
        self._secret = self._secret_source.inline
        self.http = http or HTTPConfig()
        self.timeout = timeout
        self._lock = threading.Lock()
        self._token = ""
        self._token_at = 0.0

    def __repr__(self) -> str:
        return f"WeChat(corp_id={self.corp_id!r}, api_url={self.api_url!r})"

    def _redact(self, text: str) -> str:
        for secret in (self._secret, self._token):
            if secret:
                text = text.replace(secret, _REDACTED)
        return text

    def _get(self, method: str, url: str, **options: Any) -> httpx.Response:
        try:
            return client_for(self.http, self.timeout).request(method, url, **options)
        except httpx.TimeoutException:
            raise DeliveryError(f"WeChat timed out after {self.timeout:g}s", retryable=True) from None
        except httpx.HTTPError as exc:
            detail = self._redact(f"{type(exc).__name__}: {exc}")
            raise DeliveryError(f"WeChat unreachable: {detail}", retryable=True) from None

    def _answer(self, response: httpx.Response, what: str) -> dict[str, Any]:
        if response.status_code != 200:
            # Alertmanager retries every non-200 answer; WeChat itself only answers 200.
            raise DeliveryError(
                f"WeChat answered HTTP {response.status_code} to {what}; will retry",
                retryable=True,
                retry_after=retry_after(response.headers),
            )
        try:
            answer = response.json()
        except ValueError:
            raise DeliveryError(f"WeChat answered {what} with something not JSON", retryable=True) from None
        return answer if isinstance(answer, dict) else {}

    def access_token(self) -> str:
        with self._lock:
            if self._token and time.monotonic() - self._token_at < TOKEN_LIFETIME:
                return self._token
            self._secret = self._secret_source.value()
            query = {"corpid": self.corp_id, "corpsecret": self._secret}
            answer = self._answer(self._get("GET", self.api_url + "gettoken", params=query), "gettoken")
            token = str(answer.get("access_token") or "")
            if not token:
                code, message = answer.get("errcode"), str(answer.get("errmsg") or "")[:200]
                raise DeliveryError(
                    self._redact(
                        f"WeChat gave no access token for corp_id {self.corp_id} ({code}: {message})"
                    ),
                    retryable=code in _BUSY,
                )
            self._token, self._token_at = token, time.monotonic()
            return token

    def send(self, notification: Notification) -> None:
        if notification.status == "resolved" and not self.send_resolved:
            return
        token = self.access_token()
        body = json.dumps(request_body(notification, self.settings)).encode()
        headers = {"Content-Type": "application/json", "User-Agent": f"alerting/{__version__}"}
        response = self._get(
            "POST",
            self.api_url + "message/send",
            params={"access_token": token},
            content=body,
            headers=headers,
        )
        answer = self._answer(response, "message/send")
        code = answer.get("errcode", 0)
        if code == 0:
            return
        message = self._redact(str(answer.get("errmsg") or "")[:300])
        if code in _EXPIRED:
            with self._lock:
                self._token = ""
            raise DeliveryError(
                f"WeChat access token expired ({code}: {message}); will retry", retryable=True
            )
        if code in _BUSY:
            raise DeliveryError(
                f"WeChat is busy or rate limiting ({code}: {message}); will retry", retryable=True
            )
        raise DeliveryError(f"WeChat refused the message ({code}): {message}", retryable=False)


def wechat_integration(config: Mapping[str, Any], global_config: Mapping[str, Any]) -> WeChat:
    """Build a WeChat integration from one ``wechat_configs`` entry."""
    what = "wechat_configs"
    entries.check_fields(config, _FIELDS, what)
    secret = Secret()
    for source, key, place in ((config, "api_secret", what), (global_config, "wechat_api_secret", "global")):
        inline, path = posting.inline_or_file(source, key, place)
        if inline or path:
            secret = Secret(inline, path, f"{key}_file")
            break
    if not secret:
        raise entries.config_error(
            config,
            None,
            f"{what}: api_secret (or api_secret_file, or the global wechat_api_secret[_file]) is required",
        )
    corp_id = entries.string(config, "corp_id", what) or entries.string(
        global_config, "wechat_api_corp_id", "global"
    )
    if not corp_id:
        raise entries.config_error(
            config, None, f"{what}: corp_id (or the global wechat_api_corp_id) is required"
        )
    message_type = entries.string(config, "message_type", what) or "text"
    if message_type not in MESSAGE_TYPES:
        raise entries.config_error(
            config, "message_type", f'{what}: message_type must be "text" or "markdown", got "{message_type}"'
        )
    api_url = entries.string(config, "api_url", what)
    where: Mapping[str, Any] = config
    if not api_url:
        api_url = entries.string(global_config, "wechat_api_url", "global") or DEFAULT_API
        where = global_config
    if not wording.is_web_link(api_url):
        key = "api_url" if where is config else "wechat_api_url"
        raise entries.config_error(where, key, f"{what}: {key} must be an http(s) URL, got {api_url!r}")

    def template(key: str) -> str:
        return templates.check_template(config, key, what)

    settings = WeChatSettings(
        to_user=template("to_user"),
        to_party=template("to_party"),
        to_tag=template("to_tag"),
        agent_id=template("agent_id"),
        message=template("message"),
        message_type=message_type,
        send_resolved=entries.boolean(config, "send_resolved", what, False),
    )
    return WeChat(settings, api_url, corp_id, secret, entries.http_config(config, what, global_config))
