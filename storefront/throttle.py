"""Fixed-window rate limits for the login and register endpoints, counted in the cache.

A limit is checked per client IP and per e-mail, so neither one address guessing many
passwords nor many addresses guessing one account's password gets far. When the cache is down
the check lets the request through (fail-open): throttling protects, it must not take login down.
"""

import hashlib
import time
from dataclasses import dataclass

from django.core.cache import cache

from storefront.cache import cache_call


@dataclass(frozen=True)
class Limit:
    scope: str
    requests: int
    window_seconds: int


# A person mistypes a password a few times; a script tries thousands.
LOGIN_PER_EMAIL = Limit("login-email", requests=5, window_seconds=300)
# Several people may share one address (an office, a carrier-grade NAT).
LOGIN_PER_IP = Limit("login-ip", requests=30, window_seconds=300)
REGISTER_PER_EMAIL = Limit("register-email", requests=5, window_seconds=3600)
REGISTER_PER_IP = Limit("register-ip", requests=20, window_seconds=3600)


class Throttled(Exception):
    code = "throttled"

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"Too many attempts; retry in {retry_after} s.")
        self.retry_after = retry_after


def _increment(key: str) -> int | None:
    try:
        return cache.incr(key)
    except ValueError:  # the window expired between add() and incr(): count afresh next time
        return None


def throttle_hit(*, limit: Limit, identity: str) -> None:
    """Count one attempt by `identity` against `limit`; raise Throttled beyond it."""
    now = int(time.time())
    window = now - now % limit.window_seconds
    digest = hashlib.sha256(identity.encode()).hexdigest()[:32]
    key = f"sf:throttle:{limit.scope}:{digest}:{window}"
    cache_call(cache.add, key, 0, limit.window_seconds)
    count = cache_call(_increment, key, default=None)
    if count is not None and count > limit.requests:
        raise Throttled(retry_after=max(1, window + limit.window_seconds - now))
