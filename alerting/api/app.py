"""The worker's Starlette app: ``/metrics``, ``/healthz``, ``/readyz`` and, given a silence store and
the loaded ``alerting.yml``, Alertmanager's API v2 (:mod:`alerting.api.alertmanager`)."""

from __future__ import annotations

import json
import os
import time
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from alerting.api.acks import AcksAPI
from alerting.ops import metrics
from alerting.ops.logs import get_logger

if TYPE_CHECKING:
    from alerting.api.alertmanager import AlertmanagerAPI
    from alerting.api.health import Readiness
    from alerting.api.prometheus import PrometheusAPI

log = get_logger(__name__)

UNHEALTHY = "unhealthy"


def metrics_content_type() -> str:
    from prometheus_client import CONTENT_TYPE_LATEST

    return str(CONTENT_TYPE_LATEST)


def reply(status: int, body: bytes, content_type: str) -> Response:
    """The operational endpoints' answers: never cached, and exactly the bytes given."""
    return Response(body, status, headers={"Cache-Control": "no-store"}, media_type=content_type)


def reply_json(status: int, body: Any) -> Response:
    # json.dumps' default separators: the answers stay byte-for-byte what they have always been.
    return reply(status, json.dumps(body).encode(), "application/json")


def build_app(
    readiness: Readiness,
    metrics_registry: Any,
    *,
    started: float | None = None,
    alertmanager: AlertmanagerAPI | None = None,
    prometheus: PrometheusAPI | None = None,
) -> Starlette:
    """The app serving ``readiness`` and ``metrics_registry``; ``alertmanager`` adds ``/api/v2``,
    ``prometheus`` the rules and alerts of ``/api/v1``."""
    since = time.time() if started is None else started

    async def metrics_endpoint(_: Request) -> Response:
        return reply(200, metrics.render(metrics_registry), metrics_content_type())

    async def healthz(_: Request) -> Response:
        body = {"status": "alive", "pid": os.getpid(), "uptime_seconds": int(time.time() - since)}
        return reply_json(200, body)

    def readyz(_: Request) -> Response:  # sync: the checks block, Starlette runs it in a thread
        result = readiness.run()
        return reply_json(503 if result["status"] == UNHEALTHY else 200, result)

    routes: list[BaseRoute] = [
        Route("/metrics", metrics_endpoint, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
    ]
    if alertmanager is not None:
        routes.extend(alertmanager.routes())
        routes.extend(AcksAPI.beside(alertmanager).routes())
    if prometheus is not None:
        routes.extend(prometheus.routes())

    async def not_found(request: Request, _: Exception) -> Response:
        served = "/metrics, /healthz, /readyz" + (", /api/v2/..." if alertmanager is not None else "")
        return reply_json(404, {"error": f"no such endpoint {request.url.path}; try {served}"})

    async def failed(request: Request, exc: Exception) -> Response:
        log.error("http.error", msg=f"{request.url.path} failed: {exc}", exc_info=exc)
        return reply_json(500, {"error": f"{type(exc).__name__}: {exc}"})

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if exc.status_code == 404:
            return await not_found(request, exc)
        return Response(exc.detail, exc.status_code, headers=exc.headers, media_type="text/plain")

    return Starlette(
        routes=routes,
        exception_handlers={HTTPException: http_error, Exception: failed},
    )
