"""Runs one alerting.yml through a real Alertmanager 0.25 and through our pipeline, both sending to
the same local fake, and hands back each side's requests for a field-by-field comparison.

The configuration text says ``BASE`` wherever a receiver's URL starts; each side gets its own prefix
(``{fake}/am`` and ``{fake}/ours``) so the fake can tell them apart. Alerts fire first; when
``resolve`` is set they are resolved afterwards and both sides send the resolve notification.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

from alerting.worker.compose import load_routing_config
from tests.support.httpfake import Request
from tests.support.net import wait_until
from tests.support.routing_alertmanager import Alertmanager
from tests.support.routing_harness import Harness
from tests.support.routing_harness import alert as routed_alert
from tests.support.routing_redis import isolated_redis


class Recorder(Protocol):
    """What both sides send to: a fake HTTP server, or anything else keeping what it received."""

    @property
    def requests(self) -> list[Any]: ...


GENERATOR_URL = "http://prometheus.example:9090/graph?g0.expr=up+%3D%3D+0&g0.tab=1"
ROUTE = """
route:
  receiver: main
  group_by: [alertname]
  group_wait: 1s
  group_interval: 2s
  repeat_interval: 1h
"""


def run_both(
    tmp_path: Path,
    fake: Recorder,
    receivers: str,
    alerts: list[dict[str, Any]],
    *,
    expect: int,
    resolve: bool = False,
    base: Callable[[str], str] | None = None,
    side_of: Callable[[Any], str] | None = None,
) -> tuple[list[Any], list[Any]]:
    """Alertmanager's requests and ours, each in the order sent; ``expect`` is the count per side.

    ``base(side)`` gives the text put in place of ``BASE`` (``{fake.url}/{side}`` by default); the
    requests are told apart by ``side`` at the start of their path, or by ``side_of(request)``.
    """
    base = base or (lambda side: f"{getattr(fake, 'url', '')}/{side}")
    side_of = side_of or _path_side
    config = ROUTE + receivers
    ours_path, theirs_path = tmp_path / "ours.yml", tmp_path / "am.yml"
    ours_path.write_text(config.replace("BASE", base("ours")))
    theirs_path.write_text(config.replace("BASE", base("am")))

    def count(side: str) -> int:
        return len(_side(fake, side, side_of))

    now = time.time()
    with isolated_redis() as (client, prefix), Alertmanager(theirs_path, tmp_path) as am:
        am.post_alerts([{**a, "generatorURL": GENERATOR_URL} for a in alerts])
        harness = Harness(client, prefix, load_routing_config(ours_path, env={}))
        ours = [_routed(a, now) for a in alerts]
        harness.ingest(now, *ours)
        harness.tick(now + 2)
        firing = expect // 2 if resolve else expect
        wait_until(lambda: count("am") >= firing and count("ours") >= firing, timeout=30)
        if resolve:
            ended = time.time() - 1
            am.post_alerts([{**a, "generatorURL": GENERATOR_URL, "endsAt": _rfc3339(ended)} for a in alerts])
            harness.ingest(now + 3, *[replace(a, status="resolved", ends_at=now + 3) for a in ours])
            harness.tick(now + 10)
            wait_until(lambda: count("am") >= expect and count("ours") >= expect, timeout=30)
    return _side(fake, "am", side_of), _side(fake, "ours", side_of)


def route_ours(
    client: Any, prefix: str, config: Path, alerts: list[dict[str, Any]], now: float, generator_url: str = ""
) -> Harness:
    """Our pipeline on ``config`` takes in ``alerts`` (Alertmanager's API form) at ``now`` and sends
    what is due two seconds later; each alert links to ``generator_url`` when one is given."""
    harness = Harness(client, prefix, load_routing_config(config, env={}))
    ours = []
    for spec in json.loads(json.dumps(alerts)):
        labels = spec["labels"]
        made = routed_alert(labels.pop("alertname"), now, annotations=spec["annotations"], **labels)
        ours.append(replace(made, generator_url=generator_url) if generator_url else made)
    harness.ingest(now, *ours)
    harness.tick(now + 2)
    return harness


def assert_same_json_posts(theirs: list[Request], mine: list[Request], count: int, path: str) -> None:
    """Both sides sent ``count`` POSTs to ``path`` (after the side prefix) with the same JSON."""
    assert len(theirs) == len(mine) == count
    for a, b in zip(theirs, mine, strict=True):
        assert a.method == b.method == "POST"
        assert unprefixed(a) == unprefixed(b) == path
        assert a.headers["content-type"] == b.headers["content-type"]
        assert a.json() == b.json()


def _path_side(request: Request) -> str:
    return request.path.split("/")[1]


def _side(fake: Recorder, side: str, side_of: Callable[[Any], str]) -> list[Any]:
    return [r for r in list(fake.requests) if side_of(r) == side]


def _routed(spec: dict[str, Any], now: float) -> Any:
    spec = json.loads(json.dumps(spec))
    labels = spec["labels"]
    made = routed_alert(labels.pop("alertname"), now, annotations=spec.get("annotations") or {}, **labels)
    return replace(made, generator_url=GENERATOR_URL)


def _rfc3339(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def unprefixed(request: Request) -> str:
    """The request's path without the side prefix."""
    return "/" + request.path.split("/", 2)[2]
