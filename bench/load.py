"""The load driver: a bounded, closed-loop aiohttp client in its own process.

`python -m bench.load SPEC.json` prints one JSON result. N virtual users each send a request,
wait for its answer and send the next, until the duration is over or the request cap is reached
(whichever comes first), so a run is bounded in time and in count. A warm-up of the same requests
runs first and is not counted. Requests carry `X-Forwarded-Proto: https`, as the TLS proxy in
front of production would, so the production settings' HTTPS redirect stays on.

Spec keys: base_url, concurrency, duration, max_requests, warmup, kind ("checkout" or "get");
for checkout: tokens, skus, lines (per order), max_quantity; for get: paths.
"""

import asyncio
import json
import random
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp

from bench.harness import ADDRESS

REQUEST_TIMEOUT_SECONDS = 30


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of already sorted values (0 when there are none)."""
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, max(0, round(fraction * len(sorted_values)) - 1))
    return sorted_values[index]


class Checkout:
    """Orders of `lines` distinct SKUs drawn from `skus`, each line 1..max_quantity units."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.skus = spec["skus"]
        self.lines = spec.get("lines", 3)
        self.max_quantity = spec.get("max_quantity", 5)
        self.tokens = spec["tokens"]
        self.path = spec.get("path", "/api/v1/orders")
        self.rng = random.Random(spec.get("seed", 1))

    def request(self, user: int) -> tuple[str, str, dict[str, str], bytes]:
        skus = self.rng.sample(self.skus, self.lines)
        body = {
            "lines": [
                {"sku": sku, "quantity": self.rng.randint(1, self.max_quantity)} for sku in skus
            ],
            "shipping_address": ADDRESS,
        }
        headers = {
            "Authorization": f"Bearer {self.tokens[user % len(self.tokens)]}",
            "Idempotency-Key": str(uuid.uuid4()),
            "Content-Type": "application/json",
        }
        return "POST", self.path, headers, json.dumps(body).encode()


class Get:
    """GETs of `paths`, each virtual user walking the list from its own starting point."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.paths = spec["paths"]
        self.position = 0

    def request(self, user: int) -> tuple[str, str, dict[str, str], bytes]:
        path = self.paths[self.position % len(self.paths)]
        self.position += 1
        return "GET", path, {}, b""


async def drive(spec: dict[str, Any]) -> dict[str, Any]:
    """Run the warm-up, then the measured phase; return counts and latency percentiles."""
    workload = Checkout(spec) if spec["kind"] == "checkout" else Get(spec)
    concurrency = spec["concurrency"]
    base_url = spec["base_url"]
    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    sample_bodies: dict[str, str] = {}
    warmed = [0]
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_SECONDS)
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=True)

    async with aiohttp.ClientSession(base_url, timeout=timeout, connector=connector) as session:

        async def user_loop(user: int, until: float, cap: int, record: bool) -> None:
            while time.perf_counter() < until and (not record or len(latencies) < cap):
                method, path, headers, body = workload.request(user)
                headers = {**headers, "X-Forwarded-Proto": "https"}
                started = time.perf_counter()
                try:
                    async with session.request(method, path, headers=headers, data=body) as reply:
                        text = await reply.text()
                        status = str(reply.status)
                except (aiohttp.ClientError, TimeoutError) as error:
                    if record:
                        errors[type(error).__name__] += 1
                    continue
                if not record:
                    warmed[0] += 1
                    continue
                latencies.append(time.perf_counter() - started)
                statuses[status] += 1
                if status not in sample_bodies:
                    sample_bodies[status] = text[:300]

        if spec.get("warmup", 0) > 0:
            until = time.perf_counter() + spec["warmup"]
            await asyncio.gather(*(user_loop(u, until, 0, False) for u in range(concurrency)))
        started = time.perf_counter()
        until = started + spec["duration"]
        await asyncio.gather(
            *(user_loop(u, until, spec["max_requests"], True) for u in range(concurrency))
        )
        elapsed = time.perf_counter() - started

    latencies.sort()
    ok = sum(count for status, count in statuses.items() if status.startswith("2"))
    return {
        "concurrency": concurrency,
        "elapsed_s": round(elapsed, 3),
        "requests": len(latencies),
        "warmup_requests": warmed[0],
        "ok": ok,
        "per_s": round(ok / elapsed, 1) if elapsed else 0.0,
        "all_per_s": round(len(latencies) / elapsed, 1) if elapsed else 0.0,
        "statuses": dict(statuses),
        "errors": dict(errors),
        "p50_ms": round(percentile(latencies, 0.50) * 1000, 1),
        "p90_ms": round(percentile(latencies, 0.90) * 1000, 1),
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 1),
        "max_ms": round((latencies[-1] if latencies else 0.0) * 1000, 1),
        "sample_bodies": sample_bodies,
    }


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text())
    print(json.dumps(asyncio.run(drive(spec))))


if __name__ == "__main__":
    main()
