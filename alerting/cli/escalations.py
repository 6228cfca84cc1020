"""What ``alerting status`` shows of escalation: groups whose escalation clock runs, the steps they
reached, and the acknowledgements in force."""

from __future__ import annotations

from typing import Any

import redis

from alerting.core import rfc3339
from alerting.notify.acks import AckStore, ack_json


def escalation_status(client: redis.Redis, prefix: str, now: float) -> dict[str, Any]:
    store = AckStore(client, prefix)
    episodes = [
        {
            "group_key": e["group_key"],
            "group_labels": e["labels"],
            "first_notified": rfc3339(e["since"]),
            "age_seconds": round(now - e["since"], 1),
            "steps": {
                receiver: rfc3339(at) for receiver, at in sorted(e["steps"].items(), key=lambda i: i[1])
            },
        }
        for e in store.episodes()
    ]
    return {"escalations": episodes, "acknowledgements": [ack_json(nid, a) for nid, a in store.all(now)]}


def render_escalations(report: dict[str, Any]) -> list[str]:
    lines = []
    episodes = report.get("escalations", [])
    if episodes:
        lines.append("escalating groups (first notified, steps reached):")
    for e in episodes:
        steps = ", ".join(f"{r} at {at}" for r, at in e["steps"].items()) or "no step reached yet"
        lines.append(f"  {e['group_key']}: since {e['first_notified']}; {steps}")
    acks = report.get("acknowledgements", [])
    if acks:
        lines.append("acknowledged groups:")
    for a in acks:
        note = f" ({a['comment']})" if a["comment"] else ""
        lines.append(f"  {a['group_key']}: by {a['by']} via {a['source']} until {a['expires_at']}{note}")
    return lines
