"""How many sockets each user holds: on the channel layer's Redis, or in this process's memory.

Each socket of a user is a member of the user's sorted set, scored with the time it lapses
unless refreshed (each ping refreshes it): a process that died without closing its sockets
leaves members that lapse on their own, so a user is never locked out by sockets that are gone.
Like the pushes, the count fails open: a Redis that does not answer admits the socket (logged).
"""

import asyncio
import logging
import time

from django.conf import settings

from live.layer_redis import TIMEOUT_SECONDS, layer_redis, layer_redis_url

logger = logging.getLogger("stockwire.live")


def _lapse_seconds() -> float:
    """A member not refreshed for this long is gone: three pings missed."""
    return 3 * settings.LIVE_PING_SECONDS


def _key(user_id: int) -> str:
    return f"{settings.LIVE_LAYER_PREFIX}:connections:{user_id}"


class ConnectionCounter:
    def __init__(self) -> None:
        self._memory: dict[int, dict[str, float]] = {}

    async def add(self, user_id: int, socket: str) -> int:
        """Count `socket` as one of the user's; return how many they hold now, it included."""
        now = time.time()
        url = layer_redis_url()
        if url is None:
            mine = self._memory.setdefault(user_id, {})
            for member, lapses in list(mine.items()):
                if lapses <= now:
                    del mine[member]
            mine[socket] = now + _lapse_seconds()
            return len(mine)
        key = _key(user_id)
        try:
            async with layer_redis(url).pipeline(transaction=True) as pipe:
                pipe.zremrangebyscore(key, "-inf", now)
                pipe.zadd(key, {socket: now + _lapse_seconds()})
                pipe.zcard(key)
                pipe.expire(key, int(_lapse_seconds()) + 1)
                _, _, count, _ = await asyncio.wait_for(pipe.execute(), TIMEOUT_SECONDS)
        except Exception as error:  # fail open: the limit is a guard, not a dependency
            logger.warning("live: connections not counted (%s)", type(error).__name__)
            return 1
        return count

    async def refresh(self, user_id: int, socket: str) -> None:
        """Keep `socket` counted for another lapse period (a ping)."""
        await self.add(user_id, socket)

    async def remove(self, user_id: int, socket: str) -> None:
        url = layer_redis_url()
        if url is None:
            self._memory.get(user_id, {}).pop(socket, None)
            return
        try:
            await asyncio.wait_for(
                layer_redis(url).zrem(_key(user_id), socket),
                TIMEOUT_SECONDS,
            )
        except Exception:  # it lapses on its own
            return


connections = ConnectionCounter()
