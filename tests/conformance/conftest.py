"""Conformance summaries printed at the end of the run, from any xdist worker."""

from __future__ import annotations

import pytest

SUMMARY = "conformance"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    lines = [
        value
        for outcome in ("passed", "failed")
        for report in terminalreporter.stats.get(outcome, [])
        if getattr(report, "when", "") == "call"
        for key, value in getattr(report, "user_properties", [])
        if key == SUMMARY
    ]
    if lines:
        terminalreporter.section("conformance")
        for line in lines:
            terminalreporter.write_line(line)
