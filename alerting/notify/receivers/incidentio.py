"""incident.io receiver (``incidentio_configs``): the group's alerts posted to an HTTP alert source.

On the wire it is what Alertmanager sends: ``POST {url}`` with ``Authorization: Bearer
<alert_source_token>`` (or ``http_config.authorization`` instead) and the webhook body (receiver,
status, alerts, group and common labels, common annotations, external URL) with ``"version": "1"``,
``groupKey`` and ``truncatedAlerts``. ``max_alerts`` cuts the alert list (0: all of them); a body
over incident.io's 512 KB keeps only its first alert. ``url`` (or ``url_file``) and the token (or
``alert_source_token_file``) are read at send time and kept out of every error message.
``send_resolved`` is on by default; 429 and 5xx answers are retried, other 4xx are not.

incident.io builds its own alert from these fields: there is no message of ours to write here. The
repeats of one notification carry the same ``Idempotency-Key``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import structlog

from alerting.notify import entries, wording
from alerting.notify.base import Notification
from alerting.notify.receivers import posting, webhook
from alerting.notify.receivers.posting import Secret, deliver
from alerting.transport import HTTPConfig

log = structlog.get_logger(__name__)

PAYLOAD_LIMIT = 512 * 1024  # bytes of JSON incident.io accepts
_FIELDS = (
    "send_resolved",
    "http_config",
    "url",
    "url_file",
    "alert_source_token",
    "alert_source_token_file",
    "max_alerts",
    "timeout",
)


def request_body(notification: Notification, max_alerts: int) -> bytes:
    """The JSON body: all (or ``max_alerts``) alerts, only the first when that is too big."""
    body = {**webhook.payload(notification, max_alerts), "version": "1"}
    data = json.dumps(body, ensure_ascii=False).encode()
    if len(data) <= PAYLOAD_LIMIT:
        return data
    # One alert is enough for incident.io to open (or update) the alert for the group.
    smaller = json.dumps({**body, "alerts": body["alerts"][:1]}, ensure_ascii=False).encode()
    log.warning("incidentio_payload_cut", size=len(data), cut_to=len(smaller), limit=PAYLOAD_LIMIT)
    return smaller


class Incidentio:
    kind = "incidentio"

    def __init__(
        self,
        url: Secret,
        token: Secret,
        http: HTTPConfig,
        *,
        max_alerts: int = 0,
        timeout: float = posting.TIMEOUT,
        send_resolved: bool = True,
    ) -> None:
        self._url, self._token = url, token
        self.http = http
        self.max_alerts, self.timeout = max_alerts, timeout
        self.send_resolved = send_resolved

    def __repr__(self) -> str:
        return "Incidentio()"

    def send(self, notification: Notification) -> None:
        if notification.status == "resolved" and not self.send_resolved:
            return
        url = self._url.value()
        headers = {"Content-Type": "application/json"}
        secrets = [url]
        if self._token:
            token = self._token.value()
            headers["Authorization"] = f"Bearer {token}"
            secrets.append(token)
        if notification.notification_id:
            headers["Idempotency-Key"] = notification.notification_id
        deliver(
            self.http,
            "POST",
            url,
            service="incident.io",
            secrets=secrets,
            content=request_body(notification, self.max_alerts),
            headers=headers,
            timeout=self.timeout,
        )


def incidentio_integration(config: Mapping[str, Any], global_config: Mapping[str, Any]) -> Incidentio:
    """Build an incident.io integration from one ``incidentio_configs`` entry."""
    what = "incidentio_configs"
    entries.check_fields(config, _FIELDS, what)
    url = posting.required_secret(config, "url", what)
    if url.inline and not wording.is_web_link(url.inline):
        raise entries.config_error(config, "url", f"{what}: url must be an http(s) URL")
    inline, path = posting.inline_or_file(config, "alert_source_token", what)
    token = Secret(inline, path, "alert_source_token_file")
    own = entries.http_config(config, what)
    if token and own.authorization is not None:
        raise entries.config_error(
            config,
            "alert_source_token" if inline else "alert_source_token_file",
            f"{what}: set alert_source_token (or its _file) or http_config.authorization, not both",
        )
    http = entries.http_config(config, what, global_config)
    if token:
        # The token is the credential: a global authorization does not apply here.
        http = replace(http, authorization=None)
    if not token and http.authorization is None:
        raise entries.config_error(
            config,
            None,
            f"{what}: alert_source_token (or its _file) or http_config.authorization is required",
        )
    max_alerts = config.get("max_alerts", 0)
    if isinstance(max_alerts, bool) or not isinstance(max_alerts, int) or max_alerts < 0:
        raise entries.config_error(
            config, "max_alerts", f"{what}: max_alerts must be a whole number (0: all)"
        )
    return Incidentio(
        url,
        token,
        http,
        max_alerts=max_alerts,
        timeout=entries.duration(config, "timeout", what, posting.TIMEOUT),
        send_resolved=entries.boolean(config, "send_resolved", what, True),
    )
