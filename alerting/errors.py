"""Our own exception types: configuration, rule and runtime errors read differently."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Position:
    """Where something was written: 1-based line and column in a file. (Slots: a large rule file
    makes one for every key and value it holds.)"""

    file: str
    line: int = 0
    col: int = 0

    def __str__(self) -> str:
        if not self.line:
            return self.file
        return f"{self.file}:{self.line}:{self.col}"


class AlertingError(Exception):
    """Base of every error this package raises on purpose."""


class LocatedError(AlertingError):
    """An error in a file the user wrote, reported as ``file:line:col: message``."""

    def __init__(self, message: str, pos: Position | None = None) -> None:
        self.message = message
        self.pos = pos
        super().__init__(f"{pos}: {message}" if pos else message)


class RuleFileError(LocatedError):
    """A rule file that cannot be loaded as written."""


class ConfigError(LocatedError):
    """A configuration value (settings or ``alerting.yml``) that cannot be used."""


class DurationError(AlertingError):
    """A duration string that does not parse the way Prometheus parses it."""


class QueryError(AlertingError):
    """A query the datasource answered but rejected (bad PromQL, SQL error, too many rows).

    It concerns one rule: that rule's alerts freeze and its health becomes ``err``.
    """


class DatasourceError(AlertingError):
    """The datasource could not answer at all (down, timeout, 5xx, garbage).

    A datasource that fails every query of a tick raises one ``AlertingDatasourceDown`` alert.
    """

    def __init__(self, message: str, datasource: str = "") -> None:
        self.datasource = datasource
        super().__init__(message)


class TemplateError(AlertingError):
    """A template that cannot be parsed or executed; ``line``/``col`` are within the template text."""

    def __init__(self, message: str, line: int = 0, col: int = 0) -> None:
        self.message, self.line, self.col = message, line, col
        super().__init__(message)
