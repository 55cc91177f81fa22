"""The benchmark's stack on 127.0.0.1: its own databases, Redis numbers, gunicorn servers, pgbench.

Every database the bench makes is named `sw_bench*` (`BENCH_DB_PREFIX*` when set) and every Redis
database it uses is 10-13 (13: the live updates' channel layer),
so a run never touches anybody else's data. Every process it starts is bounded in time and
stopped by its own pid.
"""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
PG = {"host": "127.0.0.1", "port": "5432", "user": "postgres"}
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
REFERENCE = ROOT / "bench" / "reference"
# Every database the bench makes starts with this; `BENCH_DB_PREFIX` (which must start with
# `sw_`) lets a developer run it beside another bench run on a shared PostgreSQL.
DB_PREFIX = os.environ.get("BENCH_DB_PREFIX", "sw_bench")
assert DB_PREFIX.startswith("sw_"), DB_PREFIX
GUNICORN_WORKERS = 4
# config.settings.ASGI_APPLICATION in Daphne's form: the driver runs without Django set up.
ASGI_APPLICATION = "config.asgi:application"


def pg_args() -> list[str]:
    return ["-h", PG["host"], "-p", PG["port"], "-U", PG["user"]]


def database_url(name: str) -> str:
    return f"postgres://{PG['user']}@{PG['host']}:{PG['port']}/{name}"


def psql(database: str, sql: str | None = None, file: Path | None = None) -> str:
    """Run SQL (or a file) with psql and return its unaligned output."""
    command = ["psql", *pg_args(), "-d", database, "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1"]
    command += ["-c", sql] if sql is not None else ["-f", str(file)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    if done.returncode:
        raise RuntimeError(f"psql failed: {done.stderr.strip()}")
    return done.stdout.strip()


def recreate_database(name: str) -> None:
    """Drop and create one of the bench's own databases."""
    assert name.startswith(DB_PREFIX), name
    subprocess.run(["dropdb", *pg_args(), "--if-exists", "--force", name], check=True, timeout=60)
    subprocess.run(["createdb", *pg_args(), name], check=True, timeout=60)


def drop_database(name: str) -> None:
    assert name.startswith(DB_PREFIX), name
    subprocess.run(["dropdb", *pg_args(), "--if-exists", "--force", name], check=True, timeout=60)


def redis_flush(*numbers: int) -> None:
    """Empty the bench's own Redis databases (10-13 only)."""
    import redis

    for number in numbers:
        assert 10 <= number <= 13, number
        redis.Redis.from_url(REDIS_URL, db=number).flushdb()


def app_env(database: str, **extra: str) -> dict[str, str]:
    """The production-like environment of every bench process (servers, commands, in-process)."""
    base = REDIS_URL.rsplit("/", 1)[0]
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "bench.settings",
        "DEBUG": "False",
        "SECRET_KEY": "bench-secret-key-not-for-production-0123456789abcdef",
        "PAYMENT_WEBHOOK_SECRET": "whsec_bench",
        "DATABASE_URL": database_url(database),
        "REDIS_URL": f"{base}/10",
        "REDIS_CACHE_DB": "10",
        "CELERY_BROKER_URL": f"{base}/11",
        "CELERY_RESULT_BACKEND": f"{base}/12",
        # The live updates' channel layer: web pushes to the sockets Daphne holds (B5).
        "REDIS_CHANNEL_LAYER_DB": "13",
        "CELERY_TASK_DEFAULT_QUEUE": "bench",
        "EMAIL_URL": "dummymail://",
        "ALLOWED_HOSTS": "127.0.0.1,localhost,testserver",
        "LOG_LEVEL": os.environ.get("BENCH_LOG_LEVEL", "INFO"),
        "PYTHONUNBUFFERED": "1",
    }
    env.update(extra)
    return env


