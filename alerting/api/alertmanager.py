"""Alertmanager's API v2 over the worker's data: status, receivers, silences and the alerts in the
notification pipeline's aggregation groups, answering as
Alertmanager 0.25 answers (its OpenAPI document, its status codes and error texts), so amtool,
Grafana and karma can point at the worker.

Silences are the ones ``alerting silence`` keeps (:class:`~alerting.notify.store.NotifyStore`): one
store, so the CLI, the API and the notification pipeline see the same silences.
"""

from __future__ import annotations

import functools
import json
import re
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from alerting import durable, redisconn
from alerting.api.access import MAX_BODY
from alerting.api.postalerts import Posted, Refused, merge, parse_alerts
from alerting.config.settings import Settings
from alerting.core import fingerprint, rfc3339
from alerting.notify.live import RoutingConfig
from alerting.notify.pipeline import ingest
from alerting.notify.store import GroupSnapshot, NotifyStore
from alerting.ops.logs import get_logger
from alerting.routing.inhibit import Inhibitor
from alerting.routing.matchers import (
    LABEL_NAME,
    Matcher,
    MatcherError,
    alert_sort_key,
    compile_anchored,
    matches_all,
    matches_empty,
    parse_matcher,
)
from alerting.routing.silences import ACTIVE, EXPIRED, PENDING, Silence

log = get_logger(__name__)

