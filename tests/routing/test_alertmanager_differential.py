"""Differential test: the same config and the same timed alert stream go to a real Alertmanager and to
our pipeline; a local webhook recorder must see the same notifications from both, per receiver.

All scenarios run at once against one Alertmanager, each with its own label set and receivers. Every
group is created at an even second after the start and flushes at odd seconds (group_wait 1s,
group_interval 2s), while alerts change only at even seconds, so no event races a flush. Half way
through, our side "restarts" (new connection, config read again) while Alertmanager keeps running.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis

from alerting.notify.base import NotifyAlert
from alerting.notify.pipeline import deliver, flush_due, ingest
from alerting.notify.store import NotifyStore
from alerting.routing.matchers import parse_matchers
from alerting.routing.silences import new_silence
from alerting.worker.compose import load_routing_config
from tests.support.routing_alertmanager import Alertmanager
from tests.support.routing_redis import REDIS_URL, isolated_redis
from tests.support.webhook import WebhookRecorder

LAST_TICK = 22  # seconds after the start; alerts are (re)sent every 2 seconds up to here
OBSERVE_UNTIL = 24.2  # the flush at +23 is the last one compared
RESTART_AT = 10  # our side reconnects and re-reads its config before this tick
TOLERANCE = 0.75  # seconds between Alertmanager's and our delivery of the same notification

RECEIVERS = [
    "root",
    "group",
    "group_all",
    "group_none",
    "cont_page",
    "cont_chat",
    "repeat",
    "res_on",
    "res_off",
    "inhibit",
    "silence",
    "mute_always",
    "mute_never",
    "active_always",
    "active_never",
    "quoting",
]

CONFIG = """
route:
  receiver: root
  group_by: [alertname]
  group_wait: 1s
  group_interval: 2s
  repeat_interval: 1h
  routes:
    - matchers: ['scenario="grouping"']
      receiver: group
    - matchers: ['scenario=~"quot.*"', 'path!~"^$"']
      receiver: quoting
      group_by: [alertname, path]
    - matchers: ['scenario="group_all"']
      receiver: group_all
      group_by: ['...']
    - matchers: ['scenario="group_none"']
      receiver: group_none
      group_by: []
    - matchers: ['scenario="continue"', 'severity="critical"']
      receiver: cont_page
      continue: true
    - matchers: ['scenario="continue"']
      receiver: cont_chat
    - matchers: ['scenario="repeat"']
      receiver: repeat
      repeat_interval: 5s
    - matchers: ['scenario="resolved"']
      receiver: res_on
      continue: true
    - matchers: ['scenario="resolved"']
      receiver: res_off
    - matchers: ['scenario="inhibit"']
      receiver: inhibit
    - matchers: ['scenario="silence"']
      receiver: silence
    - matchers: ['scenario="timing"']
      receiver: mute_always
      mute_time_intervals: [always]
      continue: true
    - matchers: ['scenario="timing"']
      receiver: mute_never
      mute_time_intervals: [never]
      continue: true
    - matchers: ['scenario="timing"']
      receiver: active_always
      active_time_intervals: [always]
      continue: true
    - matchers: ['scenario="timing"']
      receiver: active_never
      active_time_intervals: [never]
inhibit_rules:
  - source_matchers: ['scenario="inhibit"', 'severity="critical"']
    target_matchers: ['scenario="inhibit"', 'severity="warning"']
    equal: [instance]
time_intervals:
  - name: always
    time_intervals:
      - times:
          - start_time: "00:00"
            end_time: "24:00"
  - name: never
    time_intervals:
      - years: ["2001"]
receivers:
""" + "".join(
    f"  - name: {name}\n    webhook_configs:\n      - url: BASE/{name}\n"
    + ("        send_resolved: false\n" if name == "res_off" else "")
    for name in RECEIVERS
)


@dataclass(frozen=True)
class Spec:
    """One alert's life, in seconds after the start: fires, maybe resolves, maybe fires again."""

    labels: dict[str, str]
    fire: int
    resolve: int | None = None
    refire: int | None = None

    def state(self, offset: int) -> tuple[str, int, int | None] | None:
        """(status, starts offset, ends offset) at ``offset``, or None before it first fires."""
        if self.refire is not None and offset >= self.refire:
            return "firing", self.refire, None
        if self.resolve is not None and offset >= self.resolve:
            return "resolved", self.fire, self.resolve
        if offset >= self.fire:
            return "firing", self.fire, None
        return None


