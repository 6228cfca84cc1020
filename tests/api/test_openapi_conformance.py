"""Every operation of Alertmanager 0.25's OpenAPI document, with requests schemathesis generates from
it, against the worker's running API: no server error, and every response conforms to the document
(status code, content type, schema). Where Alertmanager 0.25 itself answers outside its document
(a 400 for a bad filter the document does not list), the same request goes to a real Alertmanager
and the worker must answer as it does. The counts are printed at the end of the run."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given
from hypothesis import strategies as st
from schemathesis.core.failures import FailureGroup

from alerting.api.alertmanager import AlertmanagerAPI
from alerting.api.health import HealthServer, Readiness
from alerting.core import rfc3339
from alerting.notify.store import NotifyStore
from tests.api.conftest import SUMMARY
from tests.conformance.conftest import conformance_dir
from tests.support.net import REDIS_URL
from tests.support.routing_alertmanager import Alertmanager

EXAMPLES = 50  # per operation: the nine operations take seconds
SPEC = conformance_dir() / "alertmanager-api" / "openapi-v0.25.yaml"


def seed(url: str) -> None:
    """Something to list: alerts in groups (one without a generator URL), and a silence."""
    now = time.time()
    alerts = [
        {"labels": {"alertname": "DiskFull", "service": "db", "severity": "warning"}},
        {"labels": {"alertname": "Down", "service": "web"}, "generatorURL": "http://prometheus/graph"},
    ]
    httpx.post(f"{url}/api/v2/alerts", json=alerts).raise_for_status()
    silence = {
        "matchers": [{"name": "service", "value": "web", "isRegex": False}],
        "startsAt": rfc3339(now),
        "endsAt": rfc3339(now + 3600),
        "createdBy": "ops",
        "comment": "deploy",
    }
    httpx.post(f"{url}/api/v2/silences", json=silence).raise_for_status()


@pytest.fixture
def server(store: NotifyStore, config_file: Path) -> Iterator[HealthServer]:
    prefix = store.p.removesuffix(":notify")
    readiness = Readiness(redis_url=REDIS_URL, broker_url=REDIS_URL, prefix=prefix)
    api = AlertmanagerAPI(store, config_file, version="0.1.0")
    with HealthServer(("127.0.0.1", 0), readiness, alertmanager=api) as running:
        seed(running.url)
        yield running


@pytest.fixture
def alertmanager(config_file: Path, tmp_path: Path) -> Iterator[Alertmanager]:
    (tmp_path / "am").mkdir()
    with Alertmanager(config_file, tmp_path / "am") as real:
        seed(real.url)
        yield real


def conforms(case: schemathesis.Case, response: Any) -> bool:
    try:
        case.validate_response(response)
    except (Exception, FailureGroup):
        return False
    return True


def _documented_server_error(case: schemathesis.Case, status: int) -> bool:
    """The one 5xx Alertmanager 0.25 gives by design, and its document lists: expiring a silence
    that does not exist answers 500 "silence not found" (amtool shows that error as it is)."""
    return case.operation.method.upper() == "DELETE" and status == 500


def test_every_operation_conforms_to_alertmanagers_openapi_document(
    server: HealthServer, alertmanager: Alertmanager, request: pytest.FixtureRequest
) -> None:
    schema = schemathesis.openapi.from_path(str(SPEC))
    operations = [result.ok() for result in schema.get_all_operations()]
    base = f"{server.url}/api/v2"
    examples = 0
    failures: dict[str, str] = {}
    shared: set[str] = set()

    for operation in operations:

        @hypothesis.settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            derandomize=True,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy(), _=st.none())
        def run(case: schemathesis.Case, _: None) -> None:
            nonlocal examples
            examples += 1
            response = case.call(base_url=base, timeout=10)
            if _documented_server_error(case, response.status_code):
                return
            try:
                case.validate_response(response)
            except (Exception, FailureGroup) as exc:
                label = f"{case.operation.label} -> {response.status_code}"
                # What Alertmanager 0.25 itself answers outside its document is Alertmanager's answer.
                theirs = case.call(base_url=f"{alertmanager.url}/api/v2", timeout=10)
                if theirs.status_code == response.status_code and not conforms(case, theirs):
                    shared.add(label)
                else:
                    failures.setdefault(
                        label,
                        f"Alertmanager: {theirs.status_code} {theirs.text[:200]}\n"
                        f"worker: {response.text[:200]}\n{exc}\n{case.as_curl_command()}"[:2000],
                    )

        run()

    figures = (
        f"Alertmanager OpenAPI v0.25: {len(operations)} operations, {examples} examples, "
        f"{len(failures)} failures; answers outside the document that Alertmanager 0.25 gives too: "
        f"{', '.join(sorted(shared)) or 'none'}"
    )
    request.node.user_properties.append((SUMMARY, figures))
    assert len(operations) == 9
    assert not failures, "\n\n".join(f"{label}\n{text}" for label, text in failures.items())
