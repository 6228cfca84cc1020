"""The SNS integration against a local server speaking the Query API's Publish, and beside a real
Alertmanager 0.25 publishing the same alert group to the same kind of server with the same keys."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from alerting.notify.base import DeliveryError
from alerting.notify.receivers import INTEGRATIONS
from alerting.notify.receivers.pagerduty import dedup_key
from alerting.notify.receivers.sns import SMS_LIMIT, sns_integration
from tests.support import receivers
from tests.support.differential import route_ours
from tests.support.httpfake import FakeHTTPServer, Reply, Request
from tests.support.net import wait_until
from tests.support.notifications import alert, notification
from tests.support.routing_alertmanager import Alertmanager
from tests.support.routing_redis import isolated_redis

ACCESS_KEY = "AKIAIOSFODNN7EXAMPLE"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
REGION = "eu-west-1"
TOPIC = "arn:aws:sns:eu-west-1:123456789012:oncall"
_AUTH = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=(?P<key>[A-Z0-9]+)/(?P<day>\d{8})/(?P<region>[a-z0-9-]+)"
    r"/sns/aws4_request, "
    r"SignedHeaders=(?P<signed>[a-z0-9;-]+), Signature=(?P<signature>[0-9a-f]{64})$"
)


def published(request: Request) -> Reply:
    body = (
        '<PublishResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/"><PublishResult>'
        f"<MessageId>{uuid.uuid4()}</MessageId></PublishResult>"
        f"<ResponseMetadata><RequestId>{uuid.uuid4()}</RequestId></ResponseMetadata></PublishResponse>"
    )
    return Reply(200, body, {"Content-Type": "text/xml"})


def refused(status: int, code: str, message: str) -> Reply:
    body = (
        '<ErrorResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/"><Error><Type>Sender</Type>'
        f"<Code>{code}</Code><Message>{message}</Message></Error><RequestId>r-1</RequestId></ErrorResponse>"
    )
    return Reply(status, body, {"Content-Type": "text/xml"})


@pytest.fixture
def sns() -> Iterator[FakeHTTPServer]:
    with FakeHTTPServer(published) as fake:
        yield fake


def integration(fake: FakeHTTPServer, **fields: Any) -> Any:
    entry = {
        "api_url": fake.url,
        "sigv4": {"region": REGION, "access_key": ACCESS_KEY, "secret_key": SECRET_KEY},
        "topic_arn": TOPIC,
        **fields,
    }
    return sns_integration(entry, {})


def params(request: Request) -> dict[str, Any]:
    """The Publish parameters, message attributes as a name -> (type, value) map (their order is free)."""
    form = {k: v[0] for k, v in request.form().items()}
    attributes: dict[str, tuple[str, str]] = {}
    for key in [k for k in form if k.startswith("MessageAttributes.entry.") and k.endswith(".Name")]:
        prefix = key.removesuffix(".Name")
        attributes[form.pop(key)] = (
            form.pop(f"{prefix}.Value.DataType"),
            form.pop(f"{prefix}.Value.StringValue"),
        )
    if attributes:
        form["MessageAttributes"] = attributes
    return form


def signature_is_valid(request: Request, base_url: str) -> bool:
    """Recompute the request's SigV4 signature from what arrived, with the shared secret."""
    match = _AUTH.match(request.headers.get("authorization", ""))
    assert match, request.headers.get("authorization")
    signed = match["signed"].split(";")
    aws = AWSRequest(
        method=request.method,
        url=base_url + request.path,
        data=request.body,
        headers={name: request.headers[name] for name in signed},
    )
    aws.context["timestamp"] = request.headers["x-amz-date"]
    auth = SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY), "sns", match["region"])
    canonical = auth.canonical_request(aws)
    return bool(auth.signature(auth.string_to_sign(aws, canonical), aws) == match["signature"])


# ---------------------------------------------------------------------------------------------------
# The request


def test_registered_as_sns_configs() -> None:
    assert INTEGRATIONS["sns_configs"] is sns_integration


