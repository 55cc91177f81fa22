"""The CPU case, in-process: what one order costs the web tier, measured on a shared machine.

Wall-clock throughput on 2 shared cores swings with whatever else runs; the CPU a process spends
per request barely does. So this drives the real WSGI application (`config.wsgi`'s handler, the
whole middleware stack, DEBUG off, JSON request logs) with hand-built WSGI environs, as gunicorn
would, one request at a time, and reads per round of `BENCH_CPU_ORDERS` requests:

- `web_cpu_ms`: this process's CPU (`time.process_time`) per request: the web tier's share;
- `pg_cpu_ms`: the CPU of the PostgreSQL backend serving this process (`/proc/<pid>/stat`);
- `relay_cpu_ms`: the CPU of a listening `manage.py outbox_relay --loop` process this
  measurement starts (`OUTBOX_PUBLISH=relay`), per request: in the variants where the relay
  publishes, the work that left the request still costs the machine, and is reported;
- `queries`: statements per request through Django's cursors (BEGIN and COMMIT are not among
  them);
- `wall_ms`: wall time per request, for reference only.

Then, unless `BENCH_CPU_THREADS=0`, `publish_concurrently`: `BENCH_CPU_THREADS` threads (4) place
orders at once in rounds alternating between the relay and publishing on commit, and the web
process's, the relay's and every PostgreSQL backend's CPU per order are compared: the relay
batches what commits while it works, which a one-at-a-time driver never shows.

Then `wake_latency`: with a real Celery worker (and, for "relay", a listening relay) on a queue of
their own, `BENCH_WAKE_ORDERS` orders 50 ms apart in each publishing mode, alternating; per mode
the median and 90th percentile of the confirmation e-mail request's time from its INSERT (in the
order's transaction) to its publish (`published_at`) and to its task's end (`done_at`, the
worker's `task_success`): the latency an e-mail gains when the relay publishes.

Variants (`BENCH_CPU_VARIANTS`, comma-separated) alternate round by round, so a slower minute of
the machine falls on every variant alike; the medians of `BENCH_CPU_ROUNDS` rounds are reported
with each variant's web CPU as a ratio of the bare view's and of the naive checkout's:

- `checkout`: `POST /api/v1/orders`, 3 random SKUs of 10,000, 1-5 units each, a fresh
  `Idempotency-Key` per order, buyers' tokens in rotation (as the B1 driver sends them);
- `bare`: `GET /bench/bare`, the framework's floor; `naive`: `POST /bench/naive-checkout` on the
  reference tables (skipped when the reference database has no schema);
- `checkout+relay_publish`: the checkout with the outbox published by the listening relay
  (`OUTBOX_PUBLISH = "relay"`: the commit's NOTIFY wakes it) instead of by the web process after
  each commit (`commit`, the default; `checkout+commit_publish` forces it);
- `checkout+no_live`: the checkout with the live app's receivers disconnected (what the pushes
  to the sockets cost the web process, read and sent after each commit);
- `checkout+followed`: every SKU followed by some socket (marked on the layer's Redis as a
  hub marks them, under a layer prefix of this variant's own, so no other variant sees the
  marks): what a push costs the web process, the publisher's read and sends on its own thread
  included (`time.process_time` counts every thread). Random SKUs of 10,000 are each quiet, so
  every order's SKUs are read and sent; `hot` and `hot+followed` buy the 5 hot SKUs, 1 unit a
  line, where a coalescing window covers many orders. No socket listens: a send finds an empty
  group on the layer.
- `checkout+client_binding`: psycopg binds parameters client-side and prepares nothing (Django's
  own default, before `DB_PREPARED_STATEMENTS`); `checkout+server_binding`: server-side binding
  without preparing; `checkout+server_binding_prepared`: server-side binding, and psycopg
  prepares a statement on its 5th run on a connection (what `DB_PREPARED_STATEMENTS` sets).
"""

import io
import os
import random
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings
from django.core.handlers.wsgi import WSGIHandler
from django.db import connection, connections

from bench.harness import ADDRESS, HOT_SKUS
from bench.stack import process_cpu_seconds, terminate

ROOT_DIR = Path(__file__).resolve().parent.parent
DEFAULT_VARIANTS = "checkout,checkout+relay_publish,checkout+client_binding,bare,naive"
SKUS = [f"BENCH-{n:05d}" for n in range(6, 10_001)]  # the hot SKUs 1-5 stay out of it


