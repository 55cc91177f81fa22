"""Measurements taken inside one Django process on the bench database (not under load).

`python -m bench.inproc buyers N|queries|cpu|checkout_cpu|signals` prints one JSON value.

- `buyers N`: N customers with an API token each (the tokens).

- `queries`: statements per order placed through the API for 1, 3 and 20 lines (Django's test
  client, `CaptureQueriesContext`), which of them run while the order's transaction holds the
  stock row locks (after the first `UPDATE inventory_stocklevel`, before COMMIT) and how long that
  lock window lasts; and statements per cached product list and detail hit.
- `cpu`: a checkout request's time by package (cProfile self time), the profile that needs no
  py-spy.
- `checkout_cpu` (CPU): process CPU per order through the WSGI application (see
  `measure_checkout_cpu`), in alternating rounds of the variants `BENCH_CPU_VARIANTS` names.
- `signals` (B4): place, pay and ship through the services, each with the project's receivers
  connected, disconnected from Django's receiver registry, and replaced by receivers that do
  nothing (restored afterwards), in alternating rounds; reports the median cost per operation,
  the wiring's share (connected against disconnected) and the dispatch's share (receivers that
  do nothing against none: what sending the signals costs without their work).
"""

import functools
import json
import os
import random
import re
import statistics
import sys
import time
import uuid
import weakref
from contextlib import contextmanager
from pathlib import Path

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
django.setup()

from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402

from bench.harness import ADDRESS  # noqa: E402

ROOT_DIR = Path(__file__).resolve().parent.parent
# The statement that takes the stock row locks: an UPDATE of the levels (also inside a CTE).
STOCK_UPDATE = re.compile(r'UPDATE\s+"?inventory_stocklevel"?', re.IGNORECASE)
# Every app with receivers: B4 takes all of them off (or idles them) to price the wiring.
PROJECT_APPS = (
    "outbox",
    "audit",
    "catalog",
    "inventory",
    "orders",
    "payments",
    "reviews",
    "webhooks",
    "storefront",
    "live",
)


def bench_sku(number: int) -> str:
    return f"BENCH-{number:05d}"


class LockWindow:
    """Records each statement with whether it ran inside a transaction, and when COMMIT ended."""

    def __init__(self) -> None:
        self.statements: list[tuple[float, float, bool, str]] = []
        self.commits: list[float] = []

    def __call__(self, execute, sql, params, many, context):
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            self.statements.append((started, time.perf_counter(), connection.in_atomic_block, sql))

    @contextmanager
    def watching(self):
        original_commit = connection._commit

        def timed_commit():
            result = original_commit()
            self.commits.append(time.perf_counter())
            return result

        connection._commit = timed_commit
        try:
            with connection.execute_wrapper(self):
                yield self
        finally:
            connection._commit = original_commit

    def summary(self) -> dict:
        first_update = next(
            (s for s in self.statements if STOCK_UPDATE.search(s[3])),
            None,
        )
        if first_update is None:
            return {"stock_update_seen": False}
        commit = next((c for c in self.commits if c >= first_update[0]), None)
        held = [
            s[3][:160]
            for s in self.statements
            if s[0] >= first_update[0] and s[2] and (commit is None or s[0] < commit)
        ]
        return {
            "stock_update_seen": True,
            "statements_while_locked": len(held),
            "locked_statements": held,
            "lock_window_ms": round((commit - first_update[0]) * 1000, 2) if commit else None,
        }


def buyer_tokens(count: int) -> list[str]:
    """Customers and API tokens made with the storefront's own services.

    Not through `POST /auth/register`: registration is throttled per IP (rightly), and every
    buyer comes from 127.0.0.1. The users get no usable password (nobody logs in with one), so
    no time goes into password hashing; the orders app's post_save receiver makes each profile.
    """
    from django.contrib.auth import get_user_model

    from storefront.services import token_issue

    tokens = []
    for _ in range(count):
        email = f"buyer-{uuid.uuid4().hex[:12]}@bench.example"
        user = get_user_model().objects.create_user(username=email, email=email, password=None)
        tokens.append(token_issue(user=user))
    return tokens


