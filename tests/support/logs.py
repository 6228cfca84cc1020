"""The worker's JSON log lines, captured while a block of a test runs."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from alerting.ops.logs import configure_logging


class JsonLog:
    def __init__(self) -> None:
        self.stream = io.StringIO()

    def records(self, event: str | None = None) -> list[dict[str, Any]]:
        """Every line written so far, parsed; only those of ``event`` when given."""
        lines = [json.loads(line) for line in self.stream.getvalue().splitlines()]
        return [line for line in lines if event is None or line["event"] == event]


@contextmanager
def json_log(level: str = "INFO") -> Iterator[JsonLog]:
    """Logging configured as the worker configures it, into a buffer; the previous set-up after."""
    log = JsonLog()
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    configure_logging(level, "json", log.stream)
    try:
        yield log
    finally:
        root.handlers[:], root.level = saved
