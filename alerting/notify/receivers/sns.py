"""Amazon SNS receiver (``sns_configs``): one ``Publish`` call per notification, signed with AWS SigV4.

On the wire it is what Alertmanager sends: a form-encoded ``POST`` of the Query API (``Action=Publish``,
``Version=2010-03-31``) to ``api_url`` (default ``https://sns.<region>.amazonaws.com/``) naming one
``TopicArn``, ``TargetArn`` or ``PhoneNumber``, with ``Message``, ``Subject`` and string
``MessageAttributes``. A FIFO topic (``.fifo``) gets the group key's hash as message group and
deduplication id, so a retried publish is not delivered twice. Messages over SNS's 256 KB (1600
characters for SMS) are cut and carry a ``truncated`` attribute.

Requests are signed by botocore (the ``aws`` extra), which also finds credentials the AWS way when
``sigv4`` names none: environment, shared profile (``sigv4.profile``), instance or task role, and
``sigv4.role_arn`` assumed through STS. Our default message is plain text (SNS fans out to e-mail,
SMS, queues): what broke, where, the values, the runbook and the silence command.
"""

from __future__ import annotations

import threading
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx

from alerting import __version__
from alerting.errors import ConfigError
from alerting.notify import entries, templates, wording
from alerting.notify.base import DeliveryError, Notification
from alerting.notify.receivers.pagerduty import dedup_key
from alerting.notify.receivers.posting import answer_error, request
from alerting.transport import HTTPConfig

API_VERSION = "2010-03-31"
MESSAGE_LIMIT = 256 * 1024  # bytes of one published message
SMS_LIMIT = 1600  # characters of one SMS message
SUBJECT_LIMIT = 100  # characters SNS accepts in an e-mail subject
TIMEOUT = 10.0
INSTALL_HINT = (
    'sns_configs needs botocore to sign requests: install the "aws" extra (pip install "alerting[aws]")'
)

_FIELDS = (
    "send_resolved",
    "http_config",
    "api_url",
    "sigv4",
    "topic_arn",
    "phone_number",
    "target_arn",
    "subject",
    "message",
    "attributes",
)
_SIGV4_FIELDS = ("region", "access_key", "secret_key", "profile", "role_arn")
# Error codes SNS answers with a 4xx that a later attempt can still get through.
_RETRYABLE_CODES = frozenset({"Throttling", "ThrottlingException", "ThrottledException", "RequestThrottled"})


@dataclass(frozen=True)
class SigV4:
    region: str = ""
    access_key: str = ""
    secret_key: str = ""
    profile: str = ""
    role_arn: str = ""

    def __repr__(self) -> str:
        return f"SigV4(region={self.region!r}, profile={self.profile!r}, role_arn={self.role_arn!r})"


@dataclass(frozen=True)
class SNSSettings:
    topic_arn: str = ""  # templates, exactly one of the three set
    target_arn: str = ""
    phone_number: str = ""
    subject: str = ""  # "" means our default
    message: str = ""
    attributes: tuple[tuple[str, str], ...] = ()
    send_resolved: bool = True


def sns_defaults(notification: Notification) -> templates.Defaults:
    """What Alertmanager's ``sns.default.*`` template names render to here."""
    return {
        "sns.default.subject": lambda: default_subject(notification),
        "sns.default.message": lambda: default_message(notification),
    }


def default_subject(notification: Notification) -> str:
    title = " ".join(wording.title(notification).split())
    return title if len(title) <= SUBJECT_LIMIT else title[: SUBJECT_LIMIT - 1] + "\u2026"


def default_message(notification: Notification) -> str:
    """Plain text, readable in an e-mail, an SMS or a queue consumer's log."""
    return wording.default_text(notification)


def truncate_bytes(text: str, limit: int) -> tuple[str, bool]:
    """At most ``limit`` UTF-8 bytes, never splitting a character."""
    data = text.encode()
    if len(data) <= limit:
        return text, False
    return data[:limit].decode("utf-8", "ignore"), True