_UUID = re.compile(r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$")

# What Alertmanager's configuration knows: config.original keeps only these, so amtool (which loads
# it strictly) reads it; the worker's own sections (evaluation, datasources, ...) are not shown.
AM_SECTIONS = (
    "global",
    "templates",
    "route",
    "inhibit_rules",
    "receivers",
    "mute_time_intervals",
    "time_intervals",
)
AM_INTEGRATIONS = (
    "discord_configs",
    "email_configs",
    "opsgenie_configs",
    "pagerduty_configs",
    "pushover_configs",
    "slack_configs",
    "sns_configs",
    "telegram_configs",
    "victorops_configs",
    "webex_configs",
    "webhook_configs",
    "wechat_configs",
)
# Fields Alertmanager 0.25 types as Secret or SecretURL (config/, notifiers, prometheus/common's
# http_config): it prints them as <secret>.
SECRET_FIELDS = frozenset(
    {
        "smtp_auth_password",
        "smtp_auth_secret",
        "slack_api_url",
        "victorops_api_key",
        "opsgenie_api_key",
        "wechat_api_secret",
        "password",  # basic_auth
        "credentials",  # authorization
        "client_secret",  # oauth2
        "bearer_token",
        "auth_password",
        "auth_secret",
        "routing_key",
        "service_key",
        "api_key",
        "api_secret",
        "user_key",
        "token",
        "bot_token",
        "secret_key",  # sigv4
        "webhook_url",  # discord
    }
)
SECRET = "<secret>"


def mask_secrets(value: Any, parent: str = "") -> Any:
    """``value`` with every secret Alertmanager would hide replaced by ``<secret>``."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            secret = (
                key in SECRET_FIELDS
                or (key == "api_url" and parent == "slack_configs")
                or (key == "key" and parent == "tls_config")
            )
            out[key] = SECRET if secret and item not in (None, "") else mask_secrets(item, str(key))
        return out
    if isinstance(value, list):
        return [mask_secrets(item, parent) for item in value]
    return value


def alertmanager_config(doc: Any) -> dict[str, Any]:
    """The Alertmanager part of an ``alerting.yml`` document, secrets masked."""
    if not isinstance(doc, dict):
        return {}
    shown = {key: doc[key] for key in AM_SECTIONS if key in doc}
    receivers = shown.get("receivers")
    if isinstance(receivers, list):
        shown["receivers"] = [
            {k: v for k, v in r.items() if k == "name" or k in AM_INTEGRATIONS} if isinstance(r, dict) else r
            for r in receivers
        ]
    return dict(mask_secrets(shown))


class LoadedConfig:
    """``alerting.yml`` as the API shows it: the masked original text and the receivers' names."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        doc: Any = None
        if path is not None and path.exists():
            try:
                doc = yaml.safe_load(path.read_text())
            except (OSError, yaml.YAMLError) as exc:  # the worker reports the file's problems itself
                log.error("api.config_unreadable", msg=f"{path}: {exc}")
                doc = {}
        if doc is None:  # no file: the default routing, everything to the console
            doc = {"route": {"receiver": "console"}, "receivers": [{"name": "console"}]}
        shown = alertmanager_config(doc)
        self.original = yaml.safe_dump(shown, sort_keys=False, default_flow_style=False, allow_unicode=True)
        receivers = shown.get("receivers") or []
        self.receivers = [str(r["name"]) for r in receivers if isinstance(r, dict) and "name" in r]


# --- wire formats --------------------------------------------------------------------------------------


def am_json(status: int, body: Any) -> Response:
    """Alertmanager's JSON: compact, unescaped, newline-terminated (Go's json.Encoder)."""
    text = json.dumps(body, separators=(",", ":"), ensure_ascii=False) + "\n"
    return Response(text.encode(), status, media_type="application/json")


def swagger_error(status: int, code: int, message: str) -> Response:
    """go-swagger's error shape for a request its validation rejects."""
    return am_json(status, {"code": code, "message": message})


def plain(status: int, text: str) -> Response:
    return Response(text.encode(), status, media_type="text/plain; charset=utf-8")


def matcher_json(m: Matcher) -> dict[str, Any]:
    return {"isEqual": m.op in ("=", "=~"), "isRegex": m.op in ("=~", "!~"), "name": m.name, "value": m.value}


def silence_json(s: Silence, now: float) -> dict[str, Any]:
    """A GettableSilence."""
    return {
        "id": s.id,
        "status": {"state": s.state(now)},
        "updatedAt": rfc3339(s.updated_at),
        "comment": s.comment,
        "createdBy": s.created_by,
        "endsAt": rfc3339(s.ends_at),
        "matchers": [matcher_json(m) for m in s.matchers],
        "startsAt": rfc3339(s.starts_at),
    }


def sort_silences(silences: list[Silence], now: float) -> list[Silence]:
    """Alertmanager's order: active (ending soonest first), pending (starting soonest), expired
    (most recently ended first)."""
    rank = {ACTIVE: 0, PENDING: 1, EXPIRED: 2}

    def key(s: Silence) -> tuple[int, float]:
        state = s.state(now)
        if state == ACTIVE:
            return rank[state], s.ends_at
        if state == PENDING:
            return rank[state], s.starts_at
        return rank[state], -s.ends_at

    return sorted(silences, key=key)


def silence_matches_filter(s: Silence, filters: list[Matcher]) -> bool:
    """Alertmanager 0.25's silence filter: every filter is one of the silence's matchers, same name,
    same operator, same value (``service=~db.*`` does not find a silence on ``service=~"db|cache"``)."""
    return all(any((m.name, m.op, m.value) == (f.name, f.op, f.value) for m in s.matchers) for f in filters)


class BadRequest(Exception):
    """A request Alertmanager would refuse: the response to give."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


def _parse_time(value: Any, field: str) -> float:
    if not isinstance(value, str):
        raise BadRequest(_parse_failure(f"{field} must be a date-time string"))
    text = value.strip()
    # Go writes nanoseconds; Python reads at most microseconds.
    text = re.sub(r"(\.\d{6})\d+", r"\1", text)
    try:
        parsed = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        raise BadRequest(_parse_failure(f'parsing time "{value}" as an RFC 3339 date-time failed')) from None
    if parsed.tzinfo is None:
        raise BadRequest(_parse_failure(f'parsing time "{value}": missing time zone'))
    return round(parsed.timestamp(), 3)


def _parse_failure(reason: str) -> Response:
    return swagger_error(400, 400, f'parsing silence body from "" failed, because {reason}')


def postable_silence(body: bytes) -> tuple[str | None, list[dict[str, Any]], float, float, str, str]:
    """Decode and validate a PostableSilence as go-swagger does before Alertmanager sees it."""
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(_parse_failure(str(exc))) from None
    if not isinstance(doc, dict):
        kind = "array" if isinstance(doc, list) else type(doc).__name__
        raise BadRequest(
            _parse_failure(f"json: cannot unmarshal {kind} into Go value of type models.PostableSilence")
        )
    for field in ("comment", "createdBy", "endsAt", "matchers", "startsAt"):
        if doc.get(field) is None:
            raise BadRequest(swagger_error(422, 602, f"{field} in body is required"))
    for field in ("comment", "createdBy", "id"):
        if field in doc and doc[field] is not None and not isinstance(doc[field], str):
            raise BadRequest(_parse_failure(f"{field} must be a string"))
    matchers = doc["matchers"]
    if not isinstance(matchers, list):
        raise BadRequest(_parse_failure("matchers must be an array"))
    if not matchers:
        raise BadRequest(swagger_error(422, 612, "matchers in body should have at least 1 items"))
    for i, m in enumerate(matchers):
        if not isinstance(m, dict):
            raise BadRequest(_parse_failure(f"matchers.{i} must be an object"))
        for field in ("isRegex", "name", "value"):
            if m.get(field) is None:
                raise BadRequest(swagger_error(422, 602, f"matchers.{i}.{field} in body is required"))
        if not isinstance(m["name"], str) or not isinstance(m["value"], str):
            raise BadRequest(_parse_failure(f"matchers.{i}.name and value must be strings"))
        if not isinstance(m["isRegex"], bool) or not isinstance(m.get("isEqual", True), bool):
            raise BadRequest(_parse_failure(f"matchers.{i}.isRegex and isEqual must be booleans"))
    starts = _parse_time(doc["startsAt"], "startsAt")
    ends = _parse_time(doc["endsAt"], "endsAt")
    sid = doc.get("id") or None
    return sid, matchers, starts, ends, doc["comment"], doc["createdBy"]


def build_matchers(raw: list[dict[str, Any]]) -> list[Matcher]:
    """The silence's matchers, with Alertmanager's validation and its texts."""
    out = []
    for i, m in enumerate(raw):
        name, value = m["name"], m["value"]
        if not LABEL_NAME.match(name):
            raise _invalid(f"invalid label matcher {i}: invalid label name {json.dumps(name)}")
        op = {(False, True): "=", (False, False): "!=", (True, True): "=~", (True, False): "!~"}[
            (m["isRegex"], m.get("isEqual", True))
        ]
        try:
            out.append(Matcher(name, op, value))
        except MatcherError as exc:
            detail = str(exc).split(": ", 1)[-1]
            raise _invalid(
                f"invalid label matcher {i}: invalid regular expression {json.dumps(value)}: {detail}"
            ) from None
    if all(matches_empty(m) for m in out):
        raise _invalid("at least one matcher must not match the empty string")
    return out


def _invalid(reason: str) -> BadRequest:
    return BadRequest(am_json(400, f"silence invalid: {reason}"))


def _ms(t: float) -> float:
    return round(t, 3)


class AlertmanagerAPI:
    """The ``/api/v2`` routes and ``/-/`` endpoints over one silence store and one ``alerting.yml``."""

    def __init__(
        self,
        store: NotifyStore,
        config_path: str | Path | None,
        *,
        clock: Callable[[], float] = time.time,
        max_body: int = MAX_BODY,
        version: str = "unknown",
        on_close: Callable[[], None] | None = None,
    ) -> None:
        self.store = store
        self.config_path = Path(config_path) if config_path is not None else None
        self.config = LoadedConfig(self.config_path)
        self.clock = clock
        self.max_body = max_body
        self.version = version
        self.started = clock()
        self.peer = f"{socket.gethostname()}"
        self.address = ""
        self._on_close = on_close
        self._lock = threading.Lock()  # a silence's read-modify-write is one step within this process
        self._routing: RoutingConfig | None = None

    def routing(self) -> RoutingConfig:
        """The route tree and inhibition rules the alerts are shown against (loaded once, and at reload)."""
        if self._routing is None:
            from alerting.worker.compose import default_routing_config, load_routing_config

            path = self.config_path
            self._routing = (
                load_routing_config(path) if path is not None and path.exists() else default_routing_config()
            )
        return self._routing

    @classmethod
    def from_settings(cls, settings: Settings, version: str = "unknown") -> AlertmanagerAPI:
        client = redisconn.connect(settings.redis_url, socket_timeout=5, socket_connect_timeout=5)
        durable.configure(settings.redis_wait_timeout)
        return cls(
            NotifyStore(client, settings.prefix), settings.config_path, version=version, on_close=client.close
        )

    def set_address(self, addr: tuple[str, int]) -> None:
        host = f"[{addr[0]}]" if ":" in addr[0] else addr[0]
        self.address = f"{host}:{addr[1]}"

    def close(self) -> None:
        if self._on_close is not None:
            self._on_close()

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/api/v2/status", self.status, methods=["GET"]),
            Route("/api/v2/receivers", self.receivers, methods=["GET"]),
            Route("/api/v2/alerts", self.list_alerts, methods=["GET"]),
            Route("/api/v2/alerts", self.post_alerts, methods=["POST"]),
            Route("/api/v2/alerts/groups", self.list_groups, methods=["GET"]),
            Route("/api/v2/silences", self.list_silences, methods=["GET"]),
            Route("/api/v2/silences", self.post_silence, methods=["POST"]),
            Route("/api/v2/silence/{silence_id}", self.get_silence, methods=["GET"]),
            Route("/api/v2/silence/{silence_id}", self.delete_silence, methods=["DELETE"]),
            Route("/-/healthy", self.ok, methods=["GET", "HEAD"]),
            Route("/-/ready", self.ok, methods=["GET", "HEAD"]),
            Route("/-/reload", self.reload, methods=["POST"]),
        ]

    # -- general ------------------------------------------------------------------------------------

    async def ok(self, _: Request) -> Response:
        return plain(200, "OK")

    def status(self, _: Request) -> Response:
        body = {
            "cluster": {
                "name": self.peer,
                "peers": [{"address": self.address, "name": self.peer}],
                "status": "ready",
            },
            "config": {"original": self.config.original},
            "uptime": rfc3339(self.started),
            "versionInfo": {
                "branch": "",
                "buildDate": "",
                "buildUser": "",
                "goVersion": f"python{sys.version_info.major}.{sys.version_info.minor}",
                "revision": "",
                "version": self.version,
            },
        }
        return am_json(200, body)

    def receivers(self, _: Request) -> Response:
        return am_json(200, [{"name": name} for name in self.config.receivers])

    def reload(self, request: Request) -> Response:
        from alerting.worker.compose import check_routing_config

        who = client_of(request)
        problems = (
            check_routing_config(self.config_path) if self.config_path and self.config_path.exists() else []
        )
        if problems:
            log.error("api.reload_failed", msg=f"reload asked by {who} failed: {problems[0]}", client=who)
            return plain(500, f"failed to reload config: {problems[0]}")
        self.config = LoadedConfig(self.config_path)
        self._routing = None
        log.info("api.reloaded", msg=f"configuration reloaded, asked by {who}", client=who)
        return Response(b"", 200)

    # -- alerts -------------------------------------------------------------------------------------

    def list_alerts(self, request: Request) -> Response:
        try:
            query = AlertQuery.from_request(request, unprocessed=True)
        except BadRequest as exc:
            return exc.response
        view = self._view()
        shown = []
        for stored in view.alerts.values():
            alert = view.gettable(stored)
            if query.wants(alert):
                shown.append(alert)
        return am_json(200, sorted(shown, key=lambda a: a["fingerprint"]))

    async def post_alerts(self, request: Request) -> Response:
        media = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
        if media != "application/json":
            message = f'unsupported media type "{media}", only [application/json] are allowed'
            return swagger_error(415, 415, message)
        try:
            body = await _read_limited(request, self.max_body)
            now = self.clock()
            timeout = float(self.routing().global_config.get("resolve_timeout", 300.0))
            received = parse_alerts(body, now, timeout)
        except BadRequest as exc:
            return exc.response
        except Refused as exc:
            return am_json(exc.status, exc.body)
        who = client_of(request)
        await run_in_threadpool(self._ingest, received.posted, now, who)
        if received.problems:
            log.warning(
                "api.alerts_invalid",
                msg=f"{len(received.problems)} alerts from {who} refused: {'; '.join(received.problems)}",
                client=who,
            )
            return am_json(400, "; ".join(received.problems))
        return Response(b"", 200)

    def _ingest(self, posted: list[Posted], now: float, who: str) -> None:
        if not posted:
            return
        # What was last received of each alert, so a repeat merges with it as in Alertmanager; kept
        # an hour past its end.
        keys = [f"{self.store.p}:posted:{fingerprint(p.alert.labels)}" for p in posted]
        with self._lock:
            previous = self.store.r.mget(keys)
            merged = [
                merge(Posted.times(raw) if raw is not None else None, p, now)
                for p, raw in zip(posted, previous, strict=True)
            ]
            alerts = [m.alert for m in merged]
            prefix = self.store.p.removesuffix(":notify")
            ingest(self.store.r, prefix, self.routing(), alerts, now)
            pipe = self.store.r.pipeline(transaction=False)
            for key, m in zip(keys, merged, strict=True):
                keep = max((m.alert.ends_at or now) - now, 0.0) + 3600
                pipe.set(key, m.to_json(), ex=int(keep))
            pipe.execute()
        firing = sum(1 for a in alerts if a.status == "firing")
        log.info(
            "api.alerts_received",
            msg=f"{len(alerts)} alerts ({firing} firing) received from {who}",
            client=who,
            alerts=len(alerts),
            firing=firing,
        )

    def list_groups(self, request: Request) -> Response:
        try:
            query = AlertQuery.from_request(request, unprocessed=False)
        except BadRequest as exc:
            return exc.response
        view = self._view()
        out: list[tuple[dict[str, str], str, list[dict[str, Any]]]] = []
        for group in view.groups:
            route = view.routing.routes_by_id.get(group.route_id)
            if route is None or (query.receiver is not None and not query.receiver.search(route.receiver)):
                continue
            alerts = []
            for fp in group.alerts:
                stored = view.alerts.get(fp)
                if stored is None:
                    continue
                alert = view.gettable(stored)
                if query.wants(alert, check_receiver=False):
                    alerts.append((stored["labels"], alert))
            if alerts:
                alerts.sort(key=lambda pair: alert_sort_key(pair[0]))
                out.append((dict(group.group_labels), route.receiver, [a for _, a in alerts]))
        out.sort(key=lambda g: (_labels_key(g[0]), g[1]))
        return am_json(
            200,
            [
                {"alerts": alerts, "labels": labels, "receiver": {"name": name}}
                for labels, name, alerts in out
            ],
        )

    def _view(self) -> AlertsView:
        now = self.clock()
        gids = [
            g.decode() if isinstance(g, bytes) else str(g)
            for g in self.store.r.zrange(self.store.due_key, 0, -1)
        ]
        return AlertsView(self.routing(), self.store.load_groups(gids), self.store, now)

    # -- silences -----------------------------------------------------------------------------------

    def list_silences(self, request: Request) -> Response:
        try:
            filters = [parse_matcher(text) for text in request.query_params.getlist("filter")]
        except MatcherError as exc:
            return am_json(400, str(exc))
        now = self.clock()
        found = [s for s in self.store.silences(now) if silence_matches_filter(s, filters)]
        return am_json(200, [silence_json(s, now) for s in sort_silences(found, now)])

    def get_silence(self, request: Request) -> Response:
        sid = request.path_params["silence_id"]
        if not _UUID.match(sid):
            return _bad_id(sid)
        found = self.store.get_silence(sid)
        if found is None:
            return Response(b"", 404)
        return am_json(200, silence_json(found, self.clock()))

    def delete_silence(self, request: Request) -> Response:
        sid = request.path_params["silence_id"]
        if not _UUID.match(sid):
            return _bad_id(sid)
        who = client_of(request)
        with self._lock:
            found = self.store.get_silence(sid)
            if found is None:
                return am_json(500, "silence not found")  # Alertmanager 0.25's answer, 500 and all
            now = _ms(self.clock())
            state = found.state(now)
            if state == EXPIRED:
                return Response(b"", 200)  # as Alertmanager 0.25: nothing to do, no error
            starts = now if state == PENDING else found.starts_at
            expired = Silence(found.id, found.matchers, starts, now, found.created_by, found.comment, now)
            self.store.put_silence(expired)
        log.info(
            "api.silence_expired",
            msg=f"silence {sid} expired by {who}",
            silence_id=sid,
            created_by=found.created_by,
            client=who,
        )
        return Response(b"", 200)

    async def post_silence(self, request: Request) -> Response:
        try:
            body = await _read_limited(request, self.max_body)
            sid, raw_matchers, starts, ends, comment, created_by = postable_silence(body)
            if starts >= ends:
                return am_json(400, "Failed to create silence: start time must be before end time")
            if ends < self.clock():
                return am_json(400, "Failed to create silence: end time can't be in the past")
        except BadRequest as exc:
            return exc.response
        who = client_of(request)
        return await run_in_threadpool(
            self._set_silence, sid, raw_matchers, starts, ends, comment, created_by, who
        )

    def _set_silence(
        self,
        sid: str | None,
        raw_matchers: list[dict[str, Any]],
        starts: float,
        ends: float,
        comment: str,
        created_by: str,
        who: str,
    ) -> Response:
        with self._lock:  # Redis calls block: this runs in Starlette's thread pool
            now = _ms(self.clock())
            previous = self.store.get_silence(sid) if sid else None
            if sid and previous is None:  # Alertmanager looks the id up before it checks the matchers
                return am_json(404, "silence not found")
            try:
                matchers = build_matchers(raw_matchers)
            except BadRequest as exc:
                return exc.response
            made = Silence(sid or "", tuple(matchers), starts, ends, created_by, comment, now)
            if previous is not None and _can_update(previous, made, now):
                self.store.put_silence(made)
                replaced = None
            else:
                if previous is not None and previous.state(now) != EXPIRED:
                    self.store.put_silence(
                        Silence(
                            previous.id,
                            previous.matchers,
                            now if previous.state(now) == PENDING else previous.starts_at,
                            now,
                            previous.created_by,
                            previous.comment,
                            now,
                        )
                    )
                replaced = previous.id if previous is not None else None
                made = Silence(
                    str(uuid.uuid4()), made.matchers, max(starts, now), ends, created_by, comment, now
                )
                self.store.put_silence(made)
        log.info(
            "api.silence_set",
            msg=f"silence {made.id} set by {created_by!r} from {who}"
            + (f", replacing {replaced}" if replaced else ""),
            silence_id=made.id,
            created_by=created_by,
            client=who,
            matchers=[str(m) for m in made.matchers],
            ends_at=rfc3339(made.ends_at),
            comment=comment,
        )
        return am_json(200, {"silenceID": made.id})


def _can_update(prev: Silence, new: Silence, now: float) -> bool:
    """Alertmanager's rule for changing a silence in place rather than replacing it."""
    if prev.matchers != new.matchers:
        return False
    state = prev.state(now)
    if state == ACTIVE:
        return _ms(new.starts_at) == _ms(prev.starts_at) and new.ends_at >= now
    if state == PENDING:
        return new.starts_at >= now
    return False


def _bad_id(sid: str) -> Response:
    return swagger_error(422, 601, f"silenceID in path must be of type uuid: {json.dumps(sid)}")


def client_of(request: Request) -> str:
    """Who made a request, for the log of every change: the basic-auth user, else the remote address."""
    user = request.scope.get("alerting.user")
    if user:
        return str(user)
    client = request.client
    return f"{client.host}:{client.port}" if client is not None else "unknown"


async def _read_limited(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BadRequest(swagger_error(413, 413, f"request body larger than {limit} bytes"))
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise BadRequest(swagger_error(413, 413, f"request body larger than {limit} bytes"))
            chunks.append(chunk)
    except ClientDisconnect:
        raise BadRequest(Response(b"", 400)) from None
    return b"".join(chunks)


# --- alerts ----------------------------------------------------------------------------------------


def _compare_labels(a: Any, b: Any) -> int:
    """Alertmanager's ``LabelSet.Before``: fewer labels first, then by sorted name and value."""
    if len(a) != len(b):
        return -1 if len(a) < len(b) else 1
    for name in sorted({*a, *b}):
        if name not in a:
            return -1
        if name not in b:
            return 1
        if a[name] != b[name]:
            return -1 if a[name] < b[name] else 1
    return 0


_labels_key = functools.cmp_to_key(_compare_labels)


class AlertsView:
    """The alerts of every aggregation group at one instant, with their status computed as
    Alertmanager computes it when asked: silences and inhibitions in force now."""

    def __init__(
        self, routing: RoutingConfig, groups: list[GroupSnapshot], store: NotifyStore, now: float
    ) -> None:
        self.routing = routing
        self.groups = groups
        self.now = now
        self.resolve_timeout = float(routing.global_config.get("resolve_timeout", 300.0))
        self.alerts: dict[str, dict[str, Any]] = {}
        for group in groups:
            for fp, raw in group.alerts.items():
                data = json.loads(raw)
                ends_at = data.get("ends_at")
                if ends_at is not None and ends_at <= now:
                    continue  # resolved: Alertmanager's API leaves these out
                known = self.alerts.get(fp)
                if known is None or data.get("updated_at", 0) > known.get("updated_at", 0):
                    self.alerts[fp] = data
        self.silences = [s for s in store.silences(now) if s.state(now) == ACTIVE]
        self.inhibitor = (
            Inhibitor(routing.inhibit_rules, store.active_sources(now)) if routing.inhibit_rules else None
        )

    def gettable(self, data: dict[str, Any]) -> dict[str, Any]:
        """A GettableAlert."""
        labels = data["labels"]
        silenced_by = sorted(s.id for s in self.silences if s.mutes(labels, self.now))
        source = self.inhibitor.inhibited_by(labels) if self.inhibitor is not None else None
        inhibited_by = [fingerprint(source)] if source is not None else []
        updated = float(data.get("updated_at", data["starts_at"]))
        ends_at = data.get("ends_at")
        if ends_at is None:  # as Alertmanager times out an alert sent without an end
            ends_at = updated + self.resolve_timeout
        return {
            "annotations": data.get("annotations", {}),
            "endsAt": rfc3339(ends_at),
            "fingerprint": data["fingerprint"],
            "receivers": [{"name": name} for name in self.routing.receivers_for(labels)],
            "startsAt": rfc3339(data["starts_at"]),
            "status": {
                "inhibitedBy": inhibited_by,
                "silencedBy": silenced_by,
                "state": "suppressed" if silenced_by or inhibited_by else "active",
            },
            "updatedAt": rfc3339(updated),
            **({"generatorURL": url} if (url := data.get("generator_url")) else {}),  # omitted when empty
            "labels": labels,
        }


class AlertQuery:
    """``filter``, ``receiver``, ``active``, ``silenced``, ``inhibited``, ``unprocessed``."""

    def __init__(
        self,
        filters: list[Matcher],
        receiver: Any,
        active: bool,
        silenced: bool,
        inhibited: bool,
        unprocessed: bool,
    ) -> None:
        self.filters = filters
        self.receiver = receiver
        self.active, self.silenced, self.inhibited, self.unprocessed = (
            active,
            silenced,
            inhibited,
            unprocessed,
        )

    @classmethod
    def from_request(cls, request: Request, *, unprocessed: bool) -> AlertQuery:
        params = request.query_params
        try:
            filters = [parse_matcher(text) for text in params.getlist("filter")]
        except MatcherError as exc:
            raise BadRequest(am_json(400, str(exc))) from None
        receiver = None
        if params.get("receiver"):
            try:
                receiver = compile_anchored(params["receiver"])
            except MatcherError as exc:
                raise BadRequest(am_json(400, f"failed to parse receiver param: {exc}")) from None
        flags = {}
        for name in ("active", "silenced", "inhibited", "unprocessed"):
            value = params.get(name, "true").lower()
            if value not in ("true", "false", "1", "0"):
                raise BadRequest(
                    swagger_error(400, 400, f"{name} in query must be of type boolean: {json.dumps(value)}")
                )
            flags[name] = value in ("true", "1")
        return cls(
            filters, receiver, flags["active"], flags["silenced"], flags["inhibited"], flags["unprocessed"]
        )

    def wants(self, alert: dict[str, Any], *, check_receiver: bool = True) -> bool:
        status = alert["status"]
        receivers = [r["name"] for r in alert["receivers"]]
        if (
            check_receiver
            and self.receiver is not None
            and not any(self.receiver.search(r) for r in receivers)
        ):
            return False
        if not self.active and status["state"] == "active":
            return False
        if not self.silenced and status["silencedBy"]:
            return False
        if not self.inhibited and status["inhibitedBy"]:
            return False
        return matches_all(self.filters, alert["labels"])
