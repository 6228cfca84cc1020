"""write_relabel_configs mean what Prometheus's relabel_configs mean (its own cases, and ours)."""

from __future__ import annotations

from typing import Any

import pytest

from alerting.remotewrite.relabel import RelabelConfig, relabel

BASE = {"__name__": "job:requests:rate5m", "job": "api", "instance": "web-1:9100", "env": "Prod"}


def step(**fields: Any) -> RelabelConfig:
    if "source_labels" in fields:
        fields["source_labels"] = tuple(fields["source_labels"])
    return RelabelConfig(**fields)


# (what it shows, input labels, steps, labels after, or None when dropped)
CASES: list[tuple[str, dict[str, str], list[RelabelConfig], dict[str, str] | None]] = [
    ("no steps change nothing", BASE, [], BASE),
    (
        "replace copies a value by default",
        BASE,
        [step(source_labels=["job"], target_label="service")],
        {**BASE, "service": "api"},
    ),
    (
        "replace joins source values with the separator",
        BASE,
        [step(source_labels=["job", "env"], separator="/", target_label="where")],
        {**BASE, "where": "api/Prod"},
    ),
    (
        "replace expands numbered and named groups",
        BASE,
        [
            step(
                source_labels=["instance"],
                regex=r"(?P<host>[^:]+):(\d+)",
                target_label="host",
                replacement="${host}-$2",
            )
        ],
        {**BASE, "host": "web-1-9100"},
    ),
    (
        "replace does nothing when the anchored regex does not match the whole value",
        BASE,
        [step(source_labels=["instance"], regex="web", target_label="x", replacement="y")],
        BASE,
    ),
    (
        "an empty replacement removes the target label",
        BASE,
        [step(source_labels=["job"], target_label="env", replacement="")],
        {k: v for k, v in BASE.items() if k != "env"},
    ),
    (
        "$1x names a group called 1x (empty), as in Go",
        BASE,
        [step(source_labels=["job"], target_label="t", replacement="$1x-${1}x")],
        {**BASE, "t": "-apix"},
    ),
    (
        "$$ is a dollar and a lone $ stays",
        BASE,
        [step(source_labels=["job"], target_label="t", replacement="$$1 $ ${")],
        {**BASE, "t": "$1 $ ${"},
    ),
    (
        "the target label may come from a group",
        BASE,
        [step(source_labels=["job"], regex="(.*)", target_label="team_$1", replacement="yes")],
        {**BASE, "team_api": "yes"},
    ),
    (
        "a target that expands to an invalid name is left alone",
        {**BASE, "job": "9x"},
        [step(source_labels=["job"], target_label="${1}", replacement="v")],
        {**BASE, "job": "9x"},
    ),
    (
        "missing source labels read as empty",
        BASE,
        [step(source_labels=["nope"], regex="", target_label="was_empty", replacement="true")],
        {**BASE, "was_empty": "true"},
    ),
    ("keep keeps a match", BASE, [step(action="keep", source_labels=["job"], regex="api|db")], BASE),
    ("keep drops a non-match", BASE, [step(action="keep", source_labels=["job"], regex="db")], None),
    ("drop drops a match", BASE, [step(action="drop", source_labels=["__name__"], regex="job:.*")], None),
    ("drop keeps a non-match", BASE, [step(action="drop", source_labels=["env"], regex="prod")], BASE),
    (
        "keepequal keeps when the target label holds the joined value",
        {**BASE, "copy": "api"},
        [step(action="keepequal", source_labels=["job"], target_label="copy")],
        {**BASE, "copy": "api"},
    ),
    (
        "keepequal drops otherwise",
        BASE,
        [step(action="keepequal", source_labels=["job"], target_label="env")],
        None,
    ),
    (
        "dropequal drops when equal",
        {**BASE, "copy": "api"},
        [step(action="dropequal", source_labels=["job"], target_label="copy")],
        None,
    ),
    (
        "dropequal keeps otherwise",
        BASE,
        [step(action="dropequal", source_labels=["job"], target_label="env")],
        BASE,
    ),
    (
        "hashmod puts md5's last 8 bytes modulo N into the target",
        BASE,
        [step(action="hashmod", source_labels=["instance"], modulus=1000, target_label="shard")],
        {**BASE, "shard": "203"},
    ),
    (
        "labelmap copies matching names under the replacement",
        {**BASE, "__meta_team": "core"},
        [step(action="labelmap", regex="__meta_(.+)")],
        {**BASE, "__meta_team": "core", "team": "core"},
    ),
    (
        "labeldrop removes labels whose whole name matches",
        BASE,
        [step(action="labeldrop", regex="inst.*|env")],
        {"__name__": BASE["__name__"], "job": "api"},
    ),
    (
        "labelkeep keeps only matching names",
        BASE,
        [step(action="labelkeep", regex="__name__|job")],
        {"__name__": BASE["__name__"], "job": "api"},
    ),
    (
        "lowercase and uppercase write the joined value",
        BASE,
        [
            step(action="lowercase", source_labels=["env"], target_label="env_lower"),
            step(action="uppercase", source_labels=["job", "env"], target_label="loud"),
        ],
        {**BASE, "env_lower": "prod", "loud": "API;PROD"},
    ),
    (
        "lowercase of nothing removes the target",
        BASE,
        [step(action="lowercase", source_labels=["nope"], target_label="env")],
        {k: v for k, v in BASE.items() if k != "env"},
    ),
    (
        "steps see what earlier steps wrote",
        BASE,
        [
            step(source_labels=["job"], target_label="tmp", replacement="x-$1"),
            step(action="keep", source_labels=["tmp"], regex="x-api"),
            step(action="labeldrop", regex="tmp"),
        ],
        BASE,
    ),
    ("labelkeep of nothing leaves an empty set", BASE, [step(action="labelkeep", regex="nothing")], {}),
]


@pytest.mark.parametrize(("labels", "steps", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_relabeling(
    labels: dict[str, str], steps: list[RelabelConfig], expected: dict[str, str] | None
) -> None:
    before = dict(labels)
    assert relabel(labels, steps) == expected
    assert labels == before  # the caller's mapping is not changed


INVALID = [
    ({"action": "replace", "source_labels": ("a",)}, "requires 'target_label' value"),
    ({"action": "replace", "target_label": "1abc"}, "is invalid 'target_label' for replace action"),
    ({"action": "hashmod", "target_label": "x"}, "requires non-zero modulus"),
    ({"action": "hashmod", "target_label": "$1", "modulus": 2}, "is invalid 'target_label' for hashmod"),
    ({"action": "labelmap", "replacement": "a-b"}, "is invalid 'replacement' for labelmap"),
    ({"action": "lowercase", "target_label": "x", "replacement": "y"}, "'replacement' can not be set"),
    (
        {"action": "keepequal", "target_label": "x", "regex": "y"},
        "requires only 'source_labels' and `target_label`",
    ),
    ({"action": "labeldrop", "source_labels": ("a",)}, "labeldrop action requires only 'regex'"),
    ({"action": "labelkeep", "target_label": "a"}, "labelkeep action requires only 'regex'"),
    ({"action": "keep", "source_labels": ("a.b",)}, '"a.b" is not a valid label name'),
    ({"action": "keep", "regex": "a(b"}, "invalid regular expression"),
    ({"action": "shout"}, 'unknown relabel action "shout"'),
]


@pytest.mark.parametrize(("fields", "message"), INVALID, ids=[m for _, m in INVALID])
def test_configurations_prometheus_refuses_are_refused(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as caught:
        RelabelConfig(**fields)
    assert message in str(caught.value)
