"""Acknowledgements over HTTP, on the worker's API address, for chat bots and runbooks:

    POST   /api/v1/acks        {"matchers": ["alertname=X", ...], "createdBy": "...", "comment": "...",
                                "duration": "4h"}  -> the groups acknowledged
    GET    /api/v1/acks        -> acknowledgements in force
    DELETE /api/v1/acks/{id}   -> expire one

The same as ``alerting ack``; every change is logged with who asked and from where.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from alerting.api.alertmanager import client_of
from alerting.durations import parse_duration
from alerting.errors import DurationError
from alerting.notify import acks
from alerting.notify.store import NotifyStore
from alerting.ops import metrics
from alerting.ops.logs import get_logger
from alerting.routing.escalation import DEFAULT_ACK_DURATION
from alerting.routing.matchers import Matcher, MatcherError, parse_matchers

if TYPE_CHECKING:
    from alerting.api.alertmanager import AlertmanagerAPI

log = get_logger(__name__)

MAX_BODY = 64 * 1024


def _json(status: int, body: Any) -> Response:
    return Response(
        json.dumps(body), status, headers={"Cache-Control": "no-store"}, media_type="application/json"
    )


class AcksAPI:
    """The ``/api/v1/acks`` endpoints over the pipeline's Redis."""

    def __init__(self, store: NotifyStore, default_duration: Callable[[], float]) -> None:
        self.client = store.r
        self.prefix = store.p.removesuffix(":notify")
        self.default_duration = default_duration

    @classmethod
    def beside(cls, alertmanager: AlertmanagerAPI) -> AcksAPI:
        """Sharing the Alertmanager API's store and loaded ``alerting.yml``."""

        def default_duration() -> float:
            section = alertmanager.routing().acknowledgements
            return float(section.default_duration) if section is not None else DEFAULT_ACK_DURATION

        return cls(alertmanager.store, default_duration)

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/api/v1/acks", self.create, methods=["POST"]),
            Route("/api/v1/acks", self.list_acks, methods=["GET"]),
            Route("/api/v1/acks/{ack_id}", self.expire, methods=["DELETE"]),
        ]

    async def create(self, request: Request) -> Response:
        body = await request.body()
        if len(body) > MAX_BODY:
            return _json(413, {"error": f"request body larger than {MAX_BODY} bytes"})
        try:
            data = json.loads(body)
            if not isinstance(data, dict):
                raise ValueError("expected a JSON object")
            matchers = _matchers(data.get("matchers"))
            created_by = data.get("createdBy")
            if not isinstance(created_by, str) or not created_by.strip():
                raise ValueError("createdBy is required: who acknowledges")
            comment = data.get("comment", "")
            if not isinstance(comment, str):
                raise ValueError("comment must be a string")
            duration = data.get("duration")
            seconds = self.default_duration() if duration is None else parse_duration(str(duration))
            if seconds <= 0:
                raise ValueError("duration must be positive")
        except (ValueError, MatcherError, DurationError) as exc:
            return _json(400, {"error": str(exc)})
        who = client_of(request)
        made = await run_in_threadpool(
            acks.acknowledge,
            self.client,
            self.prefix,
            matchers,
            by=created_by,
            comment=comment,
            duration=seconds,
            now=time.time(),
            source="api",
        )
        if not made:
            return _json(404, {"error": "no alert group has a firing alert matching the matchers"})
        metrics.observe_acknowledgement("api")
        for nid, ack in made:
            log.info(
                "api.ack_created",
                msg=f"group {ack.group_key} acknowledged by {created_by} from {who}",
                ack_id=nid,
                created_by=created_by,
                client=who,
            )
        return _json(200, [acks.ack_json(nid, a) for nid, a in made])

    def list_acks(self, _: Request) -> Response:
        items = acks.AckStore(self.client, self.prefix).all(time.time())
        return _json(200, [acks.ack_json(nid, a) for nid, a in items])

    def expire(self, request: Request) -> Response:
        ack_id = request.path_params["ack_id"]
        if not acks.expire(self.client, self.prefix, [ack_id]):
            return _json(404, {"error": f"no acknowledgement with id {ack_id}"})
        log.info(
            "api.ack_expired",
            msg=f"acknowledgement {ack_id} expired from {client_of(request)}",
            ack_id=ack_id,
        )
        return _json(200, {"expired": ack_id})


def _matchers(raw: Any) -> list[Matcher]:
    if not isinstance(raw, list) or not raw or not all(isinstance(m, str) for m in raw):
        raise ValueError('matchers must be a non-empty list of strings like "alertname=X"')
    found: list[Matcher] = []
    for text in raw:
        found.extend(parse_matchers(text))
    return found
