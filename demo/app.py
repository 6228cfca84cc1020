"""Demo application: the specs' metrics on ``/metrics``, a spec-003 style ``/health``, and faults.

Run it from the repository root::

    python -m demo.app [--host 127.0.0.1] [--port 8000] [--database-url sqlite:///var/demo.db]

A background thread simulates traffic every ``DEMO_TICK`` seconds (API requests, logins, LLM calls,
scheduler and generation jobs) and, every ten ticks, writes healthy rows into the demo database.
``POST /faults/<name>`` switches a fault on (body ``off`` or ``{"on": false}`` switches it off),
``DELETE /faults/<name>`` switches it off, ``DELETE /faults`` switches every fault off and
``GET /faults`` lists them. Database faults write rows into ``DATABASE_URL`` at once and remove
them when switched off. Settings come from the command line or the environment:

``DEMO_HOST`` / ``DEMO_PORT``   where to listen (default 127.0.0.1:8000; port 0 picks a free one)
``DATABASE_URL``                the demo database (default ``sqlite:///var/demo.db``)
``DEMO_BROKER_URL``             optional Redis URL: the ``queue_backlog`` fault then also pushes
                                placeholder messages onto the Celery queue ``DEMO_CELERY_QUEUE``
                                (default ``celery``), so the Celery backlog rule sees them
``DEMO_TICK``                   seconds between simulated traffic ticks (default 1)

The first line on stdout is ``demo app listening on http://HOST:PORT``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import sqlalchemy
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from demo import database

VERSION = "0.1.0"
BACKLOG_MESSAGES = 60  # more than the spec-003 threshold of 50 queued tasks
DB_EVERY_TICKS = 10


@dataclass(frozen=True)
class Fault:
    name: str
    description: str
    rules: tuple[str, ...]  # the shipped alerts this fault is meant to trigger


FAULTS: dict[str, Fault] = {
    f.name: f
    for f in (
        Fault(
            "errors_5xx",
            "burst of HTTP 500/503 answers from the API",
            ("HighAPIErrorRate", "HighErrorRate", "ServiceErrorRateHigh"),
        ),
        Fault("slow_api", "API answers take 6-8 s", ("SlowResponses", "ServiceLatencyP95High")),
        Fault("slow_llm", "LLM calls take about 15 s; /health turns degraded", ("LLMLatency",)),
        Fault("auth_failures", "15 failed logins per second", ("AuthFailuresSpike",)),
        Fault(
            "queue_backlog",
            "job queues back up and the scheduler saturates",
            ("QueueBacklog", "SchedulerQueueBacklog", "SchedulerConcurrencySaturated", "CeleryTaskBacklog"),
        ),
        Fault(
            "job_failures",
            "jobs fail and are retried",
            ("HighJobFailureRate", "SchedulerRetryRateHigh", "SchedulerJobFailureRateHigh"),
        ),
        Fault(
            "generation_failures",
            "meal-plan generation slows down and fails",
            (
                "GenerationEngineSlow",
                "GenerationSuccessRateLow",
                "MacroBalanceRateLow",
                "WeeklyGenerationIncomplete",
            ),
        ),
        Fault(
            "external_api_down",
            "the FatSecret API is down and answers 503",
            ("ExternalAPIDown", "APIErrorRateHigh"),
        ),
        Fault("slow_db", "database queries slow down", ("DBSlowQueries", "DatabaseQuerySlow")),
        Fault("pool_saturated", "database connection pool 95% used", ("DatabaseConnectionPoolSaturated",)),
        Fault("email_failures", "20% of emails bounce", ("EmailDeliveryRateLow",)),
        Fault("unhealthy", "/health answers 503 unhealthy", ("AIServiceDown",)),
        Fault("odoo_down", "Odoo's /web/health answers 503; /health turns degraded", ("OdooUnreachable",)),
        Fault("stuck_approvals", "approvals pending for 49 hours (database rows)", ("ApprovalQueueStale",)),
        Fault("overspend", "a $6 Claude call today (database row)", ("ClaudeDailySpendExceeded",)),
        Fault("llm_errors", "failed Claude calls (database rows)", ("ClaudeAPIErrors",)),
        Fault("automation_failures", "failed automation runs (database rows)", ("AutomationFailureRate",)),
        Fault("webhook_lag", "webhooks left unprocessed (database rows)", ("WebhookProcessingLag",)),
    )
}

RowBuilder = Callable[[str, float], list[dict[str, Any]]]
# Faults that write rows when switched on (table, rows for an id prefix and a time).
DB_FAULTS: dict[str, tuple[str, RowBuilder]] = {
    "stuck_approvals": (
        "approvals",
        lambda p, now: [database.approval(p, now - 49 * 3600 - 60 * i, status="pending") for i in range(3)],
    ),
    "overspend": (
        "llm_calls",
        lambda p, now: [database.llm_call(p, now, status="ok", cost_usd=6.0, latency_ms=2100)],
    ),
    "llm_errors": (
        "llm_calls",
        lambda p, now: [database.llm_call(p, now - 5 * i, status="error", cost_usd=0.0) for i in range(8)],
    ),
    "automation_failures": (
        "automation_runs",
        lambda p, now: [database.automation_run(p, now - 10 * i, status="failed") for i in range(10)],
    ),
    # Unprocessed webhooks received over the last 13 minutes: the 15-minute average lag is minutes.
    "webhook_lag": (
        "webhook_events",
        lambda p, now: [database.webhook_event(p, now - 60 - 25 * i, lag=None) for i in range(30)],
    ),
}

ROUTES = ("/v1/recipes/{id}", "/v1/jobs")
USERS = ("user_a", "user_b")
JOB_TYPES = ("WeeklyGeneration", "AutoSync", "DailyAdvisor", "WeeklyTrends")
APIS = ("fatsecret", "tandoor")
EMAIL_TYPES = ("weekly_plan", "daily_advisor", "weekly_trends")


class Metrics:
    """Every metric the shipped Prometheus rules read, in one registry."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        # Spec 000 (API + LLM router); spec 002's `route` label is carried too (same value).
        self.http_duration = Histogram(
            "http_request_duration_seconds",
            "API latency",
            ["method", "path", "route", "status"],
            buckets=(0.05, 0.1, 0.3, 0.5, 1, 2, 3, 5, 10, 30, 60, 120),
            registry=r,
        )
        self.http_requests = Counter(
            "http_requests", "Total HTTP requests", ["method", "route", "status"], registry=r
        )
        self.websockets = Gauge(
            "websocket_connections_active", "Active WebSocket connections", ["recipe_id"], registry=r
        )
        self.auth_attempts = Counter(
            "auth_attempts", "Authentication attempts", ["type", "status"], registry=r
        )
        self.llm_tokens = Counter(
            "llm_call_tokens", "Prompt + completion tokens", ["provider", "model_ref", "role"], registry=r
        )
        spec000_buckets = (0.1, 0.3, 1, 3, 10, 30, 60, 120)
        self.llm_latency = Histogram(
            "llm_call_latency_seconds",
            "LLM response time",
            ["provider", "model_ref"],
            buckets=spec000_buckets,
            registry=r,
        )
        self.db_query = Histogram(
            "db_query_seconds", "SQL latency", ["operation"], buckets=spec000_buckets, registry=r
        )
        # Spec 001 (scheduler and generation engine).
        self.gen_time = Histogram(
            "generation_execution_time_seconds",
            "Weekly meal plan generation time",
            ["user_id", "week_of"],
            buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10),
            registry=r,
        )
        self.gen_attempts = Counter("generation_attempts", "Generation attempts", ["user_id"], registry=r)
        self.gen_success = Counter("generation_success", "Successful generations", ["user_id"], registry=r)
        self.gen_failures = Counter(
            "generation_failures", "Failed generations", ["user_id", "error_type"], registry=r
        )
        self.macro_balance = Gauge(
            "generation_macro_balance_success_rate", "Macro balance success rate", ["user_id"], registry=r
        )
        self.sched_queue = Gauge(
            "scheduler_job_queue_depth", "Pending scheduler jobs", ["job_type"], registry=r
        )
        self.sched_retry = Gauge("scheduler_job_retry_rate", "Job retry rate", ["job_type"], registry=r)
        self.sched_error = Gauge("scheduler_job_error_rate", "Job failure rate", ["job_type"], registry=r)
        self.sched_concurrent = Gauge(
            "scheduler_concurrent_jobs", "Jobs currently executing", ["job_type"], registry=r
        )
        self.api_availability = Gauge(
            "api_availability", "External API up (1) or down (0)", ["api"], registry=r
        )
        self.api_requests = Counter(
            "api_request", "External API requests", ["api", "endpoint", "status_code"], registry=r
        )
        self.api_duration = Histogram(
            "api_request_duration_seconds", "External API latency", ["api", "endpoint"], registry=r
        )
        self.pool_usage = Gauge(
            "database_connection_pool_usage", "Active connections / pool size", ["pool"], registry=r
        )
        self.db_duration = Histogram(
            "database_query_duration_seconds",
            "Database query execution time",
            ["query"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1),
            registry=r,
        )
        self.email_rate = Gauge(
            "email_delivery_success_rate", "Emails delivered / attempted", ["email_type"], registry=r
        )
        self.weekly_success = Gauge(
            "weekly_generation_success_all_users", "All users got their weekly plan", ["week_of"], registry=r
        )
        # Spec 002 (video pipeline worker).
        self.job_queue = Gauge("job_queue_depth", "Jobs waiting in queue", registry=r)
        self.jobs_by_status = Gauge("jobs_by_status", "Jobs grouped by status", ["status"], registry=r)
        # Spec 003 (Celery/FastAPI platform).
        self.claude_calls = Counter("claude_api_calls", "Claude API calls", ["model", "status"], registry=r)
        self.claude_latency = Histogram(
            "claude_api_latency_seconds", "Claude response time", buckets=spec000_buckets, registry=r
        )
        self.claude_cost = Counter("claude_cost_dollars", "Estimated Claude API cost", registry=r)
        self.approval_queue = Gauge("approval_queue_size", "Current pending approvals", registry=r)
        self.celery_queued = Gauge("celery_tasks_queued", "Tasks waiting in queue", registry=r)
        self.celery_active = Gauge("celery_tasks_active", "Currently executing tasks", registry=r)


