"""Datasources behind one small protocol, registered by kind.

A kind says which rule field carries its query (``expr`` for PromQL, ``sql``, ``probe``,
``celery``), how to check that query offline, and how to open a datasource from its settings.
Adding a datasource is one new module that calls :func:`register`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from alerting.errors import Position


@dataclass(frozen=True)
class Sample:
    """One element of a query result: a label set and a value."""

    labels: Mapping[str, str]
    value: float


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


KINDS: dict[str, Kind] = {}
# Kinds live in their own modules; importing them registers them.
_MODULES = (
    "alerting.sources.prometheus",
    "alerting.sources.sql",
    "alerting.sources.probe",
    "alerting.sources.celery",
)


def register(kind: Kind) -> Kind:
    KINDS[kind.name] = kind
    return kind


def kinds() -> dict[str, Kind]:
    """Every registered kind, importing the built-in modules on first use."""
    for module in _MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise
    return KINDS


def kind_for_field(field: str) -> Kind | None:
    return next((k for k in kinds().values() if k.field == field), None)
