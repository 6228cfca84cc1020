"""Our write_relabel_configs against Prometheus 2.42's own, on the same label sets.

A real Prometheus scrapes a local exporter and remote-writes to a local receiver: once unrelabeled
(the label sets as they are before relabeling) and once per case, each case to its own path. What
each path receives must be exactly what our relabel makes of the unrelabeled sets.
"""

from __future__ import annotations

from typing import Any

from alerting.remotewrite import Labels, parse_relabel_configs, relabel
from tests.support.exporter import Exporter
from tests.support.net import wait_until
from tests.support.prometheus import PrometheusServer
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
