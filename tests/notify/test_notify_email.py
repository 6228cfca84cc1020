"""Email receiver against a real SMTP server (aiosmtpd): plain, STARTTLS, implicit TLS, AUTH."""

from __future__ import annotations

import email
from dataclasses import replace
from email.message import Message
from pathlib import Path
from typing import Any

import pytest

from alerting.errors import ConfigError
from alerting.notify.base import DeliveryError
from alerting.notify.receivers import INTEGRATIONS
from alerting.notify.receivers.email import Email, email_integration
from tests.support.differential import run_both
from tests.support.fakes import SMTP_PASSWORD, SMTP_USER, LocalCA, make_ca, smtp_server
from tests.support.net import free_port
from tests.support.notifications import alert, notification

BASE = {"to": "a@x", "from": "b@x", "smarthost": "h:25"}


def mailer(port: int, **extra: Any) -> Email:
    config = {
        "to": "oncall@example.com, Backup Person <backup@example.com>",
        "from": "Alerting <alerts@example.com>",
        "smarthost": f"127.0.0.1:{port}",
        "require_tls": False,
        "timeout": "5s",
        **extra,
    }
    return email_integration(config, {})


def parts(raw: bytes) -> tuple[Message, str, str]:
    message = email.message_from_bytes(raw)
    bodies = {
        p.get_content_type(): p.get_payload(decode=True).decode()
        for p in message.walk()
        if not p.is_multipart()
    }
    return message, bodies.get("text/plain", ""), bodies.get("text/html", "")


def test_registered_under_alertmanager_config_key() -> None:
    assert INTEGRATIONS["email_configs"] is email_integration


def test_mail_is_multipart_text_and_html_with_alertmanager_subject() -> None:
    n = notification(
        alert(labels={"instance": "api-1:8080"}, value=3.2),
        alert(labels={"instance": "api-2:8080"}, value=4.5),
    )
    with smtp_server() as (port, box):
        mailer(port).send(n)
    ((sender, recipients, raw),) = box.messages
    assert sender == "alerts@example.com"
    assert recipients == ["oncall@example.com", "backup@example.com"]
    message, text, body = parts(raw)
    assert message["Subject"] == "[FIRING:2] HighErrorRate (api critical)"
    assert message["From"] == "Alerting <alerts@example.com>"
    assert message["To"] == "oncall@example.com, backup@example.com"
    assert message["Message-Id"] and message["Date"]
    assert message.get_content_type() == "multipart/alternative"
    assert text.splitlines()[:4] == [
        "[FIRING:2] HighErrorRate (api critical)",
        "",
        "Severity: critical",
        "Where: service=api",
    ]
    assert "- 5xx 3.2/s (value 4.5)" in text
    assert "  Labels: alertname=HighErrorRate, instance=api-2:8080, service=api, severity=critical" in text
    assert "Runbook: https://runbooks.example/high-error-rate" in text
    assert "Silence: alerting silence add alertname=HighErrorRate --duration 2h --comment ..." in text
    assert '<a href="https://runbooks.example/high-error-rate">Runbook</a>' in body
    assert "<h3>Firing (2)</h3>" in body
    assert "instance=api-1:8080" in body and "<code>4.5</code>" in body


def test_html_part_escapes_label_and_annotation_values() -> None:
    n = notification(
        alert(
            labels={"service": "<script>alert(1)</script>", "pod": 'a"b&c'},
            annotations={"summary": "<b>bold</b> & more", "runbook_url": 'https://x.example/?a=1&b="2"'},
        )
    )
    with smtp_server() as (port, box):
        mailer(port).send(n)
    _, text, body = parts(box.messages[0][2])
    assert "<script>" not in body and "<b>bold</b>" not in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body
    assert "&lt;b&gt;bold&lt;/b&gt; &amp; more" in body
    assert "pod=a&quot;b&amp;c" in body
    assert 'href="https://x.example/?a=1&amp;b=&quot;2&quot;"' in body
    assert "<b>bold</b> & more" in text  # plain text needs no escaping


