"""A private PostgreSQL server on a free port that a test can stop and start again.

``initdb`` makes a fresh cluster in a temporary directory (trust authentication, superuser
``postgres``, database ``postgres``). PostgreSQL refuses to run as root, so when the tests run as
root the cluster belongs to, and the server runs as, the system's ``postgres`` account.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess

import psycopg

from tests.support.serverprocess import ServerProcess


def postgres_program(name: str) -> str:
    """``initdb``, ``postgres``...: on PATH, or where Debian's packages put them."""
    found = shutil.which(name) or next(reversed(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))), "")
    if not found:
        raise RuntimeError(f"{name} not found: install PostgreSQL (Debian: apt-get install postgresql)")
    return found


class PostgresServer(ServerProcess):
    """``with PostgresServer() as pg: pg.url`` — a cluster of its own, removed afterwards.

    ``stop(signal.SIGINT)`` is PostgreSQL's fast shutdown: open sessions are cut, as when an
    operator stops the database under a running application.
    """

    name = "postgres"

    def __init__(self) -> None:
        super().__init__()
        self.data = self.dir / "data"
        if os.geteuid() == 0:
            self.user = "postgres"
            account = pwd.getpwnam(self.user)
            os.chown(self.dir, account.pw_uid, account.pw_gid)
        initdb = [postgres_program("initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust"]
        subprocess.run([*initdb, "--no-sync", "-E", "UTF8"], check=True, capture_output=True, user=self.user)

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def command(self) -> list[str]:
        return [
            postgres_program("postgres"),
            *("-D", str(self.data), "-p", str(self.port), "-h", "127.0.0.1"),
            *("-k", str(self.dir)),  # its Unix socket stays in its own directory
            *("-c", "fsync=off"),
        ]

    def is_ready(self) -> bool:
        try:
            psycopg.connect(
                f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres", connect_timeout=1
            ).close()
        except psycopg.OperationalError:
            return False
        return True
