"""The PagerDuty acknowledgement source against a local REST API: it reads the incident of a group
PagerDuty was told about, and leaves PagerDuty alone for every other group."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from alerting.notify.ack_sources import PagerDutyIncidents
from alerting.notify.acks import AckStore
from alerting.notify.receivers.pagerduty import dedup_key
from alerting.notify.store import NotifyStore, nflog_id
from alerting.routing.dedup import LogEntry
from alerting.transport import parse_http_config
from tests.support.fakes import PAGERDUTY_API_TOKEN, LocalCA, PagerDutyFake, PagerDutyRestFake
from tests.support.routing_redis import isolated_redis

INTEGRATION = "page/pagerduty/0"
GROUP = '{}:{alertname="DiskFull"}'


@pytest.fixture
def rest(pagerduty: PagerDutyFake, ca: LocalCA) -> Iterator[PagerDutyRestFake]:
    fake = PagerDutyRestFake(pagerduty, ca.server_context)
    with fake.server:
        yield fake


def source(rest: PagerDutyRestFake, ca: LocalCA) -> PagerDutyIncidents:
    http = parse_http_config({"tls_config": {"ca_file": ca.ca_file}})
    return PagerDutyIncidents(PAGERDUTY_API_TOKEN, rest.server.url, http, [INTEGRATION])


def test_an_incident_acknowledged_in_pagerduty_acknowledges_the_group_it_was_told_about(
    rest: PagerDutyRestFake, pagerduty: PagerDutyFake, ca: LocalCA
) -> None:
    nid = nflog_id(GROUP)
    with isolated_redis() as (client, prefix):
        NotifyStore(client, prefix).nflog_put(
            nid, INTEGRATION, LogEntry(frozenset({"fp"}), frozenset(), 1.0), repeat_interval=3600
        )
        pagerduty.incidents[dedup_key(GROUP)] = "triggered"
        incidents = source(rest, ca)
        store = AckStore(client, prefix)
        assert incidents.acknowledged(store, nid, GROUP, {}) is None  # triggered, nobody reacted
        rest.acknowledge(dedup_key(GROUP), "Bob Responder")
        seen = incidents.acknowledged(store, nid, GROUP, {})
    assert seen is not None and (seen.by, seen.source) == ("pagerduty:Bob Responder", "pagerduty")
    assert [r.query["incident_key"] for r in rest.server.requests] == [[dedup_key(GROUP)]] * 2


def test_a_group_pagerduty_was_never_told_about_is_not_looked_up(
    rest: PagerDutyRestFake, pagerduty: PagerDutyFake, ca: LocalCA
) -> None:
    pagerduty.incidents[dedup_key(GROUP)] = "triggered"
    rest.acknowledge(dedup_key(GROUP), "Bob Responder")  # even an incident of the same key elsewhere
    with isolated_redis() as (client, prefix):
        seen = source(rest, ca).acknowledged(AckStore(client, prefix), nflog_id(GROUP), GROUP, {})
    assert seen is None
    assert rest.server.requests == []
