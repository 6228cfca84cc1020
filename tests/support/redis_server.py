"""A private ``redis-server`` on a free port that a test can stop, kill and restart.

Data lives in a temporary directory with the append-only file on (fsync on every write), so a
restart on the same port and directory comes back with everything that was acknowledged. With
``tls=True`` it speaks TLS only, with a certificate from a throwaway CA (``ca_file``).
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import redis
import trustme

from tests.support.net import free_port, wait_until

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


class RedisServer:
    """``with RedisServer() as server: server.url`` — stopped and its directory removed after."""

    def __init__(self, password: str | None = None, appendonly: bool = True, tls: bool = False) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="redis-"))
        self.port = free_port()
        self.password = password
        self.appendonly = appendonly
        self.tls = tls
        self.ca_file = self.dir / "ca.pem"
        self.process: subprocess.Popen[bytes] | None = None
        if tls:
            ca = trustme.CA()
            cert = ca.issue_cert("127.0.0.1")
            ca.cert_pem.write_to_path(str(self.ca_file))
            cert.cert_chain_pems[0].write_to_path(str(self.dir / "cert.pem"))
            cert.private_key_pem.write_to_path(str(self.dir / "key.pem"))

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        if self.tls:
            return (
                f"rediss://{auth}127.0.0.1:{self.port}/0?ssl_cert_reqs=required&ssl_ca_certs={self.ca_file}"
            )
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, socket_timeout=5)

    def start(self) -> None:
        listen = ["--port", str(self.port)]
        if self.tls:
            listen = ["--port", "0", "--tls-port", str(self.port), "--tls-auth-clients", "no"]
            for option, name in (("cert", "cert.pem"), ("key", "key.pem"), ("ca-cert", "ca.pem")):
                listen += [f"--tls-{option}-file", str(self.dir / name)]
        args = [
            REDIS_SERVER,
            *listen,
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.dir),
            "--appendonly",
            "yes" if self.appendonly else "no",
            "--appendfsync",
            "always",
            "--save",
            "",
            "--logfile",
            str(self.dir / "redis.log"),
        ]
        if self.password:
            args += ["--requirepass", self.password]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(self._ready, timeout=30, what=f"redis-server on port {self.port}")

    def _ready(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError("redis-server exited:\n" + self.log()[-2000:])
        client = self.client()
        try:
            return bool(client.ping())
        finally:
            client.close()

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop the server (SIGKILL to crash it); the data directory stays for a restart."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def log(self) -> str:
        path = self.dir / "redis.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
