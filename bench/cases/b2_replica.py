"""B2R: how much of the catalog a streaming replica serves (`DATABASE_REPLICA_URLS`).

The machine's PostgreSQL refuses replication connections, so this case starts a primary and a hot
standby of its own from the installed binaries (`tests/replica_pair.py`, as the replica tests
do), loads the bench shop into the primary, waits for the standby to replay it, and serves the
catalog from two gunicorn servers with `DATABASE_REPLICA_URLS` set:

- one whose cache never hits (`BENCH_CACHE=dummy`), walking B2's 100 list pages and 2,000
  product pages: every request builds its page, and a build that stores nothing reads the
  replica without asking how far the primary has written;
- one with the real cache, reading B2's selling-shop pages while 8 buyers order on it: each
  build stored as current first asks the primary for its commit position and waits up to 50 ms
  for the replica to replay it (`core.replicas.caught_up_with_primary`), else reads the primary.

Per case: req/s and p99 as in B2; the opted-in reads by where they were served (`replica`,
`primary`, `fallback`), summed over the 4 workers' counters in `/readyz` before and after; and
the CPU each cluster's processes took per request (backends, WAL sender and receiver, replay).
"""

import itertools
import shutil
import time
from pathlib import Path
from typing import Any

from bench import stack
from bench.cases.b2_catalog import (
    LIST_PATHS,
    PRODUCT_PATHS,
    SELLING_PAGES,
    read_load,
    read_while_ordering,
)
from bench.harness import SHOP_DB, get_json, inproc, load_shop, log
from tests.replica_pair import StreamingPair

# The pair holds the whole bench shop and a server's connections (each of its 4 workers keeps
# one to the primary and one to the replica, and its replica monitor a session to each), with
# room for the shop's loader and the buyers' registration.
PAIR_SETTINGS = {"shared_buffers": "128MB", "max_connections": "100"}
OUTCOMES = ("replica", "primary", "fallback")


def b2_replica(cfg: dict, env: dict, log_dir: Path, out: dict) -> None:
    pair = StreamingPair(PAIR_SETTINGS)
    try:
        pair.start()
        pair.execute(port=pair.primary_port, sql=f"CREATE DATABASE {SHOP_DB}")
        primary_env = {**env, "DATABASE_URL": pair.url(port=pair.primary_port, dbname=SHOP_DB)}
        log(f"B2R shop on the pair's primary: {load_shop(primary_env)}")
        pair.wait_replayed(timeout=300)
        replica_env = {
            **primary_env,
            "DATABASE_REPLICA_URLS": pair.url(port=pair.replica_port, dbname=SHOP_DB),
        }
        b2r: dict[str, Any] = {}
        # The main run's servers cached the same pages of the other database's shop.
        stack.redis_flush(10)
        uncached_env = {**replica_env, "BENCH_CACHE": "dummy"}
        with stack.running(uncached_env, log_dir, "replica-uncached") as uncached:
            _replicas_up(uncached)
            for name, paths in (("list_uncached", LIST_PATHS), ("detail_uncached", PRODUCT_PATHS)):
                with _counted(pair, uncached, b2r, name):
                    b2r[name] = read_load(
                        cfg, f"{name} (replica)", uncached.base_url, paths, uncached.worker_pids()
                    )
        tokens = inproc(primary_env, "buyers", "8")
        stack.redis_flush(10)
        with stack.running(replica_env, log_dir, "replica") as server:
            _replicas_up(server)
            for name, paths in SELLING_PAGES.items():
                with _counted(pair, server, b2r, name):
                    b2r[name], orders = read_while_ordering(
                        cfg, f"{name} (replica)", server, paths, tokens
                    )
                b2r[name]["orders_alongside_per_s"] = orders["per_s"]
        out["B2R"] = b2r
    finally:
        for log_file in pair.root.glob("*.log"):  # the servers' logs, kept past the pair
            shutil.copy(log_file, log_dir / f"b2r-{log_file.name}")
        pair.stop()