def publish_params(notification: Notification, settings: SNSSettings) -> dict[str, str]:
    """The Publish call's parameters, as the Query API names them."""
    defaults = sns_defaults(notification)

    def field(name: str, text: str, fallback: str) -> str:
        return templates.render_or(text, notification, name, lambda: fallback, defaults=defaults)

    params = {"Action": "Publish", "Version": API_VERSION}
    limit, chars = MESSAGE_LIMIT, False
    attributes = [(field("attributes", k, k), field(f"attributes.{k}", v, v)) for k, v in settings.attributes]
    if settings.topic_arn:
        topic = field("topic_arn", settings.topic_arn, "")
        params["TopicArn"] = topic
        if topic.endswith(".fifo"):
            params["MessageDeduplicationId"] = params["MessageGroupId"] = dedup_key(notification.group_key)
    if settings.phone_number:
        params["PhoneNumber"] = field("phone_number", settings.phone_number, "")
        limit, chars = SMS_LIMIT, True
    if settings.target_arn:
        params["TargetArn"] = field("target_arn", settings.target_arn, "")
    message = field("message", settings.message, default_message(notification))
    if not message.strip():
        message = default_message(notification)  # SNS refuses an empty message
    if chars:
        cut = len(message) > limit
        message = message[:limit] if cut else message
    else:
        message, cut = truncate_bytes(message, limit)
    if cut:
        attributes.append(("truncated", "true"))
    params["Message"] = message
    for n, (name, value) in enumerate(attributes, start=1):
        params[f"MessageAttributes.entry.{n}.Name"] = name
        params[f"MessageAttributes.entry.{n}.Value.DataType"] = "String"
        params[f"MessageAttributes.entry.{n}.Value.StringValue"] = value
    subject = field("subject", settings.subject, default_subject(notification))
    if subject:
        params["Subject"] = subject
    return params


# ---------------------------------------------------------------------------------------------------
# Signing (botocore)


class _Signer:
    """Credentials found once (refreshed by botocore when they expire) and SigV4 for one region."""

    def __init__(self, sigv4: SigV4) -> None:
        self.sigv4 = sigv4
        self._lock = threading.Lock()
        self._credentials: Any = None
        self._region = ""

    def _resolve(self) -> tuple[Any, str]:
        from botocore.credentials import (
            AssumeRoleCredentialFetcher,
            Credentials,
            DeferredRefreshableCredentials,
        )
        from botocore.session import Session

        with self._lock:
            if self._credentials is not None:
                return self._credentials, self._region
            s = self.sigv4
            session = Session(profile=s.profile or None)
            region = s.region or session.get_config_variable("region") or ""
            if s.access_key:
                credentials = Credentials(s.access_key, s.secret_key)
            else:
                credentials = session.get_credentials()
            if s.role_arn:
                fetcher = AssumeRoleCredentialFetcher(
                    session.create_client,
                    credentials,
                    s.role_arn,
                    extra_args={"RoleSessionName": "alerting"},
                )
                credentials = DeferredRefreshableCredentials(
                    refresh_using=fetcher.fetch_credentials, method="assume-role"
                )
            if credentials is None:
                raise DeliveryError(
                    "no AWS credentials: set sigv4 access_key and secret_key, a profile, or the "
                    "environment's AWS credentials",
                    retryable=False,
                )
            if not region:
                raise DeliveryError("no AWS region: set sigv4.region or AWS_REGION", retryable=False)
            self._credentials, self._region = credentials, region
            return credentials, region

    def region(self) -> str:
        return self._resolve()[1]

    def sign(self, url: str, body: bytes, headers: dict[str, str]) -> dict[str, str]:
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest

        credentials, region = self._resolve()
        request = AWSRequest(method="POST", url=url, data=body, headers=headers)
        SigV4Auth(credentials.get_frozen_credentials(), "sns", region).add_auth(request)
        return dict(request.headers.items())


# ---------------------------------------------------------------------------------------------------
# Sending


