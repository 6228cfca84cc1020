"""Label matchers in Alertmanager's syntax and meaning, plus the label-set helpers routing needs.

``severity=~"critical|P1"``: regexes are RE2, fully anchored; a label that is absent matches as if its
value were the empty string. Fingerprints and label-set strings are computed exactly as Alertmanager
computes them, so group keys and webhook fingerprints are interchangeable with Alertmanager's.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import re2

from alerting.errors import AlertingError
from alerting.templating.strconv import quote

OPS = ("=", "!=", "=~", "!~")

# Same shape as Alertmanager's classic matcher grammar: a label name, an operator, and the rest.
_MATCHER = re.compile(r"^\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(=~|=|!=|!~)\s*(.*?)\s*$", re.DOTALL)
LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")

_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False  # a bad pattern is reported to the user, not to stderr


class MatcherError(AlertingError):
    """A matcher that cannot be parsed or whose regex does not compile."""


@functools.lru_cache(maxsize=4096)
def compile_anchored(pattern: str) -> Any:
    """Compile an RE2 pattern anchored at both ends, as Alertmanager and Prometheus anchor them."""
    try:
        return re2.compile(f"^(?:{pattern})$", _RE2_OPTIONS)
    except re2.error:
        pass
    try:  # compile it as written, so the message quotes the user's pattern, not our anchoring
        re2.compile(pattern, _RE2_OPTIONS)
    except re2.error as exc:
        detail = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        raise MatcherError(f"invalid regular expression {pattern!r}: {detail}") from None
    raise MatcherError(f"invalid regular expression {pattern!r}")


@dataclass(frozen=True)
class Matcher:
    """``name op value``; matching a missing label compares against ``""``."""

    name: str
    op: str
    value: str
    _regex: Any = field(default=None, compare=False, repr=False, hash=False)

    def __post_init__(self) -> None:
        if self.op not in OPS:
            raise MatcherError(f"unknown matcher operator {self.op!r}")
        if self.op in ("=~", "!~"):
            object.__setattr__(self, "_regex", compile_anchored(self.value))

    def matches(self, labels: Mapping[str, str]) -> bool:
        value = labels.get(self.name, "")
        if self.op == "=":
            return value == self.value
        if self.op == "!=":
            return value != self.value
        hit = self._regex.search(value) is not None
        return hit if self.op == "=~" else not hit

    def __str__(self) -> str:
        return f"{self.name}{self.op}{quote_value(self.value)}"


def quote_value(value: str) -> str:
    """Quote a matcher value the way Alertmanager prints it (OpenMetrics escaping)."""
    escaped = value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
    return f'"{escaped}"'


def parse_matcher(text: str) -> Matcher:
    """Parse one matcher such as ``env!="prod"`` or ``job=~api.*``."""
    found = _MATCHER.match(text)
    if found is None:
        raise MatcherError(f"bad matcher format: {text}")
    name, op, raw = found.groups()
    quoted = raw.startswith('"')
    if quoted:
        raw = raw[1:]
    out: list[str] = []
    escaped = False
    closed = False
    for i, ch in enumerate(raw):
        if escaped:
            escaped = False
            # Only \n, \" and \\ are escapes; any other backslash is kept literally.
            out.append("\n" if ch == "n" else ch if ch in '"\\' else "\\" + ch)
            continue
        if ch == "\\":
            if i < len(raw) - 1:
                escaped = True
                continue
            out.append("\\")
        elif ch == '"':
            if not quoted or i < len(raw) - 1:
                raise MatcherError(f"matcher value contains unescaped double quote: {text.strip()}")
            closed = True
        else:
            out.append(ch)
    if quoted and not closed:
        raise MatcherError(f"matcher value contains unescaped double quote: {text.strip()}")
    return Matcher(name, op, "".join(out))


def parse_matchers(text: str) -> list[Matcher]:
    """Parse a comma-separated list, optionally wrapped in braces: ``{a="1", b=~"x|y"}``."""
    body = text.strip()
    if body.startswith("{"):
        body = body[1:]
    if body.endswith("}"):
        body = body[:-1]
    tokens: list[str] = []
    current: list[str] = []
    in_quotes = escaped = False
    for ch in body:
        if ch == "," and not in_quotes:
            tokens.append("".join(current))
            current = []
            continue
        if ch == '"':
            if escaped:
                escaped = False
            else:
                in_quotes = not in_quotes
        elif ch == "\\":
            escaped = not escaped
        else:
            escaped = False
        current.append(ch)
    last = "".join(current).strip()
    if last:
        tokens.append(last)
    return [parse_matcher(token) for token in tokens]


def sort_matchers(matchers: Iterable[Matcher]) -> tuple[Matcher, ...]:
    """Alertmanager's canonical order: by name, then value, then operator."""
    return tuple(sorted(matchers, key=lambda m: (m.name, m.value, OPS.index(m.op))))


def matches_all(matchers: Iterable[Matcher], labels: Mapping[str, str]) -> bool:
    return all(m.matches(labels) for m in matchers)


def matchers_string(matchers: Iterable[Matcher]) -> str:
    return "{" + ",".join(str(m) for m in matchers) + "}"


def matches_empty(matcher: Matcher) -> bool:
    """Whether the matcher accepts an alert that lacks the label (used to reject catch-all silences)."""
    return matcher.matches({})


# --- label sets -------------------------------------------------------------------------------------


def labels_string(labels: Mapping[str, str]) -> str:
    """A label set printed as Alertmanager prints it: ``{a="1", b="2"}``, sorted."""
    return "{" + ", ".join(sorted(f"{k}={quote(v)}" for k, v in labels.items())) + "}"


def _before(a: Mapping[str, str], b: Mapping[str, str]) -> bool:
    if len(a) != len(b):
        return len(a) < len(b)
    for name in sorted([*a, *b]):
        if name not in a:
            return True
        if name not in b:
            return False
        if a[name] != b[name]:
            return a[name] < b[name]
    return False


def _compare_alert_labels(a: Mapping[str, str], b: Mapping[str, str]) -> int:
    # job, then instance, then the whole label set: the order Alertmanager sorts a group's alerts in.
    for key in ("job", "instance"):
        if key not in a and key not in b:
            continue
        if key not in a:
            return 1
        if key not in b:
            return -1
        if a[key] != b[key]:
            return -1 if a[key] < b[key] else 1
    if _before(a, b):
        return -1
    if _before(b, a):
        return 1
    return 0


alert_sort_key = functools.cmp_to_key(_compare_alert_labels)
"""Sort key over label mappings giving Alertmanager's order of alerts in a notification."""
