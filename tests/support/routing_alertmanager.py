"""Starts Debian's Alertmanager on a free port, with its own storage, for differential tests."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx

ALERTMANAGER = "/usr/bin/prometheus-alertmanager"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Alertmanager:
    """A real Alertmanager process (clustering off), stopped on exit."""

    def __init__(self, config: Path, workdir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / "alertmanager.log"
        storage = workdir / "am-data"
        storage.mkdir()
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [
                ALERTMANAGER,
                f"--config.file={config}",
                f"--storage.path={storage}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--cluster.listen-address=",
                "--log.level=debug",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self.client = httpx.Client(base_url=self.url, timeout=5.0)

    def wait_ready(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"alertmanager exited: {self.log_path.read_text()[-2000:]}")
            try:
                if self.client.get("/-/ready").status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError("alertmanager did not become ready")

    def post_alerts(self, alerts: list[dict[str, Any]]) -> None:
        response = self.client.post("/api/v2/alerts", json=alerts)
        response.raise_for_status()

    def post_silence(self, silence: dict[str, Any]) -> str:
        response = self.client.post("/api/v2/silences", json=silence)
        response.raise_for_status()
        return str(response.json()["silenceID"])

    def __enter__(self) -> Alertmanager:
        self.wait_ready()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.client.close()
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self._log.close()
