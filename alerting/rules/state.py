"""Alert state in Redis, so a restart or a second worker loses nothing.

Key scheme (every key starts with the configured prefix, default ``alerting``, so several
deployments can share one Redis):

``{p}:alerts:{group_id}``           hash  rule key -> JSON list of that rule's alerts.
                                    One HSET per rule: a rule's alerts are saved atomically.
``{p}:health:{group_id}``           hash  rule key -> JSON {health, error, last_slot, duration};
                                    field ``__group__`` -> JSON {last_slot, duration, missed}.
``{p}:claim:{group_id}:{slot}``     string "running:<owner>" while a worker evaluates that slot
                                    (expires after a lease, so a killed worker's slot can be
                                    retaken), then "done" (kept for a few intervals).
``{p}:beat:leader``                 string  owner id of the beat that schedules (expiring lease).
``{p}:lock:{name}``                 short-lived locks (e.g. the datasource-down pseudo group).

Alert state, health and slot claims are durable writes (:mod:`alerting.durable`): with replicas,
a replica has them before the write returns.

``group_id`` is ``file:group name``; the datasource-down alerts live in the pseudo group
``__datasources__`` with one rule key per datasource.
"""

from __future__ import annotations

import enum
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import orjson
import redis

from alerting import durable
from alerting.core import RuleHealth, fingerprint
from alerting.errors import AlertingError
from alerting.rules.evaluation import Alert, State, make_alert
from alerting.rules.model import Labels

DATASOURCES_GROUP = "__datasources__"


class NotGiven(enum.Enum):
    """The type of NOT_GIVEN: an argument left out, where None means something."""

    NOT_GIVEN = "not given"


NOT_GIVEN = NotGiven.NOT_GIVEN


class SlotSuperseded(AlertingError):
    """A group's state changed since a tick read it (another tick saved first): nothing was saved."""


def json_number(value: float) -> float | str:
    """A float for JSON: NaN and infinities as Prometheus spells them."""
    if -math.inf < value < math.inf:  # finite (NaN compares false), as almost every value is
        return value
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return value


def _unnum(value: Any) -> float:
    return float(value) if not isinstance(value, str) else float(value.replace("Inf", "inf"))


def alert_to_dict(alert: Alert) -> dict[str, Any]:
    return {
        "labels": dict(alert.labels),
        "annotations": [[k, v] for k, v in alert.annotations],
        "state": alert.state.value,
        "active_at": alert.active_at,
        "value": json_number(alert.value),
        "fired_at": alert.fired_at,
        "resolved_at": alert.resolved_at,
        "keep_firing_since": alert.keep_firing_since,
        "last_eval": alert.last_eval,
    }


_STATES = {s.value: s for s in State}


def alert_from_dict(data: Mapping[str, Any]) -> Alert:
    # Every alert of every group passes through here on each tick: list comprehensions and a dict
    # lookup of the state instead of generators and the enum's own (slower) lookup.
    state = data["state"]
    get = data.get
    labels = tuple(sorted(data["labels"].items()))
    return make_alert(
        labels,
        tuple([(k, v) for k, v in data["annotations"]]),
        _STATES[state] if state in _STATES else State(state),
        data["active_at"],
        _unnum(data["value"]),
        get("fired_at"),
        get("resolved_at"),
        get("keep_firing_since"),
        get("last_eval", 0.0),
        fingerprint(labels),  # the store keys alerts by it as it reads them
    )


