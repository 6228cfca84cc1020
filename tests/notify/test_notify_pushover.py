"""The Pushover integration against a local server speaking Pushover's message API (reached, as
Alertmanager 0.25 reaches it, at api.pushover.net through a proxy and a local CA), and beside a real
Alertmanager 0.25 sending the same alert group to the same server."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from alerting.errors import ConfigError
from alerting.notify.base import DeliveryError
from alerting.notify.receivers import INTEGRATIONS
from alerting.notify.receivers.pushover import MESSAGE_LIMIT, TITLE_LIMIT, pushover_integration
from alerting.ops.logs import redact_text
from tests.support import receivers
from tests.support.connectproxy import ConnectProxy
from tests.support.differential import run_both
from tests.support.fakes import LocalCA, make_ca
from tests.support.httpfake import FakeHTTPServer, Reply, Request
from tests.support.notifications import alert, notification

TOKEN = "azGDORePK8gMaC0QOYAMyEEuzJnyUi"
USER = "uQiRzpo4DXghDmr9QzzfQu27cmVRsG"


def accepted(request: Request) -> Reply:
    return Reply(200, {"status": 1, "request": "647d2300-702c-4b38-8b2f-d56326ae460b"})


@dataclass
class PushoverService:
    fake: FakeHTTPServer
    proxy: ConnectProxy
    ca: LocalCA

    @property
    def http_config(self) -> dict[str, Any]:
        return {"proxy_url": self.proxy.url, "tls_config": {"ca_file": self.ca.ca_file}}

    @property
    def requests(self) -> list[Request]:
        return self.fake.requests


@pytest.fixture(scope="module")
def pushover_ca(tmp_path_factory: pytest.TempPathFactory) -> LocalCA:
    return make_ca(tmp_path_factory.mktemp("pushover-ca"), "api.pushover.net")


@pytest.fixture
def pushover(pushover_ca: LocalCA) -> Iterator[PushoverService]:
    with (
        FakeHTTPServer(accepted, pushover_ca.server_context) as fake,
        ConnectProxy(fake.port) as proxy,
    ):
        yield PushoverService(fake, proxy, pushover_ca)


def integration(service: PushoverService, **fields: Any) -> Any:
    entry = {"user_key": USER, "token": TOKEN, "http_config": service.http_config, **fields}
    return pushover_integration(entry, {})


def params(request: Request) -> dict[str, str]:
    return {k: v[0] for k, v in request.query.items()}


def test_registered_as_pushover_configs() -> None:
    assert INTEGRATIONS["pushover_configs"] is pushover_integration


def test_a_message_is_a_post_to_api_pushover_net_with_query_parameters(pushover: PushoverService) -> None:
    integration(pushover).send(notification())
    (request,) = pushover.requests
    assert pushover.proxy.targets == ["api.pushover.net:443"]
    assert (request.method, request.path, request.body) == ("POST", "/1/messages.json", b"")
    assert request.headers["host"] == "api.pushover.net"
    sent = params(request)
    assert sent["token"] == TOKEN and sent["user"] == USER
    assert sent["title"] == "[FIRING:1] HighErrorRate (api critical)"
    assert (sent["priority"], sent["retry"], sent["expire"]) == ("2", "60", "3600")
    assert sent["url"] == "https://runbooks.example/high-error-rate" and sent["url_title"] == "Runbook"
    assert "html" not in sent and "monospace" not in sent and "device" not in sent and "ttl" not in sent


def test_resolved_is_normal_priority_unless_send_resolved_is_off(pushover: PushoverService) -> None:
    integration(pushover).send(notification(alert("resolved")))
    sent = params(pushover.requests[0])
    assert sent["priority"] == "0" and sent["title"].startswith("[RESOLVED]")
    integration(pushover, send_resolved=False).send(notification(alert("resolved")))
    assert len(pushover.requests) == 1


def test_default_message_says_what_broke_where_and_how_to_silence(pushover: PushoverService) -> None:
    integration(pushover).send(notification(alert(labels={"instance": "web-1"})))
    message = params(pushover.requests[0])["message"]
    assert message.splitlines() == [
        "5xx 3.2/s = 3.2",
        "Where: instance=web-1, service=api",
        "Silence: alerting silence add alertname=HighErrorRate --duration 2h --comment ...",
    ]


def test_default_html_message_escapes_the_data(pushover: PushoverService) -> None:
    hostile = alert(labels={"instance": "<b>x</b>"}, annotations={"summary": "5 < 7 & up"})
    integration(pushover, html=True).send(notification(hostile))
    sent = params(pushover.requests[0])
    assert sent["html"] == "1"
    assert sent["message"].startswith("<b>5 &lt; 7 &amp; up</b> = 3.2\nWhere: instance=&lt;b&gt;x&lt;/b&gt;")


def test_a_large_group_fits_and_counts_the_rest(pushover: PushoverService) -> None:
    many = [alert(labels={"instance": f"web-{i}"}, annotations={"summary": "s" * 150}) for i in range(20)]
    integration(pushover).send(notification(*many))
    message = params(pushover.requests[0])["message"]
    assert len(message) <= MESSAGE_LIMIT and "and 15 more" in message and "silence add" in message


def test_templated_fields_and_options(pushover: PushoverService) -> None:
    integration(
        pushover,
        title="{{ .CommonLabels.alertname }} " + "t" * 300,
        message="{{ .CommonAnnotations.summary }} <i>{{ .CommonLabels.service }}</i>",
        url="https://grafana.example/{{ .CommonLabels.service }}",
        url_title="Dashboard",
        sound="siren",
        device="phone",
        priority='{{ if eq .Status "firing" }}1{{ else }}-1{{ end }}',
        retry="30s",
        expire="2h",
        ttl="1d",
        monospace=True,
    ).send(notification())
    sent = params(pushover.requests[0])
    assert len(sent["title"]) == TITLE_LIMIT and sent["title"].startswith("HighErrorRate tt")
    assert sent["message"] == "5xx 3.2/s <i>api</i>"
    assert (sent["url"], sent["url_title"]) == ("https://grafana.example/api", "Dashboard")
    assert (sent["sound"], sent["device"], sent["priority"]) == ("siren", "phone", "1")
    assert (sent["retry"], sent["expire"], sent["ttl"], sent["monospace"]) == ("30", "7200", "86400", "1")


def test_html_templates_escape_the_data_but_not_their_markup(pushover: PushoverService) -> None:
    hostile = alert(annotations={"summary": 'it\'s <down> & "out"'})
    integration(pushover, html=True, message="<b>{{ .CommonAnnotations.summary }}</b>").send(
        notification(hostile)
    )
    assert params(pushover.requests[0])["message"] == "<b>it&#39;s &lt;down&gt; &amp; &#34;out&#34;</b>"


def test_the_default_template_names_give_our_defaults(pushover: PushoverService) -> None:
    integration(
        pushover,
        title='{{ template "pushover.default.title" . }}',
        message='{{ template "pushover.default.message" . }}',
    ).send(notification())
    integration(pushover).send(notification())
    named, plain = (params(r) for r in pushover.requests)
    assert named["title"] == plain["title"] and named["message"] == plain["message"]


def test_secret_files_are_read_at_send_time(pushover: PushoverService, tmp_path: Path) -> None:
    (tmp_path / "user").write_text(USER + "\n")
    (tmp_path / "token").write_text(TOKEN + "\n")
    hook = pushover_integration(
        {
            "user_key_file": str(tmp_path / "user"),
            "token_file": str(tmp_path / "token"),
            "http_config": pushover.http_config,
        },
        {},
    )
    hook.send(notification())
    assert (params(pushover.requests[0])["user"], params(pushover.requests[0])["token"]) == (USER, TOKEN)
    (tmp_path / "token").unlink()
    with pytest.raises(DeliveryError, match="token_file") as failure:
        hook.send(notification())
    assert failure.value.retryable


test_answers_are_classified_and_never_show_the_secrets = receivers.classification_test(
    "pushover",
    lambda service: integration(service).send(notification()),
    [
        (
            Reply(429, {"status": 0, "errors": ["over quota"]}, {"Retry-After": "60"}),
            True,
            60.0,
            "over quota",
        ),
        (Reply(500, "oops"), True, None, "oops"),
        (
            Reply(400, {"user": "invalid", "errors": ["user identifier is not a valid user"], "status": 0}),
            False,
            None,
            "not a valid user",
        ),
        (
            Reply(
                400, {"token": "invalid", "errors": [f"application token is invalid: {TOKEN}"], "status": 0}
            ),
            False,
            None,
            "token is invalid",
        ),
    ],
    TOKEN,
    USER,
    server=lambda service: service.fake,
)


def test_secrets_in_the_logged_url_are_redacted() -> None:
    url = f"https://api.pushover.net/1/messages.json?expire=3600&token={TOKEN}&user={USER}&title=x"
    line = f'HTTP Request: POST {url} "HTTP/1.1 200 OK"'
    redacted = redact_text(line)
    assert TOKEN not in redacted and USER not in redacted and "title=x" in redacted


# ---------------------------------------------------------------------------------------------------
# Configuration


write_config = receivers.config_writer("pushover_configs", "phone")


test_bad_entries_are_rejected_at_their_position = receivers.rejection_test(
    write_config,
    [
        (
            "user_key: u\ntoken: t\nsond: x",
            'unknown field "sond" in pushover_configs (did you mean "sound"?)',
            "sond",
        ),
        ("token: t\ntitle: x", "user_key (or user_key_file) is required", "token"),
        ("user_key: u\ntitle: x", "token (or token_file) is required", "user_key"),
        (
            "user_key: u\ntoken: t\ntoken_file: /dev/null",
            "set at most one of token and token_file",
            "/dev/null",
        ),
        ("user_key: u\ntoken: t\nretry: soon", "retry", "soon"),
        (
            "user_key: u\ntoken: t\nhtml: true\nmonospace: true",
            "set at most one of html and monospace",
            "true\n",
        ),
        ("user_key: u\ntoken: t\nmessage: '{{ .Status'", "message: template", "'{{"),
    ],
    lines={"true\n": "monospace"},  # the second "true"
)


def test_a_direct_call_raises_config_errors() -> None:
    with pytest.raises(ConfigError, match="user_key"):
        pushover_integration({"token": TOKEN}, {})


def test_unset_key_variable_prints_to_the_console_with_a_warning(tmp_path: Path) -> None:
    path = write_config(tmp_path, "user_key: ${PUSHOVER_USER_KEY}\ntoken: ${PUSHOVER_TOKEN}")
    receivers.assert_console_until_set(
        path, "phone", "pushover_configs", "PUSHOVER_USER_KEY", USER, env={"PUSHOVER_TOKEN": TOKEN}
    )


# ---------------------------------------------------------------------------------------------------
# Beside Alertmanager 0.25

DIFF_RECEIVERS = """
receivers:
  - name: main
    pushover_configs:
      - user_key: BASE
        token: "TOKEN"
        html: true
        title: '{{ .CommonLabels.alertname }}: {{ range .Alerts }}{{ .Labels.instance }} {{ end }}'
        message: |-
          <b>{{ .Status | toUpper }}</b>
          {{ range .Alerts }}{{ .Labels.instance }} {{ .Annotations.summary }} {{ .GeneratorURL }}
          {{ end }}
        url: '{{ .CommonAnnotations.runbook_url }}'
        url_title: Runbook
        sound: siren
        priority: '{{ if eq .Status "firing" }}1{{ else }}-1{{ end }}'
        retry: 30s
        expire: 2h
        http_config:
          proxy_url: PROXY
          tls_config:
            ca_file: CAFILE
