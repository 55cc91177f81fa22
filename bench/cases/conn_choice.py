"""CONN: persistent connections against a connection per request and psycopg's pool."""

import subprocess
import sys
from pathlib import Path

from bench import stack
from bench.harness import (
    REQUEST_CAP,
    log,
)


def conn_choice(cfg: dict, env: dict, log_dir: Path, out: dict) -> None:
    """One ORM get at 32 connections: persistent (60 s) vs a new connection per request vs pool."""
    variants = {
        "conn_max_age_60": {"DB_CONN_MAX_AGE": "60"},
        "conn_max_age_0": {"DB_CONN_MAX_AGE": "0"},
        "psycopg_pool": {"BENCH_DB_POOL": "1"},
    }
    result: dict = {}
    for name, extra in variants.items():
        if name == "psycopg_pool":
            probe = subprocess.run(
                [sys.executable, "-c", "import psycopg_pool"], env=env, capture_output=True
            )
            if probe.returncode:
                result[name] = {"skipped": "psycopg_pool is not installed"}
                continue
        with stack.running({**env, **extra}, log_dir, name) as server:
            result[name] = stack.drive(
                {
                    "kind": "get",
                    "base_url": server.base_url,
                    "concurrency": 32,
                    "duration": cfg["duration"],
                    "warmup": cfg["warmup"],
                    "max_requests": REQUEST_CAP,
                    "paths": ["/bench/orm-get?id=1"],
                },
                server.worker_pids(),
            )
        log(f"CONN {name}: {result[name]['per_s']} req/s p99 {result[name]['p99_ms']} ms")
    out["CONN"] = result