def test_mails_of_one_group_share_a_thread_reference() -> None:
    with smtp_server() as (port, box):
        integration = mailer(port, send_resolved=True)
        integration.send(notification(alert()))
        integration.send(notification(alert("resolved")))
        integration.send(notification(alert(), group_key='{}:{alertname="Other"}'))
    first, resolved, other = (parts(m[2])[0] for m in box.messages)
    assert first["References"] == resolved["References"] == first["In-Reply-To"]
    assert first["References"].startswith("<group-") and other["References"] != first["References"]
    assert first["Message-Id"] != resolved["Message-Id"]


def test_a_notification_sent_again_keeps_its_message_id() -> None:
    once = replace(notification(alert()), notification_id="nf-0123abcd")
    with smtp_server() as (port, box):
        integration = mailer(port)
        integration.send(once)
        integration.send(once)  # a retry after a worker died mid-send
        integration.send(replace(once, notification_id="nf-4567ef01"))  # the next notification
    first, again, following = (parts(m[2])[0]["Message-Id"] for m in box.messages)
    assert first == again == "<nf-0123abcd@alerting>" and following == "<nf-4567ef01@alerting>"


def test_javascript_runbook_link_is_not_rendered_as_a_link() -> None:
    with smtp_server() as (port, box):
        mailer(port).send(notification(alert(annotations={"runbook_url": "javascript:alert(1)"})))
    _, _, body = parts(box.messages[0][2])
    assert "javascript:" not in body


def test_starttls_with_auth_logs_in_after_upgrading(ca: LocalCA) -> None:
    with smtp_server(tls=ca.server_context, require_auth=True) as (port, box):
        mailer(
            port,
            require_tls=True,
            auth_username=SMTP_USER,
            auth_password=SMTP_PASSWORD,
            tls_config={"ca_file": ca.ca_file},
        ).send(notification())
    assert box.logins == [SMTP_USER]
    assert len(box.messages) == 1


def test_implicit_tls_with_auth(ca: LocalCA) -> None:
    with smtp_server(tls=ca.server_context, implicit_tls=True, require_auth=True) as (port, box):
        mailer(
            port,
            implicit_tls=True,
            auth_username=SMTP_USER,
            auth_password=SMTP_PASSWORD,
            tls_config={"ca_file": ca.ca_file},
        ).send(notification())
    assert box.logins == [SMTP_USER] and len(box.messages) == 1


def test_password_file_and_global_smtp_settings(ca: LocalCA, tmp_path: Path) -> None:
    secret = tmp_path / "smtp-password"
    secret.write_text(SMTP_PASSWORD + "\n")
    with smtp_server(tls=ca.server_context, require_auth=True) as (port, box):
        integration = email_integration(
            {"to": "oncall@example.com", "tls_config": {"ca_file": ca.ca_file}},
            {
                "smtp_from": "alerts@example.com",
                "smtp_smarthost": f"127.0.0.1:{port}",
                "smtp_auth_username": SMTP_USER,
                "smtp_auth_password_file": str(secret),
            },
        )
        integration.send(notification())
    assert box.logins == [SMTP_USER] and box.messages[0][0] == "alerts@example.com"


def test_wrong_password_is_permanent(ca: LocalCA) -> None:
    with smtp_server(tls=ca.server_context, require_auth=True) as (port, box):
        integration = mailer(
            port,
            require_tls=True,
            auth_username=SMTP_USER,
            auth_password="nope",
            tls_config={"ca_file": ca.ca_file},
        )
        with pytest.raises(DeliveryError, match="authentication failed") as caught:
            integration.send(notification())
    assert caught.value.retryable is False
    assert "nope" not in str(caught.value)
    assert box.messages == []


def test_require_tls_against_a_server_without_starttls_is_permanent() -> None:
    with (
        smtp_server() as (port, box),
        pytest.raises(DeliveryError, match="does not offer STARTTLS") as caught,
    ):
        mailer(port, require_tls=True).send(notification())
    assert caught.value.retryable is False and box.messages == []


def test_untrusted_server_certificate_is_permanent(ca: LocalCA) -> None:
    with (
        smtp_server(tls=ca.server_context) as (port, box),
        pytest.raises(DeliveryError, match="certificate not trusted") as caught,
    ):
        mailer(port, require_tls=True).send(notification())
    assert caught.value.retryable is False and box.messages == []


