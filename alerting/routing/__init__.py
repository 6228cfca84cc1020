"""Alertmanager's routing semantics as pure code: matchers, the route tree, grouping, inhibition,
silences, time intervals and the dedup decision.

Nothing here does I/O or reads the clock; time comes in as an argument. Redis and delivery live in
:mod:`alerting.notify.store` and :mod:`alerting.notify.pipeline`; the file is read by
:mod:`alerting.config`.
"""

from alerting.core import fingerprint
from alerting.routing.matchers import Matcher, MatcherError, parse_matcher, parse_matchers
from alerting.routing.route import Route

__all__ = [
    "Matcher",
    "MatcherError",
    "Route",
    "fingerprint",
    "parse_matcher",
    "parse_matchers",
]
