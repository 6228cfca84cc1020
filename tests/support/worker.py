"""The real worker process (``celery -A alerting worker -B``) with its output captured, the settings
tests run it with, waiting for what it logs, and the ``alerting`` command an operator runs beside it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any, cast

from tests.support.net import REDIS_URL, celery_queue, wait_until

ROOT = Path(__file__).resolve().parents[2]


def alerting(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """``alerting ARGS...`` run from the repository, with ``env`` on top of this process's environment."""
    return subprocess.run(
        [sys.executable, "-m", "alerting.cli.main", *args],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def worker_env(
    tmp_path: Path,
    *,
    rules: Path,
    config: Path,
    prefix: str,
    redis_url: str = REDIS_URL,
    prometheus_url: str = "http://127.0.0.1:9",
    **extra: str,
) -> dict[str, str]:
    """The worker's settings: private prefix and queue, history in the test's directory, no HTTP port."""
    return {
        "ALERTING_RULES": str(rules),
        "ALERTING_CONFIG": str(config),
        "PROMETHEUS_URL": prometheus_url,
        "PROMETHEUS_TIMEOUT": "2s",
        "ALERTING_REDIS_URL": redis_url,
        "ALERTING_REDIS_PREFIX": prefix,
        "ALERTING_CELERY_QUEUE": celery_queue(),
        "ALERTING_HISTORY_URL": f"sqlite:///{tmp_path / 'history.db'}",
        "ALERTING_HTTP_ADDR": "off",
        # Retries of failed deliveries come quickly, so a recovered receiver is reached within seconds.
        "ALERTING_NOTIFY_BACKOFF_BASE": "0.5",
        "ALERTING_NOTIFY_BACKOFF_CAP": "2",
        # A killed worker's beat lease lapses in seconds, so its restarted self schedules again soon.
        "ALERTING_BEAT_LEASE": "6",
        **extra,
    }


class Worker:
    def __init__(self, env: dict[str, str], concurrency: int = 2) -> None:
        self.env = {**os.environ, **env, "PYTHONUNBUFFERED": "1"}
        self.concurrency = concurrency
        self.lines: list[str] = []
        self.process: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None
        self.workdir = tempfile.mkdtemp(prefix="worker-")

    def start(self) -> Worker:
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "alerting",
                "worker",
                "-B",
                f"--concurrency={self.concurrency}",
                "--without-gossip",
                "--without-mingle",
                "--loglevel=INFO",
                f"--hostname=test-{os.getpid()}-{id(self)}@%h",
                f"--schedule={self.workdir}/beat-schedule",
            ],
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        return self

    def _read(self) -> None:
        assert self.process and self.process.stdout
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    def events(self, name: str | None = None, **where: object) -> list[dict[str, Any]]:
        """The JSON log lines so far, optionally only event ``name`` with the fields ``where``."""
        out = []
        for line in list(self.lines):
            try:
                data = json.loads(line)
            except ValueError:
                continue
            if not isinstance(data, dict) or (name is not None and data.get("event") != name):
                continue
            if all(data.get(key) == value for key, value in where.items()):
                out.append(data)
        return out

    def wait_for(self, name: str, timeout: float = 60, **where: object) -> list[dict[str, Any]]:
        """Wait until the worker has logged event ``name`` with the fields ``where``; return those."""
        found = wait_until(lambda: self.events(name, **where), timeout=timeout, what=f"{name} {where}")
        return cast(list[dict[str, Any]], found)

    def wait_for_evaluations(self, count: int, timeout: float = 60, **where: object) -> None:
        """Wait until ``count`` more evaluations than so far (with the fields ``where``) are logged."""
        start = len(self.events("group.evaluated", **where))
        wait_until(
            lambda: len(self.events("group.evaluated", **where)) >= start + count,
            timeout=timeout,
            what=f"{count} more evaluations {where}",
        )

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, sig)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        if self._reader:
            self._reader.join(timeout=5)

    def __enter__(self) -> Worker:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        self.stop()
        if exc_type is not None:
            # The failure report shows captured output: the worker's last words explain most waits
            # that timed out.
            print("--- the worker's alert, notification and warning lines, whatever their age ---")
            print("\n".join(line for line in self.lines[:-150] if _telling(line))[-20000:])
            print(f"--- last lines of the worker ({len(self.lines)} in all) ---")
            print("\n".join(self.lines[-150:]))


def _telling(line: str) -> bool:
    """A log line that explains what became of alerts and notifications (the evaluations' and the
    beat's routine lines would bury them)."""
    try:
        data = json.loads(line)
    except ValueError:
        return True  # not ours: a traceback, say
    if not isinstance(data, dict):
        return True
    event = str(data.get("event", ""))
    if event.startswith(("alert.", "notify.", "rules.")):
        return True
    return data.get("level") in ("WARN", "ERROR", "CRITICAL")