class _counted:
    """Around one case: where its opted-in reads were served and each cluster's CPU per
    request, added to `b2r[name]` when the case has run."""

    def __init__(self, pair: StreamingPair, server: stack.Server, b2r: dict, name: str) -> None:
        self.pair, self.server, self.b2r, self.name = pair, server, b2r, name

    def __enter__(self) -> None:
        self.reads = _reads_served(self.server)
        self.cpu = _cluster_cpu_seconds(self.pair)

    def __exit__(self, exc_type, *_) -> None:
        if exc_type is not None:
            return
        reads = _reads_served(self.server)
        cpu = _cluster_cpu_seconds(self.pair)
        result = self.b2r[self.name]
        served = {outcome: reads[outcome] - self.reads[outcome] for outcome in OUTCOMES}
        requests = max(1, result["requests"] + result["warmup_requests"])
        result["reads_served"] = served
        result["replica_share"] = round(served["replica"] / max(1, sum(served.values())), 3)
        result["cluster_cpu_ms_per_request"] = {
            role: round(1000 * (cpu[role] - self.cpu[role]) / requests, 3) for role in cpu
        }
        log(
            f"B2R {self.name}: reads served {served} (replica share "
            f"{result['replica_share']:.0%}); cluster CPU ms/request "
            f"{result['cluster_cpu_ms_per_request']}"
        )


def _replicas_up(server: stack.Server, timeout: float = 30) -> None:
    """Wait until every worker's replica monitor has found the replica up. A monitor starts
    checking (each second, in the background) at its worker's first opted-in read, and until it
    has an answer the worker reads the primary: so product pages are read meanwhile, each one
    not read before (a cached page reads no database)."""
    deadline = time.monotonic() + timeout
    unread = iter(reversed(PRODUCT_PATHS))
    while time.monotonic() < deadline:
        for path in itertools.islice(unread, 2 * stack.GUNICORN_WORKERS):
            get_json(f"{server.base_url}{path}")
        reports = _worker_reports(server).values()
        if all(
            report["replicas"] and all(replica["status"] == "up" for replica in report["replicas"])
            for report in reports
        ):
            return
        time.sleep(0.5)
    raise RuntimeError(f"the workers did not see the replica up in {timeout} s")


def _reads_served(server: stack.Server) -> dict[str, int]:
    """The opted-in reads all the server's workers have counted so far, by outcome."""
    reports = _worker_reports(server)
    return {
        outcome: sum(report["reads"][outcome] for report in reports.values())
        for outcome in OUTCOMES
    }


def _worker_reports(server: stack.Server, attempts: int = 400) -> dict[int, dict]:
    """Each worker's `replicas` report from `/readyz`: asked until every worker has answered
    (the kernel hands each connection to whichever worker accepts first)."""
    workers = set(server.worker_pids())
    reports: dict[int, dict] = {}
    for _ in range(attempts):
        body = _readiness(server)
        reports[body["replicas"]["pid"]] = body["replicas"]
        if workers <= reports.keys():
            return {pid: reports[pid] for pid in workers}
    raise RuntimeError(f"only workers {sorted(reports)} of {sorted(workers)} answered /readyz")


def _readiness(server: stack.Server) -> dict[str, Any]:
    """One worker's `/readyz` answer. The uncached server's cache keeps nothing, so its probe
    says the cache is unavailable (503); anything else failing stops the case."""
    status, body = get_json(f"{server.base_url}/readyz")
    if status == 200 or (status == 503 and body.get("failing") == ["cache"]):
        return body
    raise RuntimeError(f"/readyz answered {status}: {body}")


def _cluster_cpu_seconds(pair: StreamingPair) -> dict[str, float]:
    """CPU so far of every process of the primary's and of the replica's cluster: the
    postmaster's own, that of the children it has reaped (a backend that exited meanwhile
    still counts) and that of those alive."""
    cpu = {}
    for role, data_dir in (("primary", pair.primary_dir), ("replica", pair.replica_dir)):
        postmaster = int((data_dir / "postmaster.pid").read_text().split()[0])
        children = Path(f"/proc/{postmaster}/task/{postmaster}/children").read_text().split()
        cpu[role] = stack.process_cpu_seconds([postmaster], reaped=True)
        cpu[role] += stack.process_cpu_seconds([int(child) for child in children])
    return cpu
