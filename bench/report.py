"""What a bench run leaves behind: the JSON, the tables in bench/README.md, the PNG, a profile."""

import functools
import json
import os
import platform
import shutil
import subprocess
import sys
import tomllib
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from bench import stack

RESULTS = stack.ROOT / "bench" / "results"
README = stack.ROOT / "bench" / "README.md"
CHART = RESULTS / "checkout.png"
START, END = "<!-- results:start -->", "<!-- results:end -->"


def git_commit() -> str:
    """The commit measured (`BENCH_COMMIT` names it when the tree is an export without .git)."""
    done = subprocess.run(
        ["git", "log", "-1", "--format=%h %s"], cwd=stack.ROOT, capture_output=True, text=True
    )
    return os.environ.get("BENCH_COMMIT") or done.stdout.strip()[:100]


def machine() -> dict:
    version = stack.psql("postgres", "SHOW server_version")
    sync = stack.psql("postgres", "SHOW synchronous_commit")
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "postgresql": version,
        "synchronous_commit": sync,
    }


def find_py_spy() -> str | None:
    """`BENCH_PY_SPY`, else the py-spy installed beside this Python (the bench lock's), else
    one on the PATH."""
    beside = shutil.which("py-spy", path=str(Path(sys.executable).parent))
    return os.environ.get("BENCH_PY_SPY") or beside or shutil.which("py-spy")


# --- the profile ------------------------------------------------------------------------------


def _frame_file(frame: str) -> str:
    file = frame.rsplit("(", 1)[-1].rstrip(")") if "(" in frame else ""
    return file.replace(f"{stack.ROOT}/", "")


def summarize_profile(folder: Path) -> dict:
    """Where the workers' time went, from py-spy's raw (collapsed) stacks with idle included.

    Samples outside a request are the worker waiting for one. Inside a request, a leaf in
    psycopg is time spent waiting for PostgreSQL (statements, row locks, commit); anything else
    is Python on the CPU. Functions of the project are listed by inclusive share of request time.
    """
    categories: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    request_samples = 0
    for path in folder.glob("*.txt"):
        for line in path.read_text().splitlines():
            stack_text, _, count_text = line.rpartition(" ")
            if not count_text.isdigit():
                continue
            count = int(count_text)
            frames = stack_text.split(";")
            if not any("handle_request" in frame for frame in frames):
                categories["worker idle (no request)"] += count
                continue
            request_samples += count
            leaf = frames[-1]
            leaf_file = _frame_file(leaf)
            if "psycopg" in leaf_file:
                categories["request: waiting in psycopg (PostgreSQL, locks, commit)"] += count
            elif "redis" in leaf_file or "kombu" in leaf_file or "socket" in leaf:
                categories["request: Redis / broker / socket I/O"] += count
            else:
                categories["request: Python on the CPU"] += count
            leaves[leaf[:120]] += count
            seen = set()
            for frame in frames:
                file = _frame_file(frame)
                top = file.split("/", 1)[0]
                if top in (*stack_apps(), "bench") and frame not in seen:
                    seen.add(frame)
                    inclusive[frame.split(" (")[0] + " (" + file.rsplit(":", 1)[0] + ")"] += count
    total = sum(categories.values()) or 1
    per_request = request_samples or 1
    return {
        "samples": total,
        "time_split_pct": {k: round(100 * v / total, 1) for k, v in categories.most_common()},
        "project_functions_pct_of_request_time": {
            k: round(100 * v / per_request, 1) for k, v in inclusive.most_common(15)
        },
        "top_leaves_pct_of_request_time": {
            k: round(100 * v / per_request, 1) for k, v in leaves.most_common(12)
        },
    }


@functools.cache
def stack_apps() -> tuple[str, ...]:
    """The project's packages, as import-linter's configuration names them."""
    config = tomllib.loads((stack.ROOT / "pyproject.toml").read_text())
    return tuple(config["tool"]["importlinter"]["root_packages"])


# --- the tables and the chart -----------------------------------------------------------------


def _row(*cells) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}×" if b else "–"


# What B2's cases of a selling shop read (bench/cases/b2_catalog.py, `selling_reads`).
SELLING_READS = {
    "list_cached_while_ordering": "the first 5 pages of 20 products",
    "in_stock_cached_while_ordering": "the first 5 pages of 20 products in stock",
}