def spec(
    scenario: str,
    name: str,
    fire: int = 0,
    resolve: int | None = None,
    refire: int | None = None,
    **labels: str,
) -> Spec:
    return Spec({"alertname": name, "scenario": scenario, **labels}, fire, resolve, refire)


SPECS = [
    # grouping by alertname: a late alert joins at the next interval; a resolve is sent
    spec("grouping", "GA", instance="1", resolve=8),
    spec("grouping", "GA", instance="2"),
    spec("grouping", "GA", fire=4, instance="3"),
    spec("grouping", "GB", instance="1"),
    # group_by ['...']: one group per alert; group_by [] inherits the parent's grouping
    spec("group_all", "X", instance="1"),
    spec("group_all", "X", instance="2"),
    spec("group_none", "X", instance="1"),
    spec("group_none", "Y", instance="1", fire=2),
    # continue: the critical alert reaches both receivers
    spec("continue", "CX", severity="critical", resolve=6),
    spec("continue", "CY", severity="warning"),
    # repeat interval 5s over group interval 2s: repeats every 6s, a new alert notifies at once
    spec("repeat", "R", instance="1"),
    spec("repeat", "R", instance="2", fire=10),
    # send_resolved on and off; the alert fires again after resolving
    spec("resolved", "SR", instance="1", resolve=6, refire=12),
    # inhibition: the critical alert mutes the warning on the same instance until it resolves
    spec("inhibit", "IC", severity="critical", instance="a", resolve=6),
    spec("inhibit", "IW", severity="warning", instance="a"),
    spec("inhibit", "IW", severity="warning", instance="b"),
    # a silence on instance a that ends at +8
    spec("silence", "SL", instance="a"),
    spec("silence", "SL", instance="b"),
    # group keys and fingerprints with quotes, backslashes and non-ASCII in label values
    spec("quoting", "Q", path='C:\\dir "x" \u00e9\ttab'),
    # mute and active time intervals that do and do not cover now
    spec("timing", "M", instance="1", resolve=6),
]
SILENCE_END = 8


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def stream(start: float, offset: int) -> tuple[list[dict[str, Any]], list[NotifyAlert]]:
    """What Prometheus would send at ``start + offset``, in Alertmanager's API and in our model."""
    now = start + offset
    for_am, ours = [], []
    for s in SPECS:
        state = s.state(offset)
        if state is None:
            continue
        status, starts, ends = state
        starts_at = start + starts
        ends_at = start + ends if ends is not None else None
        for_am.append(
            {
                "labels": s.labels,
                "annotations": {"summary": f"{s.labels['alertname']} at {offset}"},
                "startsAt": iso(starts_at),
                # Prometheus sends a firing alert with an end a few intervals ahead, refreshed each tick.
                "endsAt": iso(ends_at if ends_at is not None else now + 60),
                "generatorURL": "http://prometheus/graph",
            }
        )
        ours.append(
            NotifyAlert(
                status=status,
                labels=s.labels,
                annotations={"summary": f"{s.labels['alertname']} at {offset}"},
                starts_at=starts_at,
                ends_at=ends_at,
                generator_url="http://prometheus/graph",
            )
        )
    return for_am, ours


def summarise(deliveries: list[Any], start: float) -> dict[str, list[tuple[Any, ...]]]:
    """Per group key, in time order: (offset, status, group labels, alerts).

    Alerts are (fingerprint, status, startsAt, endsAt, annotations) tuples.
    """
    out: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
    for d in sorted(deliveries, key=lambda d: d.at):
        body = d.body
        alerts = tuple(
            (a["fingerprint"], a["status"], a["startsAt"], a["endsAt"], str(sorted(a["annotations"].items())))
            for a in body["alerts"]  # in the order Alertmanager sorts them
        )
        labels = (str(sorted(body["groupLabels"].items())), str(sorted(body["commonLabels"].items())))
        out[body["groupKey"]].append((d.at - start, body["status"], labels, alerts, body["receiver"]))
    return out


