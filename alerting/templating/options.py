"""What one template execution is given besides its data: the bounds it runs within (:class:`Limits`)
and what Prometheus's functions read of the world (:class:`Env`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Limits:
    """Bounds on one execution. Exceeding any of them is a runtime error, never a hang."""

    max_output: int = 1 << 20  # characters written, and the size of any one formatted value
    max_iterations: int = 100_000  # range iterations plus template invocations
    max_depth: int = 100  # nested {{template}} calls
    max_queries: int = 100  # `query` calls


@dataclass(frozen=True)
class Env:
    """What Prometheus-specific functions read: the external URL, the evaluation time, the datasource."""

    external_url: str = ""
    path_prefix: str = ""
    now: float = 0.0
    query: Callable[[str], Sequence[Any]] | None = None
