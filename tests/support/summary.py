"""Figures a suite prints after its run: a test records ``(key, line)`` in its ``user_properties``
(``record_property(key, line)``), and the package's conftest prints every such line under one
heading, from passed and failed tests alike (also when the files ran in xdist workers)."""

from __future__ import annotations

import pytest


def write_summary(terminalreporter: pytest.TerminalReporter, key: str) -> None:
    """Print the lines recorded under ``key`` in a section headed ``key``."""
    lines = [
        value
        for outcome in ("passed", "failed")
        for report in terminalreporter.stats.get(outcome, [])
        if getattr(report, "when", "") == "call"
        for name, value in getattr(report, "user_properties", [])
        if name == key
    ]
    if lines:
        terminalreporter.section(key)
        for line in lines:
            terminalreporter.write_line(line)
