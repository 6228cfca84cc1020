"""A real Prometheus (Debian's package) on a free port, over deterministic backfilled data."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.support.serverprocess import ServerProcess

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"


def series_key(name: str, labels: Mapping[str, str]) -> str:
    if not labels:
        return name
    inner = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    return f"{name}{{{inner}}}"


def openmetrics(series: Iterable[tuple[str, Mapping[str, str], Sequence[tuple[float, float]]]]) -> str:
    """OpenMetrics text for backfilling: (metric name, labels, [(unix time, value)])."""
    by_name: dict[str, list[str]] = {}
    for name, labels, points in series:
        lines = by_name.setdefault(name, [])
        for t, value in points:
            lines.append(f"{series_key(name, labels)} {value!r} {t:.3f}")
    out = []
    for name, lines in by_name.items():
        out.append(f"# TYPE {name} gauge")
        out.extend(lines)
    out.append("# EOF")
    return "\n".join(out) + "\n"


def create_blocks(text: str, data_dir: Path) -> None:
    source = data_dir.parent / "backfill.om"
    source.write_text(text)
    result = subprocess.run(
        [PROMTOOL, "tsdb", "create-blocks-from", "openmetrics", str(source), str(data_dir)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if result.returncode != 0:
        raise RuntimeError(f"promtool backfill failed: {result.stderr or result.stdout}")


class PrometheusServer(ServerProcess):
    """``with PrometheusServer(...) as prom: prom.url`` — started on a free port, stopped after."""

    name = "prometheus"

    def __init__(
        self,
        *,
        backfill: str | None = None,
        rule_files: Sequence[Path] = (),
        scrape_targets: Sequence[str] = (),
        scrape_interval: str = "1s",
        evaluation_interval: str = "1s",
        external_url: str | None = None,
        external_labels: Mapping[str, str] | None = None,
        log_level: str = "info",
        alertmanagers: Sequence[str | Mapping[str, Any]] = (),
        resend_delay: str | None = None,
        remote_write_receiver: bool = False,
        remote_write: Sequence[Mapping[str, Any]] = (),
        job_name: str = "test",
    ) -> None:
        super().__init__()
        self.job_name = job_name  # the scrape job: the `job` label of what it scrapes
        self.url = f"http://127.0.0.1:{self.port}"
        self.backfill = backfill
        self.rule_files = list(rule_files)
        self.scrape_targets = list(scrape_targets)
        self.scrape_interval = scrape_interval
        self.evaluation_interval = evaluation_interval
        self.external_url = external_url
        self.external_labels = dict(external_labels or {})
        self.log_level = log_level
        # each Alertmanager it sends alerts to: host:port, or a whole `alertmanagers` entry
        self.alertmanagers = list(alertmanagers)
        self.resend_delay = resend_delay  # how often firing alerts are sent again (Prometheus: 1m)
        # accept samples on /api/v1/write (--web.enable-remote-write-receiver)
        self.remote_write_receiver = remote_write_receiver
        self.remote_write = [dict(entry) for entry in remote_write]  # its own remote_write entries

    def command(self) -> list[str]:
        data = self.dir / "data"
        if self.backfill is not None and not data.exists():
            data.mkdir(parents=True)
            create_blocks(self.backfill, data)
        config: dict[str, object] = {
            "global": {
                "scrape_interval": self.scrape_interval,
                "evaluation_interval": self.evaluation_interval,
            },
            "rule_files": [str(p) for p in self.rule_files],
        }
        if self.external_labels:
            config["global"]["external_labels"] = self.external_labels  # type: ignore[index]
        if self.scrape_targets:
            config["scrape_configs"] = [
                {"job_name": self.job_name, "static_configs": [{"targets": self.scrape_targets}]}
            ]
        if self.alertmanagers:
            config["alerting"] = {
                "alertmanagers": [
                    {"static_configs": [{"targets": [am]}]} if isinstance(am, str) else dict(am)
                    for am in self.alertmanagers
                ]
            }
        if self.remote_write:
            config["remote_write"] = self.remote_write
        (self.dir / "prometheus.yml").write_text(yaml.safe_dump(config))
        return [
            PROMETHEUS,
            f"--config.file={self.dir / 'prometheus.yml'}",
            f"--storage.tsdb.path={data}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--storage.tsdb.retention.time=100y",
            "--web.enable-lifecycle",
            f"--log.level={self.log_level}",
            *([f"--rules.alert.resend-delay={self.resend_delay}"] if self.resend_delay else []),
            *(["--web.enable-remote-write-receiver"] if self.remote_write_receiver else []),
            *self._url_args(),
        ]

    def _url_args(self) -> list[str]:
        if not self.external_url:
            return []
        # Keep the API at the root even when the external URL has a path (it is only advertised).
        return [f"--web.external-url={self.external_url}", "--web.route-prefix=/"]

    @property
    def write_url(self) -> str:
        """Where remote write sends samples (with ``remote_write_receiver``)."""
        return f"{self.url}/api/v1/write"

    def is_ready(self) -> bool:
        return httpx.get(f"{self.url}/-/ready", timeout=1).status_code == 200

    def get(self, path: str, **params: object) -> Any:
        """GET an API path and return its ``data`` (failing loudly on an error envelope)."""
        body = httpx.get(f"{self.url}{path}", params=params, timeout=30).json()
        assert body["status"] == "success", body
        return body["data"]
