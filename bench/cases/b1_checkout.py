"""B1: checkout through the API, uncontended and on 5 hot SKUs, against the raw-SQL reference
and a naive ORM checkout at the same concurrency; then the scarce-stock run and profiles."""

import json
import subprocess
import tempfile
from pathlib import Path

from bench import report, stack
from bench.harness import (
    ALL_SKUS,
    BUYERS,
    HOT_SKUS,
    REFERENCE_DB,
    checkout_load,
    inproc,
    inventory_verify,
    log,
    stock_check,
    stock_snapshot,
)


def b1_checkout(cfg: dict, env: dict, server: stack.Server, out: dict) -> None:
    tokens = inproc(env, "buyers", str(BUYERS))
    log(f"B1: {len(tokens)} buyers registered")
    stack.recreate_database(REFERENCE_DB)
    stack.psql(REFERENCE_DB, file=stack.REFERENCE / "schema.sql")
    b1: dict = {
        "app": {"uncontended": [], "hot": []},
        "naive_orm": {"uncontended": [], "hot": []},
        "reference": {},
    }
    scripts = {
        "uncontended": "place_order_uncontended.pgbench",
        "hot": "place_order_hot.pgbench",
        "hot_locklate": "place_order_hot_locklate.pgbench",
    }
    for name in scripts:
        b1["reference"][name] = []
    for clients in cfg["concurrency"]:
        for case, skus in (("uncontended", ALL_SKUS), ("hot", HOT_SKUS)):
            spec = checkout_load(
                server,
                concurrency=clients,
                tokens=tokens,
                skus=skus,
                duration=cfg["duration"],
                warmup=cfg["warmup"],
                seed=clients,
            )
            before = stock_snapshot()
            result = stack.drive(spec, server.worker_pids())
            result.update(stock_check(before))
            b1["app"][case].append(result)
            log(
                f"B1 {case:11} c={clients:2}: {result['per_s']:7.1f} orders/s p50 "
                f"{result['p50_ms']} p99 {result['p99_ms']} ms {result['statuses']} "
                f"oversold {result['oversold_units']} cpu {result['cpu_busy_pct']}%"
            )
            # The same orders through the naive ORM checkout, on the reference's own tables.
            stack.psql(REFERENCE_DB, file=stack.REFERENCE / "reset.sql")
            naive = stack.drive({**spec, "path": "/bench/naive-checkout"}, server.worker_pids())
            b1["naive_orm"][case].append(naive)
            log(
                f"B1 naive ORM {case:11} c={clients:2}: {naive['per_s']:7.1f} orders/s "
                f"p99 {naive['p99_ms']} ms {naive['statuses']}"
            )
        for name, script in scripts.items():
            ref = stack.pgbench(
                REFERENCE_DB, stack.REFERENCE / script, clients, cfg["reference_duration"]
            )
            b1["reference"][name].append(ref)
            log(f"B1 ref {name:12} c={clients:2}: {ref['per_s']:7.1f} tx/s p99 {ref['p99_ms']} ms")
    stack.drop_database(REFERENCE_DB)

    # Scarce: 10 units, 64 buyers of one unit each: exactly 10 orders may succeed.
    before = stock_snapshot()
    scarce = stack.drive(
        checkout_load(
            server,
            concurrency=64,
            tokens=tokens,
            skus=["BENCH-SCARCE"],
            duration=3,
            warmup=0,
            max_requests=640,
            lines=1,
            max_quantity=1,
        )
    )
    scarce.update(stock_check(before))
    b1["scarce_10_units_64_buyers"] = scarce
    log(f"B1 scarce: {scarce['statuses']} oversold {scarce['oversold_units']}")
    b1["inventory_verify"] = inventory_verify(env)
    try:
        b1["queries"] = inproc(env, "queries")
    except Exception as error:
        b1["queries"] = {"skipped": str(error)}
    log(f"B1 queries: {json.dumps(b1['queries'])[:400]}")
    try:
        b1["cpu_profile"] = inproc(env, "cpu")
    except Exception as error:
        b1["cpu_profile"] = {"skipped": str(error)}
    if cfg["profile"]:
        b1["profile_hot_64"] = profile_hot(cfg, server, tokens)
    out["B1"] = b1


def profile_hot(cfg: dict, server: stack.Server, tokens: list[str]) -> dict:
    """py-spy on every worker while 64 buyers hammer the hot SKUs (a run of its own)."""
    py_spy = report.find_py_spy()
    if not py_spy:
        return {"skipped": "py-spy not found (pip install py-spy, or set BENCH_PY_SPY)"}
    hot = checkout_load(server, concurrency=64, tokens=tokens, skus=HOT_SKUS, duration=3, warmup=0)
    stack.drive(hot)  # warm every worker up before sampling
    with tempfile.TemporaryDirectory() as folder:
        spies = [
            subprocess.Popen(
                [
                    py_spy,
                    "record",
                    "--pid",
                    str(pid),
                    "--duration",
                    str(cfg["duration"]),
                    "--rate",
                    "100",
                    "--idle",
                    "--nonblocking",
                    "--format",
                    "raw",
                    "--output",
                    f"{folder}/{pid}.txt",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for pid in server.worker_pids()
        ]
        load = stack.drive({**hot, "duration": cfg["duration"]})
        for spy in spies:
            spy.wait(timeout=cfg["duration"] + 30)
        profile = report.summarize_profile(Path(folder))
    profile["load_under_profiler"] = {k: load[k] for k in ("per_s", "p99_ms", "cpu_busy_pct")}
    return profile
