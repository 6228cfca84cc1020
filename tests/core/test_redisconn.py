"""Redis URLs, one server or Sentinel, as the state store and as Celery's broker read them."""

from __future__ import annotations

from pathlib import Path

import pytest

from alerting.errors import ConfigError
from alerting.redisconn import SENTINEL_TRANSPORT, celery_broker, parse_redis_url


def test_a_sentinel_url_names_its_sentinels_primary_database_and_password() -> None:
    address = parse_redis_url("redis+sentinel://:s3cret@10.0.0.1:26379,10.0.0.2,10.0.0.3:26380/main/2")

    assert address.is_sentinel
    assert address.sentinels == (("10.0.0.1", 26379), ("10.0.0.2", 26379), ("10.0.0.3", 26380))
    assert (address.master_name, address.db, address.password, address.tls) == ("main", 2, "s3cret", False)
    assert address.safe() == "redis+sentinel://:***@10.0.0.1:26379,10.0.0.2:26379,10.0.0.3:26380/main/2"


def test_rediss_sentinel_is_tls_and_the_database_defaults_to_zero() -> None:
    address = parse_redis_url("rediss+sentinel://h1:26379/main?ssl_cert_reqs=required")

    assert (address.tls, address.db, dict(address.options)) == (True, 0, {"ssl_cert_reqs": "required"})


def test_a_plain_url_is_one_server_and_its_password_is_hidden() -> None:
    address = parse_redis_url("redis://:pw@127.0.0.1:6379/0")

    assert not address.is_sentinel
    assert address.safe() == "redis://:***@127.0.0.1:6379/0"


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("redis+sentinel://h1:26379", "names no primary"),
        ("redis+sentinel://h1:26379/main/zero", "database 'zero' is not a number"),
        ("redis+sentinel://h1:port/main/0", "sentinel port 'port' is not a number"),
        ("redis+sentinel://h1:26379/main/0/extra", "expected /<master_name>/<db>"),
        ("memcached://h1:11211", "expected redis://host:6379/0"),
        ("rediss+sentinel://h1/main/0?ssl_ca_cert=/ca.pem", "unknown option 'ssl_ca_cert' (did you mean"),
        ("rediss+sentinel://h1/main/0?ssl_ca_certs=/nonexistent/ca.pem", "no such file: /nonexistent/ca.pem"),
        ("rediss+sentinel://h1/main/0?ssl_cert_reqs=yes", "expected none, optional or required"),
        ("rediss+sentinel://h1/main/0?ssl_check_hostname=maybe", "ssl_check_hostname='maybe'"),
        ("redis+sentinel://h1/main/0?ssl_cert_reqs=none", "is for TLS: use rediss+sentinel://"),
        ("redis+sentinel://h1/main/0?socket_timeout=soon", "socket_timeout='soon': expected a number"),
        ("redis+sentinel://h1/main/0?max_connections=1.5", "expected a whole number >= 0"),
    ],
)
def test_a_malformed_url_is_a_configuration_error_naming_the_setting(url: str, says: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_redis_url(url, "ALERTING_REDIS_URL")

    assert "ALERTING_REDIS_URL" in str(caught.value) and says in str(caught.value)


def test_the_broker_url_becomes_kombus_sentinel_urls_and_master_name() -> None:
    broker = celery_broker("redis+sentinel://:pw@h1:26379,h2:26379/main/1?sentinel_password=sp")

    assert broker.url == "sentinel://:pw@h1:26379/1;sentinel://:pw@h2:26379/1"
    assert broker.transport_options == {"master_name": "main", "sentinel_kwargs": {"password": "sp"}}
    assert broker.transport == SENTINEL_TRANSPORT and broker.use_ssl is None


def test_a_tls_broker_url_gives_its_ca_and_client_certificate_to_the_sentinels_and_the_primary(
    tmp_path: Path,
) -> None:
    for name in ("ca.pem", "cert.pem", "key.pem"):
        (tmp_path / name).write_text("")
    ca, cert, key = (str(tmp_path / name) for name in ("ca.pem", "cert.pem", "key.pem"))
    broker = celery_broker(
        f"rediss+sentinel://h1:26379/main/1?ssl_ca_certs={ca}&ssl_certfile={cert}&ssl_keyfile={key}"
        "&socket_timeout=5"
    )

    tls = {"ssl_cert_reqs": "required", "ssl_ca_certs": ca, "ssl_certfile": cert, "ssl_keyfile": key}
    assert broker.use_ssl == tls
    assert broker.transport_options == {
        "master_name": "main",
        "socket_timeout": 5.0,
        "sentinel_kwargs": {**tls, "ssl": True, "socket_timeout": 5.0},
    }


def test_a_tls_broker_url_without_options_still_asks_kombu_for_tls() -> None:
    # kombu turns TLS on only for a non-empty broker_use_ssl.
    broker = celery_broker("rediss+sentinel://h1:26379/main/1")

    assert broker.use_ssl == {"ssl_cert_reqs": "required"}
    assert broker.transport_options["sentinel_kwargs"] == {"ssl": True, "ssl_cert_reqs": "required"}


def test_a_plain_broker_url_passes_unchanged() -> None:
    broker = celery_broker("redis://127.0.0.1:6379/0")

    assert (broker.url, dict(broker.transport_options), broker.transport) == (
        "redis://127.0.0.1:6379/0",
        {},
        None,
    )


def test_a_bad_sentinel_url_in_the_environment_stops_the_settings_with_its_name() -> None:
    from alerting.config.settings import Settings

    with pytest.raises(ConfigError, match="CELERY_BROKER_URL"):
        Settings.from_env(
            {"CELERY_BROKER_URL": "redis+sentinel://h1:26379", "ALERTING_CONFIG": "/nonexistent"}
        )