def tables(out: dict) -> str:
    lines = [
        f"Run of {out['started_at']} on {out['machine']['cpus']} cores, PostgreSQL "
        f"{out['machine']['postgresql']} (synchronous_commit "
        f"{out['machine']['synchronous_commit']}), commit `{out['commit']}`; "
        f"raw figures in `bench/results/{out['file']}`.",
        "",
    ]
    b1 = out.get("B1")
    if b1:
        lines += [
            "**B1 checkout** (3-line orders; reference = the raw-SQL pgbench transaction at the "
            "same concurrency in the same run; naive ORM = the same 12 statements through the "
            "ORM on the reference's tables, `bench/urls.py`, same server and driver)",
            "",
            _row(
                "case",
                "buyers",
                "orders/s",
                "p50 ms",
                "p99 ms",
                "201 / 409 / other",
                "oversold",
                "raw SQL tx/s",
                "ratio",
                "lock-late tx/s",
                "ratio",
                "naive ORM orders/s",
                "ratio",
                "app CPU ms/order",
                "load avg",
            ),
            _row(*["---"] * 15),
        ]
        naive_orm = b1.get("naive_orm", {})
        for case, ref_name in (("uncontended", "uncontended"), ("hot", "hot")):
            naive_runs = naive_orm.get(case) or [{}] * len(b1["app"][case])
            for app, ref, late, naive in zip(
                b1["app"][case],
                b1["reference"][ref_name],
                b1["reference"]["hot_locklate"],
                naive_runs,
                strict=False,
            ):
                statuses = app["statuses"]
                other = app["requests"] - statuses.get("201", 0) - statuses.get("409", 0)
                lines.append(
                    _row(
                        case,
                        app["concurrency"],
                        app["per_s"],
                        app["p50_ms"],
                        app["p99_ms"],
                        f"{statuses.get('201', 0)} / {statuses.get('409', 0)} / {other}",
                        app["oversold_units"],
                        ref["per_s"],
                        _ratio(app["per_s"], ref["per_s"]),
                        late["per_s"] if case == "hot" else "–",
                        _ratio(app["per_s"], late["per_s"]) if case == "hot" else "–",
                        naive.get("per_s", "–"),
                        _ratio(app["per_s"], naive["per_s"]) if naive else "–",
                        app.get("app_cpu_ms_per_request", "–"),
                        app.get("load_average", "–"),
                    )
                )
        scarce = b1.get("scarce_10_units_64_buyers")
        if scarce:
            lines += [
                "",
                f"Scarce: 10 units, 64 buyers of one unit: {scarce['statuses']} → "
                f"{scarce['units_ordered']} units sold, {scarce['oversold_units']} oversold. "
                f"`inventory_verify` exit code {b1.get('inventory_verify', {}).get('returncode')}.",
            ]
        queries = b1.get("queries", {})
        if "per_order" in queries:
            window = queries.get("lock_window_3_lines", {})
            lines += [
                "",
                f"Queries per order (API request, in-process): "
                f"{', '.join(f'{k} line(s) {v}' for k, v in queries['per_order'].items())}; "
                f"statements while the stock rows are locked: "
                f"{window.get('statements_while_locked', '–')}; lock window (uncontended, median "
                f"of 50): {queries.get('lock_window_ms_median_of_50', '–')} ms. Cached hit "
                f"queries: list {queries.get('cached_list_queries')}, detail "
                f"{queries.get('cached_detail_queries')}.",
            ]
        profile = b1.get("profile_hot_64", {})
        if "time_split_pct" in profile:
            split = ", ".join(f"{k} {v} %" for k, v in profile["time_split_pct"].items())
            lines += ["", f"Profile of the workers, hot SKUs at 64 buyers (py-spy): {split}."]
        lines.append("")
    b2 = out.get("B2")
    if b2:
        bare = b2["bare_json"]["per_s"]
        lines += [
            f"**B2 catalog** ({b2['bare_json']['concurrency']} connections)",
            "",
            _row(
                "endpoint", "req/s", "p50 ms", "p99 ms", "share of bare", "app CPU ms/req", "load"
            ),
            _row(*["---"] * 7),
        ]
        for name in (
            "bare_json",
            "list_cached",
            "detail_cached",
            "list_cached_while_ordering",
            "in_stock_cached_while_ordering",
            "list_uncached",
            "detail_uncached",
        ):
            if name in b2:
                r = b2[name]
                lines.append(
                    _row(
                        name,
                        r["per_s"],
                        r["p50_ms"],
                        r["p99_ms"],
                        _ratio(r["per_s"], bare),
                        r.get("app_cpu_ms_per_request", "–"),
                        r.get("load_average", "–"),
                    )
                )
        for name, selling in b2.get("orders_alongside", {}).items():
            lines += [
                "",
                f"`{name}` reads {SELLING_READS[name]} while 8 buyers place "
                f"{selling['per_s']} orders/s of 3 random SKUs on the same server "
                f"(p99 {selling['p99_ms']} ms, {selling['statuses']}).",
            ]
        lines.append("")
    b2r = out.get("B2R")
    if b2r:
        lines += [
            "**B2R catalog from a streaming replica** (`DATABASE_REPLICA_URLS`, a primary and "
            "hot standby of the case's own; uncached servers walk every page, cached ones read "
            "while 8 buyers order)",
            "",
            _row(
                "endpoint",
                "req/s",
                "p99 ms",
                "reads on the replica",
                "replica / primary / fallback",
                "CPU ms/req primary / replica",
            ),
            _row(*["---"] * 6),
        ]
        for name, r in b2r.items():
            served, cpu = r["reads_served"], r["cluster_cpu_ms_per_request"]
            lines.append(
                _row(
                    name,
                    r["per_s"],
                    r["p99_ms"],
                    f"{r['replica_share']:.0%}",
                    " / ".join(
                        str(served[outcome]) for outcome in ("replica", "primary", "fallback")
                    ),
                    f"{cpu['primary']} / {cpu['replica']}",
                )
            )
        lines.append("")
    conn = out.get("CONN")
    if conn:
        lines += [
            "**Connections** (one ORM get, 32 connections)",
            "",
            _row("setting", "req/s", "p99 ms", "app CPU ms/req", "load"),
            _row(*["---"] * 5),
        ]
        for name, r in conn.items():
            lines.append(
                _row(
                    name,
                    r.get("per_s", r.get("skipped")),
                    r.get("p99_ms", "–"),
                    r.get("app_cpu_ms_per_request", "–"),
                    r.get("load_average", "–"),
                )
            )
        lines.append("")
    b3 = out.get("B3")
    if b3:
        lines += [
            f"**B3 import**: {b3['rows']:,} rows in {b3['seconds']} s = **{b3['rows_per_s']:,} "
            f"rows/s** (the command's own CPU: {b3.get('command_cpu_s', '–')} s, "
            f"{b3.get('rows_per_command_cpu_s', '–')} rows per CPU-second; exit code "
            f"{b3['returncode']}); checks afterwards: "
            + ", ".join(f"{k} {'✓' if v else '✗'}" for k, v in b3["checks"].items()),
            "",
        ]
    b4 = out.get("B4")
    if b4:
        lines += [
            f"**B4 signal wiring** (median per operation, {b4['orders']} orders, "
            f"{b4['receivers_disconnected']} receivers disconnected)",
            "",
            _row(
                "path",
                "receivers connected ms",
                "disconnected ms",
                "wiring share",
                "idle receivers ms",
                "dispatch share",
            ),
            _row(*["---"] * 6),
        ]
        for name in ("place", "pay", "ship"):
            r = b4[name]
            lines.append(
                _row(
                    name,
                    r["connected_ms"],
                    r["disconnected_ms"],
                    f"{r['wiring_pct']} %",
                    r.get("idle_receivers_ms", "–"),
                    f"{r['dispatch_pct']} %" if "dispatch_pct" in r else "–",
                )
            )
        receivers = list(b4.get("per_receiver_ms", {}).items())[:8]
        if receivers:
            lines += [
                "",
                "Costliest receivers and on-commit callbacks (ms per operation): "
                + "; ".join(f"{name} {ms}" for name, ms in receivers)
                + ".",
            ]
        lines.append("")
    cpu = out.get("CPU")
    if cpu:
        lines += [
            f"**CPU per request in-process** (`bench/checkout_cpu.py`: the WSGI handler, "
            f"{cpu['rounds']} alternating rounds of {cpu['requests_per_round']}, medians; "
            f"outbox published by: {cpu['outbox_publish']})",
            "",
            _row(
                "variant",
                "web CPU ms",
                "PostgreSQL CPU ms",
                "relay CPU ms",
                "statements",
                "× bare",
                "× naive",
            ),
            _row(*["---"] * 7),
        ]
        for variant, r in cpu["variants"].items():
            lines.append(
                _row(
                    variant,
                    r["web_cpu_ms"],
                    r["pg_cpu_ms"],
                    r["relay_cpu_ms"],
                    r["queries"],
                    r.get("x_bare", "–"),
                    r.get("x_naive", "–"),
                )
            )
        concurrent = cpu.get("publish_concurrently")
        if concurrent:
            lines.append(
                f"\n{concurrent['threads']} threads at once, CPU ms per order (web + relay + "
                "PostgreSQL): "
                + "; ".join(
                    f"published by {mode} {r['web_cpu_ms']} + {r['relay_cpu_ms']} + "
                    f"{r['pg_cpu_ms']} = {r['total_cpu_ms']}"
                    for mode, r in concurrent.items()
                    if mode != "threads"
                )
                + "."
            )
        for mode, r in cpu.get("wake_latency", {}).items():
            lines.append(
                f"\nConfirmation e-mail, published by {mode}: INSERT → publish p50 "
                f"{r['to_publish_ms_p50']} ms (p90 {r['to_publish_ms_p90']}), INSERT → task "
                f"done p50 {r['to_done_ms_p50']} ms (p90 {r['to_done_ms_p90']}), "
                f"{r['done']} of {r['requests']} done."
            )
        lines.append("")
    b5 = out.get("B5")
    if b5:
        for arrangement in ("shared_cores", "pinned_tiers"):
            a = b5[arrangement]
            lines += [
                f"**B5 live updates, {arrangement}** ({a['arrangement']}; {b5['sockets']} "
                f"sockets on one hot SKU, {b5['buyers']} buyers ordering it): checkout "
                f"{a['orders_per_s_without_subscribers']} orders/s without subscribers, "
                f"{a['orders_per_s_with_subscribers']} with them "
                f"(cost {a['checkout_cost_pct']} %; gunicorn's CPU per order "
                f"{a['app_cpu_ms_per_order_without']} → {a['app_cpu_ms_per_order_with']} ms); "
                f"commit-to-client p50 {a['latency_p50_ms']} ms, p99 {a['latency_p99_ms']} ms; "
                f"{a['messages_per_socket']} messages per socket (at most "
                f"{a['messages_most_per_socket']}); {a['sockets_on_final_availability']} of "
                f"{b5['sockets']} sockets on the final availability; "
                f"{a['daphne_rss_kib_per_socket']} KiB per socket; Daphne took "
                f"{a['daphne_cpu_share']} of a core while the buyers ordered.",
                "",
            ]
    for name, reason in out.get("skipped", {}).items():
        lines.append(f"- {name} not measured: {reason}")
    lines.append("")
    lines.append("![throughput and p99 against concurrency](results/checkout.png)")
    return "\n".join(lines)


