"""The API built in-process from a private Redis prefix and a configuration file; the figures of the
API's conformance runs, printed at the end of the run."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from alerting.api.alertmanager import AlertmanagerAPI
from alerting.api.app import build_app
from alerting.api.health import Readiness
from alerting.notify.store import NotifyStore
from tests.support.routing_redis import isolated_redis
from tests.support.summary import write_summary

SUMMARY = "api conformance"

CONFIG = """\
global:
  resolve_timeout: 5m
  slack_api_url: https://hooks.slack.com/services/T/B/X
  smtp_auth_password: hunter2
route:
  receiver: team
  group_by: [alertname]
  group_wait: 30s
  routes:
    - receiver: pager
      matchers: ['severity="critical"']
    - receiver: db
      matchers: ['service=~"db|cache"']
      continue: true
inhibit_rules:
  - source_matchers: ['severity="critical"']
    target_matchers: ['severity="warning"']
    equal: [service]
receivers:
  - name: team
    webhook_configs:
      - url: http://127.0.0.1:1/hook
        http_config:
          basic_auth: {username: u, password: p}
  - name: pager
    slack_configs:
      - channel: '#x'
  - name: db
    webhook_configs:
      - url: http://127.0.0.1:1/db
"""


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "alerting.yml"
    path.write_text(CONFIG)
    return path


@pytest.fixture
def store() -> Iterator[NotifyStore]:
    with isolated_redis() as (client, prefix):
        yield NotifyStore(client, prefix)


@pytest.fixture
def api(store: NotifyStore, config_file: Path) -> AlertmanagerAPI:
    return AlertmanagerAPI(store, config_file, version="0.1.0")


@pytest.fixture
def client(api: AlertmanagerAPI, store: NotifyStore) -> Iterator[TestClient]:
    readiness = Readiness(redis_url="redis://127.0.0.1:9", broker_url="redis://127.0.0.1:9", timeout=0.2)
    app = build_app(readiness, metrics_registry=None, alertmanager=api)
    with TestClient(app, base_url="http://127.0.0.1:9464") as test_client:
        yield test_client
    readiness.close()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    write_summary(terminalreporter, SUMMARY)
