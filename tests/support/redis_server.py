"""A private ``redis-server`` on a free port that a test can stop, kill and restart.

Data lives in a temporary directory with the append-only file on (fsync on every write), so a
restart on the same port and directory comes back with everything that was acknowledged. With
``tls=True`` it speaks TLS only (replication too), with a certificate from a throwaway CA
(``ca_file``): its own, or one shared by every server of a set (``ca=``).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import redis
import trustme

from tests.support.serverprocess import ServerProcess

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


def write_tls_files(ca: trustme.CA, directory: Path) -> None:
    """``ca.pem``, and ``cert.pem``/``key.pem`` for 127.0.0.1 signed by ``ca``, in ``directory``.

    trustme's certificates are good for both ends of a connection, so the same pair serves a server,
    the client side of its replication and sentinel links, and a test's client certificate.
    """
    cert = ca.issue_cert("127.0.0.1")
    ca.cert_pem.write_to_path(str(directory / "ca.pem"))
    cert.cert_chain_pems[0].write_to_path(str(directory / "cert.pem"))
    cert.private_key_pem.write_to_path(str(directory / "key.pem"))


def tls_settings(directory: Path, auth_clients: bool) -> list[tuple[str, str]]:
    """redis-server's TLS settings (name, value) for the files :func:`write_tls_files` left in
    ``directory``; with ``tls-replication`` its own connections to other servers are TLS too."""
    settings = [("tls-auth-clients", "yes" if auth_clients else "no"), ("tls-replication", "yes")]
    for option, name in (("cert", "cert.pem"), ("key", "key.pem"), ("ca-cert", "ca.pem")):
        settings.append((f"tls-{option}-file", str(directory / name)))
    return settings


class RedisServer(ServerProcess):
    """``with RedisServer() as server: server.url`` — stopped and its directory removed after."""

    name = "redis"
    ready_timeout = 30.0

    def __init__(
        self,
        password: str | None = None,
        appendonly: bool = True,
        tls: bool = False,
        ca: trustme.CA | None = None,
        auth_clients: bool = False,
    ) -> None:
        """``ca`` and ``auth_clients`` (clients must show a certificate from the CA) need ``tls``."""
        super().__init__()
        self.password = password
        self.appendonly = appendonly
        self.tls = tls
        self.auth_clients = auth_clients
        self.ca_file = self.dir / "ca.pem"
        if tls:
            write_tls_files(ca or trustme.CA(), self.dir)

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        if self.tls:
            query = f"ssl_cert_reqs=required&ssl_ca_certs={self.ca_file}"
            if self.auth_clients:
                query += f"&ssl_certfile={self.dir / 'cert.pem'}&ssl_keyfile={self.dir / 'key.pem'}"
            return f"rediss://{auth}127.0.0.1:{self.port}/0?{query}"
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, socket_timeout=5)

    def command(self) -> list[str]:
        listen = ["--port", str(self.port)]
        if self.tls:
            listen = ["--port", "0", "--tls-port", str(self.port)]
            for name, value in tls_settings(self.dir, self.auth_clients):
                listen += [f"--{name}", value]
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
        ]
        if self.password:
            args += ["--requirepass", self.password]
        return args

    def is_ready(self) -> bool:
        client = self.client()
        try:
            return bool(client.ping())
        finally:
            client.close()
