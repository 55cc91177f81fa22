"""B5: live stock updates. 1,000 sockets follow one hot SKU while 8 buyers order it.

Daphne holds the sockets (a fleet in its own process, `bench.live_clients`); gunicorn serves
the checkout and pushes each committed movement through the Redis channel layer. Measured in
one run, on the same stack, in two arrangements of the machine's two cores (`ARRANGEMENTS`),
one after the other, each with both arms (without subscribers before and after the arm with
them, whose mean is the baseline):

- `shared_cores`: every process anywhere on either core, as before. With subscribers the two
  cores also run Daphne and the fleet (in production: browsers elsewhere), so the checkout's
  "cost" is mostly the CPU they take from it;
- `pinned_tiers`: the checkout tier (gunicorn's master and workers, the load driver,
  PostgreSQL's postmaster, so every backend it forks, and its processes already running) on
  CPU 0 in both arms, the live tier (Daphne and the fleet) on CPU 1: what the pushes cost the
  checkout's own path. Redis (shared by both tiers) is left unpinned. Every affinity changed
  is restored afterwards.

In each arrangement:

- the checkout's orders/s with no subscriber, then with the 1,000, then with none again (what the
  pushes cost, against the mean of the two arms without: neither arm always runs first);
- commit-to-client latency: for every stock movement of the SKU while subscribed, how long
  until each socket held a message of that version or newer. The movement's `created_at` is
  taken just before its commit, so this is an upper bound; it includes the coalescing wait
  (at most one message per SKU per 250 ms), which is the point of coalescing. Split in two
  stages by a tap on the channel layer (`bench.live_tap`, a channel in the SKU's group beside
  the hub's): commit → layer (the publisher's window, read and send) and layer → socket (the
  hub's window, the fan-out and the fleet's own receive);
- messages delivered against the most the coalescing rule allows, and how many sockets end on
  the committed final availability (none may be left stale);
- Daphne's resident memory per open socket.
"""

import bisect
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import stack
from bench.harness import HOT_SKUS, SHOP_DB, checkout_load, inproc, log
from bench.load import percentile

COALESCE_SECONDS = 0.25
ARRANGEMENTS = {
    "shared_cores": "gunicorn, PostgreSQL, the load driver, Daphne and the fleet share both cores",
    "pinned_tiers": "checkout tier (gunicorn, load driver, PostgreSQL) on CPU 0 in both arms, "
    "live tier (Daphne, fleet) on CPU 1",
}
CHECKOUT_CPU, LIVE_CPU = 0, 1
# After the last order, how long every socket may take to receive the final availability.
DRAIN_SECONDS = 30
# The last push's version is taken when the publisher reads it, up to a window (or, on the
# shared window, a few) after the last order: the final state is the one that stayed put this
# long.
SETTLED_SECONDS = 1.0


def _movements(sku: str, after_id: int) -> list[tuple[int, float]]:
    rows = stack.psql(
        SHOP_DB,
        "SELECT m.id, extract(epoch FROM m.created_at) FROM inventory_stockmovement m "
        "JOIN inventory_stocklevel l ON l.id = m.level_id JOIN catalog_variant v "
        f"ON v.id = l.variant_id WHERE v.sku = '{sku}' AND m.id > {after_id} ORDER BY m.id",
    )
    return [(int(i), float(t)) for i, t in (row.split("|") for row in rows.splitlines())]


def _final_state(sku: str) -> tuple[int, int, int]:
    """The SKU's latest movement id, its pushes' version (`live.StockVersion`) and its
    availability now."""
    row = stack.psql(
        SHOP_DB,
        "SELECT (SELECT coalesce(max(m.id), 0) FROM inventory_stockmovement m "
        "JOIN inventory_stocklevel l ON l.id = m.level_id WHERE l.variant_id = v.id), "
        "(SELECT coalesce(max(s.version), 0) FROM live_stockversion s WHERE s.variant_id = v.id), "
        "(SELECT sum(l.on_hand - l.reserved) "
        "FROM inventory_stocklevel l JOIN inventory_warehouse w ON w.id = l.warehouse_id "
        f"WHERE w.is_active AND l.variant_id = v.id) FROM catalog_variant v WHERE v.sku = '{sku}'",
    )
    movement_id, version, available = row.split("|")
    return int(movement_id), int(version), int(available)


def _settled_state(sku: str) -> tuple[int, int, int]:
    """`_final_state` once the last push was read: unchanged for `SETTLED_SECONDS`."""
    state = _final_state(sku)
    deadline = time.monotonic() + DRAIN_SECONDS
    while time.monotonic() < deadline:
        time.sleep(SETTLED_SECONDS)
        state, previous = _final_state(sku), state
        if state == previous:
            break
    return state


