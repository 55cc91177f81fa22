"""How many sockets each user holds: on the channel layer's Redis, or in this process's memory.

Each socket of a user is a member of the user's sorted set, scored with the time it lapses
unless refreshed (each ping refreshes it): a process that died without closing its sockets
leaves members that lapse on their own, so a user is never locked out by sockets that are gone.
Like the pushes, the count fails open: a Redis that does not answer admits the socket (logged).
"""

import asyncio
import logging
import time
import weakref

import redis.asyncio as aioredis
from django.conf import settings

logger = logging.getLogger("stockwire.live")

# Redis answers within this long or the socket is admitted uncounted.
REDIS_TIMEOUT_SECONDS = 0.5


def _lapse_seconds() -> float:
    """A member not refreshed for this long is gone: three pings missed."""
    return 3 * settings.LIVE_PING_SECONDS


def _redis_url() -> str | None:
    layer = settings.CHANNEL_LAYERS["default"]
    if layer["BACKEND"].startswith("channels_redis."):
        return layer["CONFIG"]["hosts"][0]
    return None


class ConnectionCounter:
    def __init__(self) -> None:
        self._memory: dict[int, dict[str, float]] = {}
        self._clients: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def _client(self, url: str) -> aioredis.Redis:
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            client = self._clients[loop] = aioredis.Redis.from_url(
                url,
                socket_timeout=REDIS_TIMEOUT_SECONDS,
                socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
            )
        return client

    async def add(self, user_id: int, socket: str) -> int:
        """Count `socket` as one of the user's; return how many they hold now, it included."""
        now = time.time()
        url = _redis_url()
        if url is None:
            mine = self._memory.setdefault(user_id, {})
            for member, lapses in list(mine.items()):
                if lapses <= now:
                    del mine[member]
            mine[socket] = now + _lapse_seconds()
            return len(mine)
        key = f"stockwire:live:connections:{user_id}"
        try:
            async with self._client(url).pipeline(transaction=True) as pipe:
                pipe.zremrangebyscore(key, "-inf", now)
                pipe.zadd(key, {socket: now + _lapse_seconds()})
                pipe.zcard(key)
                pipe.expire(key, int(_lapse_seconds()) + 1)
                _, _, count, _ = await asyncio.wait_for(pipe.execute(), REDIS_TIMEOUT_SECONDS)
        except Exception as error:  # fail open: the limit is a guard, not a dependency
            logger.warning("live: connections not counted (%s)", type(error).__name__)
            return 1
        return count

    async def refresh(self, user_id: int, socket: str) -> None:
        """Keep `socket` counted for another lapse period (a ping)."""
        await self.add(user_id, socket)

    async def remove(self, user_id: int, socket: str) -> None:
        url = _redis_url()
        if url is None:
            self._memory.get(user_id, {}).pop(socket, None)
            return
        try:
            await asyncio.wait_for(
                self._client(url).zrem(f"stockwire:live:connections:{user_id}", socket),
                REDIS_TIMEOUT_SECONDS,
            )
        except Exception:  # it lapses on its own
            return


connections = ConnectionCounter()
