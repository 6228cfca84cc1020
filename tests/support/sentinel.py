"""A local Redis Sentinel set-up: one primary, one replica and three sentinels on free 127.0.0.1
ports, with short timers (a primary is down after 1 s) so a failover takes seconds.

``kill_primary()`` is the fault: ``kill -9`` of whichever node is primary now, then wait until the
sentinels name the other one. ``heal()`` brings killed nodes back as replicas of the new primary
and waits until they have caught up and the sentinels know them again.
"""

from __future__ import annotations

import signal
from typing import Self

import redis

from tests.support.net import wait_until
from tests.support.redis_server import REDIS_SERVER, RedisServer
from tests.support.serverprocess import ServerProcess

MASTER = "alerting-primary"
DOWN_AFTER_MS = 1000
FAILOVER_TIMEOUT_MS = 4000


class RedisNode(RedisServer):
    """A data node: a RedisServer that may start as a replica of another."""

    def __init__(self) -> None:
        super().__init__(appendonly=True)
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

    def __init__(self, primary_port: int) -> None:
        super().__init__()
        self.primary_port = primary_port

    def command(self) -> list[str]:
        config = self.dir / "sentinel.conf"
        if not config.exists():  # sentinel rewrites its file with what it learns; keep that
            config.write_text(
                "\n".join(
                    [
                        f"port {self.port}",
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
        return redis.Redis(port=self.port, socket_timeout=2, decode_responses=True)

    def is_ready(self) -> bool:
        client = self.client()
        try:
            return bool(client.ping())
        finally:
            client.close()


class SentinelSet:
    """``with SentinelSet() as redis_ha: redis_ha.url(db)``."""

    def __init__(self) -> None:
        self.nodes = [RedisNode(), RedisNode()]
        self.nodes[1].replica_of = self.nodes[0].port
        self.sentinels = [SentinelProcess(self.nodes[0].port) for _ in range(3)]
        self.killed: list[RedisNode] = []

    def url(self, db: int = 0) -> str:
        hosts = ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)
        return f"redis+sentinel://{hosts}/{MASTER}/{db}"

    def primary_port(self) -> int:
        """The primary's port as the sentinels name it now."""
        client = self.sentinels[0].client()
        try:
            _, port = client.sentinel_get_master_addr_by_name(MASTER)
        finally:
            client.close()
        return int(port)

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
