"""The Jira integration against a local server speaking Jira's REST API (search, create, update,
transitions), keeping its issues so a group's whole life can be followed."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from alerting.errors import ConfigError
from alerting.notify.base import DeliveryError
from alerting.notify.receivers import INTEGRATIONS
from alerting.notify.receivers.jira import alert_label, jira_integration
from tests.support import receivers
from tests.support.httpfake import FakeHTTPServer, Reply, Request
from tests.support.notifications import alert, notification

USER, API_TOKEN = "oncall@example.com", "ATATT3xFfGF0-jira-api-token"
TRANSITIONS = [{"id": "31", "name": "Done"}, {"id": "11", "name": "Reopen"}]


class JiraFake:
    """Issues by key, each with its fields and a status category (``new`` or ``done``)."""

    def __init__(self) -> None:
        self.issues: dict[str, dict[str, Any]] = {}
        self.server = FakeHTTPServer(self._handle)

    def _handle(self, request: Request) -> Reply:
        if request.basic_auth() != (USER, API_TOKEN):
            return Reply(401, {"errorMessages": ["You are not authenticated."]})
        path = re.sub(r"^/rest/api/[23]", "", request.path)
        if request.method == "POST" and path in ("/search", "/search/jql"):
            return self._search(request.json())
        if request.method == "POST" and path == "/issue":
            key = f"OPS-{len(self.issues) + 1}"
            self.issues[key] = {"fields": request.json()["fields"], "category": "new"}
            return Reply(201, {"id": str(10000 + len(self.issues)), "key": key})
        found = re.fullmatch(r"/issue/([A-Z]+-\d+)(/transitions)?", path)
        if not found or found.group(1) not in self.issues:
            return Reply(
                404, {"errorMessages": ["Issue does not exist or you do not have permission to see it."]}
            )
        issue = self.issues[found.group(1)]
        if found.group(2) and request.method == "GET":
            return Reply(200, {"transitions": TRANSITIONS})
        if found.group(2):
            chosen = request.json()["transition"]["id"]
            issue["category"] = "done" if chosen == "31" else "new"
            return Reply(204)
        issue["fields"] = {**issue["fields"], **request.json()["fields"]}
        return Reply(204)

    def _search(self, body: dict[str, Any]) -> Reply:
        jql = body["jql"]
        label = re.search(r'labels="(ALERT\{[0-9a-f]+\})"', jql)
        assert label and body["maxResults"] == 2 and body["fields"] == ["status"], body
        open_only = "statusCategory != Done" in jql
        hits = [
            {"key": key, "fields": {"status": {"statusCategory": {"key": issue["category"]}}}}
            for key, issue in self.issues.items()
            if label.group(1) in issue["fields"].get("labels", [])
            and not (open_only and issue["category"] == "done")
        ]
        return Reply(200, {"issues": hits[:2], "total": len(hits)})


@pytest.fixture
def jira() -> Iterator[JiraFake]:
    fake = JiraFake()
    with fake.server:
        yield fake


def integration(fake: JiraFake, api: str = "/rest/api/2", **fields: Any) -> Any:
    config = {
        "api_url": fake.server.url + api,
        "project": "OPS",
        "issue_type": "Bug",
        "http_config": {"basic_auth": {"username": USER, "password": API_TOKEN}},
        **fields,
    }
    return jira_integration(config, {})


def calls(fake: JiraFake) -> list[str]:
    return [f"{r.method} {r.path}" for r in fake.server.requests]


def test_registered_under_alertmanager_config_key() -> None:
    assert INTEGRATIONS["jira_configs"] is jira_integration


def test_a_firing_group_opens_one_issue_with_our_default_fields(jira: JiraFake) -> None:
    n = notification(alert(labels={"instance": "web-1"}))
    integration(jira, labels=["alerting", "{{ .CommonLabels.service }}"]).send(n)
    assert calls(jira) == ["POST /rest/api/2/search", "POST /rest/api/2/issue"]
    search = jira.server.requests[0].json()["jql"]
    assert search == (
        f'statusCategory != Done and project="OPS" and labels="{alert_label(n)}" '
        "order by status ASC,resolutiondate DESC"
    )
    fields = jira.issues["OPS-1"]["fields"]
    assert fields["project"] == {"key": "OPS"} and fields["issuetype"] == {"name": "Bug"}
    assert fields["summary"] == "[FIRING:1] HighErrorRate (web-1 api critical)"
    assert fields["labels"] == sorted(["alerting", "api", alert_label(n)])
    assert fields["priority"] == {"name": "High"}
    for part in (
        "Severity: critical",
        "Runbook: https://runbooks.example/high-error-rate",
        "Silence: alerting silence add",
    ):
        assert part in fields["description"]


def test_the_group_keeps_its_issue_and_resolving_moves_it_to_done(jira: JiraFake) -> None:
    jira_hook = integration(
        jira, resolve_transition="Done", summary={"template": "{{ .Status }}", "enable_update": False}
    )
    jira_hook.send(notification(alert(labels={"instance": "a"})))
    jira_hook.send(notification(alert(labels={"instance": "a"}), alert(labels={"instance": "b"})))
    jira_hook.send(
        notification(alert("resolved", labels={"instance": "a"}), alert("resolved", labels={"instance": "b"}))
    )
    assert list(jira.issues) == ["OPS-1"] and jira.issues["OPS-1"]["category"] == "done"
    assert calls(jira)[2:] == [
        "POST /rest/api/2/search",
        "PUT /rest/api/2/issue/OPS-1",
        "POST /rest/api/2/search",
        "PUT /rest/api/2/issue/OPS-1",
        "GET /rest/api/2/issue/OPS-1/transitions",
        "POST /rest/api/2/issue/OPS-1/transitions",
    ]
    assert jira.server.requests[-1].json() == {"transition": {"id": "31"}}
    # An update leaves out the summary: enable_update is off for it.
    assert "summary" not in jira.server.requests[3].json()["fields"]
    assert jira.issues["OPS-1"]["fields"]["summary"] == "firing"


def test_a_resolved_group_without_an_issue_opens_none(jira: JiraFake) -> None:
    integration(jira).send(notification(alert("resolved")))
    assert calls(jira) == ["POST /rest/api/2/search"] and not jira.issues


def test_firing_again_within_the_reopen_duration_reopens_the_issue(jira: JiraFake) -> None:
    hook = integration(
        jira,
        resolve_transition="Done",
        reopen_transition="Reopen",
        reopen_duration="1h",
        wont_fix_resolution="Won't Fix",
    )
    hook.send(notification())
    hook.send(notification(alert("resolved")))
    hook.send(notification())
    assert list(jira.issues) == ["OPS-1"] and jira.issues["OPS-1"]["category"] == "new"
    jql = jira.server.requests[-4].json()["jql"]
    assert jql.startswith(
        'resolution != "Won\'t Fix" and (resolutiondate is EMPTY OR resolutiondate >= -60m) and '
    )
    assert jira.server.requests[-1].json() == {"transition": {"id": "11"}}


def test_jira_cloud_searches_with_the_v3_api_and_takes_documents(jira: JiraFake) -> None:
    hook = integration(jira, api="/rest/api/3", api_type="cloud")
    hook.send(notification())
    assert calls(jira) == ["POST /rest/api/3/search/jql", "POST /rest/api/3/issue"]
    description = jira.issues["OPS-1"]["fields"]["description"]
    assert description["type"] == "doc" and description["version"] == 1
    first = description["content"][0]["content"][0]
    assert first == {"type": "text", "text": "[FIRING:1] HighErrorRate (api critical)"}


def test_a_v2_url_on_cloud_searches_with_v3(jira: JiraFake) -> None:
    integration(jira, api_type="cloud").send(notification())
    assert calls(jira)[0] == "POST /rest/api/3/search/jql"


def test_templated_fields_priority_and_custom_fields(jira: JiraFake) -> None:
    integration(
        jira,
        project="{{ .CommonLabels.service | toUpper }}",
        summary="{{ .CommonAnnotations.summary }}",
        description="{{ range .Alerts }}{{ .Labels.instance }} {{ end }}",
        priority='{{ if eq .CommonLabels.severity "critical" }}Highest{{ end }}',
        fields={
            "customfield_10001": "{{ .CommonLabels.service }}",
            "components": [{"name": "{{ .GroupLabels.alertname }}"}],
            "customfield_10002": 5,
        },
    ).send(notification(alert(labels={"instance": "web-1"})))
    fields = jira.issues["OPS-1"]["fields"]
    assert fields["project"] == {"key": "API"} and fields["summary"] == "5xx 3.2/s"
    assert fields["description"] == "web-1 " and fields["priority"] == {"name": "Highest"}
    assert fields["customfield_10001"] == "api" and fields["components"] == [{"name": "HighErrorRate"}]
    assert fields["customfield_10002"] == 5


def test_a_missing_transition_is_a_permanent_failure(jira: JiraFake) -> None:
    hook = integration(jira, resolve_transition="Close")
    hook.send(notification())
    with pytest.raises(DeliveryError, match='no transition "Close"') as failure:
        hook.send(notification(alert("resolved")))
    assert not failure.value.retryable


test_answers_are_classified = receivers.classification_test(
    "jira",
    lambda service: integration(service).send(notification()),
    [
        (
            Reply(429, {"errorMessages": ["Rate limit exceeded"]}, {"Retry-After": "7"}),
            True,
            7.0,
            "rate limited",
        ),
        (Reply(503, "Service Unavailable"), True, None, "503"),
        (
            Reply(400, {"errorMessages": [], "errors": {"priority": "Priority name 'High' is not valid"}}),
            False,
            None,
            "not valid",
        ),
        (
            Reply(403, {"errorMessages": ["You do not have permission to create issues in this project."]}),
            False,
            None,
            "403",
        ),
    ],
    API_TOKEN,
    server=lambda service: service.server,
)


write_config = receivers.config_writer("jira_configs", "chat", with_global=True)

test_bad_entries_are_rejected_at_their_position = receivers.rejection_test(
    write_config,
    [
        ("project: OPS\nissue_type: Bug", "api_url is required, or jira_api_url in global", "project"),
        ("api_url: https://j.example/rest/api/2\nissue_type: Bug", "project is required", "api_url"),
        ("api_url: https://j.example/rest/api/2\nproject: OPS", "issue_type is required", "api_url"),
        (
            "api_url: https://j.example/rest/api/2\nproject: OPS\nissue_type: Bug\napi_type: server",
            "api_type must be",
            "server",
        ),
        (
            "api_url: https://j.example/rest/api/2\nproject: OPS\nissue_type: Bug\nsummary: {text: x}",
            'unknown field "text"',
            "text",
        ),
        (
            "api_url: https://j.example/rest/api/2\nproject: OPS\nissue_type: Bug\nreopen_duration: soon",
            "reopen_duration",
            "soon",
        ),
        (
            "api_url: https://j.example/rest/api/2\nproject: OPS\nissue_type: Bug\nissuetype: Task",
            'unknown field "issuetype"',
            "issuetype",
        ),
    ],
)


def test_api_url_comes_from_the_global_jira_api_url(jira: JiraFake) -> None:
    hook = jira_integration(
        {
            "project": "OPS",
            "issue_type": "Bug",
            "http_config": {"basic_auth": {"username": USER, "password": API_TOKEN}},
        },
        {"jira_api_url": jira.server.url + "/rest/api/2"},
    )
    hook.send(notification())
    assert list(jira.issues) == ["OPS-1"]
    with pytest.raises(ConfigError, match="jira_api_url"):
        jira_integration({"project": "OPS", "issue_type": "Bug"}, {})


def test_a_password_file_is_read_for_each_request(jira: JiraFake, tmp_path: Path) -> None:
    secret = tmp_path / "jira-token"
    secret.write_text(API_TOKEN + "\n")
    hook = integration(jira, http_config={"basic_auth": {"username": USER, "password_file": str(secret)}})
    hook.send(notification())
    assert list(jira.issues) == ["OPS-1"]