def buyer_client() -> Client:
    client = Client(HTTP_X_FORWARDED_PROTO="https")
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {buyer_tokens(1)[0]}"
    return client


def place(client: Client, skus: list[str]) -> tuple[int, list[str], dict]:
    body = {"lines": [{"sku": s, "quantity": 1} for s in skus], "shipping_address": ADDRESS}
    window = LockWindow()
    with window.watching(), CaptureQueriesContext(connection) as captured:
        reply = client.post(
            "/api/v1/orders",
            body,
            content_type="application/json",
            headers={"Idempotency-Key": str(uuid.uuid4())},
        )
    assert reply.status_code == 201, (reply.status_code, reply.content[:300])
    return len(captured), [q["sql"][:200] for q in captured.captured_queries], window.summary()


def measure_queries() -> dict:
    client = buyer_client()
    rng = random.Random(7)
    # Warm up: first requests import modules and fill per-process caches.
    place(client, [bench_sku(n) for n in rng.sample(range(6, 10_001), 3)])
    result: dict = {"per_order": {}}
    for lines in (1, 3, 20):
        count, statements, window = place(
            client, [bench_sku(n) for n in rng.sample(range(6, 10_001), lines)]
        )
        result["per_order"][str(lines)] = count
        if lines == 3:
            result["statements_3_lines"] = statements
            result["lock_window_3_lines"] = window
    windows = []
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(50):
        _, _, window = place(client, [bench_sku(n) for n in rng.sample(range(6, 10_001), 3)])
        if window.get("lock_window_ms") is not None:
            windows.append(window["lock_window_ms"])
    # The Python side of one order (test client included), which contention barely changes.
    result["app_cpu_ms_per_order"] = round((time.process_time() - cpu) * 1000 / 50, 2)
    result["wall_ms_per_order_in_process"] = round((time.perf_counter() - wall) * 1000 / 50, 2)
    if windows:
        result["lock_window_ms_median_of_50"] = round(statistics.median(windows), 2)
    anonymous = Client(HTTP_X_FORWARDED_PROTO="https")
    for name, path in (
        ("list", "/api/v1/products?limit=20&offset=0"),
        ("detail", "/api/v1/products/bench-product-0007"),
    ):
        # Two visits first: the storefront cache stores a product's detail on its second visit.
        warm = [anonymous.get(path).status_code for _ in range(2)]
        with CaptureQueriesContext(connection) as captured:
            hit = anonymous.get(path)
        result[f"cached_{name}_queries"] = len(captured)
        result[f"cached_{name}_status"] = [*warm, hit.status_code]
    return result


def measure_cpu(orders: int = 100) -> dict:
    """Where a checkout request's own time goes, by package (cProfile, self time).

    `psycopg wait` is the time the request waits for PostgreSQL's answers; everything else is
    Python on the CPU, grouped by the package its code lives in (the project's apps by name).
    """
    import cProfile
    import pstats

    client = buyer_client()
    rng = random.Random(5)

    def one() -> None:
        place(client, [bench_sku(n) for n in rng.sample(range(6, 10_001), 3)])

    for _ in range(5):
        one()
    profiler = cProfile.Profile()
    cpu = time.process_time()
    profiler.enable()
    for _ in range(orders):
        one()
    profiler.disable()
    cpu = time.process_time() - cpu
    groups: dict[str, float] = {}
    for (filename, _, function), row in pstats.Stats(profiler).stats.items():
        self_time = row[2]
        path = filename.replace("\\", "/")
        if "psycopg" in path and function in ("wait", "wait_c", "_wait", "select", "poll"):
            group = "psycopg wait (PostgreSQL answering)"
        elif "site-packages/" in path:
            package = path.split("site-packages/", 1)[1].split("/")[0]
            if package == "django":
                parts = path.split("site-packages/django/", 1)[1].split("/")
                package = "django." + parts[0] + ("." + parts[1] if parts[0] == "db" else "")
            group = package
        elif path.startswith(str(ROOT_DIR)):
            group = "project: " + path[len(str(ROOT_DIR)) + 1 :].split("/")[0]
        else:
            group = "python stdlib / builtins"
        groups[group] = groups.get(group, 0.0) + self_time
    total = sum(groups.values())
    return {
        "orders": orders,
        "cpu_ms_per_order_under_cprofile": round(1000 * cpu / orders, 2),
        "self_time_ms_per_order": {
            group: round(1000 * seconds / orders, 2)
            for group, seconds in sorted(groups.items(), key=lambda item: -item[1])
            if 1000 * seconds / orders >= 0.1
        },
        "total_ms_per_order_under_cprofile": round(1000 * total / orders, 2),
    }


