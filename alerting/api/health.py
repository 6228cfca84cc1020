"""The worker's HTTP endpoints: ``/metrics``, ``/healthz`` (alive) and ``/readyz`` (able to work).

Served by :mod:`alerting.api.app` (Starlette) from a uvicorn thread in the worker's main process,
bound to ``127.0.0.1:9464`` unless ``ALERTING_HTTP_ADDR`` says otherwise (``off`` disables it).
``/readyz`` answers like the "enhanced health check" our users already run::

    {"status": "healthy|degraded|unhealthy", "version": ..., "uptime_seconds": ...,
     "checks": {"redis": {"status": "up", "latency_ms": 0.4, ...}, ...}}

Redis, the broker and the beat leader are critical (without any of them nothing is evaluated): one
down makes the worker ``unhealthy`` (HTTP 503). Datasources, the last reload and stale groups are
not (the worker still works and raises its own alerts about them): they make it ``degraded``
(HTTP 200).
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from alerting import redisconn
from alerting.api.access import AccessControl
from alerting.api.app import build_app
from alerting.api.server import ThreadedServer
from alerting.config.settings import Settings
from alerting.core import rfc3339
from alerting.errors import ConfigError
from alerting.ops import metrics
from alerting.ops.logs import get_logger, redact_text
from alerting.rules.evaluation import State
from alerting.rules.state import DATASOURCES_GROUP, StateStore

if TYPE_CHECKING:
    from alerting.api.alertmanager import AlertmanagerAPI
    from alerting.api.prometheus import PrometheusAPI
    from alerting.api.webconfig import WebConfig

log = get_logger(__name__)

DEFAULT_ADDR = "127.0.0.1:9464"
UP, DOWN, DEGRADED = "up", "down", "degraded"
HEALTHY, UNHEALTHY = "healthy", "unhealthy"


def parse_addr(text: str) -> tuple[str, int] | None:
    """``host:port``, ``[v6]:port`` or ``:port`` (all interfaces); ``off`` or empty disables."""
    text = text.strip()
    if text.lower() in ("", "off", "none", "disabled"):
        return None
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ConfigError(f'ALERTING_HTTP_ADDR: expected "host:port" (e.g. {DEFAULT_ADDR}), got {text!r}')
    host = host.strip("[]") or "0.0.0.0"
    return host, int(port)


def http_addr(settings: Settings) -> tuple[str, int] | None:
    """Where the endpoints listen (``ALERTING_HTTP_ADDR``); None when switched off."""
    return parse_addr(settings.http_addr)


@dataclass(frozen=True)
class Check:
    """One line of the readiness answer."""

    name: str
    status: str  # up, down or degraded
    critical: bool
    details: Mapping[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {"status": self.status, **self.details}


def reload_status_of(registry: Any) -> Callable[[], tuple[bool, list[str]]]:
    """The ``rules`` check's source: a RuleRegistry's last reload result and problems."""

    def status() -> tuple[bool, list[str]]:
        registry.groups()  # picks up edited files, as the next tick would
        return registry.last_reload_ok, list(registry.problems)

    return status


def _version() -> str:
    try:
        return metadata.version("alerting")
    except metadata.PackageNotFoundError:
        return "unknown"


class Readiness:
    """Runs the checks behind ``/readyz``; every check has a short timeout and never raises."""

    def __init__(
        self,
        *,
        redis_url: str,
        broker_url: str,
        prefix: str = "alerting",
        queues: tuple[str, ...] = ("alerting",),
        groups: Callable[[], list[Any]] | None = None,
        reload_status: Callable[[], tuple[bool, list[str]]] | None = None,
        timeout: float = 2.0,
        stale_after: float = 3.0,
    ) -> None:
        options = {"socket_timeout": timeout, "socket_connect_timeout": timeout}
        self.redis = redisconn.connect(redis_url, **options)
        self.store = StateStore(self.redis, prefix)
        self.broker_url = broker_url
        self.broker = (
            self.redis
            if broker_url == redis_url
            else redisconn.connect(broker_url, **options)
            if urlsplit(broker_url).scheme in redisconn.REDIS_SCHEMES
            else None
        )
        self.queues = queues
        self.groups = groups
        self.reload_status = reload_status
        self.timeout = timeout
        self.stale_after = stale_after  # a group is stale after this many intervals without a tick
        self.started = time.time()
        self.version = _version()

    @classmethod
    def from_settings(cls, settings: Settings, registry: Any = None) -> Readiness:
        """Checks for ``settings``; ``registry`` (a RuleRegistry) adds the reload and staleness checks."""
        return cls(
            redis_url=settings.redis_url,
            broker_url=settings.broker_url,
            prefix=settings.prefix,
            queues=(settings.queue,),
            groups=registry.groups if registry is not None else None,
            reload_status=reload_status_of(registry) if registry is not None else None,
        )

    def run(self) -> dict[str, Any]:
        """Every check, and the overall status they add up to."""
        checks = [
            self._guard("redis", True, self.check_redis),
            self._guard("broker", True, self.check_broker),
            self._guard("beat_leader", True, self.check_leader),
            self._guard("datasources", False, self.check_datasources),
        ]
        if self.reload_status is not None:
            checks.append(self._guard("rules", False, self.check_rules))
        if self.groups is not None:
            checks.append(self._guard("evaluations", False, self.check_evaluations))
        if any(c.critical and c.status != UP for c in checks):
            status = UNHEALTHY
        elif any(c.status != UP for c in checks):
            status = DEGRADED
        else:
            status = HEALTHY
        return {
            "status": status,
            "version": self.version,
            "uptime_seconds": int(time.time() - self.started),
            "checked_at": rfc3339(time.time()),
            "checks": {c.name: c.as_json() for c in checks},
        }

    def _guard(self, name: str, critical: bool, check: Callable[[], Check]) -> Check:
        try:
            return check()
        except Exception as exc:
            return Check(name, DOWN, critical, {"error": redact_text(f"{type(exc).__name__}: {exc}")})

    def check_redis(self) -> Check:
        started = time.monotonic()
        self.redis.ping()
        latency = (time.monotonic() - started) * 1000
        memory = self.redis.info("memory").get("used_memory", 0)
        replication = self.redis.info("replication")
        return Check(
            "redis",
            UP,
            True,
            {
                "latency_ms": round(latency, 2),
                "memory_used_mb": round(int(memory) / 2**20, 1),
                "primary": redisconn.primary_address(self.redis),
                "replicas": int(replication.get("connected_slaves", 0)),
            },
        )

    def check_broker(self) -> Check:
        started = time.monotonic()
        if self.broker is None:
            from kombu import Connection

            with Connection(self.broker_url, connect_timeout=self.timeout) as conn:
                conn.ensure_connection(max_retries=1, timeout=self.timeout)
            return Check("broker", UP, True, {"latency_ms": round((time.monotonic() - started) * 1000, 2)})
        self.broker.ping()
        latency = (time.monotonic() - started) * 1000
        depths = metrics.queue_depths(self.broker, self.queues)
        return Check(
            "broker",
            UP,
            True,
            {
                "latency_ms": round(latency, 2),
                "queued_tasks": sum(depths.values()),
                "queues": depths,
                "primary": redisconn.primary_address(self.broker),
            },
        )

    def check_leader(self) -> Check:
        leader = self.store.leader()
        if leader is None:
            return Check(
                "beat_leader",
                DOWN,
                True,
                {"error": "no beat holds the scheduling lease: nothing is being evaluated"},
            )
        ttl = self.redis.pttl(self.store.key("beat", "leader"))
        return Check("beat_leader", UP, True, {"leader": leader, "lease_ttl_seconds": max(ttl, 0) / 1000})

    def check_datasources(self) -> Check:
        """What the evaluator saw: a datasource is down while its AlertingDatasourceDown is active."""
        down: list[str] = []
        up: list[str] = []
        for name, alerts in sorted(self.store.load_group(DATASOURCES_GROUP).items()):
            active = any(a.state is not State.INACTIVE for a in alerts.values())
            (down if active else up).append(name)
        return Check("datasources", DEGRADED if down else UP, False, {"down": down, "up": up})

    def check_rules(self) -> Check:
        assert self.reload_status is not None
        ok, problems = self.reload_status()
        details = {"last_reload_successful": ok, "problems": problems[:20]}
        return Check("rules", UP if ok else DEGRADED, False, details)

    def check_evaluations(self) -> Check:
        assert self.groups is not None
        now = time.time()
        stale = []
        groups = self.groups()
        for group in groups:
            _, health = self.store.load_health(group.id)
            last = health.get("last_slot")
            limit = self.stale_after * group.interval + 60
            reference = last if last is not None else self.started
            if now - reference > limit:
                stale.append(
                    {
                        "group": group.name,
                        "file": group.file,
                        "last_evaluation": rfc3339(last) if last is not None else None,
                        "age_seconds": int(now - last) if last is not None else None,
                    }
                )
        return Check("evaluations", DEGRADED if stale else UP, False, {"groups": len(groups), "stale": stale})

    def primaries(self) -> dict[str, tuple[str, int]]:
        """Role (``state``, ``broker``) -> the primary's address and its replica count, asked now."""
        out = {}
        for role, client in (("state", self.redis), ("broker", self.broker)):
            if client is not None:
                replicas = int(client.info("replication").get("connected_slaves", 0))
                out[role] = (redisconn.primary_address(client), replicas)
        return out

    def queue_depths(self) -> dict[str, int]:
        return metrics.queue_depths(self.broker, self.queues) if self.broker is not None else {}

    def close(self) -> None:
        self.redis.close()
        if self.broker is not None and self.broker is not self.redis:
            self.broker.close()