@pytest.mark.parametrize(
    ("to", "retryable"),
    [("nobody@invalid.example", False), ("later@busy.example", True)],
)
def test_refused_recipient_is_classified_by_smtp_code(to: str, retryable: bool) -> None:
    with smtp_server() as (port, box), pytest.raises(DeliveryError, match=to) as caught:
        mailer(port, to=to).send(notification())
    assert caught.value.retryable is retryable and box.messages == []


def test_partly_refused_recipients_are_reported_not_retried() -> None:
    with smtp_server() as (port, box), pytest.raises(DeliveryError, match="nobody@invalid.example") as caught:
        mailer(port, to="oncall@example.com, nobody@invalid.example").send(notification())
    assert caught.value.retryable is False
    assert [m[1] for m in box.messages] == [["oncall@example.com"]]


def test_unreachable_server_is_retryable() -> None:
    with pytest.raises(DeliveryError, match="unreachable") as caught:
        mailer(free_port()).send(notification())
    assert caught.value.retryable is True


def test_resolved_mail_only_when_enabled() -> None:
    with smtp_server() as (port, box):
        mailer(port).send(notification(alert("resolved")))
        assert box.messages == []
        mailer(port, send_resolved=True).send(notification(alert("resolved")))
    message, text, _ = parts(box.messages[0][2])
    assert message["Subject"] == "[RESOLVED] HighErrorRate (api critical)"
    assert "Resolved (1):" in text and "Silence:" not in text


def test_configured_headers_override_defaults_and_html_can_be_turned_off() -> None:
    with smtp_server() as (port, box):
        mailer(port, headers={"Subject": "Page: api", "X-Team": "payments"}, html="").send(notification())
    message, text, body = parts(box.messages[0][2])
    assert message["Subject"] == "Page: api" and message["X-Team"] == "payments"
    assert message.get_content_type() == "text/plain" and body == "" and text


def test_templates_for_subject_html_and_text_escape_values_only_in_html() -> None:
    n = notification(alert(labels={"service": "<script>x</script>", "team": "payments"}))
    with smtp_server() as (port, box):
        mailer(
            port,
            headers={"Subject": "[{{ .Status | toUpper }}] {{ .CommonLabels.team }}\nBcc: evil@example.com"},
            html='<p class="x">{{ .CommonLabels.service }}</p>{{ template "email.default.html" . }}',
            text='{{ range .Alerts }}{{ .Labels.service }} since {{ .StartsAt.Format "15:04" }}{{ end }}',
        ).send(n)
    message, text, body = parts(box.messages[0][2])
    assert message["Subject"] == "[FIRING] payments Bcc: evil@example.com"  # one line, no injected header
    assert message["Bcc"] is None and box.messages[0][1] == ["oncall@example.com", "backup@example.com"]
    assert body.startswith('<p class="x">&lt;script&gt;x&lt;/script&gt;</p><!DOCTYPE html>')
    assert text.strip() == "<script>x</script> since 00:00"