def test_same_notifications_as_alertmanager(tmp_path: Path) -> None:
    with WebhookRecorder() as recorder, isolated_redis() as (client, prefix):
        am_config = tmp_path / "am.yml"
        am_config.write_text(CONFIG.replace("BASE", f"{recorder.url}/am"))
        our_config_path = tmp_path / "ours.yml"
        our_config_path.write_text(CONFIG.replace("BASE", f"{recorder.url}/ours"))
        config = load_routing_config(our_config_path)

        with Alertmanager(am_config, tmp_path) as am:
            start = round(time.time() + 1.0, 3)
            silence_matchers = parse_matchers('scenario="silence", instance="a"')
            am.post_silence(
                {
                    "matchers": [
                        {"name": m.name, "value": m.value, "isRegex": False, "isEqual": True}
                        for m in silence_matchers
                    ],
                    "startsAt": iso(time.time()),
                    "endsAt": iso(start + SILENCE_END),
                    "createdBy": "differential test",
                    "comment": "scenario silence",
                }
            )
            NotifyStore(client, prefix).put_silence(
                new_silence(
                    silence_matchers,
                    time.time(),
                    start + SILENCE_END,
                    "test",
                    "scenario silence",
                    time.time(),
                )
            )

            stop = threading.Event()
            failures: list[BaseException] = []

            # Our side "restarts" half way: a new Redis connection and the config read again, with
            # nothing carried over in memory; Alertmanager keeps running. Timers must carry on.
            worker: dict[str, Any] = {"client": client, "config": config}

            def flusher() -> None:
                # Like the beat task plus a few notification workers: flush, then deliver in parallel.
                with ThreadPoolExecutor(max_workers=8) as workers:
                    try:
                        while not stop.is_set():
                            conn, cfg = worker["client"], worker["config"]
                            jobs = flush_due(conn, prefix, cfg, time.time())
                            sends = [workers.submit(deliver, conn, prefix, cfg, j, time.time()) for j in jobs]
                            for send in sends:
                                send.result()
                            time.sleep(0.02)
                    except BaseException as exc:  # reported by the assertion below
                        failures.append(exc)

            thread = threading.Thread(target=flusher, daemon=True)
            thread.start()
            try:
                for offset in range(0, LAST_TICK + 1, 2):
                    if offset == RESTART_AT:
                        worker.update(
                            client=redis.Redis.from_url(REDIS_URL),
                            config=load_routing_config(our_config_path),
                        )
                    time.sleep(max(0.0, start + offset - time.time()))
                    for_am, ours = stream(start, offset)
                    am.post_alerts(for_am)
                    ingest(worker["client"], prefix, worker["config"], ours, time.time())
                time.sleep(max(0.0, start + OBSERVE_UNTIL - time.time()))
            finally:
                stop.set()
                thread.join(10)
                if worker["client"] is not client:
                    worker["client"].close()
            assert not failures, failures

        problems = []
        for receiver in RECEIVERS:
            theirs = summarise(recorder.at(f"/am/{receiver}"), start)
            mine = summarise(recorder.at(f"/ours/{receiver}"), start)
            if set(theirs) != set(mine):
                problems.append(
                    f"{receiver}: groups differ: alertmanager {sorted(theirs)} vs ours {sorted(mine)}"
                )
                continue
            for key, expected in theirs.items():
                got = mine[key]
                shape = [n[1:] for n in expected], [n[1:] for n in got]
                if shape[0] != shape[1]:
                    problems.append(f"{receiver} {key}:\n  alertmanager {expected}\n  ours         {got}")
                    continue
                for a, b in zip(expected, got, strict=True):
                    if abs(a[0] - b[0]) > TOLERANCE:
                        problems.append(f"{receiver} {key}: at +{a[0]:.2f}s vs ours +{b[0]:.2f}s")
        if problems:
            for receiver in RECEIVERS:
                print(receiver, "alertmanager", dict(summarise(recorder.at(f"/am/{receiver}"), start)))
                print(receiver, "ours        ", dict(summarise(recorder.at(f"/ours/{receiver}"), start)))
        assert not problems, "\n".join(problems)

        # The comparison is only meaningful if the scenarios produced what they are about.
        counts = {
            r: sum(len(v) for v in summarise(recorder.at(f"/am/{r}"), start).values()) for r in RECEIVERS
        }
        assert counts["root"] == 0
        assert counts["mute_always"] == 0 and counts["active_never"] == 0
        assert counts["mute_never"] == counts["active_always"] == 2
        assert counts["res_on"] == 3 and counts["res_off"] == 2
        assert counts["repeat"] == 5
        assert counts["group_all"] == 2 and counts["group_none"] == 2
        assert counts["inhibit"] == 4 and counts["silence"] == 2
        assert counts["cont_page"] == 2 and counts["cont_chat"] == 3
        assert counts["group"] == 4
        assert counts["quoting"] == 1
