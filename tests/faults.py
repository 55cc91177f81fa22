"""Real faults for tests: a broker (or database) that refuses, hangs or works on demand, cut
database sessions, worker processes and relay loops.

`BrokerGate` listens on a local port the tests point Celery (or a process's DATABASE_URL) at.
Its mode decides what a client meets: `refuse` (nothing listens: connection refused),
`blackhole` (the connection is accepted and never answered, the hung-Redis case that needs
socket timeouts) or `forward` (bytes are piped to the real server, so it is up). Switching
modes drops every open connection, as a restarting server would.
"""

import contextlib
import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import redis
from django.db import connection

from conftest import celery_worker_command

PROJECT_DIR = Path(__file__).resolve().parent.parent

REFUSE = "refuse"
BLACKHOLE = "blackhole"
FORWARD = "forward"


def closed_port() -> int:
    """Return a local TCP port nothing listens on (connections to it are refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def port_open(port: int) -> bool:
    """Whether something accepts connections on the local TCP `port` now."""
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
        return True
    return False


def wait_until(condition: Callable[[], bool], *, timeout: float, interval: float = 0.05) -> bool:
    """Poll `condition` until it holds or `timeout` seconds pass; return whether it held."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return condition()


def backend_waiting_for_a_lock(*, on_table: str) -> int | None:
    """The pid of a session of this database that waits for a lock in a query on `on_table`."""
    with connection.cursor() as cursor:
        # Activity is a snapshot per transaction; a caller may poll inside one.
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
            " AND wait_event_type = 'Lock' AND query LIKE %s",
            [f"%{on_table}%"],
        )
        row = cursor.fetchone()
    return row[0] if row else None


