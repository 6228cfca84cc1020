"""Jira receiver (``jira_configs``): one issue per aggregation group, updated while it fires and
moved through the workflow when it resolves or fires again.

On the wire it is what Alertmanager does against Jira's REST API under ``api_url`` (the entry's,
else the global ``jira_api_url``; e.g. ``https://example.atlassian.net/rest/api/2``):

1. Find the group's issue: ``POST {api_url}/search`` with ``{"jql", "maxResults": 2, "fields":
   ["status"]}`` (Jira Cloud, ``api_type: cloud`` or an ``atlassian.net`` host with ``auto``:
   ``POST .../rest/api/3/search/jql``). The JQL names the project and the label ``ALERT{<group
   hash>}``; it skips ``wont_fix_resolution`` and, while firing with a ``reopen_transition`` and a
   ``reopen_duration``, includes issues resolved within that time.
2. No issue: ``POST {api_url}/issue`` creates one (never for a group that is already resolved).
   An issue: ``PUT {api_url}/issue/<key>`` updates it, leaving out the fields whose
   ``enable_update`` is false.
3. A firing group whose issue is done is moved by ``reopen_transition``; a resolved group whose issue
   is open by ``resolve_transition`` (``GET``, then ``POST {api_url}/issue/<key>/transitions``).

The issue's fields: ``project`` (key), ``issuetype`` (name), ``summary`` (cut to 255 characters),
``description`` (cut to 32767; with a ``.../3`` API, Atlassian Document Format), ``labels`` (the
configured ones, rendered, plus the group's ``ALERT{...}`` label, sorted), ``priority`` (name) and
the ``fields`` given, every string in them a template. Credentials come from ``http_config``
(``basic_auth`` with an API token for Jira Cloud, ``authorization`` with a personal access token
for Data Center). 429 and 5xx answers are retried, other 4xx are not.

Our default summary is the notification's title; our default description says what broke, where,
with the values, the runbook and the silence command; our default priority follows the most urgent
severity label among the firing alerts (High, Medium, Low).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from alerting.notify import entries, templates, wording
from alerting.notify.base import DeliveryError, Notification
from alerting.notify.receivers.posting import deliver, group_hash, truncate
from alerting.transport import HTTPConfig

SUMMARY_LIMIT = 255
DESCRIPTION_LIMIT = 32767
API_TYPES = ("auto", "cloud", "datacenter")
_PRIORITIES = {"critical": "High", "error": "High", "warning": "Medium", "info": "Low"}

_FIELDS = (
    "send_resolved",
    "http_config",
    "api_url",
    "api_type",
    "project",
    "summary",
    "description",
    "labels",
    "priority",
    "issue_type",
    "reopen_transition",
    "resolve_transition",
    "wont_fix_resolution",
    "reopen_duration",
    "fields",
)


@dataclass(frozen=True)
class Templated:
    """A field's template ("" means our default) and whether an update sends it."""

    template: str = ""
    enable_update: bool = True


@dataclass(frozen=True)
class JiraSettings:
    api_url: str  # without a trailing slash
    project: str
    issue_type: str
    api_type: str = "auto"
    summary: Templated = Templated()
    description: Templated = Templated()
    labels: tuple[str, ...] = ()
    labels_update: bool = True
    priority: str = ""
    reopen_transition: str = ""
    resolve_transition: str = ""
    wont_fix_resolution: str = ""
    reopen_minutes: int = 0
    fields: Mapping[str, Any] | None = None
    send_resolved: bool = True


def alert_label(notification: Notification) -> str:
    """The label that ties an issue to its aggregation group (Alertmanager's ``ALERT{<hash>}``)."""
    return f"ALERT{{{group_hash(notification.group_key)}}}"


def default_priority(notification: Notification) -> str:
    levels = [wording.level(a.labels, "") for a in notification.firing if wording.severity(a.labels)]
    for level in ("critical", "error", "warning", "info"):
        if level in levels:
            return _PRIORITIES[level]
    return ""


def default_description(notification: Notification) -> str:
    return wording.default_text(notification).rstrip()


def document(text: str) -> dict[str, Any]:
    """``text`` in the Atlassian Document Format (the v3 API's descriptions): a paragraph per block."""
    paragraphs = []
    for block in text.split("\n\n"):
        content: list[dict[str, Any]] = []
        for index, line in enumerate(block.split("\n")):
            if index:
                content.append({"type": "hardBreak"})
            if line:
                content.append({"type": "text", "text": line})
        if content:
            paragraphs.append({"type": "paragraph", "content": content})
    return {"type": "doc", "version": 1, "content": paragraphs}