"""

DIFF_ALERTS = [
    {
        "labels": {"alertname": "DiskFull", "instance": 'db<1>&"a"\'+', "severity": "warning"},
        "annotations": {
            "summary": '5 < 7 & it\'s "full" ' + "\u00e9" * 1100,
            "runbook_url": "https://rb.example/d?a=1&b=2",
        },
    },
    {
        "labels": {"alertname": "DiskFull", "instance": "db-2", "severity": "warning"},
        "annotations": {"summary": "plain", "runbook_url": "https://rb.example/d?a=1&b=2"},
    },
]


def test_same_requests_as_alertmanager(pushover: PushoverService, tmp_path: Path) -> None:
    receivers = (
        DIFF_RECEIVERS.replace("TOKEN", TOKEN)
        .replace("PROXY", pushover.proxy.url)
        .replace("CAFILE", pushover.ca.ca_file)
    )
    theirs, mine = run_both(
        tmp_path,
        pushover.fake,
        receivers,
        DIFF_ALERTS,
        expect=2,
        resolve=True,
        base=lambda side: f"{side}-{USER}",
        side_of=lambda request: params(request)["user"].split("-")[0],
    )
    assert len(theirs) == len(mine) == 2
    for a, b in zip(theirs, mine, strict=True):
        assert (a.method, a.path, a.body) == (b.method, b.path, b.body) == ("POST", "/1/messages.json", b"")
        assert a.headers["content-type"] == b.headers["content-type"] == "text/plain"
        ours, am = params(b), params(a)
        assert ours.pop("user") == f"ours-{USER}" and am.pop("user") == f"am-{USER}"
        assert ours == am
    assert len(params(mine[0])["message"]) == MESSAGE_LIMIT
    assert [params(r)["priority"] for r in mine] == ["1", "-1"]
