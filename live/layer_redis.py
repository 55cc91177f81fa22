"""The channel layer on Redis, and a client of its Redis for what the live app keeps there
beside the layer: socket counts (`live.connections`), the stock pushes' shared window
(`live.publish`) and the groups some socket listens to (`live.following`, whose blocking client in
the request's thread is its own).

One client per event loop (redis-py's asyncio clients belong to the loop they were made on),
with short timeouts: both uses fail open.
"""

import asyncio
import weakref

import redis.asyncio as aioredis
from channels_redis.core import RedisChannelLayer as ChannelsRedisLayer
from django.conf import settings

# Redis answers within this long or the caller goes on without it.
TIMEOUT_SECONDS = 0.5

_clients: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


class RedisChannelLayer(ChannelsRedisLayer):
    """channels_redis's layer with its blocking wait for the next message (`brpop_timeout`, a
    class attribute there, 5 s) set by `wait_seconds`: config.settings keeps the connection's
    read timeout above it, and tests shorten it to hold a socket idle past several waits."""

    def __init__(self, *, wait_seconds: float = ChannelsRedisLayer.brpop_timeout, **config):
        super().__init__(**config)
        self.brpop_timeout = wait_seconds


def layer_redis_url() -> str | None:
    """The channel layer's Redis, or None with the in-memory layer."""
    layer = settings.CHANNEL_LAYERS["default"]
    if "Redis" not in layer["BACKEND"]:
        return None
    host = layer["CONFIG"]["hosts"][0]
    return host["address"] if isinstance(host, dict) else host


def layer_redis(url: str) -> aioredis.Redis:
    """This loop's client of `url`."""
    loop = asyncio.get_running_loop()
    client = _clients.get(loop)
    if client is None:
        client = _clients[loop] = aioredis.Redis.from_url(
            url, socket_timeout=TIMEOUT_SECONDS, socket_connect_timeout=TIMEOUT_SECONDS
        )
    return client