def chart(out: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    b1 = out.get("B1")
    if not b1:
        return
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    series = [
        ("Stockwire uncontended", b1["app"]["uncontended"], "C0", "-"),
        ("Stockwire hot SKUs", b1["app"]["hot"], "C3", "-"),
        ("raw SQL uncontended", b1["reference"]["uncontended"], "C0", ":"),
        ("raw SQL hot", b1["reference"]["hot"], "C3", ":"),
        ("raw SQL hot lock-late", b1["reference"]["hot_locklate"], "C2", ":"),
        ("naive ORM uncontended", b1.get("naive_orm", {}).get("uncontended"), "C0", "--"),
        ("naive ORM hot", b1.get("naive_orm", {}).get("hot"), "C3", "--"),
    ]
    for label, points, color, style in series:
        if not points:
            continue
        x = [p["concurrency"] for p in points]
        left.plot(x, [p["per_s"] for p in points], style, color=color, marker="o", label=label)
        right.plot(x, [p["p99_ms"] for p in points], style, color=color, marker="o", label=label)
    for axis in (left, right):
        axis.set_xscale("log", base=2)
        axis.set_xticks([1, 8, 32, 64], labels=["1", "8", "32", "64"])
        axis.set_xlabel("concurrent buyers")
        axis.grid(alpha=0.3)
    left.set_ylabel("orders (transactions) per second")
    right.set_ylabel("p99 latency, ms")
    right.set_yscale("log")
    left.legend(fontsize=8)
    figure.suptitle(f"Checkout, 3-line orders ({out['started_at'][:16]} UTC)")
    figure.tight_layout()
    figure.savefig(CHART, dpi=110)
    plt.close(figure)


def write(out: dict, *, publish: bool = True) -> Path:
    """Write the JSON and, with `publish`, the chart and the README tables; return the JSON's
    path."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H%M")
    out["file"] = f"{stamp}.json"
    path = RESULTS / out["file"]
    path.write_text(json.dumps(out, indent=2, sort_keys=False) + "\n")
    if publish:
        publish_figures(out)
    return path


def publish_figures(out: dict) -> None:
    """Draw the chart and replace the figures in bench/README.md with this run's."""
    chart(out)
    text = README.read_text()
    if START in text and END in text:
        head, rest = text.split(START, 1)
        _, tail = rest.split(END, 1)
        README.write_text(f"{head}{START}\n{tables(out)}\n{END}{tail}")


if __name__ == "__main__":
    # `python -m bench.report bench/results/<run>.json`: redraw the chart and the README tables.
    publish_figures(json.loads(Path(sys.argv[1]).read_text()))
