"""``${NAME}`` references: one expander, one rule for unset variables, consumers decide what it means."""

from __future__ import annotations

from pathlib import Path

import pytest

from alerting.config.env import expand, references
from alerting.config.settings import Settings, load_datasources
from alerting.config.yamlfile import load_text
from alerting.errors import ConfigError


@pytest.mark.parametrize(
    ("text", "env", "expected", "unset"),
    [
        ("${A}", {"A": "x"}, "x", []),
        ("${A:-d}", {"A": "x"}, "x", []),
        ("${A}", {}, "", [("A", None)]),
        ("${A:-d}", {}, "d", [("A", "d")]),
        ("${A}", {"A": ""}, "", [("A", None)]),  # empty counts as unset, as the shell's :- reads it
        ("${A:-d}", {"A": ""}, "d", [("A", "d")]),
        ("${A:-}", {}, "", [("A", "")]),
        ("a-${A}-${B:-b}", {"A": "1"}, "a-1-b", [("B", "b")]),
        ("$A and ${not-a-name}", {"A": "x"}, "$A and ${not-a-name}", []),
    ],
)
def test_references_are_substituted_and_unset_ones_reported(
    text: str, env: dict[str, str], expected: str, unset: list[tuple[str, str | None]]
) -> None:
    expansion = expand(text, env)
    assert expansion.value == expected
    assert [(u.name, u.default) for u in expansion.unset] == unset


def test_expansion_keeps_yaml_positions_and_reports_where_a_variable_is_unset() -> None:
    doc = load_text("a:\n  b: ${SET}\n  c: [x, '${UNSET}']\n", "f.yml", ConfigError)
    expansion = expand(doc, {"SET": "yes"})
    assert expansion.value["a"]["b"] == "yes" and expansion.value["a"].at("b") == doc["a"].at("b")
    ((unset),) = expansion.unset
    assert (unset.name, str(unset.pos)) == ("UNSET", "f.yml:3:10")
    assert expansion.missing == ("UNSET",) and references(doc) == ("SET", "UNSET")


def test_an_unset_datasource_option_is_a_configuration_error_naming_the_variable(tmp_path: Path) -> None:
    path = tmp_path / "alerting.yml"
    path.write_text("datasources:\n  app: {type: sql, url: '${APP_DB_URL}'}\n")
    settings = Settings(config_path=str(path), environ={})
    with pytest.raises(ConfigError, match="environment variable APP_DB_URL is not set") as raised:
        load_datasources(settings)
    assert str(raised.value).startswith(f"{path}:2:")
    loaded = load_datasources(Settings(config_path=str(path), environ={"APP_DB_URL": "sqlite:///x.db"}))
    assert loaded["app"].options["url"] == "sqlite:///x.db"