def jira_defaults(notification: Notification) -> templates.Defaults:
    """What Alertmanager's ``jira.default.*`` template names render to here."""
    return {
        "jira.default.summary": lambda: wording.title(notification),
        "jira.default.description": lambda: default_description(notification),
        "jira.default.priority": lambda: default_priority(notification),
    }


class Jira:
    kind = "jira"

    def __init__(self, settings: JiraSettings, http: HTTPConfig) -> None:
        self.settings = settings
        self.send_resolved = settings.send_resolved
        self.http = http

    def __repr__(self) -> str:
        return f"Jira(api_url={self.settings.api_url!r}, project={self.settings.project!r})"

    # -- rendering -------------------------------------------------------------------------------

    def _render(self, notification: Notification, template: str, name: str, fallback: str = "") -> str:
        return templates.render_or(
            template, notification, name, lambda: fallback, defaults=jira_defaults(notification)
        )

    def _deep(self, notification: Notification, value: Any, name: str) -> Any:
        if isinstance(value, str):
            return self._render(notification, value, name)
        if isinstance(value, Mapping):
            return {str(k): self._deep(notification, v, f"{name}.{k}") for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self._deep(notification, v, name) for v in value]
        return value

    def issue_fields(self, notification: Notification, update: bool) -> dict[str, Any]:
        """The issue's ``fields`` for a create (``update`` False) or an update."""
        s = self.settings
        project = self._render(notification, s.project, "project")
        out: dict[str, Any] = {
            "project": {"key": project},
            "issuetype": {"name": self._render(notification, s.issue_type, "issue_type")},
        }
        if not update or s.summary.enable_update:
            summary = self._render(notification, s.summary.template, "summary", wording.title(notification))
            out["summary"] = truncate(summary, SUMMARY_LIMIT)
        if not update or s.description.enable_update:
            out["description"] = self._description(notification)
        if not update or s.labels_update:
            labels = [self._render(notification, label, "labels") for label in s.labels]
            out["labels"] = sorted([*labels, alert_label(notification)])
        priority = self._render(notification, s.priority, "priority", default_priority(notification)).strip()
        if priority:
            out["priority"] = {"name": priority}
        for key, value in (s.fields or {}).items():
            out[key] = self._deep(notification, value, f"fields.{key}")
        return out

    def _description(self, notification: Notification) -> Any:
        s = self.settings
        text = self._render(
            notification, s.description.template, "description", default_description(notification)
        )
        text = truncate(text, DESCRIPTION_LIMIT)
        if not urlsplit(s.api_url).path.rstrip("/").endswith("/3"):
            return text
        if s.description.template:
            try:
                return json.loads(text)
            except ValueError:
                pass  # a plain-text template: sent as one document rather than refused
        return document(text)

    # -- the API ---------------------------------------------------------------------------------

    def _call(self, method: str, url: str, body: Any = None) -> Any:
        headers = {"Accept": "application/json", "Accept-Language": "en"}
        response = deliver(self.http, method, url, service="Jira", json_body=body, headers=headers)
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            return None

    def search_url(self) -> str:
        s = self.settings
        parts = urlsplit(s.api_url)
        cloud = s.api_type == "cloud" or (
            s.api_type == "auto" and parts.hostname is not None and parts.hostname.endswith("atlassian.net")
        )
        if not cloud:
            return f"{s.api_url}/search"
        path = parts.path.rstrip("/")
        if path.endswith("/2"):
            path = path[:-2] + "/3"
        return urlunsplit(parts._replace(path=f"{path}/search/jql"))

    def jql(self, notification: Notification) -> str:
        s = self.settings
        parts = []
        if s.wont_fix_resolution:
            parts.append(f"resolution != {json.dumps(s.wont_fix_resolution)}")
        if notification.firing and s.reopen_transition and s.reopen_minutes > 0:
            parts.append(f"(resolutiondate is EMPTY OR resolutiondate >= -{s.reopen_minutes}m)")
        else:
            parts.append("statusCategory != Done")
        project = self._render(notification, s.project, "project")
        parts.append(f"project={json.dumps(project)}")
        parts.append(f"labels={json.dumps(alert_label(notification))}")
        return " and ".join(parts) + " order by status ASC,resolutiondate DESC"

    def find_issue(self, notification: Notification) -> dict[str, Any] | None:
        body = {"jql": self.jql(notification), "maxResults": 2, "fields": ["status"]}
        answer = self._call("POST", self.search_url(), body)
        issues = answer.get("issues") if isinstance(answer, dict) else None
        if not isinstance(issues, list) or not issues or not isinstance(issues[0], dict):
            return None
        return issues[0]

    def send(self, notification: Notification) -> None:
        resolved = notification.status == "resolved"
        if resolved and not self.send_resolved:
            return
        issue = self.find_issue(notification)
        api = self.settings.api_url
        if issue is None:
            if resolved:
                return  # nothing was opened for it; a resolved group never opens an issue
            self._call("POST", f"{api}/issue", {"fields": self.issue_fields(notification, update=False)})
            return
        key = str(issue.get("key", ""))
        self._call("PUT", f"{api}/issue/{key}", {"fields": self.issue_fields(notification, update=True)})
        self._transition(issue, key, firing=not resolved)

    def _transition(self, issue: Mapping[str, Any], key: str, *, firing: bool) -> None:
        status = (issue.get("fields") or {}).get("status") or {}
        done = (status.get("statusCategory") or {}).get("key") == "done"
        name = self.settings.reopen_transition if firing else self.settings.resolve_transition
        if done != firing or not name:
            return  # already where it belongs, or no transition configured for this move
        url = f"{self.settings.api_url}/issue/{key}/transitions"
        answer = self._call("GET", url)
        transitions = answer.get("transitions") if isinstance(answer, dict) else None
        for transition in transitions or []:
            if isinstance(transition, dict) and transition.get("name") == name:
                self._call("POST", url, {"transition": {"id": str(transition.get("id", ""))}})
                return
        raise DeliveryError(f'Jira has no transition "{name}" for issue {key}', retryable=False)