def test_publish_is_a_signed_form_post_of_the_query_api(sns: FakeHTTPServer) -> None:
    integration(sns).send(notification())
    (request,) = sns.requests
    assert request.method == "POST" and request.path == "/"
    assert request.headers["content-type"].startswith("application/x-www-form-urlencoded")
    got = params(request)
    assert got["Action"] == "Publish" and got["Version"] == "2010-03-31" and got["TopicArn"] == TOPIC
    assert got["Subject"] == "[FIRING:1] HighErrorRate (api critical)"
    assert re.fullmatch(r"\d{8}T\d{6}Z", request.headers["x-amz-date"])
    match = _AUTH.match(request.headers["authorization"])
    assert match and match["key"] == ACCESS_KEY and match["region"] == REGION
    assert {"host", "x-amz-date"} <= set(match["signed"].split(";"))
    assert signature_is_valid(request, sns.url)
    assert SECRET_KEY not in str(request.headers)


def test_default_message_says_what_broke_where_and_how_to_silence_it(sns: FakeHTTPServer) -> None:
    integration(sns).send(notification(alert(labels={"instance": "web-1"}, value=3.2)))
    message = params(sns.requests[-1])["Message"]
    for part in (
        "[FIRING:1] HighErrorRate",
        "5xx 3.2/s (value 3.2)",
        "instance=web-1",
        "Runbook: https://runbooks.example/high-error-rate",
        "Silence: alerting silence add alertname=HighErrorRate",
    ):
        assert part in message


def test_templated_fields_attributes_and_the_default_names(sns: FakeHTTPServer) -> None:
    integration(
        sns,
        subject="{{ .Status }}: {{ .CommonLabels.alertname }}",
        message='{{ template "sns.default.message" . }}',
        attributes={"severity": "{{ .CommonLabels.severity }}", "{{ .CommonLabels.service }}": "yes"},
    ).send(notification())
    got = params(sns.requests[-1])
    assert got["Subject"] == "firing: HighErrorRate"
    assert "Silence: alerting silence add" in got["Message"]
    assert got["MessageAttributes"] == {"severity": ("String", "critical"), "api": ("String", "yes")}


@pytest.mark.parametrize(
    ("fields", "key", "value"),
    [
        ({"topic_arn": None, "phone_number": "+15555550100"}, "PhoneNumber", "+15555550100"),
        (
            {"topic_arn": None, "target_arn": "arn:aws:sns:eu-west-1:1:endpoint/APNS/app/x"},
            "TargetArn",
            "arn:aws:sns:eu-west-1:1:endpoint/APNS/app/x",
        ),
    ],
)
def test_phone_numbers_and_target_arns(
    sns: FakeHTTPServer, fields: dict[str, Any], key: str, value: str
) -> None:
    integration(
        sns, **{k: v for k, v in fields.items() if v}, **({"topic_arn": ""} if "topic_arn" in fields else {})
    ).send(notification())
    got = params(sns.requests[-1])
    assert got[key] == value and "TopicArn" not in got


def test_sms_messages_are_cut_to_1600_characters_and_marked(sns: FakeHTTPServer) -> None:
    integration(
        sns, topic_arn="", phone_number="+15555550100", message="{{ .CommonAnnotations.summary }}"
    ).send(notification(alert(annotations={"summary": "\u00e9" * 2000})))
    got = params(sns.requests[-1])
    assert got["Message"] == "\u00e9" * SMS_LIMIT
    assert got["MessageAttributes"] == {"truncated": ("String", "true")}


def test_fifo_topics_get_the_group_key_hash_as_group_and_deduplication_id(sns: FakeHTTPServer) -> None:
    n = notification()
    integration(sns, topic_arn=TOPIC + ".fifo").send(n)
    got = params(sns.requests[-1])
    assert got["MessageGroupId"] == got["MessageDeduplicationId"] == dedup_key(n.group_key)