# --- B4: the signal wiring --------------------------------------------------------------------


def project_signals() -> list:
    """Every Signal object a project receiver can be connected to."""
    import importlib
    import importlib.util

    from django.core import signals as core_signals
    from django.db.backends import signals as backend_signals
    from django.db.models import signals as model_signals
    from django.dispatch import Signal

    modules = [model_signals, core_signals, backend_signals]
    for app in PROJECT_APPS:
        if importlib.util.find_spec(f"{app}.signals") is not None:  # live sends none of its own
            modules.append(importlib.import_module(f"{app}.signals"))
    found = []
    for module in modules:
        for value in vars(module).values():
            if isinstance(value, Signal) and value not in found:
                found.append(value)
    return found


@contextmanager
def receivers_replaced(replace, apps: tuple[str, ...] = PROJECT_APPS):
    """Swap every receiver whose module starts with one of `apps` (`PROJECT_APPS` unless told)
    on every signal for `replace(receiver)` (dropped where that is None); put the very same
    entries back after. Yields how many receivers were swapped."""
    saved = []
    swapped = 0
    for signal in project_signals():
        with signal.lock:
            saved.append((signal, list(signal.receivers)))
            kept = []
            for key, target, is_async in signal.receivers:
                function = target() if isinstance(target, weakref.ReferenceType) else target
                if function is not None and (getattr(function, "__module__", "") or "").startswith(
                    apps
                ):
                    swapped += 1
                    target = replace(function)
                    if target is None:
                        continue
                kept.append((key, target, is_async))
            signal.receivers = kept
            signal.sender_receivers_cache.clear()
    try:
        yield swapped
    finally:
        for signal, receivers in saved:
            with signal.lock:
                signal.receivers = receivers
                signal.sender_receivers_cache.clear()


def receivers_disconnected():
    """Take every project receiver off every signal (the services alone)."""
    return receivers_replaced(lambda function: None)


def _receive_nothing(*args, **kwargs) -> None:
    return None


def receivers_idle():
    """Every project receiver replaced by one that does nothing: the signals' dispatch alone."""
    return receivers_replaced(lambda function: _receive_nothing)


def _label(function) -> str:
    while isinstance(function, functools.partial):
        function = function.func
    return f"{getattr(function, '__module__', '?')}.{getattr(function, '__qualname__', '?')}"


@contextmanager
def receivers_timed(spent: dict[str, float], operation: list[str]):
    """Wrap every project receiver, and every on-commit callback, in a timer.

    `spent["<operation> <receiver>"]` accumulates seconds: for a receiver the time it ran in the
    sender's transaction, for an on-commit callback (label prefixed `on commit:`) the time it
    ran after the commit. `operation[0]` names the operation being timed.
    """

    def timed(label: str, function):
        def wrapper(*args, **kwargs):
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                key = f"{operation[0]} {label}"
                spent[key] = spent.get(key, 0.0) + time.perf_counter() - started

        return wrapper

    original_on_commit = connection.on_commit

    def on_commit(func, robust=False):
        return original_on_commit(timed(f"on commit: {_label(func)}", func), robust)

    with receivers_replaced(lambda function: timed(_label(function), function)):
        connection.on_commit = on_commit
        try:
            yield
        finally:
            connection.on_commit = original_on_commit


