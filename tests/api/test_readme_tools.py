"""The README's "Use your tools" section, run: its files are written as shown, its commands run as
shown (against servers on free ports instead of 127.0.0.1:9464) and do what the section says."""

from __future__ import annotations

import json
import os
import re
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import bcrypt
import httpx
import pytest
import trustme
import yaml

from alerting.api.alertmanager import AlertmanagerAPI
from alerting.api.health import HealthServer, Readiness
from alerting.api.prometheus import PrometheusAPI
from alerting.api.webconfig import load_web_config
from alerting.notify.store import NotifyStore
from alerting.rules.loader import load_paths
from alerting.rules.state import StateStore
from tests.support.net import REDIS_URL

ROOT = Path(__file__).resolve().parents[2]
ADDRESS = "127.0.0.1:9464"  # the address the README's commands use
RULES = """\
groups:
  - name: disks
    rules:
      - alert: DiskFull
        expr: node_filesystem_avail_bytes / node_filesystem_size_bytes < 0.05
        for: 10m
        labels: {severity: warning}
"""


def section() -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index("\n## Use your tools\n")
    return text[start : text.index("\n## ", start + 1)]


def blocks(kind: str) -> list[str]:
    return [m.group(1) for m in re.finditer(rf"```{kind}\n(.*?)```", section(), re.S)]


def files() -> dict[str, str]:
    """The section's YAML blocks, by the file name their first line gives (``# web.yml``)."""
    out = {}
    for block in blocks("yaml"):
        first, _, _ = block.partition("\n")
        out[first.removeprefix("# ").strip()] = block
    return out


def commands(block: str) -> list[str]:
    """Each command of a shell block, continuation lines joined."""
    return [c.strip() for c in block.replace("\\\n", " ").splitlines() if c.strip()]


def serve(store: NotifyStore, workdir: Path, web: Any = None) -> HealthServer:
    prefix = store.p.removesuffix(":notify")
    groups = load_paths([workdir / "rules.yml"]).groups
    readiness = Readiness(redis_url=REDIS_URL, broker_url=REDIS_URL, prefix=prefix)
    return HealthServer(
        ("127.0.0.1", 0),
        readiness,
        alertmanager=AlertmanagerAPI(store, workdir / "alerting.yml", version="0.1.0"),
        prometheus=PrometheusAPI(StateStore(store.r, prefix), lambda: list(groups), "0.1.0"),
        web_config=web,
    )


@pytest.fixture
def workdir(tmp_path: Path, config_file: Path) -> Path:
    """The README's files, the certificates web.yml names, a rule file and alerting.yml."""
    for name, text in files().items():
        (tmp_path / name).write_text(text)
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert.private_key_pem.write_to_path(tmp_path / "server.key")
    cert.cert_chain_pems[0].write_to_path(tmp_path / "server.crt")
    ca.cert_pem.write_to_path(tmp_path / "ca.pem")
    (tmp_path / "rules.yml").write_text(RULES)
    (tmp_path / "alerting.yml").write_text(config_file.read_text())
    return tmp_path


@pytest.fixture
def servers(store: NotifyStore, workdir: Path) -> Iterator[dict[str, HealthServer]]:
    with (
        serve(store, workdir) as plain,
        serve(store, workdir, load_web_config(workdir / "web.yml")) as secured,
    ):
        yield {"http": plain, "https": secured}


def run(command: str, workdir: Path, servers: dict[str, HealthServer]) -> str:
    for scheme, server in servers.items():
        command = command.replace(f"{scheme}://{ADDRESS}", server.url)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(
        ["bash", "-c", command], cwd=workdir, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, f"{command}\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_the_sections_files_are_what_the_commands_need() -> None:
    assert sorted(files()) == ["amtool.yml", "grafana-datasources.yml", "prometheus.yml", "web.yml"]
    prometheus = yaml.safe_load(files()["prometheus.yml"])
    assert prometheus["alerting"]["alertmanagers"] == [{"static_configs": [{"targets": [ADDRESS]}]}]


def test_sending_alerts_and_reading_rules(workdir: Path, servers: dict[str, HealthServer]) -> None:
    [send] = [b for b in blocks("sh") if "alert add" in b]
    out = [run(c, workdir, servers) for c in commands(send)]
    shown = httpx.get(f"{servers['http'].url}/api/v2/alerts").json()
    assert sorted(a["labels"]["alertname"] for a in shown) == ["BackupLate", "DiskFull"]
    disk = next(a for a in shown if a["labels"]["alertname"] == "DiskFull")
    assert disk["annotations"] == {"summary": "disk almost full"}
    rules, alerts = json.loads(out[-2]), json.loads(out[-1])
    assert rules["status"] == alerts["status"] == "success"
    assert [r["name"] for g in rules["data"]["groups"] for r in g["rules"]] == ["DiskFull"]


def test_grafanas_data_sources_find_what_they_ask_for(servers: dict[str, HealthServer]) -> None:
    provisioned = yaml.safe_load(files()["grafana-datasources.yml"])["datasources"]
    for source in provisioned:
        url = source["url"].replace(f"http://{ADDRESS}", servers["http"].url)
        paths = ["/api/v2/status", "/api/v2/alerts/groups", "/api/v2/silences"]
        if source["type"] == "prometheus":
            paths = ["/api/v1/rules", "/api/v1/status/buildinfo"]
        for path in paths:
            assert httpx.get(f"{url}{path}").status_code == 200, (source["name"], path)


def test_the_web_config_commands(workdir: Path, servers: dict[str, HealthServer]) -> None:
    [block] = [b for b in blocks("sh") if "--web-config" in b]
    made, checked, rules, silences = (run(c, workdir, servers) for c in commands(block))
    assert bcrypt.checkpw(b"s3cret", made.strip().encode())
    assert checked.strip().endswith(": ok")
    assert json.loads(rules)["status"] == "success"
    assert silences.split() == ["ID", "Matchers", "Ends", "At", "Created", "By", "Comment"]  # amtool got in
    refused = httpx.get(
        f"{servers['https'].url}/api/v1/rules",
        verify=ssl.create_default_context(cafile=str(workdir / "ca.pem")),
    )
    assert refused.status_code == 401