def test_resolved_messages_are_sent_unless_send_resolved_is_off(sns: FakeHTTPServer) -> None:
    integration(sns).send(notification(alert("resolved")))
    assert params(sns.requests[-1])["Subject"].startswith("[RESOLVED]")
    integration(sns, send_resolved=False).send(notification(alert("resolved")))
    assert len(sns.requests) == 1


def test_credentials_and_region_come_from_the_environment_when_sigv4_names_none(
    sns: FakeHTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.setenv("AWS_REGION", "ap-south-1")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "ap-south-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    sns_integration({"api_url": sns.url, "topic_arn": TOPIC}, {}).send(notification())
    match = _AUTH.match(sns.requests[-1].headers["authorization"])
    assert match and match["key"] == ACCESS_KEY and match["region"] == "ap-south-1"


test_answers_are_classified_without_showing_the_secret = receivers.classification_test(
    "sns",
    lambda service: integration(service).send(notification()),
    [
        (refused(400, "InvalidParameter", "Invalid parameter: TopicArn"), False, None, "InvalidParameter"),
        (
            refused(403, "AuthorizationError", "not authorized to perform SNS:Publish"),
            False,
            None,
            "SNS:Publish",
        ),
        (refused(404, "NotFound", "Topic does not exist"), False, None, "Topic does not exist"),
        (refused(400, "Throttling", "Rate exceeded"), True, None, "Rate exceeded"),
        (Reply(429, "slow down", {"Retry-After": "3"}), True, 3.0, "429"),
        (refused(500, "InternalError", "try again"), True, None, "InternalError"),
        (Reply(503, "<html>unavailable</html>"), True, None, "503"),
    ],
    SECRET_KEY,
)


def test_unreachable_is_retryable() -> None:
    hook = sns_integration(
        {
            "api_url": "http://127.0.0.1:9",
            "topic_arn": TOPIC,
            "sigv4": {"region": REGION, "access_key": "a", "secret_key": SECRET_KEY},
        },
        {},
    )
    with pytest.raises(DeliveryError) as failure:
        hook.send(notification())
    assert failure.value.retryable and SECRET_KEY not in repr(hook)


# ---------------------------------------------------------------------------------------------------
# Configuration


write_config = receivers.config_writer("sns_configs", "aws")


test_bad_entries_are_rejected_at_their_position = receivers.rejection_test(
    write_config,
    [
        ("topic_arn: t\ntopic_arnn: u", 'unknown field "topic_arnn" in sns_configs', "topic_arnn"),
        ("subject: s", "set exactly one of topic_arn, target_arn and phone_number", "subject"),
        ("topic_arn: t\nphone_number: '+1'", "set exactly one of topic_arn", "phone_number"),
        ("topic_arn: t\nsigv4: {region: x, access_key: a}", "needs both access_key and secret_key", "sigv4"),
        ("topic_arn: t\nsigv4: {regoin: x}", 'unknown field "regoin" in sns_configs sigv4', "regoin"),
        ("topic_arn: t\napi_url: ftp://x", "api_url must be an http(s) URL", "ftp://x"),
        ("topic_arn: t\nattributes: [a]", "attributes must be a mapping", "attributes"),
        ("topic_arn: t\nmessage: '{{ .Status'", "message: template", "'{{"),
        ("topic_arn: t\nsend_resolved: often", "send_resolved must be true or false", "often"),
    ],
    column=False,
)


def test_without_botocore_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    real_import = builtins.__import__

    def no_botocore(name: str, *args: Any, **kwargs: Any) -> Any:
        if name.startswith("botocore"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_botocore)
    with pytest.raises(Exception, match=r'install the "aws" extra \(pip install "alerting\[aws\]"\)'):
        sns_integration({"topic_arn": TOPIC}, {})


def test_unset_secret_variable_prints_to_the_console(tmp_path: Path) -> None:
    entry = (
        "topic_arn: arn:aws:sns:eu-west-1:1:t\n"
        "sigv4: {region: eu-west-1, access_key: a, secret_key: '${SNS_SECRET_KEY}'}"
    )
    path = write_config(tmp_path, entry)
    receivers.assert_console_until_set(path, "aws", "sns_configs", "SNS_SECRET_KEY", SECRET_KEY)


# ---------------------------------------------------------------------------------------------------
# Beside Alertmanager 0.25

DIFF_CONFIG = """
route:
  receiver: topic
  group_by: [alertname]
  group_wait: 1s
  group_interval: 1m
  repeat_interval: 1h
  routes:
    - matchers: ['case="sms"']
      receiver: sms
receivers:
  - name: topic
    sns_configs:
      - api_url: BASE
        sigv4: {region: eu-west-1, access_key: AK, secret_key: SK}
        topic_arn: arn:aws:sns:eu-west-1:123456789012:oncall
        subject: '[{{ .Status | toUpper }}] {{ .CommonLabels.alertname }}'
        message: |-
          {{ range .Alerts }}{{ .Labels.instance }}: {{ .Annotations.summary }}
          {{ end }}{{ .CommonLabels.SortedPairs.Values | join " " }}
        attributes:
          severity: '{{ .CommonLabels.severity }}'
          team: storage & <ops>
  - name: sms
    sns_configs:
      - api_url: BASE
        sigv4: {region: eu-west-1, access_key: AK, secret_key: SK}
        phone_number: '+15555550100'
        subject: sms
        message: '{{ range .Alerts }}{{ .Annotations.summary }}{{ end }}'
"""

DIFF_ALERTS = [
    {
        "labels": {"alertname": "DiskFull", "severity": "warning", "instance": "db-1"},
        "annotations": {"summary": '92% <full> & "rising" \u00e9t\u00e9'},
    },
    {
        "labels": {"alertname": "DiskFull", "severity": "warning", "instance": "db-2"},
        "annotations": {"summary": "96% full"},
    },
    {"labels": {"alertname": "Long", "case": "sms"}, "annotations": {"summary": "x" * 1700}},
]


def test_same_requests_as_alertmanager(tmp_path: Path) -> None:
    with FakeHTTPServer(published) as theirs_fake, FakeHTTPServer(published) as ours_fake:
        for name, fake in (("am.yml", theirs_fake), ("ours.yml", ours_fake)):
            text = DIFF_CONFIG.replace("BASE", fake.url).replace("AK", ACCESS_KEY).replace("SK", SECRET_KEY)
            (tmp_path / name).write_text(text)
        with isolated_redis() as (client, prefix), Alertmanager(tmp_path / "am.yml", tmp_path) as am:
            am.post_alerts(DIFF_ALERTS)
            now = time.time()
            route_ours(client, prefix, tmp_path / "ours.yml", DIFF_ALERTS, now)
            wait_until(lambda: len(theirs_fake.requests) >= 2 and len(ours_fake.requests) >= 2, timeout=20)

    def by_case(fake: FakeHTTPServer) -> dict[str, Request]:
        return {("sms" if "PhoneNumber" in params(r) else "topic"): r for r in fake.requests}

    theirs, mine = by_case(theirs_fake), by_case(ours_fake)
    assert set(theirs) == set(mine) == {"topic", "sms"}
    for case in ("topic", "sms"):
        a, b = theirs[case], mine[case]
        assert a.method == b.method == "POST" and a.path == b.path == "/"
        assert a.headers["content-type"].split(";")[0] == b.headers["content-type"].split(";")[0]
        assert params(a) == params(b), case
        for request, fake in ((a, theirs_fake), (b, ours_fake)):
            match = _AUTH.match(request.headers["authorization"])
            assert match and match["key"] == ACCESS_KEY and match["region"] == REGION
            assert {"host", "x-amz-date"} <= set(match["signed"].split(";"))
            assert re.fullmatch(r"\d{8}T\d{6}Z", request.headers["x-amz-date"])
            assert signature_is_valid(request, fake.url), case
    assert len(params(mine["sms"])["Message"]) == SMS_LIMIT