def measure_signals(rounds: int = 6, per_round: int = 30) -> dict:
    from django.contrib.auth import get_user_model

    from orders.services import LineRequest, customer_for_user, order_place, order_ship
    from payments.demo_provider import demo_event, demo_event_signed
    from payments.services import webhook_handle

    user = get_user_model().objects.create_user(
        username=f"signals-{uuid.uuid4().hex[:10]}@bench.example", password=None
    )
    customer = customer_for_user(user=user)
    rng = random.Random(11)
    times: dict[tuple[str, str], list[float]] = {}
    operation = ["place"]

    def one_cycle(mode: str) -> None:
        operation[0] = "place"
        skus = [bench_sku(n) for n in rng.sample(range(6, 10_001), 3)]
        started = time.perf_counter()
        order = order_place(
            customer=customer,
            lines=[LineRequest(sku=s, quantity=1) for s in skus],
            shipping_address=ADDRESS,
        )
        placed = time.perf_counter()
        body, header = demo_event_signed(
            demo_event(order_number=order.number, amount=order.total, currency=order.currency)
        )
        operation[0] = "pay"
        paid_started = time.perf_counter()
        webhook_handle(provider="demo", body=body, signature_header=header)
        paid = time.perf_counter()
        order.refresh_from_db()
        operation[0] = "ship"
        ship_started = time.perf_counter()
        order_ship(order=order, tracking_number=f"TRK{order.pk}")
        shipped = time.perf_counter()
        for name, seconds in (
            ("place", placed - started),
            ("pay", paid - paid_started),
            ("ship", shipped - ship_started),
        ):
            times.setdefault((name, mode), []).append(seconds)

    for _ in range(3):  # warm-up, not counted
        one_cycle("connected")
    times.clear()
    for _ in range(rounds):
        for _ in range(per_round):
            one_cycle("connected")
        with receivers_disconnected() as count:
            disconnected_count = count
            for _ in range(per_round):
                one_cycle("disconnected")
        with receivers_idle():
            for _ in range(per_round):
                one_cycle("idle")
    result: dict = {"receivers_disconnected": disconnected_count, "orders": 3 * rounds * per_round}
    for name in ("place", "pay", "ship"):
        on, off, idle = (
            statistics.median(times[(name, mode)]) * 1000
            for mode in ("connected", "disconnected", "idle")
        )
        result[name] = {
            "connected_ms": round(on, 2),
            "disconnected_ms": round(off, 2),
            "wiring_pct": round(100 * (on - off) / on, 1),
            # Receivers that do nothing: what sending the signals costs, without their work.
            "idle_receivers_ms": round(idle, 2),
            "dispatch_pct": round(100 * (idle - off) / on, 1),
        }
    # Where the wiring's time goes: one more round with every receiver and callback timed.
    spent: dict[str, float] = {}
    with receivers_timed(spent, operation):
        for _ in range(per_round):
            one_cycle("connected")
    times.clear()
    result["per_receiver_ms"] = {
        key: round(1000 * seconds / per_round, 2)
        for key, seconds in sorted(spent.items(), key=lambda item: -item[1])
        if 1000 * seconds / per_round >= 0.05
    }
    return result


def main() -> None:
    what = sys.argv[1]
    if what == "buyers":
        result = buyer_tokens(int(sys.argv[2]))
    elif what == "queries":
        result = measure_queries()
    elif what == "cpu":
        result = measure_cpu()
    elif what == "checkout_cpu":
        from bench.checkout_cpu import measure_checkout_cpu

        result = measure_checkout_cpu()
    else:
        result = measure_signals()
    print(json.dumps(result, default=str))


if __name__ == "__main__":
    main()
