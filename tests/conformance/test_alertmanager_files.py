"""Real-world Alertmanager configurations, read in place from the shared conformance corpus: every
file gets amtool 0.25's verdict from `alerting check`, and where both load it, an alert reaches the
receivers `amtool config routes test` names.

The corpus's SOURCES.tsv holds amtool's verdict per file; files Alertmanager's own tests call good
(newer features, the `note` column) must load, those it calls bad must not. Our `${ENV}` expansion
is the one deliberate difference: amtool reads `${SMTP_HOST}` literally.
"""

from __future__ import annotations

import csv
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from alerting.config.settings import Settings
from alerting.routing.matchers import Matcher
from alerting.routing.route import Route
from alerting.worker.compose import check_config_file, load_routing_config
from tests.conformance.conftest import SUMMARY, conformance_dir

AMTOOL = shutil.which("amtool") or "/usr/bin/amtool"
README = Path(__file__).resolve().parents[2] / "README.md"


def corpus_dir() -> Path:
    root = conformance_dir()
    if not (root / "alertmanager/SOURCES.tsv").is_file():
        raise FileNotFoundError(f"the conformance corpus is missing: {root}/alertmanager/SOURCES.tsv")
    return root / "alertmanager"


@dataclass(frozen=True)
class Case:
    file: str
    amtool: str  # "ok" or "rejected: <amtool's message>"
    note: str

    @property
    def path(self) -> Path:
        return corpus_dir() / self.file

    @property
    def should_load(self) -> bool:
        if "AM's config tests expect: good" in self.note:
            return True
        if "AM's config tests expect: bad" in self.note:
            return False
        return self.amtool == "ok"

    @property
    def env_only(self) -> bool:
        """amtool rejects it only because it reads a ``${VAR}`` literally, which we expand."""
        return self.amtool != "ok" and ("${" in self.amtool or self.file in ENV_ONLY)


def cases() -> list[Case]:
    with (corpus_dir() / "SOURCES.tsv").open() as f:
        return [Case(r["file"], r["amtool_verdict"], r["note"]) for r in csv.DictReader(f, delimiter="\t")]


# amtool rejects these for a `${VAR}` it reads as text where a URL goes; we expand it.
ENV_ONLY: Mapping[str, str] = {
    "Quertyy__reth-monitor__alertmanager__alertmanager.yaml": "webhook url '${DISCORD_WEBHOOK_URL}'",
}

# Files where we still disagree, each with why. The suite fails when one of them starts agreeing
# (take it off the list) and when any other file disagrees (a regression).
KNOWN_GAPS: Mapping[str, str] = {}


def verdicts() -> dict[str, tuple[Case, list[str]]]:
    settings = Settings.from_env({})
    return {case.file: (case, check_config_file(str(case.path), settings)) for case in cases()}


@pytest.fixture(scope="module")
def results() -> dict[str, tuple[Case, list[str]]]:
    return verdicts()


def test_every_configuration_gets_amtools_verdict(
    results: dict[str, tuple[Case, list[str]]], record_property: Callable[[str, object], None]
) -> None:
    disagree = {}
    for name, (case, problems) in results.items():
        loads = not problems
        if loads != case.should_load and not (loads and case.env_only):
            disagree[name] = problems[0] if problems else f"loads, amtool: {case.amtool}"
    accepted = [c for c, _ in results.values() if c.should_load]
    loaded = [c for c, p in results.values() if c.should_load and not p]
    rejected = [c for c, _ in results.values() if not c.should_load]
    refused = [c for c, p in results.values() if not c.should_load and (p or c.env_only)]
    line = (
        f"Alertmanager configurations: {len(loaded)} of {len(accepted)} that Alertmanager accepts load; "
        f"{len(refused)} of {len(rejected)} it rejects are rejected "
        f"({sum(c.env_only for c in rejected)} only for ${{ENV}}); known gaps: {len(KNOWN_GAPS)}"
    )
    record_property(SUMMARY, line)
    new = {k: v for k, v in disagree.items() if k not in KNOWN_GAPS}
    fixed = sorted(set(KNOWN_GAPS) - set(disagree))
    assert not new, "\n".join(f"{k}: {v}" for k, v in sorted(new.items()))
    assert not fixed, f"these agree now; take them off KNOWN_GAPS: {fixed}"
    assert line in README.read_text(), f"the README states other figures than: {line}"


def _label_sets(route: Route) -> Iterator[dict[str, str]]:
    """A label set per route that its own matchers accept (where one is easy to read off them)."""
    yield {}
    for node in route.walk():
        labels: dict[str, str] = {}
        for m in node.matchers:
            value = _accepted_value(m)
            if value is None:
                break
            labels[m.name] = value
        else:
            if labels:
                yield labels


def _accepted_value(m: Matcher) -> str | None:
    if m.op == "=":
        return m.value
    if m.op == "=~":
        first = m.value.split("|")[0].strip("()^$")
        if re.fullmatch(r"[\w .:/-]*", first) and m.matches({m.name: first}):
            return first
    return None


def _amtool_routes(path: Path, labels: Mapping[str, str]) -> str:
    args = [
        AMTOOL,
        "config",
        "routes",
        "test",
        f"--config.file={path}",
        *(f"{k}={v}" for k, v in labels.items()),
    ]
    done = subprocess.run(args, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_routing_agrees_with_amtool_on_each_files_own_label_sets(
    results: dict[str, tuple[Case, list[str]]], record_property: Callable[[str, object], None]
) -> None:
    compared = 0
    mismatches = []
    for name, (case, problems) in sorted(results.items()):
        if problems or case.amtool != "ok":
            continue
        routing = load_routing_config(case.path, env={})
        seen: set[tuple[tuple[str, str], ...]] = set()
        for labels in _label_sets(routing.route):
            key = tuple(sorted(labels.items()))
            if key in seen:
                continue
            seen.add(key)
            ours = ",".join(routing.receivers_for(labels))
            theirs = _amtool_routes(case.path, labels)
            compared += 1
            if ours != theirs:
                mismatches.append(f"{name} {labels}: ours {ours!r}, amtool {theirs!r}")
    line = f"routes compared with amtool: {compared} label sets, {len(mismatches)} disagreements"
    record_property(SUMMARY, line)
    both = sum(1 for case, problems in results.values() if not problems and case.amtool == "ok")
    assert compared > both  # every such file, with at least the empty label set
    assert not mismatches, "\n".join(mismatches)
    assert line in README.read_text(), f"the README states other figures than: {line}"
