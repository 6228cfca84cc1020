"""Hostile input: matchers and alerting.yml never fail with anything but our own error types."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alerting.errors import ConfigError
from alerting.routing.matchers import MatcherError, parse_matcher, parse_matchers
from alerting.worker.compose import check_routing_config

MATCHER_ALPHABET = st.sampled_from(list('ab_:=!~"\\,{} .*|()[]^$\n1') + ["é", "\x00"])


@given(st.text(alphabet=MATCHER_ALPHABET, max_size=40))
def test_matcher_parsing_fails_only_with_matcher_error(text: str) -> None:
    try:
        matchers = parse_matchers(text)
    except MatcherError:
        return
    for m in matchers:
        # Whatever parses must print back into something that parses to the same matcher.
        assert parse_matcher(str(m)) == m


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 5),
    st.text(alphabet=st.sampled_from(list("abc=~\"'.*[]{}$ 0:-")), max_size=12),
    st.sampled_from(["0s", "1m", "1.5h", "...", "default", "x=y", 'a=~"("', "${NOPE}", "monday", "25:00"]),
)
keys = st.sampled_from(
    [
        "route", "receivers", "receiver", "routes", "group_by", "matchers", "match", "match_re", "continue",
        "group_wait", "group_interval", "repeat_interval", "mute_time_intervals", "active_time_intervals",
        "name", "webhook_configs", "console_configs", "url", "inhibit_rules", "source_matchers",
        "target_matchers", "equal", "time_intervals", "times", "weekdays", "days_of_month", "location",
        "global", "resolve_timeout", "fallback", "start_time", "end_time", "unknown",
    ]
)  # fmt: skip
documents = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(keys, inner, max_size=4)),
    max_leaves=25,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(keys, documents, max_size=5))
def test_any_config_document_yields_config_errors_not_crashes(doc: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "alerting.yml"
        path.write_text(yaml.safe_dump(doc))
        problems = check_routing_config(path)
    assert all(isinstance(p, ConfigError) and str(p).startswith(str(path)) for p in problems)
