"""Which groups some socket listens to: a commit reads and pushes only for those.

Why: a push costs the process that committed: an order push reads the order in the request's
thread and sends a layer message to its customer and to staff; a stock push has the publisher
bump the SKU's `StockVersion` and read its availability (once per coalescing window) and send
it. Most SKUs have no subscriber at any moment, and most customers no socket open while they
check out: their requests should not pay for pushes nobody hears.

How:
- Whoever joins a group for a socket marks it (`mark`) before the socket's snapshot is read:
  the hub (`live.hub`) each SKU its sockets follow, an authenticated socket its customer's,
  user's and staff groups. On Redis a mark is a key per group under `LIVE_LAYER_PREFIX` that
  lapses after `lapse_seconds()`, renewed by the hub every `RENEW_SECONDS` and by each socket at
  every ping while it listens. With the in-memory layer only this process can hear its own
  pushes, and the layer's own groups are the answer.
- The on-commit callbacks of one commit ask once for all the groups of their pushes (a
  `Question`: one MGET, by the first of them to run) before they touch the database, and push
  to those only: a checkout's order and stock pushes share one round trip.
- No gap between a socket joining and a commit: the mark is set before the snapshot is read. A
  change whose callback asked before the mark committed before the snapshot read, so the
  snapshot shows it (a SKU's version is not bumped: the next push's is higher anyway); a change
  that asks after the mark is pushed as before.
- Fails open: when Redis does not answer within `TIMEOUT_SECONDS` every group counts as
  followed (pushed as before), and Redis is not asked again for `OUTAGE_SECONDS`, so a hung
  Redis costs one request per period that timeout, not every request. A "nobody listens"
  answer is never kept: a socket that connects the next moment must hear the next change.
- A renewal that fails is logged (INFO) and tried again at the next period; a mark whose
  renewals all fail for `lapse_seconds()` lapses, and commits stop pushing to its group until a
  socket joins it again. The layer's own calls fail on a Redis that is down, closing its sockets
  (4503), so this needs a Redis that refuses only these writes.
"""

import logging
import math
import threading
import time
from collections.abc import Iterable

import redis
from channels.layers import get_channel_layer
from django.conf import settings

from live.layer_redis import layer_redis, layer_redis_url

logger = logging.getLogger("stockwire.live")

# A mark nobody renews any more (its process died, its last socket left) lapses after this long,
# or after three of the sockets' pings if they are further apart; the hub renews its marks three
# times as often, a socket at each ping.
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


def _key(group: str) -> str:
    return f"{settings.LIVE_LAYER_PREFIX}:followed:{group}"


def lapse_seconds() -> int:
    """How long a mark lasts unrenewed: a minute, or three of the sockets' pings."""
    return max(LAPSE_SECONDS, math.ceil(3 * settings.LIVE_PING_SECONDS))


async def mark(groups: Iterable[str]) -> None:
    """Note on Redis that a socket listens to `groups` (raises what Redis raises: the caller
    closes the socket 4503, as when the layer fails). Nothing to do on the in-memory layer."""
    names = list(groups)
    url = layer_redis_url()
    if url is None or not names:
        return
    lapse = lapse_seconds()
    async with layer_redis(url).pipeline(transaction=False) as pipe:
        for group in names:
            pipe.set(_key(group), 1, ex=lapse)
        await pipe.execute()


class Question:
    """Which of the groups that one commit's pushes go to some socket listens to: asked once,
    by the first of those pushes to run (after the commit), for all of them."""

    __slots__ = ("answer", "groups")

    def __init__(self) -> None:
        self.groups: set[str] = set()
        self.answer: set[str] | None = None

    def followed(self, groups: Iterable[str]) -> set[str]:
        """Those of `groups` (added by `question`) that some socket may listen to. A group
        added only now is asked about too, never taken as unfollowed."""
        names = set(groups)
        if self.answer is None:
            self.groups |= names
            self.answer = followed(self.groups)
        elif unasked := names - self.groups:
            self.groups |= unasked
            self.answer |= followed(unasked)
        return self.answer & names


_asked_at_commit = threading.local()


def question(groups: Iterable[str]) -> Question:
    """The question this thread's pushes share until it is asked, `groups` added to it: the
    pushes a transaction registers for its commit share one. One already asked is never
    reused, so every answer is asked after the commit of each push it serves. (A push
    rolled back with its savepoint leaves its groups in the question: asked, never used.)"""
    current = getattr(_asked_at_commit, "question", None)
    if current is None or current.answer is not None:
        current = _asked_at_commit.question = Question()
    current.groups.update(groups)
    return current


def followed(groups: Iterable[str]) -> set[str]:
    """Those of `groups` that some socket may listen to (all of them when unsure)."""
    global _outage_until
    names = list(dict.fromkeys(groups))
    url = layer_redis_url()
    if url is None:
        return {group for group in names if get_channel_layer().groups.get(group)}
    if not names or time.monotonic() < _outage_until:
        return set(names)
    try:
        marks = _client(url).mget([_key(group) for group in names])
    except Exception as error:  # fail open: push as if followed
        with _lock:
            _outage_until = time.monotonic() + OUTAGE_SECONDS
        logger.warning(
            "live: could not ask which groups have listeners (%s); pushing to all for %s s",
            type(error).__name__,
            OUTAGE_SECONDS,
        )
        return set(names)
    return {group for group, found in zip(names, marks, strict=True) if found is not None}


def _client(url: str) -> redis.Redis:
    """This process's blocking client of `url` (thread-safe: a pool of connections)."""
    with _lock:
        client = _clients.get(url)
        if client is None:
            client = _clients[url] = redis.Redis.from_url(
                url, socket_timeout=TIMEOUT_SECONDS, socket_connect_timeout=TIMEOUT_SECONDS
            )
        return client
