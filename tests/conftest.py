"""Shared fixtures: a real Redis with a private key prefix per test, a scripted Prometheus query
API, and local receivers (Slack, PagerDuty, Twilio) over TLS from a throwaway CA."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import redis

from tests.support.fakes import LocalCA, PagerDutyFake, SlackFake, TwilioFake, make_ca
from tests.support.net import REDIS_URL, remove_queues
from tests.support.promapi import PromAPI
from tests.support.webhook import WebhookRecorder

# Test modules that need no server, no subprocess and no network: `make test-fast` runs just these
# (marked `pure`), the whole suite runs everything. A module listed here that starts using Redis
# or a server belongs off the list.
PURE_MODULES = frozenset(
    {
        "tests/api/test_api_values.py",
        "tests/core/test_core.py",
        "tests/core/test_redisconn.py",
        "tests/cli/test_check_kinds.py",
        "tests/config/test_alerting_config.py",
        "tests/config/test_config.py",
        "tests/config/test_env.py",
        "tests/config/test_layering.py",
        "tests/conformance/test_alertmanager_files.py",
        "tests/notify/test_notify_template.py",
        "tests/notify/test_stored_alerts.py",
        "tests/routing/test_routing_config.py",
        "tests/routing/test_routing_dedup.py",
        "tests/routing/test_routing_escalation.py",
        "tests/routing/test_routing_matchers.py",
        "tests/routing/test_routing_properties.py",
        "tests/routing/test_routing_silences_inhibition.py",
        "tests/routing/test_routing_timeintervals.py",
        "tests/routing/test_routing_tree.py",
        "tests/remotewrite/test_remotewrite_config.py",
        "tests/remotewrite/test_remotewrite_relabel.py",
        "tests/remotewrite/test_remotewrite_wire.py",
        "tests/rules/test_evaluation.py",
        "tests/rules/test_rule_loader.py",
        "tests/rules/test_recording.py",
        "tests/templating/test_templating.py",
        "tests/templating/test_templating_fastpaths.py",
        "tests/templating/test_templating_imports.py",
        "tests/templating/test_templating_properties.py",
    }
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    root = config.rootpath
    for item in items:
        if item.path.relative_to(root).as_posix() in PURE_MODULES:
            item.add_marker(pytest.mark.pure)


@pytest.fixture(scope="session", autouse=True)
def _remove_test_queues() -> Iterator[None]:
    yield
    client = redis.Redis.from_url(REDIS_URL)
    remove_queues(client)
    client.close()


@pytest.fixture
def redis_client() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(REDIS_URL)
    client.ping()
    yield client
    client.close()


@pytest.fixture
def prefix(redis_client: redis.Redis) -> Iterator[str]:
    """A key prefix no other test uses; its keys are deleted afterwards."""
    name = f"test-{uuid.uuid4().hex[:12]}"
    yield name
    keys = list(redis_client.scan_iter(match=f"{name}:*", count=1000))
    if keys:
        redis_client.delete(*keys)


@pytest.fixture
def prom_api() -> Iterator[PromAPI]:
    with PromAPI() as api:
        yield api


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> LocalCA:
    return make_ca(tmp_path_factory.mktemp("ca"))


@pytest.fixture
def slack(ca: LocalCA) -> Iterator[SlackFake]:
    fake = SlackFake(ca.server_context)
    with fake.server:
        yield fake


@pytest.fixture
def pagerduty(ca: LocalCA) -> Iterator[PagerDutyFake]:
    fake = PagerDutyFake(ca.server_context)
    with fake.server:
        yield fake


@pytest.fixture
def twilio(ca: LocalCA) -> Iterator[TwilioFake]:
    fake = TwilioFake(ca.server_context)
    with fake.server:
        yield fake


@pytest.fixture
def recorder() -> Iterator[WebhookRecorder]:
    """A webhook receiver recording every notification (see tests/support/webhook.py)."""
    with WebhookRecorder() as rec:
        yield rec
