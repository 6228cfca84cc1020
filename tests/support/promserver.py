"""Start Debian's ``prometheus`` for a test: a free 127.0.0.1 port, given rule files, an empty (or given)
TSDB directory; wait until it is ready; stop it afterwards.

    with PromServer(rule_files=[path], external_url="http://prom.example/p") as prom:
        httpx.get(prom.url + "/api/v1/alerts")
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
import yaml

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PromServer:
    """A Prometheus process owned by the test; usable as a context manager."""

    def __init__(
        self,
        *,
        rule_files: Sequence[Path] = (),
        tsdb_dir: Path | None = None,
        evaluation_interval: str = "1s",
        external_url: str | None = None,
        external_labels: Mapping[str, str] | None = None,
        extra_config: Mapping[str, Any] | None = None,
        log_level: str = "info",
    ) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="promserver-"))
        self.tsdb_dir = tsdb_dir or self.dir / "data"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.rule_files = list(rule_files)
        self.evaluation_interval = evaluation_interval
        self.external_url = external_url
        self.external_labels = dict(external_labels or {})
        self.extra_config = dict(extra_config or {})
        self.log_level = log_level
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> PromServer:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def start(self, timeout: float = 60.0) -> None:
        config: dict[str, Any] = {
            "global": {"evaluation_interval": self.evaluation_interval, "scrape_interval": "1m"},
            "rule_files": [str(p) for p in self.rule_files],
        }
        if self.external_labels:
            config["global"]["external_labels"] = self.external_labels
        config.update(self.extra_config)
        config_path = self.dir / "prometheus.yml"
        config_path.write_text(yaml.safe_dump(config, allow_unicode=True))
        args = [
            PROMETHEUS,
            f"--config.file={config_path}",
            f"--storage.tsdb.path={self.tsdb_dir}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--storage.tsdb.retention.time=100y",
            f"--log.level={self.log_level}",
        ]
        if self.external_url:
            # Keep the API at the root even when the external URL has a path (it is only advertised).
            args += [f"--web.external-url={self.external_url}", "--web.route-prefix=/"]
        log = open(self.dir / "prometheus.log", "ab")  # noqa: SIM115 - closed when the process ends
        self.process = subprocess.Popen(args, stdout=log, stderr=log)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("prometheus exited during start:\n" + self.log()[-3000:])
            try:
                if httpx.get(f"{self.url}/-/ready", timeout=5).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"prometheus on {self.url} not ready after {timeout}s:\n" + self.log()[-3000:])

    def get(self, path: str, **params: Any) -> Any:
        """GET an API path and return its ``data``, failing loudly on an error envelope."""
        response = httpx.get(f"{self.url}{path}", params=params, timeout=10)
        body = response.json()
        if body.get("status") != "success":
            raise RuntimeError(f"{path}: {body}")
        return body["data"]

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def log(self) -> str:
        path = self.dir / "prometheus.log"
        return path.read_text(errors="replace") if path.exists() else ""
