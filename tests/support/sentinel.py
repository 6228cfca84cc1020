"""A local Redis Sentinel set-up: one primary, one replica and three sentinels on free 127.0.0.1
ports, with short timers (a primary is down after 1 s) so a failover takes seconds.

``kill_primary()`` is the fault: ``kill -9`` of whichever node is primary now, then wait until the
sentinels name the other one. ``heal()`` brings killed nodes back as replicas of the new primary
and waits until they have caught up and the sentinels know them again.

``SentinelSet(tls=True)`` runs every node and sentinel over TLS only, with certificates from one
throwaway CA: clients, replication and the sentinels' own links to the nodes and to each other.
With ``auth_clients=True`` every one of them also wants a client certificate from that CA.
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any, Self

import redis
import trustme

from tests.support.net import wait_until
from tests.support.redis_server import REDIS_SERVER, RedisServer, tls_settings, write_tls_files
from tests.support.serverprocess import ServerProcess

MASTER = "alerting-primary"
DOWN_AFTER_MS = 1000
FAILOVER_TIMEOUT_MS = 4000


class RedisNode(RedisServer):
    """A data node: a RedisServer that may start as a replica of another."""

    def __init__(self, tls: bool = False, ca: trustme.CA | None = None, auth_clients: bool = False) -> None:
        super().__init__(appendonly=True, tls=tls, ca=ca, auth_clients=auth_clients)
        self.replica_of: int | None = None

    def command(self) -> list[str]:
        # A replica (re)joining syncs at once, not after the default 5 s wait for more replicas.
        args = [*super().command(), "--repl-diskless-sync-delay", "0"]
        if self.replica_of is not None:
            args += ["--replicaof", "127.0.0.1", str(self.replica_of)]
        return args


class SentinelProcess(ServerProcess):
    name = "sentinel"
    ready_timeout = 30.0

    def __init__(self, primary_port: int, ca: trustme.CA | None = None, auth_clients: bool = False) -> None:
        """With ``ca``, TLS only: to its clients, to the nodes and to the other sentinels."""
        super().__init__()
        self.primary_port = primary_port
        self.tls = ca is not None
        self.auth_clients = auth_clients
        if ca is not None:
            write_tls_files(ca, self.dir)

    def command(self) -> list[str]:
        config = self.dir / "sentinel.conf"
        if not config.exists():  # sentinel rewrites its file with what it learns; keep that
            listen = [f"port {self.port}"]
            if self.tls:
                # tls-replication makes the sentinel's own connections (to the nodes, to the other
                # sentinels) TLS too.
                listen = ["port 0", f"tls-port {self.port}"]
                listen += [f"{name} {value}" for name, value in tls_settings(self.dir, self.auth_clients)]
            config.write_text(
                "\n".join(
                    [
                        *listen,
                        "bind 127.0.0.1",
                        f"dir {self.dir}",
                        f"sentinel monitor {MASTER} 127.0.0.1 {self.primary_port} 2",
                        f"sentinel down-after-milliseconds {MASTER} {DOWN_AFTER_MS}",
                        f"sentinel failover-timeout {MASTER} {FAILOVER_TIMEOUT_MS}",
                        f"sentinel parallel-syncs {MASTER} 1",
                        "",
                    ]
                )
            )
        return [REDIS_SERVER, str(config), "--sentinel"]

    def client(self) -> redis.Redis:
        return redis.Redis(
            "127.0.0.1", self.port, socket_timeout=2, decode_responses=True, **self.tls_options()
        )

    def tls_options(self) -> dict[str, Any]:
        """redis-py's options for a client this sentinel accepts (none without TLS)."""
        if not self.tls:
            return {}
        options: dict[str, Any] = {"ssl": True, "ssl_ca_certs": str(self.dir / "ca.pem")}
        if self.auth_clients:
            options.update(ssl_certfile=str(self.dir / "cert.pem"), ssl_keyfile=str(self.dir / "key.pem"))
        return options

    def is_ready(self) -> bool:
        client = self.client()
        try:
            return bool(client.ping())
        finally:
            client.close()


