"""Run Stockwire's benchmarks: `python -m bench.run [--quick] [--only B1,B2,B3,B4,CONN]`.

Builds a production-like stack on 127.0.0.1 (gunicorn with 4 sync workers and DEBUG off, a fresh
PostgreSQL database `sw_bench`, the Redis cache on database 10, the Celery broker on 11 so the
outbox really publishes), loads a shop with history, drives it from a separate process, runs the
raw-SQL reference transactions with pgbench at the same concurrency in the same run, and writes
`bench/results/<date>.json`, the table in `bench/README.md` and `bench/results/latest.png`.
Every case is bounded (duration and request cap); a case whose code has not landed is recorded as
skipped with the reason instead of stopping the run.
"""

import argparse
import json
import resource
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import report, stack

SHOP_DB = "sw_bench"
REFERENCE_DB = "sw_bench_ref"
HOT_SKUS = [f"BENCH-{n:05d}" for n in range(1, 6)]
ALL_SKUS = [f"BENCH-{n:05d}" for n in range(1, 10_001)]
BUYERS = 64
ALL_CASES = ("B1", "B2", "CONN", "B3", "B4")
REQUEST_CAP = 30_000


def log(message: str) -> None:
    print(f"[{datetime.now(UTC):%H:%M:%S}] {message}", flush=True)