def _latencies(
    sockets: list[dict], movements: list[tuple[int, float]], available_before: int
) -> list[float]:
    """Per socket and movement: seconds from the movement to the first message at least as new
    (movements a socket never caught up with are left out: counted as stale instead).

    A message's version counts pushes, not movements (`live/services.py`); in B5 every
    movement reserves one unit and nothing comes back, so the availability after the k-th
    movement is `available_before - k` and a message is as new as it when it shows that many
    units or fewer."""
    found = []
    for socket in sockets:
        messages = sorted(socket["messages"], key=lambda m: m[2], reverse=True)
        shown = [-m[2] for m in messages]  # ascending, for bisect
        # The times at which the socket first held each availability or a lower one.
        caught_up = []
        earliest = float("inf")
        for received, _, _ in reversed(messages):
            earliest = min(earliest, received)
            caught_up.append(earliest)
        caught_up.reverse()
        for moved, (_, committed_at) in enumerate(movements, start=1):
            index = bisect.bisect_left(shown, -(available_before - moved))
            if index < len(shown):
                found.append(max(0.0, caught_up[index] - committed_at))
    return found


def _threads(pid: int) -> list[int]:
    try:
        return [int(tid) for tid in os.listdir(f"/proc/{pid}/task")]
    except OSError:
        return []