class Driver:
    """Requests straight into the WSGI handler, each with a fresh body stream and headers."""

    def __init__(self, tokens: list[str], seed: int = 3) -> None:
        self.app = WSGIHandler()
        self.tokens = tokens
        self.rng = random.Random(seed)
        self.sent = 0
        self.statuses: dict[int, int] = {}

    def _environ(self, method: str, path: str, body: bytes, headers: dict[str, str]) -> dict:
        environ = {
            "REQUEST_METHOD": method,
            "PATH_INFO": path,
            "QUERY_STRING": "",
            "SCRIPT_NAME": "",
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "8000",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "REMOTE_ADDR": "127.0.0.1",
            "HTTP_HOST": "127.0.0.1:8000",
            "HTTP_X_FORWARDED_PROTO": "https",
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(body),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": False,
            "wsgi.multiprocess": True,
            "wsgi.run_once": False,
        }
        if body:
            environ["CONTENT_TYPE"] = "application/json"
            environ["CONTENT_LENGTH"] = str(len(body))
        for name, value in headers.items():
            environ["HTTP_" + name.upper().replace("-", "_")] = value
        return environ

    def request(self, method: str, path: str, body: bytes = b"", **headers: str) -> int:
        status: list[str] = []

        def start_response(line: str, response_headers: list, exc_info=None) -> None:
            status.append(line)

        response = self.app(self._environ(method, path, body, headers), start_response)
        try:
            for _ in response:
                pass
        finally:
            response.close()  # request_finished: what gunicorn triggers after each response
        code = int(status[0].split(" ", 1)[0])
        self.statuses[code] = self.statuses.get(code, 0) + 1
        self.sent += 1
        return code

    def order_body(self, *, hot: bool = False) -> bytes:
        import json

        skus = self.rng.sample(HOT_SKUS if hot else SKUS, 3)
        lines = [{"sku": sku, "quantity": 1 if hot else self.rng.randint(1, 5)} for sku in skus]
        return json.dumps({"lines": lines, "shipping_address": ADDRESS}).encode()

    def checkout(self, path: str = "/api/v1/orders", *, hot: bool = False) -> int:
        return self.request(
            "POST",
            path,
            self.order_body(hot=hot),
            Authorization=f"Bearer {self.tokens[self.sent % len(self.tokens)]}",
            Idempotency_Key=str(uuid.uuid4()),
        )

    def bare(self) -> int:
        return self.request("GET", "/bench/bare")


@contextmanager
def _database_options(**options) -> Iterator[None]:
    """Reconnect the default database with `options` added to its OPTIONS; restore after."""
    saved = dict(connection.settings_dict.get("OPTIONS", {}))
    connection.close()
    connection.settings_dict["OPTIONS"] = {**saved, **options}
    try:
        yield
    finally:
        connection.close()
        connection.settings_dict["OPTIONS"] = saved


@contextmanager
def _outbox_published_by(mode: str) -> Iterator[None]:
    saved = settings.OUTBOX_PUBLISH
    settings.OUTBOX_PUBLISH = mode
    try:
        yield
    finally:
        settings.OUTBOX_PUBLISH = saved


@contextmanager
def _as_configured() -> Iterator[None]:
    yield


@contextmanager
def _live_receivers_disconnected() -> Iterator[None]:
    from bench.inproc import receivers_replaced

    with receivers_replaced(lambda function: None, apps=("live.",)):
        yield


@contextmanager
def _every_sku_followed() -> Iterator[None]:
    from asgiref.sync import async_to_sync

    from catalog.models import Variant
    from live import following
    from live.groups import variant_group

    saved = settings.LIVE_LAYER_PREFIX
    settings.LIVE_LAYER_PREFIX = f"{saved}:bench-followed"
    try:
        ids = Variant.objects.values_list("pk", flat=True)
        async_to_sync(following.mark)([variant_group(pk) for pk in ids])
        yield
    finally:
        settings.LIVE_LAYER_PREFIX = saved


TOGGLES: dict[str, Callable[[], object]] = {
    "": _as_configured,
    "followed": _every_sku_followed,
    "commit_publish": lambda: _outbox_published_by("commit"),
    "relay_publish": lambda: _outbox_published_by("relay"),
    "no_live": _live_receivers_disconnected,
    "client_binding": lambda: _database_options(server_side_binding=False, prepare_threshold=None),
    "server_binding": lambda: _database_options(server_side_binding=True, prepare_threshold=None),
    "server_binding_prepared": lambda: _database_options(
        server_side_binding=True, prepare_threshold=5
    ),
}


def _reference_ready() -> bool:
    try:
        with connections["reference"].cursor() as cursor:
            cursor.execute("SELECT to_regclass('stock') IS NOT NULL")
            return bool(cursor.fetchone()[0])
    except Exception:
        return False


def _backend_pid(alias: str) -> int:
    with connections[alias].cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


