"""amtool 0.25 against the worker's API and against a real Alertmanager 0.25 loaded with the same
configuration: the same commands give the same output, once ids and times are normalised."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from alerting.api.alertmanager import AlertmanagerAPI
from alerting.api.health import HealthServer, Readiness
from alerting.notify.base import NotifyAlert
from alerting.notify.pipeline import ingest
from alerting.notify.store import NotifyStore
from alerting.worker.compose import load_routing_config
from tests.support.net import REDIS_URL, free_port, wait_until
from tests.support.routing_alertmanager import Alertmanager
from tests.support.worker import Worker, alerting, worker_env

AMTOOL = shutil.which("amtool") or "/usr/bin/amtool"
pytestmark = pytest.mark.skipif(
    not Path(AMTOOL).exists(), reason="amtool (prometheus-alertmanager) not installed"
)

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_TIMES = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC")


class Side:
    """One Alertmanager-speaking server and the amtool pointed at it; ids are numbered as they appear."""

    def __init__(self, url: str, workdir: Path) -> None:
        self.url = url
        self.workdir = workdir
        self.ids: dict[str, str] = {}

    def amtool(self, *args: str, stdin: str | None = None) -> tuple[int, str]:
        done = subprocess.run(
            [AMTOOL, f"--alertmanager.url={self.url}", *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=30,
            cwd=self.workdir,
        )
        # stderr carries amtool's version warning (the worker is not 0.25.0); errors go to stdout too
        errors = [line for line in done.stderr.splitlines() if not line.startswith("Warning: amtool version")]
        return done.returncode, done.stdout + "\n".join(errors)

    def normalise(self, text: str) -> str:
        def number(found: re.Match[str]) -> str:
            return self.ids.setdefault(found.group(0), f"ID-{len(self.ids) + 1:02d}-{'x' * 29}")

        # the same width as what it replaces, so amtool's table columns line up the same way
        text = _UUID.sub(number, text)
        return _TIMES.sub(
            lambda m: "T" * len(m.group(0)) if "T" in m.group(0) else "D" * len(m.group(0)), text
        )

    def run(self, *args: str, stdin: str | None = None) -> tuple[int, str]:
        code, out = self.amtool(*args, stdin=stdin)
        return code, self.normalise(out)

    def raw_id(self, label: str) -> str:
        return next(raw for raw, name in self.ids.items() if name == label)


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    from tests.api.conftest import CONFIG

    path = tmp_path / "alerting.yml"
    path.write_text(CONFIG)
    return path


@pytest.fixture
def sides(config_file: Path, tmp_path: Path, store: NotifyStore) -> Iterator[tuple[Side, Side]]:
    readiness = Readiness(
        redis_url=REDIS_URL, broker_url=REDIS_URL, prefix=store.silence_key.rsplit(":", 1)[0]
    )
    api = AlertmanagerAPI(store, config_file, version="0.1.0")
    (tmp_path / "am").mkdir()
    (tmp_path / "ours").mkdir()
    with (
        Alertmanager(config_file, tmp_path / "am") as real,
        HealthServer(("127.0.0.1", 0), readiness, alertmanager=api) as ours,
    ):
        yield Side(real.url, tmp_path / "am"), Side(ours.url, tmp_path / "ours")


def both(
    sides: tuple[Side, Side], *args: str, stdin: str | None = None
) -> tuple[tuple[int, str], tuple[int, str]]:
    real, ours = sides
    return real.run(*args, stdin=stdin), ours.run(*args, stdin=stdin)


def assert_same(sides: tuple[Side, Side], *args: str, stdin: str | None = None) -> str:
    theirs, mine = both(sides, *args, stdin=stdin)
    assert mine == theirs, f"amtool {' '.join(args)}\n--- alertmanager\n{theirs[1]}\n--- worker\n{mine[1]}"
    return mine[1]


def unordered(result: tuple[int, str]) -> tuple[int, list[str]]:
    return result[0], sorted(result[1].splitlines())


def anonymous(result: tuple[int, str]) -> tuple[int, str]:
    return result[0], re.sub(r"ID-\d\d", "ID-nn", result[1])


def as_set(result: tuple[int, str]) -> tuple[int, list[str]]:
    items = json.loads(anonymous(result)[1])
    return result[0], sorted(json.dumps(item, sort_keys=True) for item in items)


def _at(delta: timedelta) -> str:
    return (datetime.now(UTC) + delta).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_amtool_silences_give_the_same_output_against_the_worker_and_alertmanager(
    sides: tuple[Side, Side],
) -> None:
    starts, ends = _at(timedelta(hours=3)), _at(timedelta(hours=5))
    commands: list[tuple[str, ...]] = [
        (
            "silence",
            "add",
            "alertname=DiskFull",
            'service=~"db|cache"',
            "--comment=disk swap",
            "--author=ops",
            "-d",
            "2h",
        ),
        (
            "silence",
            "add",
            "severity=critical",
            "--comment=maintenance",
            "--author=ops",
            f"--start={starts}",
            f"--end={ends}",
        ),
        ("silence", "add", "team!=web", "instance=~db.*", "--comment=third", "--author=dev", "-d", "1h"),
        ("silence", "query"),
        ("silence", "query", "-o", "json"),
        ("silence", "query", "-q"),
        ("silence", "query", "alertname=DiskFull"),
        ("silence", "query", "alertname=~Disk.*"),
        ("silence", "query", "service=~db.*", "-o", "json"),
        ("silence", "query", "nothing=here"),
        ("silence", "query", "a=~("),  # a bad matcher: amtool's own error
        ("silence", "add", "foo=", "--comment=x", "--author=ops"),  # matches everything: refused
        ("silence", "expire", "6d3f6b5e-0000-4000-8000-000000000000"),  # unknown id
    ]
    for command in commands:
        assert_same(sides, *command)

    real, ours = sides
    first = "ID-01-" + "x" * 29
    theirs = real.run("silence", "expire", real.raw_id(first))
    mine = ours.run("silence", "expire", ours.raw_id(first))
    assert mine == theirs
    for command in [
        ("silence", "query"),
        ("silence", "query", "--expired", "-o", "json"),
        ("silence", "query", "--expired"),
    ]:
        assert_same(sides, *command)
    # expiring it twice: Alertmanager's error, through amtool
    theirs = real.run("silence", "expire", real.raw_id(first))
    mine = ours.run("silence", "expire", ours.raw_id(first))
    assert mine == theirs

    # each side re-imports its own export: the same silences, updated in place
    for side_a, side_b in [(real, ours)]:
        theirs = side_a.run("silence", "import", stdin=side_a.amtool("silence", "query", "-o", "json")[1])
        mine = side_b.run("silence", "import", stdin=side_b.amtool("silence", "query", "-o", "json")[1])
        assert unordered(mine) == unordered(theirs)  # amtool imports with parallel workers
    # an import of silences with their ids removed: new silences on both sides
    for command in [("silence", "query", "-o", "json"), ("silence", "query")]:
        assert_same(sides, *command)
    fresh = [
        {k: v for k, v in s.items() if k != "id"}
        for s in json.loads(real.amtool("silence", "query", "-o", "json")[1])
    ]
    theirs, mine = both(sides, "silence", "import", stdin=json.dumps(fresh))
    assert unordered(mine) == unordered(theirs)
    # twins now end at the same time: their order (and numbering) is the import's, so compare as sets
    theirs, mine = both(sides, "silence", "query", "-o", "json")
    assert as_set(mine) == as_set(theirs)
    theirs, mine = both(sides, "silence", "query")
    assert unordered(anonymous(mine)) == unordered(anonymous(theirs))


def test_amtool_config_routes_and_show(sides: tuple[Side, Side]) -> None:
    for command in [
        ("config", "routes"),
        ("config", "routes", "test", "severity=critical"),
        ("config", "routes", "test", "service=db"),
        ("config", "routes", "test", "--verify.receivers=team", "alertname=x"),
    ]:
        assert_same(sides, *command)
    real, ours = sides
    theirs = yaml.safe_load(real.amtool("config", "show")[1])
    mine = yaml.safe_load(ours.amtool("config", "show")[1])
    # Alertmanager prints every default it filled in; the worker prints the file as written. What the
    # file says, Alertmanager shows the same, secrets masked the same.
    assert_subset(mine, theirs)


def assert_subset(mine: Any, theirs: Any, where: str = "config") -> None:
    if isinstance(mine, dict):
        assert isinstance(theirs, dict), where
        for key, value in mine.items():
            assert key in theirs, f"{where}.{key} not shown by Alertmanager"
            assert_subset(value, theirs[key], f"{where}.{key}")
    elif isinstance(mine, list):
        assert isinstance(theirs, list) and len(mine) == len(theirs), where
        for i, (a, b) in enumerate(zip(mine, theirs, strict=True)):
            assert_subset(a, b, f"{where}[{i}]")
    else:
        assert str(mine) == str(theirs) or _same_duration(mine, theirs), f"{where}: {mine!r} != {theirs!r}"


def _same_duration(a: Any, b: Any) -> bool:
    return (
        isinstance(a, str) and isinstance(b, str) and a.rstrip("0s").rstrip("m") == b.rstrip("0s").rstrip("m")
    )


ALERTS = [
    (
        {"alertname": "DiskFull", "service": "db", "severity": "warning", "instance": "db1"},
        {"summary": "db1 full"},
    ),
    (
        {"alertname": "DiskFull", "service": "db", "severity": "critical", "instance": "db2"},
        {"summary": "db2 full"},
    ),
    (
        {"alertname": "HighLatency", "service": "web", "severity": "warning", "job": "api"},
        {"summary": "slow"},
    ),
    ({"alertname": "Noisy", "team": "x", "severity": "info"}, {}),
]


def test_amtool_alert_query_sees_the_same_alerts_in_the_worker_and_alertmanager(
    sides: tuple[Side, Side], store: NotifyStore, config_file: Path
) -> None:
    real, ours = sides
    now = round(time.time(), 3)
    started = datetime.fromtimestamp(now, UTC).isoformat().replace("+00:00", "Z")
    httpx.post(
        f"{real.url}/api/v2/alerts",
        json=[
            {"labels": lb, "annotations": an, "startsAt": started, "generatorURL": "http://x/g"}
            for lb, an in ALERTS
        ],
    ).raise_for_status()
    routing = load_routing_config(config_file)
    reported = [NotifyAlert("firing", lb, an, now, generator_url="http://x/g") for lb, an in ALERTS]
    ingest(store.r, store.silence_key.rsplit(":", 1)[0], routing, reported, now)
    assert_same(sides, "silence", "add", "alertname=Noisy", "--comment=noise", "--author=ops", "-d", "1h")

    for command in [
        ("alert", "query"),
        ("alert", "query", "-o", "json"),
        ("alert", "query", "-o", "extended"),
        ("alert", "query", "alertname=DiskFull"),
        ("alert", "query", "--silenced"),
        ("alert", "query", "--inhibited"),
        ("alert", "query", "--silenced", "--inhibited", "-o", "json"),
        ("alert", "query", "--receiver=pager", "-o", "json"),
        ("alert", "query", "-a", "-o", "json"),
    ]:
        assert_same(sides, *command)
    # the groups as Alertmanager's API shows them (amtool 0.25 has no command for them)
    for params in [
        {},
        {"receiver": "db"},
        {"silenced": "false", "inhibited": "false"},
        {"filter": "service=db"},
    ]:
        theirs = real.normalise(httpx.get(f"{real.url}/api/v2/alerts/groups", params=params).text)
        mine = ours.normalise(httpx.get(f"{ours.url}/api/v2/alerts/groups", params=params).text)
        assert json.loads(mine) == json.loads(theirs), params


@pytest.mark.e2e
def test_amtool_against_the_running_worker_shares_silences_with_the_cli(
    tmp_path: Path, config_file: Path, store: NotifyStore
) -> None:
    port = free_port()
    (tmp_path / "rules").mkdir()
    prefix = store.silence_key.rsplit(":", 1)[0]
    env = worker_env(
        tmp_path,
        rules=tmp_path / "rules",
        config=config_file,
        prefix=prefix,
        ALERTING_HTTP_ADDR=f"127.0.0.1:{port}",
    )
    side = Side(f"http://127.0.0.1:{port}", tmp_path)
    with Worker(env):
        wait_until(lambda: side.amtool("silence", "query")[0] == 0, timeout=60)
        code, out = side.amtool(
            "silence", "add", "alertname=DiskFull", "--comment=disk swap", "--author=ops", "-d", "2h"
        )
        assert code == 0, out
        sid = out.strip()
        listed = alerting("silence", "list", "--format", "json", env=env)
        assert [s["id"] for s in json.loads(listed.stdout)] == [sid]
        code, out = side.amtool("silence", "expire", sid)
        assert code == 0, out
        code, out = side.amtool("silence", "query", "--expired", "-o", "json")
        assert [(s["id"], s["status"]["state"]) for s in json.loads(out)] == [(sid, "expired")]
        assert yaml.safe_load(side.amtool("config", "show")[1])["route"]["receiver"] == "team"
