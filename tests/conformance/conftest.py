"""Where the shared conformance corpus is, and its summaries printed at the end of the run (from
any xdist worker)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support.summary import write_summary

SUMMARY = "conformance"


def conformance_dir() -> Path:
    """``$ALERTING_CONFORMANCE_DIR``, else ``shared/conformance`` beside the checkout (``../shared``),
    or beside one of its parents, for a worktree kept a level deeper (``wt/<name>``)."""
    if "ALERTING_CONFORMANCE_DIR" in os.environ:
        return Path(os.environ["ALERTING_CONFORMANCE_DIR"])
    beside = [parent / "shared/conformance" for parent in Path(__file__).resolve().parents[2].parents]
    return next((p for p in beside if p.is_dir()), beside[0])


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    write_summary(terminalreporter, SUMMARY)