class DemoApp:
    """The simulated service: fault switches, the traffic loop, health, and database effects."""

    def __init__(
        self,
        database_url: str,
        broker_url: str = "",
        celery_queue: str = "celery",
        tick: float = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.metrics = Metrics()
        self.database_url = database.normalize_url(database_url)
        self.engine = database.make_engine(self.database_url)
        self.broker_url = broker_url
        self.celery_queue = celery_queue
        self.tick = tick
        self.clock = clock
        self.started = time.monotonic()
        self._faults: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._random = random.Random(7)
        self._ticks = 0
        self._failed_jobs = 3.0
        self._last_llm_ok = self.clock()
        self._last_odoo_ok = self.clock()
        self._db_error = ""
        self._redis: Any = None
        try:
            database.create_schema(self.engine)
        except sqlalchemy.exc.SQLAlchemyError as exc:
            self._db_error = _short(exc)

    # --- faults -------------------------------------------------------------------------------

    def faults(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            active = set(self._faults)
        return {
            name: {"on": name in active, "description": f.description, "alerts": list(f.rules)}
            for name, f in FAULTS.items()
        }

    def is_on(self, name: str) -> bool:
        with self._lock:
            return name in self._faults

    def set_fault(self, name: str, on: bool) -> None:
        """Switch a fault; database and broker effects happen now, metric effects from the next tick."""
        if name not in FAULTS:
            raise KeyError(name)
        with self._lock:
            was_on = name in self._faults
            if on:
                self._faults.add(name)
            else:
                self._faults.discard(name)
        if on and not was_on:
            self._apply(name)
        elif not on:
            self._revert(name)

    def _apply(self, name: str) -> None:
        now, prefix = self.clock(), f"fault-{name}-"
        if name in DB_FAULTS:
            table, build = DB_FAULTS[name]
            self._db(lambda: database.insert(self.engine, table, build(prefix, now)))
        if name == "queue_backlog":
            self._broker(lambda r: r.rpush(self.celery_queue, *_backlog_messages()))

    def _revert(self, name: str) -> None:
        if name in DB_FAULTS:
            self._db(lambda: database.delete_prefix(self.engine, f"fault-{name}-"))
        if name == "queue_backlog":
            self._broker(lambda r: [r.lrem(self.celery_queue, 0, m) for m in _backlog_messages()])

    def _db(self, action: Callable[[], Any]) -> Any:
        try:
            result = action()
        except sqlalchemy.exc.SQLAlchemyError as exc:
            self._db_error = _short(exc)
            return None
        self._db_error = ""
        return result

    def _broker(self, action: Callable[[Any], Any]) -> None:
        if not self.broker_url:
            return
        try:
            if self._redis is None:
                import redis

                self._redis = redis.Redis.from_url(self.broker_url, socket_timeout=3)
            action(self._redis)
        except Exception as exc:  # the demo keeps serving when its broker is away
            print(f"demo: broker unavailable: {exc}", file=sys.stderr, flush=True)

    # --- traffic ------------------------------------------------------------------------------

    def start(self) -> None:
        self.step()  # metrics exist from the first scrape
        self._thread = threading.Thread(target=self._loop, name="demo-traffic", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)
        self.engine.dispose()

    def _loop(self) -> None:
        while not self._stop.wait(self.tick):
            try:
                self.step()
            except Exception as exc:  # one bad tick must not end the simulation
                print(f"demo: tick failed: {exc!r}", file=sys.stderr, flush=True)

    def step(self) -> None:
        """One tick of simulated traffic (about one second of a small production service)."""
        m, rnd, on = self.metrics, self._random, self.is_on
        self._ticks += 1
        now = self.clock()
        week = _iso_week(now)

        for _ in range(10):
            route = rnd.choice(ROUTES)
            method = "GET" if route == ROUTES[0] else "POST"
            latency = rnd.uniform(6, 8) if on("slow_api") else rnd.uniform(0.02, 0.09)
            self._request(method, route, "200" if method == "GET" else "201", latency)
        if on("errors_5xx"):
            for i in range(8):
                self._request("GET", ROUTES[0], "500" if i % 2 else "503", rnd.uniform(0.02, 0.09))

        m.auth_attempts.labels("password", "success").inc(2)
        m.auth_attempts.labels("password", "failed").inc(15 if on("auth_failures") else 0)
        for recipe in ("r1", "r2", "r3"):
            m.websockets.labels(recipe).set(rnd.randint(1, 5))

        llm_seconds = rnd.uniform(14, 16) if on("slow_llm") else rnd.uniform(0.8, 2.0)
        m.llm_latency.labels("anthropic", "claude-sonnet-4").observe(llm_seconds)
        m.llm_tokens.labels("anthropic", "claude-sonnet-4", "prompt").inc(800)
        m.llm_tokens.labels("anthropic", "claude-sonnet-4", "completion").inc(250)
        m.claude_latency.observe(llm_seconds)
        m.claude_calls.labels("claude-sonnet-4", "failure" if on("llm_errors") else "success").inc()
        m.claude_cost.inc(0.002)
        if not on("llm_errors"):
            self._last_llm_ok = now

        slow_db = on("slow_db")
        m.db_query.labels("INSERT recipes").observe(
            rnd.uniform(1.5, 2.5) if slow_db else rnd.uniform(0.01, 0.05)
        )
        for query in ("get_next_pending_job", "insert_meal_plan"):
            m.db_duration.labels(query).observe(
                rnd.uniform(0.2, 0.4) if slow_db else rnd.uniform(0.002, 0.008)
            )
        m.pool_usage.labels("scheduler").set(0.95 if on("pool_saturated") else 0.35)
        m.pool_usage.labels("api").set(0.95 if on("pool_saturated") else 0.25)

        failing = on("generation_failures")
        for user in USERS:
            m.gen_attempts.labels(user).inc()
            if failing and self._ticks % 2:
                m.gen_failures.labels(user, "TandoorError").inc()
            else:
                m.gen_success.labels(user).inc()
            m.gen_time.labels(user, week).observe(rnd.uniform(2.5, 4) if failing else rnd.uniform(0.2, 0.6))
            m.macro_balance.labels(user).set(0.8 if failing else 0.96)
        m.weekly_success.labels(week).set(0 if failing else 1)

        backlog, job_failures = on("queue_backlog"), on("job_failures")
        for job_type in JOB_TYPES:
            m.sched_queue.labels(job_type).set(25 if backlog else rnd.randint(0, 3))
            m.sched_concurrent.labels(job_type).set(2 if backlog else 1)
            m.sched_retry.labels(job_type).set(0.3 if job_failures else 0.05)
            m.sched_error.labels(job_type).set(0.12 if job_failures else 0.01)
        m.job_queue.set(150 if backlog else rnd.randint(0, 5))
        m.celery_queued.set(BACKLOG_MESSAGES if backlog else rnd.randint(0, 3))
        m.celery_active.set(4)
        self._failed_jobs += 0.5 if job_failures else 0.0
        m.jobs_by_status.labels("FAILED").set(self._failed_jobs)
        m.jobs_by_status.labels("COMPLETED").set(100 + self._ticks)
        m.jobs_by_status.labels("RUNNING").set(2)

        api_down = on("external_api_down")
        for api in APIS:
            down = api_down and api == "fatsecret"
            m.api_availability.labels(api).set(0 if down else 1)
            for _ in range(3):
                m.api_requests.labels(api, "recipes", "503" if down else "200").inc()
                m.api_duration.labels(api, "recipes").observe(rnd.uniform(0.1, 0.3))
        for email_type in EMAIL_TYPES:
            m.email_rate.labels(email_type).set(0.8 if on("email_failures") else 0.99)

        if not on("odoo_down"):
            self._last_odoo_ok = now
        if self._ticks % DB_EVERY_TICKS == 1:
            self._write_healthy_rows(now)

    def _request(self, method: str, route: str, status: str, seconds: float) -> None:
        self.metrics.http_duration.labels(method, route, route, status).observe(seconds)
        self.metrics.http_requests.labels(method, route, status).inc()

    def _write_healthy_rows(self, now: float) -> None:
        """Ongoing normal activity, plus more of the same while a database fault is on."""

        def write() -> None:
            database.insert(
                self.engine, "llm_calls", [database.llm_call("live-", now, status="ok", cost_usd=0.002)]
            )
            runs = [database.automation_run("live-", now, status="success")]
            if self.is_on("automation_failures"):
                runs.append(database.automation_run("fault-automation_failures-", now, status="failed"))
            database.insert(self.engine, "automation_runs", runs)
            lagging = self.is_on("webhook_lag")
            database.insert(
                self.engine,
                "webhook_events",
                [
                    database.webhook_event(
                        "fault-webhook_lag-" if lagging else "live-", now - 2, lag=None if lagging else 2
                    )
                ],
            )
            if self.is_on("llm_errors"):
                database.insert(
                    self.engine,
                    "llm_calls",
                    [database.llm_call("fault-llm_errors-", now, status="error", cost_usd=0.0)],
                )
            # Keep the live history bounded: two days is more than any rule looks back.
            with self.engine.begin() as conn:
                for table, column in (
                    ("llm_calls", "created_at"),
                    ("automation_runs", "finished_at"),
                    ("webhook_events", "received_at"),
                ):
                    conn.execute(
                        sqlalchemy.text(f"DELETE FROM {table} WHERE id LIKE 'live-%' AND {column} < :cutoff"),
                        {"cutoff": int(now) - 2 * 86400},
                    )

        self._db(write)

    # --- health -------------------------------------------------------------------------------

    def health(self) -> tuple[int, dict[str, Any]]:
        """Spec 003's "enhanced health check": healthy | degraded | unhealthy, with per-check detail."""
        now = self.clock()
        database_check = self._database_check(now)
        odoo_up = not self.is_on("odoo_down")
        llm_slow, llm_errors = self.is_on("slow_llm"), self.is_on("llm_errors")
        backlog = self.is_on("queue_backlog")
        checks: dict[str, Any] = {
            "database": database_check,
            "redis": self._redis_check(),
            "odoo": {
                "status": "up" if odoo_up else "down",
                "latency_ms": 120 if odoo_up else None,
                "last_successful_call": _rfc3339(self._last_odoo_ok),
            },
            "claude_api": {
                "status": "down" if llm_errors else ("slow" if llm_slow else "up"),
                "last_successful_call": _rfc3339(self._last_llm_ok),
                "daily_spend": database_check.pop("daily_spend", None),
            },
            "celery_workers": {
                "status": "up",
                "active_workers": 4,
                "queued_tasks": BACKLOG_MESSAGES if backlog else 3,
                "failed_tasks_24h": 0,
            },
        }
        if self.is_on("unhealthy") or database_check["status"] != "up":
            status = "unhealthy"
        elif not odoo_up or llm_slow or llm_errors:
            status = "degraded"
        else:
            status = "healthy"
        body = {
            "status": status,
            "version": VERSION,
            "uptime_seconds": int(time.monotonic() - self.started),
            "checks": checks,
        }
        # Unhealthy answers 503 so that plain HTTP checks (load balancers, probes) see it too.
        return (503 if status == "unhealthy" else 200), body

    def _database_check(self, now: float) -> dict[str, Any]:
        start = time.monotonic()
        day_start = int(now) - int(now) % 86400
        try:
            with self.engine.connect() as conn:
                spend = conn.execute(
                    sqlalchemy.text(
                        "SELECT COALESCE(SUM(cost_usd), 0) FROM llm_calls "
                        "WHERE provider = 'anthropic' AND created_at >= :day_start"
                    ),
                    {"day_start": day_start},
                ).scalar_one()
                pending = conn.execute(
                    sqlalchemy.text("SELECT COUNT(*) FROM approvals WHERE status = 'pending'")
                ).scalar_one()
        except sqlalchemy.exc.SQLAlchemyError as exc:
            return {"status": "down", "latency_ms": None, "error": _short(exc)}
        self.metrics.approval_queue.set(pending)
        pool = self.engine.pool
        checked_out = pool.checkedout() if hasattr(pool, "checkedout") else 0
        size = pool.size() if hasattr(pool, "size") else 1
        return {
            "status": "up",
            "latency_ms": round((time.monotonic() - start) * 1000, 1),
            "connection_pool": {"active": checked_out, "idle": max(size - checked_out, 0), "max": size},
            "daily_spend": round(float(spend), 4),
        }

    def _redis_check(self) -> dict[str, Any]:
        if not self.broker_url:
            return {"status": "unconfigured"}
        start = time.monotonic()
        result: dict[str, Any] = {"status": "down"}

        def ping(r: Any) -> None:
            r.ping()
            result.update(status="up", latency_ms=round((time.monotonic() - start) * 1000, 1))

        self._broker(ping)
        return result


def _backlog_messages() -> list[str]:
    # Placeholders, not Celery protocol messages: they only make the queue long. Identical
    # payloads per index let LREM take back exactly what was pushed.
    return [json.dumps({"demo": "queue_backlog", "n": i}) for i in range(BACKLOG_MESSAGES)]


def _iso_week(now: float) -> str:
    year, week, _ = dt.datetime.fromtimestamp(now, tz=dt.UTC).isocalendar()
    return f"{year}-W{week:02d}"


def _rfc3339(t: float) -> str:
    return dt.datetime.fromtimestamp(t, tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _short(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# --- HTTP ---------------------------------------------------------------------------------------


def make_handler(app: DemoApp) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "alerting-demo/" + VERSION

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
            if os.environ.get("DEMO_VERBOSE"):
                super().log_message(format, *args)

        def do_GET(self) -> None:  # noqa: N802 - stdlib naming
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._send(200, generate_latest(app.metrics.registry), CONTENT_TYPE_LATEST)
            elif path == "/health":
                status, body = app.health()
                self._json(status, body)
            elif path == "/odoo/web/health":
                # What Odoo's own health endpoint answers.
                up = not app.is_on("odoo_down")
                self._json(200 if up else 503, {"status": "pass" if up else "fail"})
            elif path == "/faults":
                self._json(200, app.faults())
            elif path == "/":
                self._json(
                    200,
                    {
                        "endpoints": ["/metrics", "/health", "/odoo/web/health", "/faults"],
                        "faults": sorted(FAULTS),
                    },
                )
            else:
                self._json(404, {"error": f"no such path {path}"})

        def do_POST(self) -> None:  # noqa: N802
            name = self._fault_name()
            if name is None:
                return
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode().strip()
            on = _parse_switch(raw)
            if on is None:
                self._json(400, {"error": 'body must be empty, "on", "off" or {"on": true|false}'})
                return
            app.set_fault(name, on)
            self._json(200, {"fault": name, "on": on})

        def do_DELETE(self) -> None:  # noqa: N802
            if self.path.rstrip("/") == "/faults":
                for fault in FAULTS:
                    app.set_fault(fault, False)
                self._json(200, app.faults())
                return
            name = self._fault_name()
            if name is not None:
                app.set_fault(name, False)
                self._json(200, {"fault": name, "on": False})

        def _fault_name(self) -> str | None:
            parts = self.path.split("?", 1)[0].strip("/").split("/")
            if len(parts) != 2 or parts[0] != "faults":
                self._json(404, {"error": "use /faults/<name>"})
                return None
            if parts[1] not in FAULTS:
                self._json(404, {"error": f"unknown fault {parts[1]!r}", "faults": sorted(FAULTS)})
                return None
            return parts[1]

        def _json(self, status: int, body: Any) -> None:
            self._send(status, (json.dumps(body, indent=2) + "\n").encode(), "application/json")

        def _send(self, status: int, data: bytes, content_type: str) -> None:
            self.send_response(status, HTTPStatus(status).phrase)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler


def _parse_switch(raw: str) -> bool | None:
    if raw in ("", "on", "true", "1"):
        return True
    if raw in ("off", "false", "0"):
        return False
    try:
        body = json.loads(raw)
    except ValueError:
        return None
    if isinstance(body, dict) and isinstance(body.get("on"), bool):
        return bool(body["on"])
    return None


def _interrupt(signum: int, frame: Any) -> None:
    # A plain SIGTERM (from make, docker or a test) shuts down as cleanly as Ctrl-C.
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Demo app for the alerting worker's rule pack.")
    parser.add_argument("--host", default=os.environ.get("DEMO_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("DEMO_PORT", "8000")))
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL") or database.DEFAULT_URL)
    parser.add_argument("--broker-url", default=os.environ.get("DEMO_BROKER_URL", ""))
    parser.add_argument("--celery-queue", default=os.environ.get("DEMO_CELERY_QUEUE", "celery"))
    parser.add_argument("--tick", type=float, default=float(os.environ.get("DEMO_TICK", "1")))
    args = parser.parse_args(argv)

    app = DemoApp(args.database_url, args.broker_url, args.celery_queue, args.tick)
    signal.signal(signal.SIGTERM, _interrupt)
    server = ThreadingHTTPServer((args.host, args.port), make_handler(app))
    server.daemon_threads = True
    print(f"demo app listening on http://{args.host}:{server.server_port}", flush=True)
    app.start()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        app.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