def _children(pid: int) -> list[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children")
    try:
        return [int(child) for child in children.read_text().split()]
    except OSError:
        return []


def _pin(pids: list[int], cpu: int, saved: dict[int, set[int]]) -> None:
    """Every thread of `pids` on `cpu`, noting each one's affinity before (once) in `saved`."""
    for pid in pids:
        for tid in _threads(pid):
            try:
                saved.setdefault(tid, os.sched_getaffinity(tid))
                os.sched_setaffinity(tid, {cpu})
            except OSError:  # the thread ended meanwhile
                continue


def _postmaster_pid() -> int:
    folder = stack.psql(SHOP_DB, "SHOW data_directory").strip()
    return int((Path(folder) / "postmaster.pid").read_text().split()[0])


@contextlib.contextmanager
def _pinned(server: stack.Server, live: stack.LiveServer):
    """The checkout tier on CHECKOUT_CPU (this process too, so the load driver it starts
    inherits it), the live tier on LIVE_CPU; everything restored afterwards, including the
    PostgreSQL backends forked meanwhile (they inherited the postmaster's pinning)."""
    saved: dict[int, set[int]] = {}
    postmaster = _postmaster_pid()
    everywhere = os.sched_getaffinity(postmaster)
    try:
        _pin([os.getpid()], CHECKOUT_CPU, saved)
        _pin([server.process.pid, *server.worker_pids()], CHECKOUT_CPU, saved)
        _pin([postmaster, *_children(postmaster)], CHECKOUT_CPU, saved)
        _pin([live.process.pid], LIVE_CPU, saved)
        yield
    finally:
        for tid, cpus in saved.items():
            with contextlib.suppress(OSError):
                os.sched_setaffinity(tid, cpus)
        for pid in _children(postmaster):
            for tid in _threads(pid):
                with contextlib.suppress(OSError):
                    os.sched_setaffinity(tid, everywhere)


def _busy_by_cpu() -> dict[str, tuple[int, int]]:
    """(busy, total) jiffies of each core, from /proc/stat."""
    found = {}
    for line in Path("/proc/stat").read_text().splitlines():
        name, *values = line.split()
        if name.startswith("cpu") and name != "cpu":
            fields = [int(v) for v in values]
            found[name] = (sum(fields) - fields[3] - fields[4], sum(fields))
    return found


def _busy_pct_since(before: dict[str, tuple[int, int]]) -> dict[str, float]:
    after = _busy_by_cpu()
    return {
        name: round(100 * (after[name][0] - busy) / max(1, after[name][1] - total), 1)
        for name, (busy, total) in before.items()
    }


def b5_live(cfg: dict, env: dict, server: stack.Server, log_dir: Path, out: dict) -> None:
    sku = HOT_SKUS[0]
    sockets = cfg.get("live_sockets", 1000)
    tokens = inproc(env, "buyers", str(cfg.get("live_buyers", 8)))
    spec = checkout_load(
        server,
        concurrency=len(tokens),
        tokens=tokens,
        skus=[sku],
        duration=cfg["duration"],
        warmup=cfg["warmup"],
        lines=1,
        max_quantity=1,
        seed=5,
    )
    b5: dict = {"sockets": sockets, "buyers": len(tokens)}
    for name in ARRANGEMENTS:
        folder = log_dir / f"b5-{name}"
        folder.mkdir(exist_ok=True)
        b5[name] = _arrangement(name, spec, sku, sockets, env, server, folder)
    out["B5"] = b5


def _started(
    module: str, spec: dict, folder: Path, pin: list[str], env: dict
) -> tuple[subprocess.Popen, str]:
    """`python -m module SPEC.json` (under `pin`, a taskset prefix or nothing) once it printed
    its first line, `ready…`; that line."""
    spec_file = folder / f"{module.rsplit('.', 1)[-1]}.json"
    spec_file.write_text(json.dumps(spec))
    process = subprocess.Popen(
        [*pin, sys.executable, "-m", module, str(spec_file)],
        cwd=stack.ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    ready = process.stdout.readline().strip()
    if not ready.startswith("ready"):
        process.kill()
        raise RuntimeError(f"{module} failed: {ready} {process.stderr.read()[-1500:]}")
    return process, ready


def _arrangement(
    name: str,
    spec: dict,
    sku: str,
    sockets: int,
    env: dict,
    server: stack.Server,
    log_dir: Path,
) -> dict:
    """The arms (without the fleet, with it, without it again) in one arrangement of the cores,
    on a Daphne of its own."""
    pinned = name == "pinned_tiers"
    live = stack.LiveServer(env, log_dir)
    try:
        with _pinned(server, live) if pinned else contextlib.nullcontext():
            cores = _busy_by_cpu()
            alone = stack.drive(spec, server.worker_pids())
            cores_alone = _busy_pct_since(cores)
            log(
                f"B5 [{name}] without subscribers: {alone['per_s']:.1f} orders/s "
                f"p99 {alone['p99_ms']} ms"
            )
            rss_before = live.rss_kib()
            with tempfile.TemporaryDirectory() as folder:
                fleet_spec = {
                    "url": f"{live.ws_url}/ws/v1/stock",
                    "origin": f"http://127.0.0.1:{live.port}",
                    "sockets": sockets,
                    "sku": sku,
                    "final_file": f"{folder}/final",
                    "drain_seconds": DRAIN_SECONDS,
                    "result_file": f"{folder}/result.json",
                }
                pin = ["taskset", "-c", str(LIVE_CPU)] if pinned else []
                fleet, ready = _started("bench.live_clients", fleet_spec, Path(folder), pin, env)
                log(f"B5 [{name}] fleet {ready}")
                tap_spec = {**fleet_spec, "result_file": f"{folder}/tap-result.json"}
                tap, _ = _started("bench.live_tap", tap_spec, Path(folder), pin, env)
                rss_after = live.rss_kib()
                first_id, _, available_before = _final_state(sku)

                pids = (live.process.pid, fleet.pid)
                cpu_before = [stack.process_cpu_seconds([pid]) for pid in pids]
                cores = _busy_by_cpu()
                started = time.time()
                watched = stack.drive(spec, server.worker_pids())
                finished = time.time()
                cores_watched = _busy_pct_since(cores)
                live_cpu, fleet_cpu = (
                    (stack.process_cpu_seconds([pid]) - before) / (finished - started)
                    for pid, before in zip(pids, cpu_before, strict=True)
                )
                _, final_version, final_available = _settled_state(sku)
                Path(fleet_spec["final_file"]).write_text(str(final_version))
                fleet.wait(timeout=DRAIN_SECONDS + 60)
                drained = time.time() - finished
                tap.wait(timeout=DRAIN_SECONDS + 60)
                result = json.loads(Path(fleet_spec["result_file"]).read_text())
                tapped = json.loads(Path(tap_spec["result_file"]).read_text())["messages"]
            # The arm without subscribers once more: the two bracket the arm with them, so a
            # machine that warms up or drifts during the arrangement weighs on both sides.
            alone_after = stack.drive(spec, server.worker_pids())
    finally:
        live.stop()
    baseline = (alone["per_s"] + alone_after["per_s"]) / 2

    records = result["sockets"]
    movements = _movements(sku, first_id)
    latencies = sorted(_latencies(records, movements, available_before))
    # The two stages, split where the layer hands each push to the hub (and to the tap).
    to_layer = sorted(_latencies([{"messages": tapped}], movements, available_before))
    tapped_at = {version: received for received, version, _ in tapped}
    to_socket = sorted(
        max(0.0, received - tapped_at[version])
        for r in records
        for received, version, _ in r["messages"]
        if version in tapped_at
    )
    delivered = sum(len(r["messages"]) for r in records)
    # The last push is read after the last order, up to a window later (two on the shared
    # window): the rule allows that much more.
    most_per_socket = int((finished - started) / COALESCE_SECONDS) + 4
    current = sum(
        1
        for r in records
        if r["messages"]
        and max(r["messages"], key=lambda m: m[1])[1:] == [final_version, final_available]
    )
    b5 = {
        "arrangement": ARRANGEMENTS[name],
        # The mean of the arms without subscribers, before and after the arm with them.
        "orders_per_s_without_subscribers": round(baseline, 1),
        "orders_per_s_without_before_and_after": [alone["per_s"], alone_after["per_s"]],
        "orders_per_s_with_subscribers": watched["per_s"],
        "checkout_cost_pct": round(100 * (1 - watched["per_s"] / max(baseline, 1e-9)), 1),
        "p99_ms_without": max(alone["p99_ms"], alone_after["p99_ms"]),
        "p99_ms_with": watched["p99_ms"],
        "movements_while_subscribed": len(movements),
        "latency_p50_ms": round(1000 * percentile(latencies, 0.50), 1),
        "latency_p99_ms": round(1000 * percentile(latencies, 0.99), 1),
        "latency_max_ms": round(1000 * (latencies[-1] if latencies else 0), 1),
        "commit_to_layer_p50_ms": round(1000 * percentile(to_layer, 0.50), 1),
        "commit_to_layer_p99_ms": round(1000 * percentile(to_layer, 0.99), 1),
        "layer_to_socket_p50_ms": round(1000 * percentile(to_socket, 0.50), 1),
        "layer_to_socket_p99_ms": round(1000 * percentile(to_socket, 0.99), 1),
        "messages_delivered": delivered,
        "messages_per_socket": round(delivered / sockets, 1),
        "messages_most_per_socket": most_per_socket,
        "sockets_on_final_availability": current,
        # Closed by the server (4503: its channel layer read failed); a real client reconnects
        # and is sent the snapshot, the fleet does not.
        "sockets_closed_by_server": sum(
            1 for r in records if r["close_code"] is not None and 4000 <= r["close_code"] < 5000
        ),
        "seconds_until_all_final": round(drained, 1),
        "daphne_rss_kib_per_socket": round((rss_after - rss_before) / sockets, 1),
        "fleet_errors": result["failed"],
        "cpu_busy_pct_without": alone["cpu_busy_pct"],
        "cpu_busy_pct_with": watched["cpu_busy_pct"],
        # Each core's busy share in each arm: with the tiers pinned, cpu0 is the checkout's.
        "core_busy_pct_without": cores_alone,
        "core_busy_pct_with": cores_watched,
        # CPU seconds per second while the buyers ordered: what the sockets' server and the
        # fleet took (from the cores the checkout also runs on, unless pinned apart).
        "daphne_cpu_share": round(live_cpu, 2),
        "fleet_cpu_share": round(fleet_cpu, 2),
        "app_cpu_ms_per_order_without": alone.get("app_cpu_ms_per_request"),
        "app_cpu_ms_per_order_with": watched.get("app_cpu_ms_per_request"),
        "load_average": watched["load_average"],
    }
    log(
        f"B5 [{name}: {ARRANGEMENTS[name]}] {sockets} sockets, {spec['concurrency']} buyers: "
        f"{baseline:.1f} (before {alone['per_s']:.1f}, after {alone_after['per_s']:.1f}) → "
        f"{watched['per_s']:.1f} orders/s with subscribers (cost {b5['checkout_cost_pct']} %); "
        f"commit-to-client p50 {b5['latency_p50_ms']} ms p99 {b5['latency_p99_ms']} ms "
        f"(commit → layer {b5['commit_to_layer_p50_ms']} / {b5['commit_to_layer_p99_ms']}, "
        f"layer → socket {b5['layer_to_socket_p50_ms']} / {b5['layer_to_socket_p99_ms']}); "
        f"{delivered} messages ({b5['messages_per_socket']}/socket, at most {most_per_socket}); "
        f"{current}/{sockets} sockets on the final availability "
        f"({b5['sockets_closed_by_server']} closed by the server); "
        f"{b5['daphne_rss_kib_per_socket']} KiB per socket; CPU while ordering: Daphne "
        f"{b5['daphne_cpu_share']}, fleet {b5['fleet_cpu_share']} of a core, gunicorn "
        f"{b5['app_cpu_ms_per_order_without']} → {b5['app_cpu_ms_per_order_with']} ms per order; "
        f"cores busy {cores_alone} → {cores_watched} %, load {watched['load_average']}"
    )
    return b5