def backend_terminate(pid: int) -> None:
    """Cut a session's connection from the server side, as a failover or an operator would."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", [pid])


class BrokerGate:
    """A TCP endpoint in front of Redis or PostgreSQL whose behaviour the test switches (see
    module doc)."""

    def __init__(self, *, target_url: str, mode: str = FORWARD) -> None:
        target = urlsplit(target_url)
        self.target = (target.hostname or "127.0.0.1", target.port or 6379)
        self.port = closed_port()
        self.mode = REFUSE
        self._listener: socket.socket | None = None
        self._connections: list[socket.socket] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()
        self.set_mode(mode)

    def url(self, database: int) -> str:
        return f"redis://127.0.0.1:{self.port}/{database}"

    def set_mode(self, mode: str) -> None:
        with self._lock:
            for conn in self._connections:
                with contextlib.suppress(OSError):
                    conn.close()
            self._connections.clear()
            if mode == REFUSE and self._listener is not None:
                self._listener.close()
                self._listener = None
            if mode != REFUSE and self._listener is None:
                listener = socket.socket()
                listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                listener.bind(("127.0.0.1", self.port))
                listener.listen(64)
                self._listener = listener
            self.mode = mode

    def close(self) -> None:
        self._stopping.set()
        self.set_mode(REFUSE)
        self._thread.join(timeout=2)

    def _serve(self) -> None:
        while not self._stopping.is_set():
            with self._lock:
                listener = self._listener
            if listener is None:
                time.sleep(0.02)
                continue
            try:
                readable, _, _ = select.select([listener], [], [], 0.05)
                if not readable:
                    continue
                client, _ = listener.accept()
            except (OSError, ValueError):
                continue  # the listener was closed by a mode switch
            with self._lock:
                if self.mode != FORWARD:
                    self._connections.append(client)  # accepted, never answered
                    continue
                try:
                    upstream = socket.create_connection(self.target, timeout=2)
                except OSError:
                    client.close()
                    continue
                self._connections += [client, upstream]
            threading.Thread(target=self._pipe, args=(client, upstream), daemon=True).start()

    @staticmethod
    def _pipe(client: socket.socket, upstream: socket.socket) -> None:
        pair = {client: upstream, upstream: client}
        try:
            while True:
                readable, _, _ = select.select(list(pair), [], [], 1)
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        return
                    pair[sock].sendall(data)
        except (OSError, ValueError):
            return
        finally:
            for sock in pair:
                with contextlib.suppress(OSError):
                    sock.close()


class WorkerProcess:
    """A real `celery worker` process whose output is collected for waits and failure messages."""

    def __init__(self, *, env: dict[str, str], queue: str, pool: str = "solo") -> None:
        self.name = f"w{uuid.uuid4().hex[:8]}@%h"
        self.lines: list[str] = []
        self.process = subprocess.Popen(
            celery_worker_command(queue=queue, hostname=self.name, pool=pool),
            cwd=PROJECT_DIR,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_ready(self, timeout: float = 30) -> None:
        ready = wait_until(
            lambda: " ready." in self.output or self.process.poll() is not None, timeout=timeout
        )
        if not ready or self.process.poll() is not None:
            raise RuntimeError(f"worker did not start:\n{self.output}")

    def signal(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signum)

    def stop(self) -> None:
        """Kill the worker (and any pool children) if it still runs; never leave one behind."""
        if self.process.poll() is None:
            self.signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.signal(signal.SIGKILL)
                self.process.wait(timeout=5)
        else:
            self.signal(signal.SIGKILL)  # orphaned pool children, if any
        self._reader.join(timeout=2)


@contextlib.contextmanager
def workers(*, env: dict[str, str], queue: str, count: int = 1) -> Iterator[list[WorkerProcess]]:
    """Start `count` workers on `queue`, wait until each is ready, and stop them all afterwards."""
    started: list[WorkerProcess] = []
    try:
        for _ in range(count):
            started.append(WorkerProcess(env=env, queue=queue))
        for worker in started:
            worker.wait_ready()
        yield started
    finally:
        for worker in started:
            worker.stop()


@contextlib.contextmanager
def celery_broker(url: str, *, queue: str) -> Iterator[None]:
    """Publish from this process to the broker at `url`, on `queue`, instead of running eagerly.

    Celery keeps its connection and producer pools once made; they are dropped on the way in and
    out so the next publish connects to whichever broker is current.
    """
    from django.conf import settings

    from config.celery import app

    previous = (
        app.conf.broker_url,
        app.conf.task_default_queue,
        app.conf.task_always_eager,
        settings.CELERY_TASK_ALWAYS_EAGER,
    )

    def drop_pools() -> None:
        app._pool = None
        app.amqp._producer_pool = None

    app.conf.broker_url = url
    app.conf.task_default_queue = queue
    app.conf.task_always_eager = False
    settings.CELERY_TASK_ALWAYS_EAGER = False
    drop_pools()
    try:
        yield
    finally:
        (
            app.conf.broker_url,
            app.conf.task_default_queue,
            app.conf.task_always_eager,
            settings.CELERY_TASK_ALWAYS_EAGER,
        ) = previous
        drop_pools()


@dataclass
class RelayLoop:
    """A running `manage.py outbox_relay --loop`, its log, and (after) what it left queued."""

    process: subprocess.Popen
    log_path: Path
    queued: list[str] = field(default_factory=list)

    @property
    def output(self) -> str:
        return self.log_path.read_text()

    def stop(self) -> int:
        """SIGTERM, as an orchestrator stops it; return its exit code."""
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=10)


@contextlib.contextmanager
def relay_loop(env: dict[str, str], log_path: Path, *, interval: float) -> Iterator[RelayLoop]:
    """Run `outbox_relay --loop` in its own process with `env` (listening when that env's
    settings leave publishing to the relay); afterwards make sure it is gone and note the task
    ids left in its broker queue, which is then emptied."""
    from django.conf import settings

    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    queue = env["CELERY_TASK_DEFAULT_QUEUE"]
    with log_path.open("w") as log:
        relay = RelayLoop(
            process=subprocess.Popen(
                [sys.executable, "manage.py", "outbox_relay", "--loop", f"--interval={interval}"],
                cwd=PROJECT_DIR,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            ),
            log_path=log_path,
        )
        try:
            yield relay
        finally:
            if relay.process.poll() is None:
                relay.process.kill()
                relay.process.wait(timeout=5)
            relay.queued = [json.loads(raw)["headers"]["id"] for raw in broker.lrange(queue, 0, -1)]
            broker.delete(queue)
