"""B2: catalog reads, cached and not, and while the shop sells, against a bare JSON view."""

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench import stack
from bench.harness import ALL_SKUS, REQUEST_CAP, checkout_load, inproc, log

# Uncached walks: 100 list pages and 2,000 product pages, so every request builds its page.
PRODUCT_PATHS = [f"/api/v1/products/bench-product-{p:04d}" for p in range(1, 2001)]
LIST_PATHS = [f"/api/v1/products?limit=20&offset={20 * page}" for page in range(100)]
# A shop that is selling: the first 5 list pages (the 100 products most shoppers see), and the
# first 5 pages of products in stock, read while 8 buyers order 3 random SKUs of the 10,000 each
# as fast as they can. Each order moves the stock of 3 products, so it makes the pages showing
# those stale, and only those; none sells a product out.
SELLING_PAGES = {
    "list_cached_while_ordering": LIST_PATHS[:5],
    "in_stock_cached_while_ordering": [
        f"/api/v1/products?in_stock=true&limit=20&offset={20 * page}" for page in range(5)
    ],
}


def b2_catalog(cfg: dict, env: dict, server: stack.Server, log_dir: Path, out: dict) -> None:
    cases = {
        "bare_json": ["/bench/bare"],
        "list_cached": ["/api/v1/products?limit=20&offset=0"],
        "detail_cached": ["/api/v1/products/bench-product-0007"],
    }
    b2: dict = {}

    def run(name: str, base_url: str, paths: list[str], pids: list[int]) -> None:
        b2[name] = read_load(cfg, name, base_url, paths, pids)

    for name, paths in cases.items():
        run(name, server.base_url, paths, server.worker_pids())
    tokens = inproc(env, "buyers", "8")
    b2["orders_alongside"] = {}
    for name, paths in SELLING_PAGES.items():
        b2[name], b2["orders_alongside"][name] = read_while_ordering(
            cfg, name, server, paths, tokens
        )
    # Uncached: the same code on a server whose cache never hits (DummyCache), so every request
    # runs the selectors and serialisers.
    with stack.running({**env, "BENCH_CACHE": "dummy"}, log_dir, "uncached") as uncached:
        run("list_uncached", uncached.base_url, LIST_PATHS, uncached.worker_pids())
        run("detail_uncached", uncached.base_url, PRODUCT_PATHS, uncached.worker_pids())
    bare = b2["bare_json"]["per_s"] or 1
    b2["ratios_to_bare"] = {
        name: round(b2[name]["per_s"] / bare, 3)
        for name in (
            "list_cached",
            "detail_cached",
            *SELLING_PAGES,
            "list_uncached",
            "detail_uncached",
        )
    }
    out["B2"] = b2


def read_load(
    cfg: dict, name: str, base_url: str, paths: list[str], pids: list[int]
) -> dict[str, Any]:
    """GET `paths` in turn from `cfg["catalog_concurrency"]` connections; the driver's result
    (with the workers' CPU per request when `pids` are given), logged as case `name`."""
    clients = cfg["catalog_concurrency"]
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
    log(
        f"B2 {name:15} c={clients}: {result['per_s']:7.1f} req/s p99 {result['p99_ms']} ms "
        f"{result['statuses']}"
    )
    return result


def read_while_ordering(
    cfg: dict, name: str, server: stack.Server, paths: list[str], tokens: list[str]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """`read_load` of `paths` while 8 buyers order 3 random SKUs of the 10,000 each (1-2 units,
    so none sells out) on the same server; the reads' result and the orders'."""
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
        reads = read_load(cfg, name, server.base_url, paths, [])
        ordered = orders.result()
    log(f"B2 orders alongside {name}: {ordered['per_s']} orders/s")
    return reads, ordered
