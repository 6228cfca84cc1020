"""SMS receiver against a local HTTPS server speaking Twilio's Messages API, and a generic gateway."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from alerting.errors import ConfigError
from alerting.notify.base import DeliveryError
from alerting.notify.kvstore import STORE_KEY, MemoryStore
from alerting.notify.receivers import INTEGRATIONS
from alerting.notify.receivers.sms import Sms, fit_segment, gsm_length, sms_integration, summary, to_gsm
from tests.support.fakes import (
    TWILIO_FROM,
    TWILIO_LANDLINE,
    TWILIO_SERVICE,
    TWILIO_SID,
    TWILIO_TOKEN,
    TWILIO_UNSUBSCRIBED,
    LocalCA,
    TwilioFake,
    twilio_error,
)
from tests.support.httpfake import FakeHTTPServer, Reply, Request
from tests.support.notifications import alert, notification

ONCALL = "+15551230001"
BACKUP = "+15551230002"


def twilio_sms(twilio: TwilioFake, ca: LocalCA, store: Any = None, **extra: Any) -> Sms:
    config = {
        "to": [ONCALL, BACKUP],
        "account_sid": TWILIO_SID,
        "auth_token": TWILIO_TOKEN,
        "from": TWILIO_FROM,
        "api_url": twilio.server.url,
        "http_config": {"tls_config": {"ca_file": ca.ca_file}},
        **extra,
    }
    return sms_integration(config, {STORE_KEY: store if store is not None else MemoryStore()})


def test_registered_as_sms_configs() -> None:
    assert INTEGRATIONS["sms_configs"] is sms_integration


def test_one_post_per_recipient_with_basic_auth_and_form_fields(twilio: TwilioFake, ca: LocalCA) -> None:
    twilio_sms(twilio, ca).send(notification(alert(labels={"severity": "P1"})))
    assert [r.path for r in twilio.server.requests] == [
        f"/2010-04-01/Accounts/{TWILIO_SID}/Messages.json"
    ] * 2
    assert all(r.basic_auth() == (TWILIO_SID, TWILIO_TOKEN) for r in twilio.server.requests)
    assert twilio.messages() == [
        {"To": ONCALL, "From": TWILIO_FROM, "Body": "[P1 FIRING] HighErrorRate api: 5xx 3.2/s"},
        {"To": BACKUP, "From": TWILIO_FROM, "Body": "[P1 FIRING] HighErrorRate api: 5xx 3.2/s"},
    ]


def test_messaging_service_sid_replaces_from(twilio: TwilioFake, ca: LocalCA) -> None:
    config = {"messaging_service_sid": TWILIO_SERVICE, "from": None}
    sms = twilio_sms(twilio, ca, **config)
    sms.send(notification())
    assert twilio.messages()[0] == {
        "To": ONCALL,
        "MessagingServiceSid": TWILIO_SERVICE,
        "Body": "[CRITICAL FIRING] HighErrorRate api: 5xx 3.2/s",
    }


@pytest.mark.parametrize(
    ("alerts", "expected"),
    [
        ([alert(labels={"severity": "P1"})], "[P1 FIRING] HighErrorRate api: 5xx 3.2/s"),
        (
            [alert(labels={"severity": "P1", "i": "1"}), alert(labels={"severity": "P1", "i": "2"})],
            "[P1 FIRING:2] HighErrorRate api: 5xx 3.2/s",
        ),
        ([alert("resolved", labels={"severity": "P1"})], "[P1 RESOLVED] HighErrorRate api"),
        (
            [alert(labels={"severity": ""}, annotations={"summary": "disk full"})],
            "[FIRING] HighErrorRate api: disk full",
        ),
    ],
)
def test_summary_reads_like_a_page(alerts: list[Any], expected: str) -> None:
    assert summary(notification(*alerts)) == expected


def test_summary_fits_one_gsm_segment() -> None:
    n = notification(alert(annotations={"summary": "Überlast in Zürich — café ✓ " + "{x}" * 80}))
    text = summary(n)
    assert gsm_length(text) <= 160 and text.endswith("...")
    assert to_gsm(text) == text
    assert "Überlast in Zürich - café ? {x}" in text  # Ü, ü, é are GSM-7; the dash has a stand-in


def test_body_template_is_rendered_then_kept_to_one_segment(twilio: TwilioFake, ca: LocalCA) -> None:
    body = (
        '{{ .CommonLabels.service | toUpper }} down — {{ template "sms.default.body" . }} {{ .ExternalURL }}'
    )
    twilio_sms(twilio, ca, body=body).send(notification(alert(annotations={"summary": "x" * 150})))
    text = twilio.sent[0]["Body"]
    assert text.startswith("API down - [CRITICAL FIRING] HighErrorRate api: xxx")
    assert gsm_length(text) == 160 and text.endswith("...")


@pytest.mark.parametrize(
    ("text", "expected"),
    [("a" * 160, "a" * 160), ("a" * 161, "a" * 157 + "..."), ("{" * 100, "{" * 78 + "...")],
)
def test_fit_segment_counts_extension_characters_twice(text: str, expected: str) -> None:
    assert fit_segment(text) == expected


@pytest.mark.parametrize(
    ("to", "code", "phrase"),
    [
        ("5551230003", 21211, "invalid phone number"),
        (TWILIO_UNSUBSCRIBED, 21610, "recipient unsubscribed (replied STOP)"),
        (TWILIO_LANDLINE, 21614, "not a mobile number"),
    ],
)
def test_bad_recipient_is_permanent_and_others_still_get_the_page(
    twilio: TwilioFake, ca: LocalCA, to: str, code: int, phrase: str
) -> None:
    with pytest.raises(DeliveryError) as caught:
        twilio_sms(twilio, ca, to=[to, ONCALL]).send(notification())
    assert caught.value.retryable is False
    assert f"Twilio error {code} ({phrase})" in str(caught.value) and to in str(caught.value)
    assert [m["To"] for m in twilio.sent] == [ONCALL]


@pytest.mark.parametrize(
    ("reply", "retry_after"),
    [
        (twilio_error(429, 20429, "Too Many Requests"), None),
        (
            Reply(429, {"code": 20429, "message": "Too Many Requests", "status": 429}, {"Retry-After": "4"}),
            4.0,
        ),
        (Reply(500, "Internal Server Error"), None),
        (twilio_error(503, 20503, "Service Unavailable"), None),
    ],
)
def test_throttling_and_server_errors_are_retryable(
    twilio: TwilioFake, ca: LocalCA, reply: Reply, retry_after: float | None
) -> None:
    twilio.server.fail_next(reply)
    with pytest.raises(DeliveryError) as caught:
        twilio_sms(twilio, ca).send(notification())
    assert caught.value.retryable is True
    assert caught.value.retry_after == retry_after


def test_retry_after_partial_failure_only_reaches_the_missed_recipient(
    twilio: TwilioFake, ca: LocalCA
) -> None:
    sms = twilio_sms(twilio, ca)
    twilio.server.fail_next(
        twilio_error(503, 20503, "Service Unavailable"), after=1
    )  # first ok, second fails
    with pytest.raises(DeliveryError) as caught:
        sms.send(notification())
    assert caught.value.retryable and BACKUP in str(caught.value) and ONCALL not in str(caught.value)
    sms.send(notification())  # the task's retry
    assert [m["To"] for m in twilio.sent] == [ONCALL, BACKUP]


def test_a_new_notification_is_sent_again_to_everyone(twilio: TwilioFake, ca: LocalCA) -> None:
    sms = twilio_sms(twilio, ca)
    sms.send(notification(alert()))
    sms.send(notification(alert(), alert(labels={"instance": "b"})))
    assert len(twilio.sent) == 4


def test_wrong_credentials_stop_after_the_first_recipient(twilio: TwilioFake, ca: LocalCA) -> None:
    with pytest.raises(DeliveryError, match="20003") as caught:
        twilio_sms(twilio, ca, auth_token="wrong", to=[ONCALL, BACKUP, "+15551230009"]).send(notification())
    assert caught.value.retryable is False
    assert "wrong" not in str(caught.value)
    assert len(twilio.server.requests) == 1


def test_unreachable_twilio_is_retryable(ca: LocalCA) -> None:
    fake = TwilioFake(ca.server_context)
    with fake.server:
        pass
    with pytest.raises(DeliveryError, match="unreachable") as caught:
        twilio_sms(fake, ca).send(notification())
    assert caught.value.retryable is True


def test_resolved_text_only_when_enabled(twilio: TwilioFake, ca: LocalCA) -> None:
    twilio_sms(twilio, ca).send(notification(alert("resolved")))
    assert twilio.sent == []
    twilio_sms(twilio, ca, send_resolved=True).send(notification(alert("resolved")))
    assert twilio.sent[0]["Body"] == "[CRITICAL RESOLVED] HighErrorRate api"


def test_twilio_settings_from_global_and_token_file(twilio: TwilioFake, ca: LocalCA, tmp_path: Path) -> None:
    token = tmp_path / "twilio-token"
    token.write_text(TWILIO_TOKEN + "\n")
    sms = sms_integration(
        {"to": ONCALL, "http_config": {"tls_config": {"ca_file": ca.ca_file}}},
        {
            "twilio_account_sid": TWILIO_SID,
            "twilio_auth_token_file": str(token),
            "twilio_from": TWILIO_FROM,
            "twilio_api_url": twilio.server.url,
        },
    )
    sms.send(notification())
    assert [m["To"] for m in twilio.sent] == [ONCALL]


class Gateway:
    """A generic SMS gateway: bearer auth, form or JSON body, 2xx on success."""

    def __init__(self) -> None:
        self.server = FakeHTTPServer(self._handle)
        self.lock = threading.Lock()

    def _handle(self, request: Request) -> Reply:
        if request.headers.get("authorization") != "Bearer gw-secret":
            return Reply(401, {"error": "unauthorized"})
        if request.path == "/throttled":
            return Reply(429, {"error": "slow down"}, {"Retry-After": "9"})
        if request.path == "/broken":
            return Reply(502, "bad gateway")
        if request.path == "/reject":
            return Reply(422, {"error": "invalid number"})
        return Reply(200, {"queued": True})


@pytest.fixture
def gateway() -> Iterator[Gateway]:
    fake = Gateway()
    with fake.server:
        yield fake


def gateway_sms(gateway: Gateway, path: str = "/send", **extra: Any) -> Sms:
    config = {
        "to": [ONCALL],
        "url": gateway.server.url + path,
        "http_config": {"authorization": {"credentials": "gw-secret"}},
        **extra,
    }
    return sms_integration(config, {})


def test_gateway_posts_json_with_placeholders(gateway: Gateway) -> None:
    gateway_sms(
        gateway,
        json={"recipient": "{to}", "message": "{body}", "sender": "{from}", "flash": False},
        **{"from": "ALERTS"},
    ).send(notification())
    (request,) = gateway.server.requests
    assert request.method == "POST" and request.path == "/send"
    assert request.json() == {
        "recipient": ONCALL,
        "message": "[CRITICAL FIRING] HighErrorRate api: 5xx 3.2/s",
        "sender": "ALERTS",
        "flash": False,
    }


def test_gateway_get_with_url_encoded_placeholders(gateway: Gateway) -> None:
    gateway_sms(gateway, path="/send?to={to}&text={body}", method="GET").send(notification())
    (request,) = gateway.server.requests
    assert request.method == "GET"
    assert request.query == {"to": [ONCALL], "text": ["[CRITICAL FIRING] HighErrorRate api: 5xx 3.2/s"]}


def test_gateway_form_body(gateway: Gateway) -> None:
    gateway_sms(gateway, form={"number": "{to}", "text": "{body}"}).send(notification())
    assert gateway.server.requests[0].form() == {
        "number": [ONCALL],
        "text": ["[CRITICAL FIRING] HighErrorRate api: 5xx 3.2/s"],
    }


@pytest.mark.parametrize(
    ("path", "retryable", "retry_after"),
    [("/throttled", True, 9.0), ("/broken", True, None), ("/reject", False, None)],
)
def test_gateway_errors_are_classified_by_status(
    gateway: Gateway, path: str, retryable: bool, retry_after: float | None
) -> None:
    with pytest.raises(DeliveryError) as caught:
        gateway_sms(gateway, path=path).send(notification())
    assert caught.value.retryable is retryable and caught.value.retry_after == retry_after


def test_gateway_placeholders_cannot_reach_python_attributes(gateway: Gateway) -> None:
    gateway_sms(gateway, form={"text": "{body.__class__} {0} {to}"}).send(notification())
    assert gateway.server.requests[0].form()["text"] == ["{body.__class__} {0} " + ONCALL]


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            {"account_sid": TWILIO_SID, "auth_token": "t", "from": "+1"},
            "to (a list of phone numbers) is required",
        ),
        ({"to": [ONCALL]}, "set account_sid and auth_token"),
        (
            {"to": [ONCALL], "account_sid": TWILIO_SID, "auth_token": "t"},
            "exactly one of from and messaging_service_sid",
        ),
        (
            {
                "to": [ONCALL],
                "account_sid": TWILIO_SID,
                "auth_token": "t",
                "from": "+1",
                "messaging_service_sid": "MG1",
            },
            "exactly one of from and messaging_service_sid",
        ),
        (
            {"to": [ONCALL], "url": "https://gw.example/send", "account_sid": TWILIO_SID},
            "account_sid is for Twilio",
        ),
        (
            {"to": [ONCALL], "url": "https://gw.example/send", "form": {}, "json": {}},
            "at most one of form and json",
        ),
        ({"to": [ONCALL], "url": "ftp://gw.example/send"}, "url must be an http(s) URL"),
        (
            {"to": [ONCALL], "url": "https://gw.example/send", "method": "DELETE"},
            "method must be GET, POST or PUT",
        ),
        ({"to": [ONCALL], "acount_sid": TWILIO_SID}, '(did you mean "account_sid"?)'),
    ],
)
def test_bad_config_is_a_config_error(config: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        sms_integration(config, {})
    assert message in str(caught.value)
