"""Every rule file of the real-world corpus gets promtool's verdict from ``alerting check``.

The corpus (``../shared/conformance/rules/``, or ``$ALERTING_CONFORMANCE_DIR/rules``) is read in
place: 305 files from public repositories and ``SOURCES.tsv``, promtool 2.42's verdict on each and
its number of alerting rules. A file promtool accepts loads with all of its alerting rules; a
file it rejects is rejected.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from alerting.cli.main import check_paths
from alerting.config.settings import Settings
from tests.conformance.conftest import SUMMARY, conformance_dir


@dataclass(frozen=True)
class Case:
    file: str
    promtool_accepts: bool
    alerting_rules: int
    promtool_verdict: str


def corpus() -> tuple[Path, list[Case]]:
    rules = conformance_dir() / "rules"
    sources = rules / "SOURCES.tsv"
    if not sources.is_file():
        # Loud on purpose: a suite that skips when its data is gone passes without checking anything.
        raise FileNotFoundError(
            f"rule-file conformance corpus not found: {sources} (set ALERTING_CONFORMANCE_DIR)"
        )
    with sources.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    cases = [
        Case(r["file"], r["promtool_verdict"] == "ok", int(r["alerting_rules"]), r["promtool_verdict"])
        for r in rows
    ]
    return rules, cases


def test_every_rule_file_gets_promtools_verdict(record_property: Callable[[str, object], None]) -> None:
    rules, cases = corpus()
    assert len(cases) == len(list(rules.glob("*.yml"))), "SOURCES.tsv and the files disagree"
    settings = Settings()
    accepted = rejected = loaded = 0
    disagree: list[str] = []
    for case in cases:
        path = rules / case.file
        report = check_paths([path], settings)
        ours = not report.problems
        accepted, rejected = accepted + ours, rejected + (not ours)
        loaded += report.ruleset.rule_count
        if report.rule_files != [str(path)]:
            disagree.append(f"{case.file}: not checked as a rule file")
        elif ours != case.promtool_accepts:
            why = report.problems[0] if report.problems else "accepted"
            disagree.append(f"{case.file}: promtool {case.promtool_verdict[:80]!r}, we: {why}")
        elif ours and report.ruleset.rule_count != case.alerting_rules:
            disagree.append(
                f"{case.file}: {report.ruleset.rule_count} alerting rules loaded, promtool counts "
                f"{case.alerting_rules}"
            )
    expected_accepted = sum(c.promtool_accepts for c in cases)
    expected_rules = sum(c.alerting_rules for c in cases if c.promtool_accepts)
    summary = (
        f"rule files: {len(cases)} checked, {accepted} accepted ({loaded} alerting rules loaded), "
        f"{rejected} rejected; promtool 2.42: {expected_accepted} accepted ({expected_rules} alerting "
        f"rules), {len(cases) - expected_accepted} rejected; {len(disagree)} disagree"
    )
    record_property(SUMMARY, summary)
    print(f"\n{summary}")
    assert not disagree, f"{len(disagree)} rule file(s) disagree with promtool:\n" + "\n".join(disagree)
    readme = Path(__file__).resolve().parents[2] / "README.md"
    assert summary in readme.read_text(encoding="utf-8").splitlines(), "README: state the figures as printed"


def test_a_missing_corpus_fails_loudly(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ALERTING_CONFORMANCE_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match="conformance corpus not found"):
        corpus()
