"""A real PostgreSQL primary and its streaming replica, started from the installed binaries.

The machine's own PostgreSQL (the tests' `DATABASE_URL`) refuses replication connections, so the
replica tests run a pair of their own: `initdb` a primary, `pg_basebackup -R` a hot standby from
it, both on free ports of 127.0.0.1 in a temporary folder, trusted logins from 127.0.0.1 only.
PostgreSQL refuses to run as root, so as root (CI) every binary runs as the `postgres` user,
which owns the folder.
"""

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg

# Enough for the tests' sessions; small, so the pair costs little memory next to everything else.
PRIMARY_SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "max_connections": "40",
    "shared_buffers": "16MB",
    "max_wal_senders": "4",
    "wal_level": "replica",
    "hot_standby": "on",
    # Throwaway clusters: durability only costs time here.
    "fsync": "off",
    "full_page_writes": "off",
    "autovacuum": "off",
}


class PairUnavailable(Exception):
    """The machine cannot run a pair (no binaries, or root without a `postgres` user)."""


def _bin_dir() -> Path:
    """The folder of the newest installed PostgreSQL's server binaries."""
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda path: int(Path(path).parent.parent.name),
    )
    found = candidates[-1] if candidates else shutil.which("initdb")
    if not found:
        raise PairUnavailable("no initdb: install PostgreSQL's server binaries")
    return Path(found).parent


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class StreamingPair:
    """A primary and a hot standby streaming from it; `stop()` removes every trace.

    `settings` override `PRIMARY_SETTINGS` (the benchmark's pair holds a whole shop and serves
    two servers' connections); the standby copies the primary's configuration.
    """

    def __init__(self, settings: dict[str, str] | None = None) -> None:
        self.settings = {**PRIMARY_SETTINGS, **(settings or {})}
        self.bin_dir = _bin_dir()
        self.as_postgres: list[str] = []
        owner = None
        if os.geteuid() == 0:
            try:
                owner = pwd.getpwnam("postgres")
            except KeyError as error:
                raise PairUnavailable("running as root and there is no postgres user") from error
            self.as_postgres = ["runuser", "-u", "postgres", "--"]
        self.root = Path(tempfile.mkdtemp(prefix="stockwire-replicas-"))
        if owner is not None:
            os.chown(self.root, owner.pw_uid, owner.pw_gid)
        self.primary_dir = self.root / "primary"
        self.replica_dir = self.root / "replica"
        self.primary_port = _free_port()
        self.replica_port = _free_port()

    def _run(self, binary: str, *args: str) -> None:
        command = [*self.as_postgres, str(self.bin_dir / binary), *args]
        done = subprocess.run(command, capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            raise RuntimeError(f"{binary} failed: {done.stdout}{done.stderr}")

    def _pg_ctl(self, data_dir: Path, port: int, action: str, *args: str) -> None:
        self._run(
            "pg_ctl",
            action,
            "-D",
            str(data_dir),
            "-w",
            "-t",
            "30",
            "-l",
            str(self.root / f"{data_dir.name}.log"),
            "-o",
            f"-p {port} -k {self.root}",
            *args,
        )

    def start(self) -> None:
        """Create and start the primary, then copy it into a standby and start that."""
        self._run(
            "initdb", "-D", str(self.primary_dir), "-U", "postgres", "--auth=trust", "--no-sync"
        )
        with (self.primary_dir / "postgresql.conf").open("a") as conf:
            conf.writelines(f"{name} = {value}\n" for name, value in self.settings.items())
        with (self.primary_dir / "pg_hba.conf").open("a") as hba:
            hba.write("host replication postgres 127.0.0.1/32 trust\n")
        self._pg_ctl(self.primary_dir, self.primary_port, "start")
        self._run(
            "pg_basebackup",
            "-h",
            "127.0.0.1",
            "-p",
            str(self.primary_port),
            "-U",
            "postgres",
            "-D",
            str(self.replica_dir),
            "-R",
            "-X",
            "stream",
            "-c",
            "fast",
            "--no-sync",
        )
        self.replica_start()

    def replica_start(self) -> None:
        self._pg_ctl(self.replica_dir, self.replica_port, "start")

    def replica_stop(self) -> None:
        self._pg_ctl(self.replica_dir, self.replica_port, "stop", "-m", "fast")

    def replica_running(self) -> bool:
        return (self.replica_dir / "postmaster.pid").exists()

    def url(self, *, port: int, dbname: str) -> str:
        return f"postgres://postgres@127.0.0.1:{port}/{dbname}"

    def execute(self, *, port: int, sql: str, dbname: str = "postgres") -> tuple | None:
        """Run one statement on the primary's or the replica's `dbname`; return its first row."""
        with psycopg.connect(
            host="127.0.0.1", port=port, user="postgres", dbname=dbname, autocommit=True
        ) as conn:
            cursor = conn.execute(sql)
            return cursor.fetchone() if cursor.description else None

    def replay_pause(self) -> None:
        self.execute(port=self.replica_port, sql="SELECT pg_wal_replay_pause()")

    def replay_resume(self) -> None:
        self.execute(port=self.replica_port, sql="SELECT pg_wal_replay_resume()")

    def wait_replayed(self, *, timeout: float = 30) -> None:
        """Wait until the replica has replayed everything the primary has written so far."""
        (target,) = self.execute(port=self.primary_port, sql="SELECT pg_current_wal_insert_lsn()")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            (done,) = self.execute(
                port=self.replica_port,
                sql=f"SELECT pg_last_wal_replay_lsn() >= '{target}'::pg_lsn",
            )
            if done:
                return
            time.sleep(0.02)
        raise RuntimeError(f"the replica did not replay up to {target} in {timeout} s")

    def stop(self) -> None:
        """Stop both servers, whatever state a test left them in, and delete their folder."""
        for data_dir, port in (
            (self.replica_dir, self.replica_port),
            (self.primary_dir, self.primary_port),
        ):
            if (data_dir / "postmaster.pid").exists():
                with contextlib.suppress(RuntimeError):
                    self._pg_ctl(data_dir, port, "stop", "-m", "immediate")
        shutil.rmtree(self.root, ignore_errors=True)
