"""A client of the channel layer's Redis, for what the live app keeps there beside the layer:
socket counts (`live.connections`) and the stock pushes' shared window (`live.publish`).

One client per event loop (redis-py's asyncio clients belong to the loop they were made on),
with short timeouts: both uses fail open.
"""

import asyncio
import weakref

import redis.asyncio as aioredis
from django.conf import settings

# Redis answers within this long or the caller goes on without it.
TIMEOUT_SECONDS = 0.5

_clients: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def layer_redis_url() -> str | None:
    """The channel layer's Redis, or None with the in-memory layer."""
    layer = settings.CHANNEL_LAYERS["default"]
    if layer["BACKEND"].startswith("channels_redis."):
        return layer["CONFIG"]["hosts"][0]
    return None


def layer_redis(url: str) -> aioredis.Redis:
    """This loop's client of `url`."""
    loop = asyncio.get_running_loop()
    client = _clients.get(loop)
    if client is None:
        client = _clients[loop] = aioredis.Redis.from_url(
            url, socket_timeout=TIMEOUT_SECONDS, socket_connect_timeout=TIMEOUT_SECONDS
        )
    return client