def test_broken_template_falls_back_to_the_default_part() -> None:
    with smtp_server() as (port, box):
        mailer(port, html="{{ index .Alerts 9 }}").send(notification())
    _, _, body = parts(box.messages[0][2])
    assert "<h3>Firing (1)</h3>" in body


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"from": "a@x", "smarthost": "h:25"}, "to (one or more addresses"),
        ({"to": "a@x", "smarthost": "h:25"}, "from is required"),
        ({"to": "a@x", "from": "b@x"}, "smarthost is required"),
        ({"to": "a@x", "from": "b@x", "smarthost": "mail.example"}, "smarthost must be host:port"),
        ({**BASE, "requre_tls": True}, '(did you mean "require_tls"?)'),
        ({**BASE, "tls_config": {"ca_file": "/nope.pem"}}, "cannot load TLS files"),
        ({**BASE, "timeout": "soon"}, "timeout"),
        ({**BASE, "html": "{{ if }}"}, "html: template: html:1: missing value for if"),
    ],
)
def test_bad_config_is_a_config_error(config: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        email_integration(config, {})
    assert message in str(caught.value)


@pytest.mark.parametrize("implicit_tls", [False, True])
def test_tls_server_name_is_the_name_the_smtp_certificate_is_checked_against(
    tmp_path: Path, implicit_tls: bool
) -> None:
    ca = make_ca(tmp_path, "mail.internal.example")
    tls = {"ca_file": ca.ca_file}
    with smtp_server(tls=ca.server_context, implicit_tls=implicit_tls) as (port, box):
        with pytest.raises(DeliveryError, match="certificate not trusted"):
            mailer(port, require_tls=True, implicit_tls=implicit_tls, tls_config=tls).send(notification())
        named = {**tls, "server_name": "mail.internal.example"}
        mailer(port, require_tls=True, implicit_tls=implicit_tls, tls_config=named).send(notification())
    assert len(box.messages) == 1


# ---------------------------------------------------------------------------------------------------
# Beside Alertmanager 0.25: both send to one real SMTP server

# Our default subject and bodies say more than Alertmanager's default templates (the value, the key
# labels, the runbook, the silence command): the comparison sets the subject and both bodies as
# templates, so what is compared is the mail itself (headers, MIME structure, rendered parts).
DIFF_RECEIVERS = """
receivers:
  - name: main
    email_configs:
      - to: 'oncall@example.com, backup@example.com'
        from: 'alerts@example.com'
        smarthost: 'SMARTHOST'
        require_tls: false
        send_resolved: true
        headers:
          Subject: '[{{ .Status | toUpper }}] {{ .GroupLabels.alertname }} ({{ len .Alerts.Firing }} firing)'
          X-Side: 'BASE'
          X-Team: '{{ .CommonLabels.team }}'
        text: |-
          {{ range .Alerts }}{{ .Status }} {{ .Labels.instance }}: {{ .Annotations.summary }}
          {{ end }}{{ range .CommonLabels.SortedPairs }}{{ .Name }}={{ .Value }} {{ end }}
        html: |-
          <h1>{{ .Status }}</h1><ul>{{ range .Alerts -}}
          <li>{{ .Labels.instance }}: {{ .Annotations.summary }}</li>{{ end }}</ul>
"""

DIFF_ALERTS = [
    {
        "labels": {"alertname": "DiskFull", "team": "storage", "instance": "db<1>&"},
        "annotations": {"summary": "disk 97% full on /var & /srv \u00e9t\u00e9"},
    },
    {
        "labels": {"alertname": "DiskFull", "team": "storage", "instance": "db-2"},
        "annotations": {"summary": "disk 91% full"},
    },
]


class _Mails:
    """The SMTP server's mailbox as the comparison reads it: one parsed message per mail."""

    def __init__(self, box: Any) -> None:
        self.box = box

    @property
    def requests(self) -> list[Message]:
        return [email.message_from_bytes(raw) for _, _, raw in self.box.messages]


def _shape(message: Message) -> list[tuple[str, str, str]]:
    """Each leaf part's content type, charset and decoded text (line ends and trailing newlines aside)."""
    return [
        (
            p.get_content_type(),
            (p.get_content_charset() or "").lower(),
            p.get_payload(decode=True).decode().replace("\r\n", "\n").rstrip("\n"),
        )
        for p in message.walk()
        if not p.is_multipart()
    ]


def test_same_mail_as_alertmanager(tmp_path: Path) -> None:
    with smtp_server() as (port, box):
        receivers_text = DIFF_RECEIVERS.replace("SMARTHOST", f"127.0.0.1:{port}")
        theirs, mine = run_both(
            tmp_path,
            _Mails(box),
            receivers_text,
            DIFF_ALERTS,
            expect=2,
            resolve=True,
            base=lambda side: side,
            side_of=lambda message: str(message["X-Side"]),
        )
        envelopes = {(sender, tuple(to)) for sender, to, _ in box.messages}
    assert envelopes == {("alerts@example.com", ("oncall@example.com", "backup@example.com"))}
    assert len(theirs) == len(mine) == 2
    for a, b in zip(theirs, mine, strict=True):
        for header in ("From", "To", "Subject", "X-Team"):
            assert a[header] == b[header], header
        assert a.get_content_type() == b.get_content_type() == "multipart/alternative"
        assert _shape(a) == _shape(b)
        assert a["Message-Id"] and b["Message-Id"] and a["Date"] and b["Date"]
    assert [m["Subject"] for m in mine] == ["[FIRING] DiskFull (2 firing)", "[RESOLVED] DiskFull (0 firing)"]
    html_part = _shape(mine[0])[1][2]
    assert "db&lt;1&gt;&amp;" in html_part and "/var &amp; /srv" in html_part