@contextmanager
def _process(command: list[str], **env: str) -> Iterator[int]:
    """A process of the project (stopped with SIGTERM after); yields its pid."""
    process = subprocess.Popen(
        command,
        cwd=ROOT_DIR,
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(3)  # its start-up is not the orders' cost
        yield process.pid
    finally:
        terminate(process)


@contextmanager
def _relay_process(**env: str) -> Iterator[int]:
    """A listening relay (`outbox_relay --loop` with `OUTBOX_PUBLISH=relay`)."""
    command = [sys.executable, "manage.py", "outbox_relay", "--loop"]
    with _process(command, OUTBOX_PUBLISH="relay", **env) as pid:
        yield pid


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(fraction * len(ordered)))], 1)


def measure_wake_latency(driver: Driver, orders: int) -> dict:
    """INSERT → publish and INSERT → task done of each order's confirmation request, per mode,
    with a real worker (and the relay) on a queue of their own."""
    from celery import current_app

    from outbox.models import OutboxMessage

    queue = f"{current_app.conf.task_default_queue}-latency"
    worker = [
        *[sys.executable, "-m", "celery", "-A", "config", "worker", "--pool=solo"],
        *["--without-gossip", "--without-mingle", "--without-heartbeat", f"--queues={queue}"],
    ]
    previous_queue = current_app.conf.task_default_queue
    current_app.conf.task_default_queue = queue
    ids: dict[str, list] = {"relay": [], "commit": []}
    try:
        with (
            _process(worker, CELERY_TASK_DEFAULT_QUEUE=queue),
            _relay_process(CELERY_TASK_DEFAULT_QUEUE=queue),
        ):
            for number in range(2 * orders):
                mode = ("relay", "commit")[number % 2]
                toggle = TOGGLES[f"{mode}_publish"]
                with toggle():
                    started = time.time()
                    driver.checkout()
                ids[mode].append(
                    OutboxMessage.objects.filter(
                        task_name="orders.email_send", created_at__gte=_aware(started)
                    )
                    .values_list("pk", flat=True)
                    .first()
                )
                time.sleep(0.05)
            time.sleep(3)  # the last tasks end
    finally:
        current_app.conf.task_default_queue = previous_queue
    result = {}
    for mode, pks in ids.items():
        rows = OutboxMessage.objects.filter(pk__in=[pk for pk in pks if pk])
        published = [(r.published_at - r.created_at).total_seconds() * 1000 for r in rows]
        done = [(r.done_at - r.created_at).total_seconds() * 1000 for r in rows if r.done_at]
        result[mode] = {
            "requests": len(published),
            "done": len(done),
            "to_publish_ms_p50": _percentile(published, 0.5) if published else None,
            "to_publish_ms_p90": _percentile(published, 0.9) if published else None,
            "to_done_ms_p50": _percentile(done, 0.5) if done else None,
            "to_done_ms_p90": _percentile(done, 0.9) if done else None,
        }
    return result


def _aware(epoch: float):
    from datetime import UTC, datetime

    return datetime.fromtimestamp(epoch, UTC)


