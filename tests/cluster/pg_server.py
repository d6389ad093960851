"""A throwaway PostgreSQL server on 127.0.0.1 for the shared-storage tests.

It uses the server binaries of Debian's ``postgresql`` package (installed by
.ci/install_postgres.sh when missing), keeps its data and unix socket in a
fresh folder under the system's temporary folder, and is stopped and deleted
at the end. As root it runs as the ``postgres`` user: initdb refuses root.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

USER = "hpo"
"""The database superuser the tests connect as (password authentication)."""


def server_binaries() -> Path | None:
    """The folder of initdb and pg_ctl: the newest /usr/lib/postgresql/<version>/bin, else $PATH's."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                   key=lambda path: int(path.parts[-3]) if path.parts[-3].isdigit() else 0)
    if found:
        return found[-1].parent
    initdb = shutil.which("initdb")
    return None if initdb is None else Path(initdb).parent


@dataclass(frozen=True)
class PostgresServer:
    """A running server: `port` on 127.0.0.1, superuser `USER` with `password`."""

    port: int
    password: str
    folder: Path

    def url(self, database: str, *, with_password: bool = True) -> str:
        """SQLAlchemy URL of `database`; without the password, libpq reads ``$PGPASSWORD``."""
        secret = f":{self.password}" if with_password else ""
        return f"postgresql+psycopg2://{USER}{secret}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> None:
        import psycopg2

        connection = psycopg2.connect(host="127.0.0.1", port=self.port, user=USER, password=self.password,
                                      dbname="postgres")
        try:
            connection.autocommit = True
            with connection.cursor() as cursor:
                cursor.execute(f'CREATE DATABASE "{name}"')
        finally:
            connection.close()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (just now)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def postgres_server(password: str) -> Iterator[PostgresServer]:
    """Start a server (fsync off: test data only), yield it, then stop it and delete its folder.
    `RuntimeError` when the binaries are missing or the server does not start."""
    binaries = server_binaries()
    if binaries is None:
        raise RuntimeError("PostgreSQL server binaries not found: run .ci/install_postgres.sh")
    folder = Path(tempfile.mkdtemp(prefix="hpo-postgres-"))
    as_owner: list[str] = []
    if os.geteuid() == 0:
        owner = pwd.getpwnam("postgres")
        os.chown(folder, owner.pw_uid, owner.pw_gid)
        as_owner = ["runuser", "-u", "postgres", "--"]
    data, log, pwfile = folder / "data", folder / "server.log", folder / "pwfile"
    pwfile.write_text(password)
    if as_owner:
        os.chown(pwfile, owner.pw_uid, owner.pw_gid)

    def run(*command: str) -> None:
        done = subprocess.run([*as_owner, *command], capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"{command[0]} failed: {(done.stderr or done.stdout).strip()[-800:]}")

    port = free_port()
    options = (f"-c listen_addresses=127.0.0.1 -p {port} -k {folder} -c fsync=off "
               "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
    try:
        run(str(binaries / "initdb"), "-D", str(data), "-U", USER, "--auth=scram-sha-256",
            f"--pwfile={pwfile}", "-E", "UTF8", "--no-sync")
        run(str(binaries / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-t", "60", "-o", options,
            "start")
        try:
            yield PostgresServer(port, password, folder)
        finally:
            run(str(binaries / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "-t", "60", "stop")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
