"""Alertmanager's routing semantics as pure code: matchers, the route tree, grouping, inhibition,
silences, time intervals and the dedup decision, plus the loader of ``alerting.yml``.

Nothing here does I/O or reads the clock; time comes in as an argument. Redis and delivery live in
:mod:`alerting.notify.store` and :mod:`alerting.notify.pipeline`.
"""

from alerting.routing.config import (
    Receiver,
    ReceiverIntegration,
    RoutingConfig,
    check_routing_config,
    default_routing_config,
    load_routing_config,
)
from alerting.routing.matchers import Matcher, MatcherError, fingerprint, parse_matcher, parse_matchers
from alerting.routing.route import Route

__all__ = [
    "Matcher",
    "MatcherError",
    "Receiver",
    "ReceiverIntegration",
    "Route",
    "RoutingConfig",
    "check_routing_config",
    "default_routing_config",
    "fingerprint",
    "load_routing_config",
    "parse_matcher",
    "parse_matchers",
]
