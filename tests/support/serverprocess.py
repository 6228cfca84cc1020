"""A server program a test runs on a free port with a directory of its own: started and waited for
on entering, stopped on leaving, and in between stopped (or killed) and started again on the same
port and directory."""

from __future__ import annotations

import shutil
import signal
import subprocess
import tempfile
from pathlib import Path
from typing import Self

from tests.support.net import free_port, wait_until


class ServerProcess:
    """Subclasses say how to run the program (``command``) and when it is up (``is_ready``)."""

    name = "server"
    ready_timeout = 60.0
    user: str | None = None  # the account the program runs as (when the tests run as root)

    def __init__(self, directory: Path | None = None) -> None:
        self._own_dir = directory is None
        self.dir = Path(tempfile.mkdtemp(prefix=f"{self.name}-")) if directory is None else directory
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        raise NotImplementedError

    def is_ready(self) -> bool:
        raise NotImplementedError

    @property
    def log_path(self) -> Path:
        return self.dir / f"{self.name}.log"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.command(), stdout=log, stderr=subprocess.STDOUT, user=self.user
            )
        what = f"{self.name} on port {self.port} ({self.dir})"
        wait_until(self._ready, timeout=self.ready_timeout, what=what)

    def _ready(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(f"{self.name} exited:\n" + self.log()[-2000:])
        return self.is_ready()

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop the program (SIGKILL to crash it); the directory stays for a restart."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)