def manage(env: dict[str, str], *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [PYTHON, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _healthy_or_raise(
    name: str,
    process: subprocess.Popen,
    url: str,
    log: IO,
    ready: Callable[[], bool] = lambda: True,
) -> None:
    """Return once `url` answers 200 and `ready()` holds; raise if the server `name` exits or
    30 s pass first (naming its log)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited, see {log.name}")
        try:
            with urllib.request.urlopen(url, timeout=2) as reply:
                if reply.status == 200 and ready():
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{name} did not answer {url} in 30 s, see {log.name}")


def terminate(process: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL after 15 s: a server that will not stop does not hang the run."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


class Server:
    """gunicorn with 4 sync workers, as the Dockerfile runs it, on a loopback port."""

    def __init__(self, env: dict[str, str], log_dir: Path, name: str) -> None:
        self.env = env
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log = open(log_dir / f"gunicorn-{name}.log", "w")  # noqa: SIM115
        self.process: subprocess.Popen | None = None

    def start(self) -> "Server":
        self.process = subprocess.Popen(
            [
                PYTHON,
                "-m",
                "gunicorn",
                "config.wsgi:application",
                "--bind",
                f"127.0.0.1:{self.port}",
                "--workers",
                str(GUNICORN_WORKERS),
                "--timeout",
                "30",
                "--graceful-timeout",
                "5",
                "--backlog",
                "2048",
            ],
            cwd=ROOT,
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        _healthy_or_raise(
            "gunicorn",
            self.process,
            f"{self.base_url}/healthz",
            self.log,
            ready=lambda: len(self.worker_pids()) == GUNICORN_WORKERS,
        )
        return self

    def worker_pids(self) -> list[int]:
        assert self.process is not None
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return [int(pid) for pid in children.read_text().split()] if children.exists() else []

    def stop(self) -> None:
        if self.process is not None:
            terminate(self.process)
        self.log.close()


class LiveServer:
    """Daphne serving the live sockets (config.asgi), as the compose file's `live` service."""

    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.port = free_port()
        self.ws_url = f"ws://127.0.0.1:{self.port}"
        self.log = open(log_dir / "daphne-live.log", "w")  # noqa: SIM115
        self.process = subprocess.Popen(
            [PYTHON, "-m", "daphne", "-b", "127.0.0.1", "-p", str(self.port), ASGI_APPLICATION],
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        try:
            _healthy_or_raise(
                "daphne", self.process, f"http://127.0.0.1:{self.port}/healthz", self.log
            )
        except RuntimeError:
            self.stop()
            raise

    def rss_kib(self) -> int:
        """The server's resident memory now."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    def stop(self) -> None:
        terminate(self.process)
        self.log.close()


@contextmanager
def running(env: dict[str, str], log_dir: Path, name: str):
    server = Server(env, log_dir, name).start()
    try:
        yield server
    finally:
        server.stop()


def cpu_times() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def load_average() -> float:
    """The machine's 1-minute load average: above the core count, others compete for the CPU."""
    return float(Path("/proc/loadavg").read_text().split()[0])


def process_cpu_seconds(pids: list[int], *, reaped: bool = False) -> float:
    """User + system CPU the processes `pids` have used so far (from /proc/<pid>/stat); with
    `reaped`, also that of the children they have waited for (exited ones still count)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(field) for field in fields[11 : 15 if reaped else 13])
    return total / ticks


def drive(spec: dict[str, Any], server_pids: list[int] | None = None) -> dict[str, Any]:
    """Run the load driver in its own process; return its result plus the CPU it cost.

    `cpu_busy_pct` is the whole machine's; with `server_pids` (the gunicorn workers) the result
    also has `app_cpu_ms_per_request`, the workers' own CPU per request answered (warm-up
    included), which other load on the machine barely changes.
    """
    app_cpu0 = process_cpu_seconds(server_pids or [])
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(spec, handle)
    busy0, total0 = cpu_times()
    try:
        done = subprocess.run(
            [PYTHON, "-m", "bench.load", handle.name],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=spec["duration"] + spec.get("warmup", 0) + 60,
            check=False,
        )
    finally:
        os.unlink(handle.name)
    busy1, total1 = cpu_times()
    if done.returncode:
        raise RuntimeError(f"load driver failed: {done.stderr[-2000:]}")
    result = json.loads(done.stdout)
    result["cpu_busy_pct"] = round(100 * (busy1 - busy0) / max(1, total1 - total0), 1)
    result["load_average"] = load_average()
    if server_pids:
        served = result["requests"] + result["warmup_requests"]
        app_cpu = process_cpu_seconds(server_pids) - app_cpu0
        result["app_cpu_ms_per_request"] = round(1000 * app_cpu / max(1, served), 2)
    return result


def pgbench(database: str, script: Path, clients: int, duration: int) -> dict[str, Any]:
    """One reference case: reset the data (as the reference README says), then pgbench."""
    psql(database, file=REFERENCE / "reset.sql")
    with tempfile.TemporaryDirectory() as log_dir:
        busy0, total0 = cpu_times()
        done = subprocess.run(
            [
                "pgbench",
                *pg_args(),
                "-n",
                "-j",
                str(min(2, clients)),
                "-c",
                str(clients),
                "-T",
                str(duration),
                "-f",
                str(script),
                "-l",
                "--log-prefix",
                f"{log_dir}/tx",
                database,
            ],
            capture_output=True,
            text=True,
            timeout=duration + 120,
            check=False,
        )
        busy1, total1 = cpu_times()
        if done.returncode:
            raise RuntimeError(f"pgbench failed: {done.stderr[-2000:]}")
        latencies = sorted(
            int(line.split()[2])
            for log in Path(log_dir).iterdir()
            for line in log.read_text().splitlines()
            if line.strip()
        )
    tps = float(re.search(r"tps = ([\d.]+)", done.stdout).group(1))
    failed = re.search(r"number of failed transactions: (\d+)", done.stdout)

    def pct(fraction: float) -> float:
        if not latencies:
            return 0.0
        index = min(len(latencies) - 1, max(0, round(fraction * len(latencies)) - 1))
        return round(latencies[index] / 1000, 1)

    return {
        "concurrency": clients,
        "per_s": round(tps, 1),
        "transactions": len(latencies),
        "failed": int(failed.group(1)) if failed else 0,
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "cpu_busy_pct": round(100 * (busy1 - busy0) / max(1, total1 - total0), 1),
        "load_average": load_average(),
    }
