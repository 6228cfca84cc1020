"""Starts Debian's Alertmanager on a free port, with its own storage, for the tests that compare with it
and the tests of the alertmanager receiver."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import httpx

from tests.support.serverprocess import ServerProcess

ALERTMANAGER = shutil.which("prometheus-alertmanager") or "/usr/bin/prometheus-alertmanager"


class Alertmanager(ServerProcess):
    """A real Alertmanager process (clustering off) keeping its storage and log in ``workdir``."""

    name = "alertmanager"
    ready_timeout = 30.0

    def __init__(self, config: Path, workdir: Path) -> None:
        super().__init__(workdir)
        self.config = config
        self.url = f"http://127.0.0.1:{self.port}"
        self.client = httpx.Client(base_url=self.url, timeout=5.0)

    def command(self) -> list[str]:
        storage = self.dir / "am-data"
        storage.mkdir(exist_ok=True)
        return [
            ALERTMANAGER,
            f"--config.file={self.config}",
            f"--storage.path={storage}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--cluster.listen-address=",
            "--log.level=debug",
        ]

    def is_ready(self) -> bool:
        return self.client.get("/-/ready").status_code == 200

    def post_alerts(self, alerts: list[dict[str, Any]]) -> None:
        response = self.client.post("/api/v2/alerts", json=alerts)
        response.raise_for_status()

    def post_silence(self, silence: dict[str, Any]) -> str:
        response = self.client.post("/api/v2/silences", json=silence)
        response.raise_for_status()
        return str(response.json()["silenceID"])

    def __exit__(self, *exc: object) -> None:
        super().__exit__(*exc)
        self.client.close()