class SentinelSet:
    """``with SentinelSet() as redis_ha: redis_ha.url(db)``; ``SentinelSet(tls=True)`` for TLS."""

    def __init__(self, tls: bool = False, auth_clients: bool = False) -> None:
        self.tls = tls
        self.ca = trustme.CA() if tls else None
        self.nodes = [RedisNode(tls, self.ca, auth_clients) for _ in range(2)]
        self.nodes[1].replica_of = self.nodes[0].port
        self.sentinels = [SentinelProcess(self.nodes[0].port, self.ca, auth_clients) for _ in range(3)]
        self.killed: list[RedisNode] = []

    @property
    def ca_file(self) -> Path:
        """The CA every node and sentinel's certificate comes from (with ``tls``)."""
        return self.sentinels[0].dir / "ca.pem"

    def url(self, db: int = 0, **query: str) -> str:
        """The sentinel URL: with ``tls``, ``rediss+sentinel://`` and the options a client needs (the
        CA, and a client certificate when the set wants one). ``query`` adds options; an option
        given as "" is left out."""
        hosts = ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)
        tls = {k: str(v) for k, v in self.sentinels[0].tls_options().items() if k != "ssl"}
        options = {k: v for k, v in {**tls, **query}.items() if v}
        tail = "?" + "&".join(f"{k}={v}" for k, v in options.items()) if options else ""
        return f"{'rediss' if self.tls else 'redis'}+sentinel://{hosts}/{MASTER}/{db}{tail}"

    def primary_port(self) -> int:
        """The primary's port as the sentinels name it now."""
        client = self.sentinels[0].client()
        try:
            _, port = client.sentinel_get_master_addr_by_name(MASTER)
        finally:
            client.close()
        return int(port)

    def primary_ports(self) -> set[int]:
        """The primary's port as each sentinel names it now: one port once they all agree (after a
        failover the sentinels that did not lead it learn of it a moment later)."""
        ports = set()
        for sentinel in self.sentinels:
            client = sentinel.client()
            try:
                ports.add(int(client.sentinel_get_master_addr_by_name(MASTER)[1]))
            finally:
                client.close()
        return ports

    def primary(self) -> RedisNode:
        port = self.primary_port()
        return next(n for n in self.nodes if n.port == port)

    def _settled(self) -> bool:
        """Every sentinel knows the primary, its replica (caught up) and the other two sentinels."""
        for sentinel in self.sentinels:
            client = sentinel.client()
            try:
                info = client.sentinel_master(MASTER)
                if info.get("is_sdown") or info.get("is_odown") or info.get("is_failover_in_progress"):
                    return False
                if int(info.get("num-slaves", 0)) < 1 or int(info.get("num-other-sentinels", 0)) < 2:
                    return False
            finally:
                client.close()
        primary = self.primary().client()
        try:
            replication = primary.info("replication")
            return bool(
                replication.get("connected_slaves", 0) >= 1
                and replication["slave0"]["state"] == "online"
                and replication["slave0"]["offset"] == replication["master_repl_offset"]
            )
        finally:
            primary.close()

    def wait_settled(self, timeout: float = 60) -> None:
        wait_until(self._settled, timeout=timeout, interval=0.2, what="sentinels to settle")

    def kill_primary(self, timeout: float = 60) -> RedisNode:
        """``kill -9`` the primary; return once the sentinels name the replica as primary."""
        killed = self.primary()
        killed.stop(signal.SIGKILL)
        self.killed.append(killed)
        wait_until(
            lambda: self.primary_port() != killed.port, timeout=timeout, interval=0.1, what="a failover"
        )
        return killed

    def heal(self) -> None:
        """Restart every killed node as a replica of the primary; wait until everything is settled."""
        if not self.killed:
            return
        while self.killed:
            node = self.killed.pop()
            node.replica_of = self.primary_port()
            node.start()
        self.wait_settled()

    def start(self) -> None:
        for node in self.nodes:
            node.start()
        for sentinel in self.sentinels:
            sentinel.start()
        self.wait_settled()

    def stop(self) -> None:
        for process in (*self.sentinels, *self.nodes):
            process.__exit__()

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()