class StateStore:
    """Redis-backed alert state, slot claims and rule health."""

    def __init__(self, client: redis.Redis, prefix: str = "alerting") -> None:
        self.redis = client
        self.prefix = prefix

    def key(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    # --- alerts -----------------------------------------------------------------------------
    def load_group(self, group_id: str) -> dict[str, dict[str, Alert]]:
        """Every rule's alerts in one round trip: rule key -> fingerprint -> alert."""
        raw = self.redis.hgetall(self.key("alerts", group_id))
        out: dict[str, dict[str, Alert]] = {}
        for rule_key, blob in raw.items():
            alerts = [alert_from_dict(d) for d in orjson.loads(blob)]
            out[_s(rule_key)] = {a.fingerprint: a for a in alerts}
        return out

    def save_group(
        self,
        group_id: str,
        alerts: Mapping[str, Mapping[str, Alert]],
        health: Mapping[str, RuleHealth],
        group_health: Mapping[str, Any],
        keep_rules: Iterable[str] | None = None,
        *,
        after_slot: float | None | NotGiven = NOT_GIVEN,
        recorded: Mapping[str, Sequence[Labels]] | None = None,
    ) -> None:
        """Save rules' alerts and health in one transaction (and, when given, the series each
        recording rule has out, replacing what was stored). Rules not in ``keep_rules`` (when
        given) are removed: they were deleted from the rule files. With ``after_slot`` (the group's
        last slot when the caller read its state; None for none), nothing is saved and
        SlotSuperseded raised if the stored last slot is another by now.

        Durable: it returns once a replica has the transaction (see :mod:`alerting.durable`); the
        group's ``last_slot`` in it is what keeps a slot from being evaluated twice after a failover.
        """
        pipe = durable.pipeline(self.redis, "state")
        akey, hkey = self.key("alerts", group_id), self.key("health", group_id)
        if after_slot is not NOT_GIVEN:
            pipe.watch(hkey)  # the transaction fails if another tick saves between here and EXEC
            raw = pipe.hget(hkey, "__group__")
            if (json.loads(raw).get("last_slot") if raw else None) != after_slot:
                pipe.reset()
                raise SlotSuperseded(f"group {group_id} was saved by another tick")
            pipe.multi()
        # One HSET per hash, every rule's field in it: the transaction is as atomic either way,
        # and a group's hundred rules are one command to write instead of a hundred.
        blobs: dict[Any, bytes] = {}  # Any: redis-py's field type, a union of str and bytes
        for rule_key, rule_alerts in alerts.items():
            # orjson: every alert of the group is written each tick. (Values that JSON cannot
            # hold, NaN and the infinities, are strings by now: see json_number.)
            blobs[rule_key] = orjson.dumps([alert_to_dict(a) for a in rule_alerts.values()])
        if blobs:
            pipe.hset(akey, mapping=blobs)
        fields: dict[Any, str] = {rule_key: json.dumps(h.__dict__) for rule_key, h in health.items()}
        fields["__group__"] = json.dumps(dict(group_health))
        pipe.hset(hkey, mapping=fields)
        if recorded is not None:
            rkey = self.key("recorded", group_id)
            pipe.delete(rkey)
            if recorded:
                pipe.hset(rkey, mapping={k: orjson.dumps(v) for k, v in recorded.items()})
        if keep_rules is not None:
            keep = set(keep_rules)
            stale = [k for k in (_s(f) for f in self.redis.hkeys(akey)) if k not in keep]
            if stale:
                pipe.hdel(akey, *stale)
            stale_h = [
                k for k in (_s(f) for f in self.redis.hkeys(hkey)) if k not in keep and k != "__group__"
            ]
            if stale_h:
                pipe.hdel(hkey, *stale_h)
        try:
            pipe.execute()
        except redis.WatchError:
            raise SlotSuperseded(f"group {group_id} was saved by another tick") from None

    def delete_group(self, group_id: str) -> None:
        """Forget a group entirely (its rule file is gone)."""
        self.redis.delete(
            self.key("alerts", group_id), self.key("health", group_id), self.key("recorded", group_id)
        )

    def load_recorded(self, group_id: str) -> dict[str, list[Labels]]:
        """Per recording rule key, the label sets of the series it recorded last (for staleness)."""
        raw = self.redis.hgetall(self.key("recorded", group_id))
        return {
            _s(key): [tuple((str(k), str(v)) for k, v in labels) for labels in orjson.loads(blob)]
            for key, blob in raw.items()
        }

    def groups(self) -> list[str]:
        prefix = self.key("alerts", "")
        return sorted(_s(k)[len(prefix) :] for k in self.redis.scan_iter(match=prefix + "*"))

    # --- health -----------------------------------------------------------------------------
    def load_health(self, group_id: str) -> tuple[dict[str, RuleHealth], dict[str, Any]]:
        raw = self.redis.hgetall(self.key("health", group_id))
        rules: dict[str, RuleHealth] = {}
        group: dict[str, Any] = {}
        for field, blob in raw.items():
            name, data = _s(field), orjson.loads(blob)
            if name == "__group__":
                group = data
            else:
                rules[name] = RuleHealth(**data)
        return rules, group

    # --- slot claims ------------------------------------------------------------------------
    def claim(self, group_id: str, slot: float, owner: str, lease: float) -> bool:
        """Take (group, slot) for evaluation. False if another worker has it or it is done.

        Durable (a replica has the claim before evaluation starts), so a failover mid-evaluation
        does not hand the slot to a second worker."""
        pipe = durable.pipeline(self.redis, "claim", transaction=False)
        pipe.set(
            self.key("claim", group_id, f"{slot:.3f}"),
            f"running:{owner}",
            nx=True,
            px=max(int(lease * 1000), 1000),
        )
        return bool(pipe.execute()[0])

    def finish_claim(self, group_id: str, slot: float, keep: float) -> None:
        self.redis.set(self.key("claim", group_id, f"{slot:.3f}"), "done", px=max(int(keep * 1000), 1000))

    def release_claim(self, group_id: str, slot: float) -> None:
        self.redis.delete(self.key("claim", group_id, f"{slot:.3f}"))

    # --- leadership -------------------------------------------------------------------------
    def hold_leadership(self, owner: str, lease: float) -> bool:
        """Become or stay beat leader. Only the holder of the lease schedules evaluations."""
        key = self.key("beat", "leader")
        ms = max(int(lease * 1000), 1000)
        if self.redis.set(key, owner, nx=True, px=ms):
            return True
        # Renew only if we still hold it (compare-and-extend in one step).
        return bool(self.redis.eval(_RENEW, 1, key, owner, ms))

    def leader(self) -> str | None:
        value = self.redis.get(self.key("beat", "leader"))
        return _s(value) if value is not None else None

    def lock(self, name: str, timeout: float = 30.0) -> Any:
        return self.redis.lock(self.key("lock", name), timeout=timeout, blocking_timeout=timeout)


_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
