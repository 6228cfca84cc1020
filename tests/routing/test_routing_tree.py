"""Route matching (first match wins, continue, fall-through to the parent) and group keys."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from alerting.notify.live import RoutingConfig
from alerting.worker.compose import load_routing_config

TREE = """
route:
  receiver: default
  group_by: [alertname]
  routes:
    - matchers: ['severity=~"(?i)critical|p1"']
      receiver: pager
      continue: true
    - matchers: ['severity=~"(?i)critical|p1"', 'team="db"']
      receiver: dba
    - matchers: ['team="db"']
      receiver: db-chat
      routes:
        - matchers: ['env="staging"']
          receiver: staging
          continue: true
        - matchers: ['env=~"stag.*"']
          receiver: staging-2
    - matchers: ['team="db"']
      receiver: never-reached
    - matchers: ['team!="db"', 'env="prod"']
      receiver: prod
      group_by: ['...']
    - matchers: ['instance=""']
      receiver: no-instance
      group_by: []
receivers:
""" + "".join(
    f"  - name: {name}\n    console_configs: [{{}}]\n"
    for name in (
        "default",
        "pager",
        "dba",
        "db-chat",
        "staging",
        "staging-2",
        "never-reached",
        "prod",
        "no-instance",
    )
)


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> RoutingConfig:
    path: Path = tmp_path_factory.mktemp("tree") / "alerting.yml"
    path.write_text(textwrap.dedent(TREE))
    return load_routing_config(path)


@pytest.mark.parametrize(
    ("labels", "receivers"),
    [
        ({"severity": "critical", "instance": "a"}, ["pager"]),  # continue, then nothing else matches
        ({"severity": "P1", "team": "db", "instance": "a"}, ["pager", "dba"]),  # continue reaches the next
        ({"team": "db", "instance": "a"}, ["db-chat"]),  # a child that matches nothing: the parent handles it
        ({"team": "db", "env": "staging", "instance": "a"}, ["staging", "staging-2"]),
        ({"team": "db", "env": "stage", "instance": "a"}, ["staging-2"]),
        ({"env": "prod", "instance": "a"}, ["prod"]),
        ({"env": "prod"}, ["prod"]),  # first match wins over the later instance="" route
        ({"alertname": "X"}, ["no-instance"]),  # a missing label equals ""
        ({"instance": "a"}, ["default"]),
    ],
)
def test_routes_reached(config: RoutingConfig, labels: dict[str, str], receivers: list[str]) -> None:
    assert config.receivers_for(labels) == receivers


def test_group_keys_are_spelled_like_alertmanagers(config: RoutingConfig) -> None:
    labels = {"alertname": "DiskFull", "severity": "critical", "team": "db", "instance": "a"}
    pager, dba = config.match(labels)
    assert pager.group_key(pager.group_labels(labels)) == (
        '{}/{severity=~"(?i)critical|p1"}:{alertname="DiskFull"}'
    )
    assert dba.group_key(dba.group_labels(labels)) == (
        '{}/{severity=~"(?i)critical|p1",team="db"}:{alertname="DiskFull"}'
    )


@pytest.mark.parametrize(
    ("labels", "group_labels"),
    [
        ({"env": "prod", "alertname": "A", "x": "1"}, {"env": "prod", "alertname": "A", "x": "1"}),  # '...'
        ({"alertname": "A"}, {"alertname": "A"}),  # group_by: [] inherits, as in Alertmanager
        ({"instance": "a", "alertname": "A", "y": "2"}, {"alertname": "A"}),
        ({"instance": "a"}, {}),  # grouping labels the alert lacks are left out
    ],
)
def test_group_labels(config: RoutingConfig, labels: dict[str, str], group_labels: dict[str, str]) -> None:
    (route,) = config.match(labels)
    assert route.group_labels(labels) == group_labels
