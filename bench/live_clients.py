"""The benchmark's socket fleet: `python -m bench.live_clients SPEC.json`, a process of its own.

Opens `sockets` WebSocket connections to `/ws/v1/stock` (at most 50 handshakes at a time),
subscribes each to `sku`, prints `ready <n>` once every snapshot has arrived, then records each
`stock` message as (receive time, version, available). Once the file `final_file` holds the
SKU's final version, it waits until every socket has a message of that version (at most
`drain_seconds`), then writes every socket's record to `result_file` as JSON. Pings are
answered, as a browser's script does, so no socket is closed as idle.
"""

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

HANDSHAKES_AT_ONCE = 50


async def _socket(
    session: aiohttp.ClientSession,
    spec: dict[str, Any],
    gate: asyncio.Semaphore,
    record: dict[str, Any],
    ready: asyncio.Event,
    counts: dict[str, int],
) -> None:
    async with gate:
        ws = await session.ws_connect(spec["url"], origin=spec["origin"], heartbeat=None)
        await ws.send_str(json.dumps({"type": "subscribe", "skus": [spec["sku"]]}))
    try:
        async for frame in ws:
            if frame.type != aiohttp.WSMsgType.TEXT:
                break
            received = time.time()
            message = json.loads(frame.data)
            if message["type"] == "stock":
                record["messages"].append((received, message["version"], message["available"]))
            elif message["type"] == "snapshot":
                (state,) = message["stock"]
                record["snapshot"] = (received, state["version"], state["available"])
                counts["ready"] += 1
                if counts["ready"] == spec["sockets"]:
                    ready.set()
            elif message["type"] == "ping":
                await ws.send_str('{"type":"pong"}')
    finally:
        record["close_code"] = ws.close_code
        await ws.close()


async def main(spec: dict[str, Any]) -> None:
    records = [
        {"messages": [], "snapshot": None, "close_code": None} for _ in range(spec["sockets"])
    ]
    counts = {"ready": 0}
    ready = asyncio.Event()
    gate = asyncio.Semaphore(HANDSHAKES_AT_ONCE)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        tasks = [
            asyncio.create_task(_socket(session, spec, gate, record, ready, counts))
            for record in records
        ]
        started = time.monotonic()
        await asyncio.wait_for(ready.wait(), timeout=spec.get("connect_timeout", 120))
        print(f"ready {counts['ready']} in {time.monotonic() - started:.1f} s", flush=True)
        final = Path(spec["final_file"])
        while not final.exists():
            await asyncio.sleep(0.1)
        final_version = int(final.read_text())
        deadline = time.monotonic() + spec["drain_seconds"]
        while time.monotonic() < deadline and not all(
            record["messages"] and max(m[1] for m in record["messages"]) >= final_version
            for record in records
        ):
            await asyncio.sleep(0.1)
        for task in tasks:
            task.cancel()
        failed = [
            repr(result)
            for result in await asyncio.gather(*tasks, return_exceptions=True)
            if isinstance(result, Exception) and not isinstance(result, asyncio.CancelledError)
        ]
    Path(spec["result_file"]).write_text(json.dumps({"sockets": records, "failed": failed[:5]}))


if __name__ == "__main__":
    asyncio.run(main(json.loads(Path(sys.argv[1]).read_text())))
