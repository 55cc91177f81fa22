"""Which SKUs some stock socket follows: a commit pushes only those.

Why: a stock push bumps the SKU's `StockVersion` (an upsert whose row lock every buyer of the
SKU then queues on) and reads its availability, in a transaction of the request that committed.
Most SKUs have no subscriber at any moment; their buyers should not pay that.

How:
- A serving process's hub (`live.hub`) marks each SKU its sockets follow (`mark`): on Redis a
  key per SKU under `LIVE_LAYER_PREFIX` that lapses after `LAPSE_SECONDS`, set on every
  subscribe and renewed by the hub every `RENEW_SECONDS` while a local socket follows the SKU.
  With the in-memory layer only this process can hear its own pushes, so its hubs' followers
  are the answer (`serve_locally`).
- The on-commit callback asks `followed` once for all the SKUs of its commit (one MGET) before
  it touches the database.
- No gap between a subscribe and a commit: the mark is set before the socket's snapshot is
  read. A change whose callback asked before the mark committed before the snapshot read, so
  the snapshot shows it (its version is not bumped: the next push's is higher anyway); a
  change that asks after the mark is pushed as before.
- Fails open: when Redis does not answer within `TIMEOUT_SECONDS` every SKU counts as followed
  (pushed as before), and Redis is not asked again for `OUTAGE_SECONDS`, so a hung Redis costs
  one request per period that timeout, not every request. A "nobody follows it" answer is
  never kept: a socket that subscribes the next moment must hear the next change.
"""

import logging
import threading
import time
import weakref
from collections.abc import Iterable
from typing import Any

import redis
from django.conf import settings

from live.layer_redis import layer_redis, layer_redis_url

logger = logging.getLogger("stockwire.live")

# A mark the hub stopped renewing (its process died, or its last socket left) lapses after
# this long; the hub renews it three times as often.
LAPSE_SECONDS = 60
RENEW_SECONDS = LAPSE_SECONDS / 3
# The request's thread waits at most this long for Redis's answer (on one machine or a LAN it
# answers in well under a millisecond).
TIMEOUT_SECONDS = 0.25
# After Redis failed to answer, every SKU counts as followed for this long without asking.
OUTAGE_SECONDS = 5.0

_lock = threading.Lock()
_clients: dict[str, redis.Redis] = {}
_outage_until = 0.0
# This process's hubs (each has `followers`: {variant id: sockets}), for the in-memory layer.
_local_hubs: weakref.WeakSet = weakref.WeakSet()


def _key(variant_id: int) -> str:
    return f"{settings.LIVE_LAYER_PREFIX}:followed:{variant_id}"


async def mark(variant_ids: Iterable[int]) -> None:
    """Note on Redis that a socket follows `variant_ids` (raises what Redis raises: the caller
    closes the socket 4503, as when the layer fails). Nothing to do on the in-memory layer."""
    ids = list(variant_ids)
    url = layer_redis_url()
    if url is None or not ids:
        return
    async with layer_redis(url).pipeline(transaction=False) as pipe:
        for variant_id in ids:
            pipe.set(_key(variant_id), 1, ex=LAPSE_SECONDS)
        await pipe.execute()


def serve_locally(hub: Any) -> None:
    """`hub`'s followers answer `followed` in this process (the in-memory layer's case)."""
    with _lock:
        _local_hubs.add(hub)


def followed(variant_ids: Iterable[int]) -> set[int]:
    """Those of `variant_ids` that some socket may follow (all of them when unsure)."""
    global _outage_until
    ids = list(dict.fromkeys(variant_ids))
    url = layer_redis_url()
    if url is None:
        with _lock:
            hubs = list(_local_hubs)
        return {vid for vid in ids if any(vid in hub.followers for hub in hubs)}
    if not ids or time.monotonic() < _outage_until:
        return set(ids)
    try:
        marks = _client(url).mget([_key(vid) for vid in ids])
    except Exception as error:  # fail open: push as if followed
        with _lock:
            _outage_until = time.monotonic() + OUTAGE_SECONDS
        logger.warning(
            "live: could not ask which SKUs are followed (%s); pushing all for %s s",
            type(error).__name__,
            OUTAGE_SECONDS,
        )
        return set(ids)
    return {vid for vid, found in zip(ids, marks, strict=True) if found is not None}


def _client(url: str) -> redis.Redis:
    """This process's blocking client of `url` (thread-safe: a pool of connections)."""
    with _lock:
        client = _clients.get(url)
        if client is None:
            client = _clients[url] = redis.Redis.from_url(
                url, socket_timeout=TIMEOUT_SECONDS, socket_connect_timeout=TIMEOUT_SECONDS
            )
        return client
