"""alerting.yml parses once into read-only data that keeps where every value was written."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from alerting.config.alertmanager import check_config, load_config, read_config
from alerting.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "alerting.yml"
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def test_receivers_and_our_sections_are_data_as_written(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        route: {receiver: team}
        receivers:
          - name: team
            fallback: team
            webhook_configs:
              - url: ${HOOK_URL}
                http_config: {bearer_token: x}
        datasources:
          app: {type: sql, url: "${APP_DB}"}
        evaluation: {interval: 1m, external_url: https://alerts.example}
        """,
    )
    config = load_config(path)
    (hook,) = config.receivers["team"].integrations
    assert (hook.key, hook.index, hook.name, hook.fields["url"]) == (
        "webhook_configs",
        0,
        "team/webhook_configs[0]",
        "${HOOK_URL}",
    )
    assert str(hook.fields.at("url")) == f"{path}:6:14"
    assert config.receivers["team"].fallback == "team"
    assert (config.datasources["app"].kind, config.datasources["app"].options["url"]) == ("sql", "${APP_DB}")
    assert (config.evaluation.interval, config.evaluation.external_url) == (60.0, "https://alerts.example")
    with pytest.raises(TypeError):
        hook.fields["url"] = "http://elsewhere"  # type: ignore[index]
    with pytest.raises(TypeError):
        hook.fields["http_config"]["bearer_token"] = "y"


def test_problems_are_kept_by_section_and_the_first_is_raised(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        evaluation: {interval: soon}
        datasources: {app: {type: nosql}}
        route: {receiver: nobody}
        receivers: [{name: team}]
        """,
    )
    config = read_config(path)
    assert [len(p) for p in (config.evaluation_problems, config.datasource_problems)] == [1, 1]
    assert 'undefined receiver "nobody"' in str(config.routing_problems[0])
    assert [str(p) for p in check_config(path)] == [str(p) for p in config.problems]
    with pytest.raises(ConfigError, match=r"evaluation.interval: "):
        load_config(path)
