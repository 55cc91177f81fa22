"""B5's tap on the channel layer: `python -m bench.live_tap SPEC.json`, a process of its own.

Joins the SKU's group on the channel layer (`live.groups.variant_group`) with a channel of its
own, as a serving process's hub does, prints `ready`, then records every `live.stock` message
as (receive time, version, available). Once the file `final_file` holds the SKU's final
version and a message of that version arrived (at most `drain_seconds`), it writes the record
to `result_file` as JSON.

What it is for: the hub receives each push at about the time the tap does, so the tap splits a
socket's latency in two, commit → layer (the publisher: its coalescing window, the read, the
send) and layer → socket (the hub's window, the fan-out, the client's own receive).
"""

import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
django.setup()

from channels.db import database_sync_to_async  # noqa: E402
from channels.layers import get_channel_layer  # noqa: E402

from catalog.models import Variant  # noqa: E402
from live.groups import variant_group  # noqa: E402

# A run that failed before writing the final version leaves no tap behind past this.
GIVE_UP_SECONDS = 600


async def main(spec: dict[str, Any]) -> None:
    variant_id = await database_sync_to_async(
        lambda: Variant.objects.values_list("pk", flat=True).get(sku=spec["sku"])
    )()
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add(variant_group(variant_id), channel)
    print("ready", flush=True)
    messages: list[tuple[float, int, int]] = []
    final = Path(spec["final_file"])
    deadline = None
    give_up = time.monotonic() + GIVE_UP_SECONDS
    while time.monotonic() < give_up:
        if deadline is None and final.exists():
            final_version = int(final.read_text())
            deadline = time.monotonic() + spec["drain_seconds"]
        if deadline is not None and (
            time.monotonic() > deadline or any(m[1] >= final_version for m in messages)
        ):
            break
        try:
            message = await asyncio.wait_for(layer.receive(channel), timeout=0.5)
        except TimeoutError:
            continue
        received = time.time()
        if message.get("type") == "live.stock":
            state = json.loads(message["text"])
            messages.append((received, message["version"], state["available"]))
    await layer.group_discard(variant_group(variant_id), channel)
    Path(spec["result_file"]).write_text(json.dumps({"messages": messages}))


if __name__ == "__main__":
    asyncio.run(main(json.loads(Path(sys.argv[1]).read_text())))
