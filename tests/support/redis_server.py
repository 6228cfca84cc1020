"""A private ``redis-server`` on a free port that a test can stop, kill and restart.

Data lives in a temporary directory with the append-only file on (fsync on every write), so a
restart on the same port and directory comes back with everything that was acknowledged. With
``tls=True`` it speaks TLS only, with a certificate from a throwaway CA (``ca_file``).
"""

from __future__ import annotations

import shutil

import redis
import trustme

from tests.support.serverprocess import ServerProcess

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


class RedisServer(ServerProcess):
    """``with RedisServer() as server: server.url`` — stopped and its directory removed after."""

    name = "redis"
    ready_timeout = 30.0

    def __init__(self, password: str | None = None, appendonly: bool = True, tls: bool = False) -> None:
        super().__init__()
        self.password = password
        self.appendonly = appendonly
        self.tls = tls
        self.ca_file = self.dir / "ca.pem"
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

    def command(self) -> list[str]:
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
