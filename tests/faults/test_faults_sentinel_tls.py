"""Redis behind Sentinel over TLS (``rediss+sentinel://``): every node and sentinel speaks TLS only,
with certificates from one throwaway CA, so anything that gets an answer spoke TLS to get it.

The CA (and a client certificate, where the servers want one) travels in the URL's query, as for
``rediss://``; one URL serves the state store and the Celery broker alike.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from kombu import Connection

from alerting import redisconn
from tests.faults.test_faults_sentinel import assert_alive_and_evaluating, ha_env, one_rule, told_on_failure
from tests.support.faultkit import FakePrometheus
from tests.support.net import wait_until
from tests.support.sentinel import MASTER, SentinelSet
from tests.support.webhook import WebhookRecorder
from tests.support.worker import Worker

pytestmark = pytest.mark.faults


@pytest.fixture(scope="module")
def sentinels() -> Iterator[SentinelSet]:
    with SentinelSet(tls=True) as started:
        yield started


@pytest.fixture
def redis_ha(sentinels: SentinelSet) -> SentinelSet:
    """The module's set-up with a primary and a caught-up replica, whatever an earlier test did."""
    sentinels.heal()
    sentinels.wait_settled()
    return sentinels


def written_and_read(client: redis.Redis, key: str) -> bool:
    client.set(key, "kept")
    return client.get(key) == b"kept"


def test_a_rediss_sentinel_url_with_the_ca_reaches_the_primary(redis_ha: SentinelSet, prefix: str) -> None:
    client = redisconn.connect(redis_ha.url(0), socket_timeout=5)
    try:
        assert written_and_read(client, f"{prefix}:tls")
        assert redisconn.primary_address(client) == f"127.0.0.1:{redis_ha.primary_port()}"
    finally:
        client.close()


def test_a_client_without_the_ca_is_refused_saying_the_certificate_failed(redis_ha: SentinelSet) -> None:
    client = redisconn.connect(redis_ha.url(0, ssl_ca_certs=""), socket_timeout=5)
    try:
        with pytest.raises(redis.ConnectionError) as refused:
            client.ping()
    finally:
        client.close()

    message = str(refused.value)
    assert message.startswith(f"no primary found for '{MASTER}': ")
    # One reason per sentinel, each naming its address and the certificate check.
    assert message.count("CERTIFICATE_VERIFY_FAILED") == 3
    assert all(f"127.0.0.1:{sentinel.port}" in message for sentinel in redis_ha.sentinels)


def test_without_ssl_options_the_state_store_and_the_broker_trust_the_systems_cas_over_tls(
    redis_ha: SentinelSet, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A URL with no ``ssl_*`` option at all still means TLS to the primary, the broker's too."""
    monkeypatch.setenv("SSL_CERT_FILE", str(redis_ha.ca_file))  # OpenSSL's default trust store
    url = redis_ha.url(1, ssl_ca_certs="")
    assert "?" not in url
    client = redisconn.connect(url, socket_timeout=5)
    broker = redisconn.celery_broker(url)
    assert broker.use_ssl is not None
    try:
        assert written_and_read(client, f"{prefix}:system-cas")
        with Connection(
            broker.url,
            transport=broker.transport,
            transport_options=dict(broker.transport_options),
            ssl=dict(broker.use_ssl),
        ) as connection:
            queue = connection.SimpleQueue(f"{prefix}-tls")
            try:
                queue.put({"over": "tls"})
                message = queue.get(timeout=10)
                message.ack()
            finally:
                queue.close()
    finally:
        client.close()

    assert message.payload == {"over": "tls"}


@pytest.mark.parametrize("fault", ["SENTINEL FAILOVER", "kill -9 of the primary"])
def test_after_a_failover_the_client_reaches_the_new_primary_over_tls(
    redis_ha: SentinelSet, prefix: str, fault: str
) -> None:
    client = redisconn.connect(redis_ha.url(0), socket_timeout=5)
    try:
        assert written_and_read(client, f"{prefix}:before")
        assert client.wait(1, 10_000) == 1  # on the replica too, so a kill -9 cannot lose it
        first = redis_ha.primary_port()
        if fault == "SENTINEL FAILOVER":
            asking = redis_ha.sentinels[0].client()
            try:
                asking.sentinel_failover(MASTER)
            finally:
                asking.close()
        else:
            redis_ha.kill_primary()
        # Every sentinel names the new primary: the client may ask any of them.
        wait_until(
            lambda: len(ports := redis_ha.primary_ports()) == 1 and first not in ports,
            timeout=60,
            what="every sentinel to name the new primary",
        )
        second = redis_ha.primary_port()

        # The first command after the switch may meet the old connection and fail; the client then
        # asks the sentinels again.
        wait_until(
            lambda: written_and_read(client, f"{prefix}:after"), timeout=30, what="a write to the new primary"
        )
        assert redisconn.primary_address(client) == f"127.0.0.1:{second}" != f"127.0.0.1:{first}"
        assert client.get(f"{prefix}:before") == b"kept"
    finally:
        client.close()


def test_servers_that_want_a_client_certificate_take_the_one_in_the_url(prefix: str) -> None:
    with SentinelSet(tls=True, auth_clients=True) as strict:
        client = redisconn.connect(strict.url(0), socket_timeout=5)
        anonymous = redisconn.connect(strict.url(0, ssl_certfile="", ssl_keyfile=""), socket_timeout=5)
        try:
            assert "ssl_certfile=" in strict.url(0)
            assert written_and_read(client, f"{prefix}:mutual")
            with pytest.raises(redis.ConnectionError, match=f"no primary found for '{MASTER}'"):
                anonymous.ping()
        finally:
            client.close()
            anonymous.close()


def test_the_worker_with_state_and_broker_behind_tls_sentinels_delivers_a_notification(
    tmp_path: Path, prefix: str, redis_ha: SentinelSet
) -> None:
    rules = one_rule(tmp_path, "OverTLS")
    with FakePrometheus() as prom, WebhookRecorder() as hook:
        env = ha_env(tmp_path, hook, redis_ha, rules=rules, prefix=prefix, prometheus_url=prom.url)
        assert env["ALERTING_REDIS_URL"].startswith("rediss+sentinel://")
        assert env["CELERY_BROKER_URL"].startswith("rediss+sentinel://")
        with Worker(env) as worker, told_on_failure(worker):
            prom.firing = True
            hook.wait_for("OverTLS", timeout=90)
            assert_alive_and_evaluating(worker, "OverTLS")
            prom.firing = False
            hook.wait_for("OverTLS", "resolved", timeout=90)
            hook.settle()

    assert hook.statuses("OverTLS") == ["firing", "resolved"]