class HealthServer:
    """``with HealthServer(("127.0.0.1", 0), readiness) as server: server.url``.

    ``alertmanager`` (an :class:`~alerting.api.alertmanager.AlertmanagerAPI`) adds Alertmanager's
    API v2 on the same address, ``prometheus`` (a :class:`~alerting.api.prometheus.PrometheusAPI`)
    Prometheus's rules and alerts API.
    """

    def __init__(
        self,
        addr: tuple[str, int],
        readiness: Readiness,
        metrics_registry: Any = None,
        alertmanager: AlertmanagerAPI | None = None,
        prometheus: PrometheusAPI | None = None,
        web_config: WebConfig | None = None,
    ) -> None:
        self.readiness = readiness
        self.web_config = web_config
        self.alertmanager = alertmanager
        self.prometheus = prometheus
        self.registry = metrics_registry or metrics.registry(
            [
                metrics.StateCollector(readiness.store),
                metrics.PrimaryCollector(readiness.primaries),
                metrics.QueueCollector(
                    lambda: (
                        metrics.queue_depths(readiness.broker, readiness.queues) if readiness.broker else {}
                    )
                ),
            ]
        )
        self.started = time.time()
        self.app = build_app(
            readiness, self.registry, started=self.started, alertmanager=alertmanager, prometheus=prometheus
        )
        self.server = ThreadedServer(
            AccessControl(self.app, web_config),
            addr,
            ssl_context=web_config.ssl_context() if web_config is not None else None,
        )
        if alertmanager is not None:
            alertmanager.set_address(self.server.address)

    @property
    def address(self) -> tuple[str, int]:
        """The bound ``(host, port)``: port 0 asked for becomes the port given."""
        return self.server.address

    @property
    def port(self) -> int:
        return self.server.address[1]

    @property
    def url(self) -> str:
        host = self.server.address[0]
        host = f"[{host}]" if ":" in host else host
        scheme = "https" if self.web_config is not None and self.web_config.tls is not None else "http"
        return f"{scheme}://{host}:{self.port}"

    def start(self) -> HealthServer:
        self.server.start()
        served = "/metrics, /healthz, /readyz" + (" and Alertmanager's /api/v2" if self.alertmanager else "")
        served += ", Prometheus's /api/v1/rules and /api/v1/alerts" if self.prometheus else ""
        log.info("http.started", msg=f"serving {served} on {self.url}", url=self.url)
        return self

    def stop(self) -> None:
        self.server.stop()
        self.readiness.close()
        if self.alertmanager is not None:
            self.alertmanager.close()

    def __enter__(self) -> HealthServer:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