# ---------------------------------------------------------------------------------------------------
# Configuration


def _templated(config: Mapping[str, Any], key: str, what: str) -> Templated:
    raw = config.get(key)
    if raw is None or isinstance(raw, str):
        return Templated(templates.check_template(config, key, what))
    if not isinstance(raw, Mapping):
        raise entries.config_error(config, key, f"{what}: {key} must be a template or a mapping")
    entries.check_fields(raw, ("template", "enable_update"), f"{what} {key}")
    return Templated(
        templates.check_template(raw, "template", f"{what} {key}"),
        entries.boolean(raw, "enable_update", f"{what} {key}", True),
    )


def _labels(config: Mapping[str, Any], what: str) -> tuple[tuple[str, ...], bool]:
    raw = config.get("labels")
    if isinstance(raw, Mapping):
        entries.check_fields(raw, ("values", "enable_update"), f"{what} labels")
        values = entries.string_list(raw, "values", f"{what} labels")
        return tuple(values), entries.boolean(raw, "enable_update", f"{what} labels", True)
    return tuple(entries.string_list(config, "labels", what)), True


def jira_integration(config: Mapping[str, Any], global_config: Mapping[str, Any]) -> Jira:
    """Build a Jira integration from one ``jira_configs`` entry."""
    what = "jira_configs"
    entries.check_fields(config, _FIELDS, what)
    api_url = entries.string(config, "api_url", what)
    where, key = config, "api_url"
    if not api_url:
        api_url, where, key = (
            entries.string(global_config, "jira_api_url", "global"),
            global_config,
            "jira_api_url",
        )
    if not api_url:
        raise entries.config_error(config, None, f"{what}: api_url is required, or jira_api_url in global")
    if not wording.is_web_link(api_url):
        raise entries.config_error(where, key, f"{what}: {key} must be an http(s) URL, got {api_url!r}")
    project = templates.check_template(config, "project", what)
    if not project:
        raise entries.config_error(config, None, f"{what}: project is required")
    issue_type = templates.check_template(config, "issue_type", what)
    if not issue_type:
        raise entries.config_error(config, None, f"{what}: issue_type is required")
    api_type = entries.string(config, "api_type", what, "auto")
    if api_type not in API_TYPES:
        raise entries.config_error(config, "api_type", f"{what}: api_type must be auto, cloud or datacenter")
    fields = entries.mapping(config, "fields", what)
    labels, labels_update = _labels(config, what)
    reopen = config.get("reopen_duration")
    settings = JiraSettings(
        api_url=api_url.rstrip("/"),
        project=project,
        issue_type=issue_type,
        api_type=api_type,
        summary=_templated(config, "summary", what),
        description=_templated(config, "description", what),
        labels=labels,
        labels_update=labels_update,
        priority=templates.check_template(config, "priority", what),
        reopen_transition=entries.string(config, "reopen_transition", what),
        resolve_transition=entries.string(config, "resolve_transition", what),
        wont_fix_resolution=entries.string(config, "wont_fix_resolution", what),
        reopen_minutes=int(entries.duration(config, "reopen_duration", what, 60.0) // 60) if reopen else 0,
        fields=dict(fields) if fields else None,
        send_resolved=entries.boolean(config, "send_resolved", what, True),
    )
    return Jira(settings, entries.http_config(config, what, global_config))