def _error(response: httpx.Response) -> DeliveryError:
    code, message = "", ""
    try:
        root = ET.fromstring(response.content)
        for element in root.iter():
            tag = element.tag.rsplit("}", 1)[-1]
            if tag == "Code" and not code:
                code = (element.text or "").strip()
            elif tag == "Message" and not message:
                message = (element.text or "").strip()
    except ET.ParseError:
        message = response.text.strip()[:300]
    status = response.status_code
    detail = ": ".join(p for p in (code, message[:300]) if p) or f"HTTP {status}"
    retryable = status == 429 or status >= 500 or code in _RETRYABLE_CODES
    return answer_error(response, "SNS", detail, retryable=retryable, answered=f"{status} ({detail})")


class SNS:
    kind = "sns"

    def __init__(
        self,
        settings: SNSSettings,
        sigv4: SigV4,
        api_url: str = "",
        http: HTTPConfig | None = None,
        timeout: float = TIMEOUT,
    ) -> None:
        self.settings = settings
        self.send_resolved = settings.send_resolved
        self.api_url = api_url
        self.http = http or HTTPConfig()
        self.timeout = timeout
        self._signer = _Signer(sigv4)

    def __repr__(self) -> str:
        target = self.settings.topic_arn or self.settings.target_arn or self.settings.phone_number
        return f"SNS(target={target!r}, api_url={self.api_url!r})"

    def endpoint(self) -> str:
        return self.api_url or f"https://sns.{self._signer.region()}.amazonaws.com/"

    def send(self, notification: Notification) -> None:
        if notification.status == "resolved" and not self.send_resolved:
            return
        body = urlencode(publish_params(notification, self.settings)).encode()
        url = self.endpoint()
        headers = {
            "Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
            "User-Agent": f"alerting/{__version__}",
        }
        headers = self._signer.sign(url, body, headers)
        response = request(
            self.http, "POST", url, service="SNS", headers=headers, content=body, timeout=self.timeout
        )
        if not 200 <= response.status_code < 300:
            raise _error(response)


# ---------------------------------------------------------------------------------------------------
# Configuration


def _sigv4(config: Mapping[str, Any], what: str) -> SigV4:
    raw = entries.mapping(config, "sigv4", what)
    entries.check_fields(raw, _SIGV4_FIELDS, f"{what} sigv4")
    values = {key: entries.string(raw, key, f"{what} sigv4") for key in _SIGV4_FIELDS}
    if bool(values["access_key"]) != bool(values["secret_key"]):
        missing = "secret_key" if values["access_key"] else "access_key"
        raise entries.config_error(
            raw or config,
            None if raw else "sigv4",
            f"{what}: sigv4 needs both access_key and secret_key ({missing} is empty)",
        )
    return SigV4(**values)


def sns_integration(config: Mapping[str, Any], global_config: Mapping[str, Any]) -> SNS:
    """Build an SNS integration from one ``sns_configs`` entry."""
    what = "sns_configs"
    entries.check_fields(config, _FIELDS, what)
    targets = [key for key in ("topic_arn", "target_arn", "phone_number") if config.get(key)]
    if len(targets) != 1:
        key = targets[1] if len(targets) > 1 else None
        raise entries.config_error(
            config, key, f"{what}: set exactly one of topic_arn, target_arn and phone_number"
        )
    attributes = entries.mapping(config, "attributes", what)

    def template(source: Mapping[str, Any], key: str) -> str:
        return templates.check_template(source, key, what)

    settings = SNSSettings(
        topic_arn=template(config, "topic_arn"),
        target_arn=template(config, "target_arn"),
        phone_number=template(config, "phone_number"),
        subject=template(config, "subject"),
        message=template(config, "message"),
        attributes=tuple((str(k), template(attributes, k)) for k in attributes),
        send_resolved=entries.boolean(config, "send_resolved", what, True),
    )
    sigv4 = _sigv4(config, what)
    api_url = entries.string(config, "api_url", what)
    if api_url and not wording.is_web_link(api_url):
        raise entries.config_error(
            config, "api_url", f"{what}: api_url must be an http(s) URL, got {api_url!r}"
        )
    try:
        import botocore  # noqa: F401
    except ImportError:
        raise ConfigError(INSTALL_HINT, entries.position(config)) from None
    return SNS(settings, sigv4, api_url, entries.http_config(config, what, global_config))