def web_config_of(settings: Settings) -> WebConfig | None:
    """The parsed ``ALERTING_WEB_CONFIG`` (None when unset); raises ConfigError at file:line:col."""
    if not settings.web_config:
        return None
    from alerting.api.webconfig import load_web_config

    return load_web_config(settings.web_config)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def warn_if_exposed(where: tuple[str, int], web: WebConfig | None) -> None:
    """Say loudly when the endpoints that change things (silences, alerts, reload) are reachable
    from other machines by anyone."""
    host, port = where
    if is_loopback(host):
        return
    how = "without ALERTING_WEB_CONFIG" if web is None else f"with {web.path} asking for no credentials"
    log.warning(
        "http.unprotected",
        msg=f"serving on {host}:{port} {how}: anyone who can reach it can post alerts, add and expire "
        "silences and reload the configuration; set basic_auth_users (or client certificates) in a "
        "web config file named by ALERTING_WEB_CONFIG, or bind to 127.0.0.1",
        addr=f"{host}:{port}",
    )


def start_server(
    settings: Settings | None = None,
    *,
    addr: str | None = None,
    registry: Any = None,
) -> HealthServer | None:
    """Start the endpoints in a daemon thread (worker main process); None when disabled.

    ``addr`` overrides ``ALERTING_HTTP_ADDR``; ``registry`` is the RuleRegistry whose reload
    status and groups feed the ``rules`` and ``evaluations`` checks.
    """
    settings = settings or Settings.from_env()
    where = parse_addr(addr) if addr is not None else http_addr(settings)
    if where is None:
        log.info("http.disabled", msg="ALERTING_HTTP_ADDR is off: no /metrics, /healthz or /readyz")
        return None
    try:
        web = web_config_of(settings)
    except ConfigError as exc:
        # Serving without the protection the file asks for would be worse than not serving.
        log.error("http.web_config_invalid", msg=f"ALERTING_WEB_CONFIG: {exc}; the HTTP endpoints are off")
        return None
    if web is None or not web.authenticates:
        warn_if_exposed(where, web)
    metrics.setup()
    metrics.announce()
    try:
        from alerting.api.alertmanager import AlertmanagerAPI
        from alerting.api.prometheus import PrometheusAPI

        readiness = Readiness.from_settings(settings, registry)
        server = HealthServer(
            where,
            readiness,
            alertmanager=AlertmanagerAPI.from_settings(settings, _version()),
            web_config=web,
            prometheus=PrometheusAPI(
                readiness.store, registry.groups if registry is not None else list, _version()
            ),
        )
    except OSError as exc:
        # A port in use must not stop the worker from evaluating; say so loudly instead.
        log.error("http.bind_failed", msg=f"cannot listen on {where[0]}:{where[1]}: {exc}")
        return None
    return server.start()