def post_json(url: str, body: dict, headers: dict | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={
            "Content-Type": "application/json",
            "X-Forwarded-Proto": "https",
            **(headers or {}),
        },
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:
            return reply.status, json.loads(reply.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, {"body": error.read()[:300].decode(errors="replace")}


def get_json(url: str) -> tuple[int, Any]:
    request = urllib.request.Request(url, headers={"X-Forwarded-Proto": "https"})
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:
            return reply.status, json.loads(reply.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, {"body": error.read()[:300].decode(errors="replace")}


def inproc(env: dict[str, str], *what: str) -> Any:
    done = subprocess.run(
        [sys.executable, "-m", "bench.inproc", *what],
        cwd=stack.ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if done.returncode:
        raise RuntimeError(done.stderr.strip().splitlines()[-1] if done.stderr else "failed")
    return json.loads(done.stdout.strip().splitlines()[-1])


# --- stock checks -----------------------------------------------------------------------------


def stock_snapshot() -> dict:
    """What the next case is checked against: the last order id and availability per variant."""
    last = int(stack.psql(SHOP_DB, "SELECT coalesce(max(id), 0) FROM orders_order"))
    rows = stack.psql(
        SHOP_DB,
        "SELECT l.variant_id, sum(l.on_hand - l.reserved) FROM inventory_stocklevel l "
        "JOIN inventory_warehouse w ON w.id = l.warehouse_id WHERE w.is_active "
        "GROUP BY l.variant_id",
    )
    available = {int(v): int(a) for v, a in (row.split("|") for row in rows.splitlines())}
    return {"last_order_id": last, "available": available}


def stock_check(before: dict) -> dict:
    """Oversold units of the orders placed since `before`, and the level invariants."""
    rows = stack.psql(
        SHOP_DB,
        "SELECT variant_id, sum(quantity) FROM orders_orderline "
        f"WHERE order_id > {before['last_order_id']} GROUP BY variant_id",
    )
    ordered = {int(v): int(q) for v, q in (row.split("|") for row in rows.splitlines() if row)}
    oversold = sum(max(0, q - before["available"].get(v, 0)) for v, q in ordered.items())
    orders = int(
        stack.psql(
            SHOP_DB, f"SELECT count(*) FROM orders_order WHERE id > {before['last_order_id']}"
        )
    )
    broken_levels = int(
        stack.psql(
            SHOP_DB,
            "SELECT count(*) FROM inventory_stocklevel WHERE reserved > on_hand OR reserved < 0 "
            "OR on_hand < 0",
        )
    )
    return {
        "orders_written": orders,
        "units_ordered": sum(ordered.values()),
        "oversold_units": oversold,
        "levels_reserved_above_on_hand": broken_levels,
    }


def inventory_verify(env: dict[str, str]) -> dict:
    done = stack.manage(env, "inventory_verify", timeout=300)
    output = (done.stdout + done.stderr).strip().splitlines()
    return {"returncode": done.returncode, "output": output[-6:]}


# --- the cases --------------------------------------------------------------------------------


def checkout_load(
    server: stack.Server,
    *,
    concurrency: int,
    tokens: list[str],
    skus: list[str],
    duration: float,
    warmup: float,
    **overrides: Any,
) -> dict:
    """The driver's spec for orders through the API (`bench.load`'s checkout kind): 3 lines of
    1-5 units by default; `overrides` set lines, max_quantity, seed, max_requests or path."""
    return {
        "kind": "checkout",
        "base_url": server.base_url,
        "concurrency": concurrency,
        "duration": duration,
        "warmup": warmup,
        "max_requests": REQUEST_CAP,
        "tokens": tokens,
        "skus": skus,
        "lines": 3,
        "max_quantity": 5,
        **overrides,
    }


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


def b2_catalog(cfg: dict, env: dict, server: stack.Server, log_dir: Path, out: dict) -> None:
    product_paths = [f"/api/v1/products/bench-product-{p:04d}" for p in range(1, 2001)]
    list_paths = [f"/api/v1/products?limit=20&offset={20 * page}" for page in range(100)]
    cases = {
        "bare_json": ["/bench/bare"],
        "list_cached": ["/api/v1/products?limit=20&offset=0"],
        "detail_cached": ["/api/v1/products/bench-product-0007"],
    }
    clients = cfg["catalog_concurrency"]
    b2: dict = {}

    def run(name: str, base_url: str, paths: list[str], pids: list[int]) -> None:
        result = stack.drive(
            {
                "kind": "get",
                "base_url": base_url,
                "concurrency": clients,
                "duration": cfg["duration"],
                "warmup": cfg["warmup"],
                "max_requests": REQUEST_CAP,
                "paths": paths,
            },
            pids,
        )
        if all(status.startswith("2") for status in result["statuses"]):
            result.pop("sample_bodies", None)
        b2[name] = result
        log(
            f"B2 {name:15} c={clients}: {result['per_s']:7.1f} req/s p99 {result['p99_ms']} ms "
            f"{result['statuses']}"
        )

    for name, paths in cases.items():
        run(name, server.base_url, paths, server.worker_pids())
    # A shop that is selling: the first 5 list pages (the 100 products most shoppers see), and
    # the first 5 pages of products in stock, read while 8 buyers order 3 random SKUs of the
    # 10,000 each as fast as they can. Each order moves the stock of 3 products, so it makes
    # the pages showing those stale, and only those; none sells a product out.
    selling_reads = {
        "list_cached_while_ordering": list_paths[:5],
        "in_stock_cached_while_ordering": [
            f"/api/v1/products?in_stock=true&limit=20&offset={20 * page}" for page in range(5)
        ],
    }
    tokens = inproc(env, "buyers", "8")
    b2["orders_alongside"] = {}
    for name, paths in selling_reads.items():
        selling = checkout_load(
            server,
            concurrency=8,
            tokens=tokens,
            skus=ALL_SKUS,
            duration=cfg["duration"],
            warmup=cfg["warmup"],
            max_quantity=2,
            seed=99,
        )
        with ThreadPoolExecutor(max_workers=1) as background:
            orders = background.submit(stack.drive, selling)
            # No worker CPU per request here: the same workers also serve the orders.
            run(name, server.base_url, paths, [])
            b2["orders_alongside"][name] = orders.result()
        log(f"B2 orders alongside {name}: {b2['orders_alongside'][name]['per_s']} orders/s")
    # Uncached: the same code on a server whose cache never hits (DummyCache), walking 100
    # list pages and 2,000 product pages, so every request runs the selectors and serialisers.
    with stack.running({**env, "BENCH_CACHE": "dummy"}, log_dir, "uncached") as uncached:
        run("list_uncached", uncached.base_url, list_paths, uncached.worker_pids())
        run("detail_uncached", uncached.base_url, product_paths, uncached.worker_pids())
    bare = b2["bare_json"]["per_s"] or 1
    b2["ratios_to_bare"] = {
        name: round(b2[name]["per_s"] / bare, 3)
        for name in (
            "list_cached",
            "detail_cached",
            *selling_reads,
            "list_uncached",
            "detail_uncached",
        )
    }
    out["B2"] = b2


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


def b3_import(cfg: dict, env: dict, server: stack.Server, out: dict) -> None:
    """100,000 CSV rows through `manage.py import_catalog`, then what the API shows."""
    rows = cfg["import_rows"]
    existing = 1_000
    new_skus = (rows - existing) // 2
    probe_slug = "bench-product-0002"  # its SKUs BENCH-00006..10 are re-priced by the file
    status, before = get_json(f"{server.base_url}/api/v1/products/{probe_slug}")
    if status != 200:
        raise RuntimeError(f"product detail answered {status}")
    with tempfile.NamedTemporaryFile("w", suffix=".csv", delete=False) as csv:
        csv.write("sku,product,variant,category,price,warehouse,on_hand\n")
        for n in range(6, 6 + existing):
            product = (n - 1) // 5 + 1
            csv.write(
                f"BENCH-{n:05d},Bench product {product:04d},Size {(n - 1) % 5 + 1},"
                f"Department 1 > Aisle 1.1,{77 + n % 3}.50,north,50\n"
            )
        for n in range(new_skus):
            product = n // 4
            for warehouse in ("main", "north"):
                csv.write(
                    f"IMP-{n:06d},Imported item {product:05d},Model {n % 4},"
                    f"Imported > Shelf {product % 10},{10 + n % 50}.25,{warehouse},100\n"
                )
        path = csv.name
    started = time.perf_counter()
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = stack.manage(env, "import_catalog", path, timeout=900)
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - children.ru_utime - children.ru_stime
    Path(path).unlink()
    result: dict = {
        "rows": existing + 2 * new_skus,
        "seconds": round(seconds, 1),
        "returncode": done.returncode,
        "output": (done.stdout + done.stderr).strip().splitlines()[-5:],
    }
    result["rows_per_s"] = round(result["rows"] / seconds, 1)
    # The command's own CPU (PostgreSQL's is not in it): rows per CPU-second barely changes
    # when other work shares the machine.
    result["command_cpu_s"] = round(cpu, 1)
    result["rows_per_command_cpu_s"] = round(result["rows"] / max(cpu, 0.001), 1)
    log(
        f"B3: {result['rows']} rows in {seconds:.1f} s = {result['rows_per_s']} rows/s "
        f"(rc {done.returncode})"
    )
    checks = {}
    status, after = get_json(f"{server.base_url}/api/v1/products/{probe_slug}")
    by_sku = {v["sku"]: v for v in after.get("variants", [])} if status == 200 else {}
    old = {v["sku"]: v for v in before.get("variants", [])}
    checks["cached_detail_shows_new_price"] = by_sku.get("BENCH-00006", {}).get("price") == "77.50"
    checks["cached_detail_shows_new_stock"] = (
        by_sku.get("BENCH-00006", {}).get("available", 0)
        == old.get("BENCH-00006", {}).get("available", 0) + 50
    )
    probe = new_skus // 8 // 2
    status, found = get_json(
        f"{server.base_url}/api/v1/products?q=Imported%20item%20{probe:05d}&limit=50"
    )
    names = [item.get("name") for item in found.get("items", [])] if status == 200 else []
    checks["search_finds_imported_product"] = f"Imported item {probe:05d}" in names
    status, detail = get_json(f"{server.base_url}/api/v1/products/imported-item-{probe:05d}")
    checks["imported_detail_has_stock"] = status == 200 and all(
        v.get("available") == 200 for v in detail.get("variants", [])
    )
    result["checks"] = checks
    log(f"B3 checks: {checks}")
    out["B3"] = result


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
    stack.redis_flush(10, 11, 12)
    stack.recreate_database(SHOP_DB)
    migrated = stack.manage(env, "migrate", "--noinput", "-v0")
    if migrated.returncode:
        raise SystemExit(f"migrate failed:\n{migrated.stderr[-3000:]}")
    shop = subprocess.run(
        [sys.executable, "-m", "bench.shop"],
        cwd=stack.ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if shop.returncode:
        raise SystemExit(f"loading the shop failed:\n{shop.stderr[-3000:]}")
    log(shop.stdout.strip())
    out["shop"] = shop.stdout.strip()

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
    attempt("CONN", conn_choice, cfg, env, log_dir, out)
    if "B4" in only:
        try:
            out["B4"] = inproc(env, "signals")
            log(f"B4: {out['B4']}")
        except Exception as error:
            out["skipped"]["B4"] = str(error)[:500]
            log(f"B4 not measured: {error}")
    out["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    stack.redis_flush(10, 11, 12)
    # A partial run writes its JSON only: the README's tables show one complete run.
    path = report.write(out, publish=only >= set(ALL_CASES))
    log(f"results in {path}")


if __name__ == "__main__":
    main()