def _database_backends_cpu_seconds() -> float:
    """CPU so far of every PostgreSQL backend connected to this database (the relay's too)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
        return process_cpu_seconds([pid for (pid,) in cursor.fetchall()])


def measure_publish_concurrently(tokens: list[str], relay_pid: int, rounds: int) -> dict:
    """Orders from `BENCH_CPU_THREADS` threads at once, alternating rounds published by the relay
    and on commit: the relay batches what commits while it works, so its CPU per order under
    concurrency is what the machine pays; the web process's, the relay's and every backend's
    CPU per order, medians."""
    from concurrent.futures import ThreadPoolExecutor

    threads = int(os.environ.get("BENCH_CPU_THREADS", "4"))
    per_round = int(os.environ.get("BENCH_CPU_ORDERS", "150"))
    local = threading.local()

    def one(_: int) -> int:
        if not hasattr(local, "driver"):
            local.driver = Driver(tokens, seed=threading.get_ident())
        return local.driver.checkout()

    samples: dict[str, dict[str, list[float]]] = {"relay": {}, "commit": {}}
    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(one, range(4 * threads)))  # each thread's connection and warm-up
        for round_number in range(rounds + 1):
            for mode in ("relay", "commit"):
                toggle = TOGGLES[f"{mode}_publish"]
                with toggle():
                    relay0, pg0 = process_cpu_seconds([relay_pid]), _database_backends_cpu_seconds()
                    cpu0 = time.process_time()
                    list(pool.map(one, range(per_round)))
                    cpu = time.process_time() - cpu0
                    time.sleep(0.3)  # the relay publishes what this round asked for
                    relay = process_cpu_seconds([relay_pid]) - relay0
                    pg = _database_backends_cpu_seconds() - pg0
                if round_number == 0:
                    continue
                for name, value in (
                    ("web_cpu_ms", cpu),
                    ("relay_cpu_ms", relay),
                    ("pg_cpu_ms", pg),
                ):
                    samples[mode].setdefault(name, []).append(1000 * value / per_round)
    result = {"threads": threads}
    for mode, measures in samples.items():
        medians = {name: round(statistics.median(v), 2) for name, v in measures.items()}
        result[mode] = {**medians, "total_cpu_ms": round(sum(medians.values()), 2)}
    return result


def measure_checkout_cpu() -> dict:
    from bench.inproc import buyer_tokens

    variants = os.environ.get("BENCH_CPU_VARIANTS", DEFAULT_VARIANTS).split(",")
    rounds = int(os.environ.get("BENCH_CPU_ROUNDS", "6"))
    per_round = int(os.environ.get("BENCH_CPU_ORDERS", "150"))
    if "naive" in variants and not _reference_ready():
        variants.remove("naive")
    driver = Driver(buyer_tokens(8))
    counted = [0]

    def count(execute, sql, params, many, context):
        counted[0] += 1
        return execute(sql, params, many, context)

    def step(variant: str) -> Callable[[], int]:
        base = variant.split("+", 1)[0]
        if base == "bare":
            return driver.bare
        if base == "naive":
            return lambda: driver.checkout("/bench/naive-checkout")
        if base == "hot":
            return lambda: driver.checkout(hot=True)
        return driver.checkout

    samples: dict[str, dict[str, list[float]]] = {v: {} for v in variants}
    statuses: dict[str, dict[int, int]] = {v: {} for v in variants}
    with _relay_process() as relay_pid:
        for round_number in range(rounds + 1):  # round 0 warms every variant up, not counted
            for variant in variants:
                toggle = TOGGLES[variant.split("+", 1)[1] if "+" in variant else ""]
                one = step(variant)
                with toggle():
                    for _ in range(5):
                        one()
                    # The naive checkout writes on the reference database, the rest on default.
                    alias = "reference" if variant.startswith("naive") else "default"
                    pg_pid = _backend_pid(alias)
                    driver.statuses = {}
                    counted[0] = 0
                    relay0 = process_cpu_seconds([relay_pid])
                    pg0 = process_cpu_seconds([pg_pid])
                    cpu0, wall0 = time.process_time(), time.perf_counter()
                    with connections[alias].execute_wrapper(count):
                        for _ in range(per_round):
                            one()
                    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
                    pg = process_cpu_seconds([pg_pid]) - pg0
                    # Let the relay publish what this round asked for before reading its CPU.
                    time.sleep(0.3)
                    relay = process_cpu_seconds([relay_pid]) - relay0
                if round_number == 0:
                    continue
                for name, value in (
                    ("web_cpu_ms", cpu),
                    ("pg_cpu_ms", pg),
                    ("relay_cpu_ms", relay),
                    ("wall_ms", wall),
                    ("queries", counted[0] / 1000),
                ):
                    samples[variant].setdefault(name, []).append(1000 * value / per_round)
                for code, number in driver.statuses.items():
                    statuses[variant][code] = statuses[variant].get(code, 0) + number
    result: dict = {
        "rounds": rounds,
        "requests_per_round": per_round,
        "outbox_publish": getattr(settings, "OUTBOX_PUBLISH", "commit"),
        "variants": {},
    }
    for variant, measures in samples.items():
        result["variants"][variant] = {
            **{name: round(statistics.median(values), 3) for name, values in measures.items()},
            "web_cpu_ms_rounds": [round(v, 2) for v in measures["web_cpu_ms"]],
            "statuses": {str(code): n for code, n in statuses[variant].items()},
        }
    if int(os.environ.get("BENCH_CPU_THREADS", "4")):
        with _relay_process() as relay_pid:
            result["publish_concurrently"] = measure_publish_concurrently(
                driver.tokens, relay_pid, rounds
            )
    wake_orders = int(os.environ.get("BENCH_WAKE_ORDERS", "40"))
    if wake_orders:
        result["wake_latency"] = measure_wake_latency(driver, wake_orders)
    medians = {v: m["web_cpu_ms"] for v, m in result["variants"].items()}
    for variant, web in medians.items():
        if "bare" in medians:
            result["variants"][variant]["x_bare"] = round(web / medians["bare"], 2)
        if "naive" in medians:
            result["variants"][variant]["x_naive"] = round(web / medians["naive"], 2)
    return result
