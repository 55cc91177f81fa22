"""Run Stockwire's benchmarks: `python -m bench.run [--quick] [--only B1,B2,B2R,B3,B4,B5,CONN,CPU]`.

Builds a production-like stack on 127.0.0.1 (gunicorn with 4 sync workers and DEBUG off, a fresh
PostgreSQL database `sw_bench`, the Redis cache on database 10, the Celery broker on 11 so the
outbox really publishes), loads a shop with history, drives it from a separate process, runs the
raw-SQL reference transactions with pgbench at the same concurrency in the same run, and writes
`bench/results/<date>.json`, the table in `bench/README.md` and `bench/results/latest.png`.
Every case is bounded (duration and request cap); a case whose code has not landed is recorded as
skipped with the reason instead of stopping the run.
"""

import argparse
import signal
import sys
import traceback
from datetime import UTC, datetime

from bench import report, stack
from bench.cases.b1_checkout import b1_checkout
from bench.cases.b2_catalog import b2_catalog
from bench.cases.b2_replica import b2_replica
from bench.cases.b3_import import b3_import
from bench.cases.b4_signals import b4_signals
from bench.cases.b5_live import b5_live
from bench.cases.checkout_cpu import checkout_cpu
from bench.cases.conn_choice import conn_choice
from bench.harness import ALL_CASES, SHOP_DB, load_shop, log


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer, shorter cases (~5 min)")
    parser.add_argument("--only", default=",".join(ALL_CASES), help="comma-separated cases")
    parser.add_argument("--no-profile", action="store_true", help="skip the py-spy profile")
    args = parser.parse_args()
    # A stopped run still stops its servers (the `running` context managers' finally blocks).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("bench.run stopped by SIGTERM"))
    only = set(args.only.upper().split(","))
    cfg = {
        "concurrency": [1, 8, 64] if args.quick else [1, 8, 32, 64],
        "duration": 5 if args.quick else 12,
        "reference_duration": 5 if args.quick else 12,
        "warmup": 1 if args.quick else 2,
        "catalog_concurrency": 32,
        "import_rows": 100_000,
        "profile": not args.no_profile,
        "live_sockets": 1000,
        "live_buyers": 8,
    }
    started = datetime.now(UTC)
    out: dict = {
        "started_at": started.isoformat(timespec="seconds"),
        "commit": report.git_commit(),
        "machine": report.machine(),
        "config": cfg,
        "skipped": {},
    }
    log_dir = stack.ROOT / "bench" / "results" / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    env = stack.app_env(SHOP_DB)
    stack.redis_flush(10, 11, 12, 13)
    stack.recreate_database(SHOP_DB)
    try:
        out["shop"] = load_shop(env)
    except RuntimeError as error:
        raise SystemExit(str(error)) from error
    log(out["shop"])

    def attempt(name: str, function, *call_args) -> None:
        if name not in only:
            return
        try:
            function(*call_args)
        except Exception as error:
            out["skipped"][name] = f"{type(error).__name__}: {error}"[:500]
            log(f"{name} not measured: {out['skipped'][name]}")
            traceback.print_exc(limit=3)

    with stack.running(env, log_dir, "main") as server:
        attempt("B1", b1_checkout, cfg, env, server, out)
        attempt("B2", b2_catalog, cfg, env, server, log_dir, out)
        attempt("B3", b3_import, cfg, env, server, out)
        attempt("B5", b5_live, cfg, env, server, log_dir, out)
    attempt("B2R", b2_replica, cfg, env, log_dir, out)
    attempt("CONN", conn_choice, cfg, env, log_dir, out)
    attempt("B4", b4_signals, env, out)
    attempt("CPU", checkout_cpu, env, out)
    out["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    stack.redis_flush(10, 11, 12, 13)
    # A partial run writes its JSON only: the README's tables show one complete run.
    path = report.write(out, publish=only >= set(ALL_CASES))
    log(f"results in {path}")


if __name__ == "__main__":
    main()
