"""Datasources behind one small protocol, listed by kind.

A kind says which rule field carries its query (``expr`` for PromQL, ``sql``, ``probe``,
``celery``), how to check that query offline, and how to open a datasource from its settings.
Adding a datasource is one new module defining its ``KIND`` plus one line in :data:`KINDS`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, fields
from typing import Any, ClassVar, Protocol

from alerting.config.yamlfile import suggest
from alerting.core import Sample
from alerting.errors import ConfigError, Position


class Source(Protocol):
    """An open datasource. ``query`` raises QueryError (rule's fault) or DatasourceError."""

    name: str

    def query(self, query: Any, at: float) -> list[Sample]: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class Kind:
    """A kind of datasource: rule field, offline check, and a factory from settings."""

    name: str
    field: str
    check: Callable[[Any, Position], Any]  # returns the normalised query or raises RuleFileError
    open: Callable[[str, Mapping[str, Any]], Source]
    default_datasource: str


@dataclass(frozen=True)
class QuerySpec(Mapping[str, Any]):
    """Base of a checked query spec (a frozen dataclass): hashable, and readable as a mapping of the
    fields that are set, those in ``always_shown`` and the others where they differ from their default.
    """

    always_shown: ClassVar[tuple[str, ...]] = ()

    def __getitem__(self, key: str) -> Any:
        if key not in self._present():
            raise KeyError(key)
        return self._shown(key, getattr(self, key))

    def __iter__(self) -> Iterator[str]:
        return iter(self._present())

    def __len__(self) -> int:
        return len(self._present())

    def _present(self) -> tuple[str, ...]:
        return tuple(
            f.name for f in fields(self) if f.name in self.always_shown or getattr(self, f.name) != f.default
        )

    def _shown(self, key: str, value: Any) -> Any:
        """A field's value as the mapping reads it (a subclass turns its tuples back into lists)."""
        return value


def settings_error(name: str, config: Mapping[str, Any]) -> Callable[[str], ConfigError]:
    """How to report a problem in datasource ``name``'s settings, located at the settings."""
    pos = getattr(config, "pos", None)

    def fail(message: str) -> ConfigError:
        return ConfigError(f'datasource "{name}": {message}', pos)

    return fail


def reject_unknown_settings(
    config: Mapping[str, Any], known: tuple[str, ...], fail: Callable[[str], ConfigError]
) -> None:
    """Refuse a setting the datasource does not take, with a did-you-mean."""
    for key in config:
        if key not in known:
            raise fail(f'unknown field "{key}"{suggest(str(key), known)}')


# The kinds of datasource, one line each; a kind's module defines its ``KIND``. The modules use the
# protocol above, so they are imported after it.
from alerting.sources import celery, probe, prometheus, sql  # noqa: E402

KINDS: Mapping[str, Kind] = {
    "promql": prometheus.KIND,
    "sql": sql.KIND,
    "probe": probe.KIND,
    "celery": celery.KIND,
}


def kinds() -> Mapping[str, Kind]:
    """Every kind of datasource, by name (``promql``, ``sql``, ``probe``, ``celery``)."""
    return KINDS


def kind_for_field(field: str) -> Kind | None:
    return next((k for k in KINDS.values() if k.field == field), None)
