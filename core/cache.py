"""Django's Redis cache backend, with one Redis client per connection pool instead of one per call.

Django's `RedisCacheClient.get_client` builds a new `redis.Redis` for every cache operation, and
building one copies redis-py's table of response callbacks (some 170 entries): on the storefront's
cached reads and on every checkout's invalidation that cost more CPU than the round trip itself.
A `redis.Redis` holds no connection of its own (its pool does), so keeping one per pool changes
nothing but the cost. (Each thread has its own cache backend, and so its own clients.)
"""

from typing import Any

from django.core.cache.backends.redis import RedisCache, RedisCacheClient


class SharedClientRedisCacheClient(RedisCacheClient):
    """`RedisCacheClient` that builds each pool's `redis.Redis` once."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._clients: dict[Any, Any] = {}  # connection pool -> its client

    def get_client(self, key: Any = None, *, write: bool = False) -> Any:
        pool = self._get_connection_pool(write)
        if pool not in self._clients:
            self._clients[pool] = self._client(connection_pool=pool)
        return self._clients[pool]


class SharedClientRedisCache(RedisCache):
    """The cache backend named in settings: Django's `RedisCache` with the client above."""

    def __init__(self, server: str, params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self._class = SharedClientRedisCacheClient
