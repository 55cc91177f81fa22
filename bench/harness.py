"""What every bench case uses: the shop's names, requests to the server and to `bench.inproc`,
the load driver's checkout spec, and the stock checks that follow a load."""

import json
import subprocess
import sys
import urllib.request
from datetime import UTC, datetime
from typing import Any

from bench import stack

SHOP_DB = stack.DB_PREFIX
REFERENCE_DB = f"{stack.DB_PREFIX}_ref"
HOT_SKUS = [f"BENCH-{n:05d}" for n in range(1, 6)]
ALL_SKUS = [f"BENCH-{n:05d}" for n in range(1, 10_001)]
BUYERS = 64
# The shipping address of every bench order.
ADDRESS = {
    "name": "Bench Buyer",
    "line1": "1 Load Street",
    "city": "Loopback",
    "postal_code": "12345",
    "country": "DE",
}
ALL_CASES = ("B1", "B2", "B2R", "CONN", "B3", "B4", "B5", "CPU")
REQUEST_CAP = 30_000


def log(message: str) -> None:
    print(f"[{datetime.now(UTC):%H:%M:%S}] {message}", flush=True)


def get_json(url: str) -> tuple[int, Any]:
    """GET `url`; its status and JSON body (an error's too: a problem or a probe's answer;
    the start of the text when the body is not JSON)."""
    request = urllib.request.Request(url, headers={"X-Forwarded-Proto": "https"})
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:
            return reply.status, json.loads(reply.read() or b"{}")
    except urllib.error.HTTPError as error:
        body = error.read()
        try:
            return error.code, json.loads(body)
        except ValueError:
            return error.code, {"body": body[:300].decode(errors="replace")}


def run_module(
    env: dict[str, str], module: str, *args: str, timeout: float
) -> subprocess.CompletedProcess:
    """Run `python -m <module> <args>` in the project with the bench's environment."""
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=stack.ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def load_shop(env: dict[str, str]) -> str:
    """Migrate the empty database `env` names and load the bench shop into it; return the
    loader's summary. Raises RuntimeError with the failing step's output."""
    migrated = stack.manage(env, "migrate", "--noinput", "-v0")
    if migrated.returncode:
        raise RuntimeError(f"migrate failed:\n{migrated.stderr[-3000:]}")
    shop = run_module(env, "bench.shop", timeout=900)
    if shop.returncode:
        raise RuntimeError(f"loading the shop failed:\n{shop.stderr[-3000:]}")
    return shop.stdout.strip()


def inproc(env: dict[str, str], *what: str) -> Any:
    """Run one of `bench.inproc`'s measurements in a process of its own; return its JSON."""
    done = run_module(env, "bench.inproc", *what, timeout=600)
    if done.returncode:
        raise RuntimeError(done.stderr.strip().splitlines()[-1] if done.stderr else "failed")
    return json.loads(done.stdout.strip().splitlines()[-1])


def stock_snapshot() -> dict:
    """What the next case is checked against: the last order id and availability per variant."""
    last = int(stack.psql(SHOP_DB, "SELECT coalesce(max(id), 0) FROM orders_order"))
    rows = stack.psql(
        SHOP_DB,
        # A level's available units, as inventory counts them (`available_units`).
        "SELECT l.variant_id, "
        "sum(greatest(l.on_hand - l.reserved - l.unavailable - l.safety_stock, 0)) "
        "FROM inventory_stocklevel l "
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
            "SELECT count(*) FROM inventory_stocklevel WHERE reserved + unavailable > on_hand "
            "OR reserved < 0 OR on_hand < 0",
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
