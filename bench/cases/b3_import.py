"""B3: a 100,000-row `manage.py import_catalog`, then what the API shows of it."""

import resource
import tempfile
import time
from pathlib import Path

from bench import stack
from bench.harness import (
    get_json,
    log,
)


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
