"""Fixed-window rate limits for log-in (the API's and the admin's) and registration, counted in
the cache.

A limit is checked per client address and per account, so neither one address guessing many
passwords nor many addresses guessing one account's password gets far. Both log-in doors count
in the same buckets, which is why the limits live here, below the storefront and the back
office. When the cache is down the check lets the request through (fail-open): throttling
protects, it must not take login down.
"""

import hashlib
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass

from django.core.cache import cache
from django.http import HttpRequest

from core.client_address import client_address

logger = logging.getLogger("stockwire.throttle")

# Whether the last count failed for want of the cache: an outage is logged once, at its start,
# not once per attempt (two threads meeting its start together may both log it).
_outage = False


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


@dataclass(frozen=True)
class Limits:
    """The limits on one kind of attempt: per client address and per account."""

    per_address: Limit
    per_account: Limit


LOGIN = Limits(per_address=LOGIN_PER_IP, per_account=LOGIN_PER_EMAIL)
REGISTER = Limits(per_address=REGISTER_PER_IP, per_account=REGISTER_PER_EMAIL)


class Throttled(Exception):
    """Refused beyond `limit`; `locking` is true for the attempt that crossed it."""

    code = "throttled"

    def __init__(self, *, limit: Limit, retry_after: int, locking: bool) -> None:
        super().__init__(f"Too many attempts; retry in {retry_after} s.")
        self.limit = limit
        self.retry_after = retry_after
        self.locking = locking


def _count(key: str, window_seconds: int) -> tuple[int, int] | None:
    """Add one to the attempts counted under `key`; return the count and the window's start.

    The window starts at the first attempt and lasts `window_seconds`: a window cut at fixed
    clock times would let a guesser spend two budgets in a moment astride the cut. None when
    the cache cannot say.
    """
    global _outage
    now = int(time.time())
    try:
        cache.add(f"{key}:start", now, window_seconds)
        start = cache.get(f"{key}:start", now)
        counter = f"{key}:{start}"
        cache.add(counter, 0, window_seconds)
        count = cache.incr(counter)
    except ValueError:  # the window expired between add() and incr(): count afresh next time
        return None
    except Exception as error:  # any backend failure lets the attempt through, never fails it
        if not _outage:
            logger.warning("throttle cache unavailable, attempts are not limited: %s", error)
        _outage = True
        return None
    _outage = False
    return count, start


def throttle_hit(*, limit: Limit, identity: str) -> None:
    """Count one attempt by `identity` against `limit`; raise Throttled beyond it."""
    digest = hashlib.sha256(identity.encode()).hexdigest()[:32]
    counted = _count(f"sf:throttle:{limit.scope}:{digest}", limit.window_seconds)
    if counted is None:
        return
    count, start = counted
    if count > limit.requests:
        raise Throttled(
            limit=limit,
            retry_after=max(1, start + limit.window_seconds - int(time.time())),
            locking=count == limit.requests + 1,
        )


def throttle_attempt(
    *, request: HttpRequest, account: str, limits: Limits, account_ids: Iterable[int] = ()
) -> None:
    """Count one attempt on `account` against its client address and the account; raise
    Throttled beyond either of `limits`.

    `account` comes in its canonical form (an e-mail: `orders.services.user_email_normalise`),
    so one account typed two ways counts once; `account_ids`, the users it matched
    (`orders.selectors.account_ids`), count too, so an account reached through its username,
    its e-mail or a spelling the database folds alike shares one budget (`account` alone still
    counts attempts on addresses no user holds). The address is the client's behind trusted
    proxies (core.client_address), so clients behind the shop's own proxy do not share one
    budget. The attempt that locks logs a warning naming the account and the address, once per
    window and limit.
    """
    address = client_address(request)
    try:
        throttle_hit(limit=limits.per_address, identity=address)
        throttle_hit(limit=limits.per_account, identity=account)
        for user_id in account_ids:
            throttle_hit(limit=limits.per_account, identity=f"user:{user_id}")
    except Throttled as refusal:
        if refusal.locking:
            logger.warning(
                "%s limit reached (%s in %s s): %r from %s refused for %s s",
                refusal.limit.scope,
                refusal.limit.requests,
                refusal.limit.window_seconds,
                account,
                address,
                refusal.retry_after,
                extra={"scope": refusal.limit.scope, "account": account, "address": address},
            )
        raise
