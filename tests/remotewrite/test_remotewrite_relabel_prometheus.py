"""Our write_relabel_configs against Prometheus 2.42's own, on the same label sets; and which
remote_write sections promtool 2.42 refuses.

A real Prometheus scrapes a local exporter and remote-writes to a local receiver: once unrelabeled
(the label sets as they are before relabeling) and once per case, each case to its own path. What
each path receives must be exactly what our relabel makes of the unrelabeled sets.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from alerting.errors import ConfigError
from alerting.remotewrite import Labels, parse_relabel_configs, parse_remote_write, relabel
from tests.support.exporter import Exporter
from tests.support.net import wait_until
from tests.support.prometheus import PROMTOOL, PrometheusServer
from tests.support.remotewrite import WriteReceiver

SERIES = {
    'rw_test_metric{a="alpha",b="Beta"}': 1,
    'rw_test_metric{a="gamma",b="gamma"}': 2,
    'rw_test_metric{a="Delta-9",b="x-y"}': 3,
    'rw_test_other{b="only_b"}': 4,
    'rw_test_other{a="ünïcode",b="ÜPPER"}': 5,
    'rw_test_other{a="a;b",b="c",c="9"}': 6,
}

# Each case is one write_relabel_configs list; every action appears, most more than once.
CASES: dict[str, list[dict[str, Any]]] = {
    "replace_default": [{"source_labels": ["a"], "target_label": "copy"}],
    "replace_groups": [
        {
            "source_labels": ["a", "b"],
            "separator": "-",
            "regex": "(?P<first>[^-]*)-(.*)",
            "target_label": "t_${first}",
            "replacement": "$2/$1/${first}",
        }
    ],
    "replace_empty_deletes": [
        {"source_labels": ["__name__"], "regex": "rw_test_.*", "target_label": "b", "replacement": ""}
    ],
    "replace_go_expand": [{"source_labels": ["b"], "target_label": "odd", "replacement": "$1x${1}x$$1$"}],
    "replace_target_from_value": [{"source_labels": ["a"], "target_label": "${1}_seen", "replacement": "1"}],
    "keep": [{"source_labels": ["__name__"], "regex": "rw_test_.*|up", "action": "keep"}],
    "drop_mixed_case_action": [{"source_labels": ["a"], "regex": "alpha|", "action": "Drop"}],
    "keepequal": [{"source_labels": ["a"], "target_label": "b", "action": "keepequal"}],
    "dropequal": [{"source_labels": ["a"], "target_label": "b", "action": "dropequal"}],
    "hashmod": [
        {"source_labels": ["instance", "a"], "modulus": 7, "target_label": "shard", "action": "hashmod"}
    ],
    "labelmap": [{"regex": "(a|b)", "replacement": "copied_$1", "action": "labelmap"}],
    "labeldrop": [{"regex": "a|job|scrape_.*", "action": "labeldrop"}],
    "labelkeep": [{"regex": "__name__|a|instance", "action": "labelkeep"}],
    "lowercase": [{"source_labels": ["b"], "target_label": "lower_b", "action": "lowercase"}],
    "uppercase": [{"source_labels": ["a", "b"], "target_label": "upper", "action": "uppercase"}],
    "character_classes": [
        {
            "source_labels": ["a"],
            "regex": "[[:alpha:]]+|\\pL+",
            "target_label": "alpha_only",
            "replacement": "y",
        }
    ],
    "chain": [
        {"source_labels": ["a"], "regex": "(.)(.*)", "target_label": "tmp", "replacement": "$1"},
        {"source_labels": ["tmp"], "regex": "[a-z]|", "action": "keep"},
        {"source_labels": ["tmp", "c"], "separator": "", "target_label": "mark", "replacement": "${1}!"},
        {"action": "labeldrop", "regex": "tmp"},
        {"source_labels": ["__name__"], "regex": "scrape_.*", "action": "drop"},
    ],
}


def test_our_relabeling_agrees_with_prometheus() -> None:
    with Exporter() as exporter, WriteReceiver() as receiver:
        exporter.values.update(SERIES)
        base = receiver.server.url
        entries = [{"url": f"{base}/raw", "name": "raw"}]
        for name, configs in CASES.items():
            entries.append({"url": f"{base}/{name}", "name": name, "write_relabel_configs": configs})
        for entry in entries:
            entry["queue_config"] = {"batch_send_deadline": "200ms"}
        with PrometheusServer(scrape_targets=[exporter.target], remote_write=entries):
            scraped = f'rw_test_other{{a="a;b",b="c",c="9",instance="{exporter.target}",job="test"}}'

            def raw() -> set[Labels]:
                return receiver.label_sets("/raw")

            # Every series of a scrape (ours and Prometheus's own up, scrape_*) has arrived unrelabeled.
            wait_until(
                lambda: len(raw()) == len(SERIES) + 5 and any(str(dict(s)).count("a;b") for s in raw()),
                timeout=60,
                what=f"the unrelabeled series, e.g. {scraped}",
            )
            for name, configs in CASES.items():
                ours = parse_relabel_configs(configs, name, None)
                expected = set()
                for labels in raw():
                    out = relabel(dict(labels), ours)
                    if out:
                        expected.add(tuple(sorted(out.items())))
                assert expected, f"{name}: a case must keep something, or nothing observable ends the wait"
                try:
                    wait_until(lambda: receiver.label_sets(f"/{name}") == expected, timeout=30, what=name)  # noqa: B023
                except TimeoutError:
                    got = receiver.label_sets(f"/{name}")
                    assert got == expected, (
                        f"{name}: Prometheus sent {got - expected}, we make {expected - got}"
                    )


def rw(**fields: Any) -> list[dict[str, Any]]:
    return [{"url": "http://127.0.0.1:9090/api/v1/write", **fields}]


def relabeling(**step: Any) -> list[dict[str, Any]]:
    return rw(write_relabel_configs=[step])


# remote_write sections on which promtool 2.42 and we must agree: accepted, or refused.
VERDICTS: dict[str, list[dict[str, Any]]] = {
    "only a url": rw(),
    "every field": rw(
        name="x",
        remote_timeout="10s",
        headers={"X-Scope-OrgID": "a"},
        basic_auth={"username": "u", "password": "p"},
        follow_redirects=False,
        queue_config={"capacity": 10, "max_shards": 2, "min_shards": 1, "max_samples_per_send": 5},
        metadata_config={"send": False},
        send_exemplars=False,
    ),
    "no url": [{"name": "x"}],
    "an unknown field": rw(urll="x"),
    "an unknown queue field": rw(queue_config={"capacityy": 1}),
    "the Authorization header": rw(headers={"Authorization": "Bearer x"}),
    "a reserved header": rw(headers={"User-Agent": "x"}),
    "two ways to authenticate": rw(basic_auth={"username": "u"}, bearer_token="t"),
    "a name used twice": rw(name="x") + rw(name="x"),
    "a bad duration": rw(remote_timeout="1.5s"),
    "replace without target": relabeling(source_labels=["a"]),
    "replace with a bad target": relabeling(source_labels=["a"], target_label="1abc"),
    "replace with a template target": relabeling(source_labels=["a"], target_label="x_${1}"),
    "hashmod without modulus": relabeling(action="hashmod", source_labels=["a"], target_label="b"),
    "hashmod with a template target": relabeling(action="hashmod", modulus=2, target_label="$1"),
    "labelmap with a bad replacement": relabeling(action="labelmap", regex="(.*)", replacement="a-b"),
    "lowercase with a replacement": relabeling(action="lowercase", target_label="b", replacement="x"),
    "lowercase with a template target": relabeling(
        action="lowercase", source_labels=["a"], target_label="b$1"
    ),
    "keepequal with a regex": relabeling(
        action="keepequal", source_labels=["a"], target_label="b", regex="x"
    ),
    "keepequal without target": relabeling(action="keepequal", source_labels=["a"]),
    "labeldrop with source labels": relabeling(action="labeldrop", source_labels=["a"], regex="x"),
    "labelkeep with a replacement": relabeling(action="labelkeep", regex="x", replacement="y"),
    "an invalid source label": relabeling(action="keep", source_labels=["a.b"]),
    "an invalid regex": relabeling(action="keep", source_labels=["a"], regex="a(b"),
    "an unknown action": relabeling(action="shout"),
    "an upper-case action": relabeling(action="KEEP", source_labels=["a"], regex="x"),
    "an empty action": relabeling(action="", source_labels=["a"]),
}


# Where we differ on purpose: promtool 2.42 accepts each of these and we refuse it, except
# sample_age_limit, a later Prometheus's field that 2.42 does not know.
DIFFERENCES: dict[str, list[dict[str, Any]]] = {
    "exemplars we do not have": rw(send_exemplars=True),
    "native histograms we do not have": rw(send_native_histograms=True),
    "sigv4, which we cannot sign": rw(sigv4={"region": "eu-west-1"}),
    "a queue that holds nothing": rw(queue_config={"capacity": 0}),
    "a URL that is not http(s)": rw(url="ftp://127.0.0.1/write"),
    "one URL twice, unnamed": rw() + rw(headers={"X-A": "b"}),
    "sample_age_limit": rw(queue_config={"sample_age_limit": "5m"}),
}


def verdicts(section: list[dict[str, Any]], tmp_path: Path) -> tuple[str, str]:
    """(our error, promtool's error), "" for accepted."""
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump({"remote_write": section}))
    promtool = subprocess.run(
        [PROMTOOL, "check", "config", str(path)], capture_output=True, text=True, timeout=60
    )
    try:
        parse_remote_write(section, None, env={})
        ours = ""
    except ConfigError as exc:
        ours = exc.message
    return ours, "" if promtool.returncode == 0 else promtool.stdout + promtool.stderr


@pytest.mark.parametrize("case", list(VERDICTS))
def test_we_refuse_a_remote_write_section_exactly_when_promtool_does(case: str, tmp_path: Path) -> None:
    ours, theirs = verdicts(VERDICTS[case], tmp_path)
    assert bool(ours) == bool(theirs), f"ours: {ours or 'accepted'}; promtool: {theirs or 'accepted'}"


@pytest.mark.parametrize("case", list(DIFFERENCES))
def test_where_we_differ_from_promtool_we_know_it(case: str, tmp_path: Path) -> None:
    ours, theirs = verdicts(DIFFERENCES[case], tmp_path)
    if case == "sample_age_limit":
        assert not ours and "sample_age_limit" in theirs
    else:
        assert ours and not theirs, ours
