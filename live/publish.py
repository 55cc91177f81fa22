"""Hand pushes to the channel layer without ever holding the request that committed them.

The receivers (`live.receivers`) call `push` and `stock_changed` from `transaction.on_commit`
callbacks, in the thread that committed. Those only schedule the work on an event loop, in an
empty context (nothing of the request's follows it there: its request id, the thread its sync
work runs on), and return: the send itself, bounded by `LIVE_PUBLISH_TIMEOUT_SECONDS`, runs
there. Which loop:

- a process that holds sockets (Daphne: `make run`, the compose file's `live` service) sends on
  the loop its sockets live on (the first socket notes it, `serving_loop_note`). That is the
  only way to reach them through the in-memory layer, whose queues belong to that loop;
- any other process (gunicorn's workers) starts one daemon thread running a loop of its own,
  the first time it pushes. Only the Redis layer reaches other processes: with the in-memory
  layer and no socket in this process, there is nobody to tell and nothing is sent.

A SKU's availability is coalesced: at most one push per `LIVE_STOCK_COALESCE_SECONDS` from this
process, and on Redis one per window from all processes together (`_shared_stock_window`).
The committing thread only says which SKUs changed (`stock_changed`); the availability is read
(its version bumped, `live.services.stock_states_pushed`) when the window lets a push out, on
asgiref's thread for sync work (`database_sync_to_async`: never a request's), once for every
SKU due then. A flash sale's buyers thus share one version bump and one read per window
instead of each paying its own, and the read still starts after the change that asked for it
committed, so the last change's push carries the final availability. A read that fails is
tried once more a window later (logged), then its pushes are dropped: the snapshot still tells.

The channel layer is a notification path, never a dependency, like the read cache: when it
is down or slow a push is dropped after the timeout, the outage is logged once (and its end
once), and the request that committed never waits for it. At most `MAX_PENDING` sends wait at
once; past that pushes are dropped (and counted in the log) until the layer catches up.
"""

import asyncio
import contextlib
import contextvars
import itertools
import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.layers import InMemoryChannelLayer, get_channel_layer
from django.conf import settings
from django.db import connections

from live.coalesce import Coalescer
from live.groups import variant_group
from live.layer_redis import TIMEOUT_SECONDS, layer_redis, layer_redis_url

logger = logging.getLogger("stockwire.live")

# Sends scheduled and not finished, per process. A layer that hangs holds each for the
# timeout; this bounds what a hung layer can pile up in memory.
MAX_PENDING = 1000

# How the SKUs' availability is read when their push goes out (`live.receivers` gives it): a sync
# function of variant ids returning each one's (variant id, layer message).
StockRead = Callable[[list[int]], list[tuple[int, dict[str, Any]]]]


class Publisher:
    """This process's way to the channel layer (one per process: `publisher` below)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._serving_loop: asyncio.AbstractEventLoop | None = None
        self._own_loop: asyncio.AbstractEventLoop | None = None
        self._pending = 0
        self._dropped = 0
        self._outage = False
        # Per loop: the stock coalescer lives on the loop it was made on, and with it the SKUs
        # due to be read and the read running (at most one per loop: the next waits for it).
        self._stock: dict[asyncio.AbstractEventLoop, Coalescer] = {}
        self._due: dict[asyncio.AbstractEventLoop, set[int]] = {}
        self._reading: dict[asyncio.AbstractEventLoop, asyncio.Task] = {}
        self._retried: dict[asyncio.AbstractEventLoop, set[int]] = {}
        # The coalescer hands on only what is newer than what it handed: each change offered
        # is newer than the last (the version itself is read later, with the availability).
        self._changes = itertools.count(1)
        self._tasks: set[asyncio.Task] = set()  # started and running (a task needs a holder)

    def serving_loop_note(self) -> None:
        """Called on the loop of a socket that opened: pushes of this process go there."""
        loop = asyncio.get_running_loop()
        with self._lock:
            self._serving_loop = loop

    def reaches_anyone(self) -> bool:
        """Whether a push from this process can reach a socket at all: always through Redis,
        through the in-memory layer only while this process serves sockets."""
        return self._loop() is not None

    def push(self, group: str, message: dict[str, Any]) -> None:
        """Send `message` to `group` soon; never blocks, never raises."""
        self._schedule(lambda: self._send(group, message))

    def stock_changed(self, variant_ids: Iterable[int], read: StockRead) -> None:
        """The SKUs' stock changed and committed: send each one's availability, as `read`
        finds it then, to its subscribers at the end of its coalescing window (at once if the
        SKU was quiet for one). Never blocks, never raises, reads nothing in this thread."""
        ids = list(variant_ids)
        if ids:
            self._schedule(lambda: self._stock_offer(ids, read), counted=False)

    def release_database(self) -> None:
        """Close the database connection this process's own loop reads with, if it started
        one (the next read opens another): a test's database can then be dropped."""
        with self._lock:
            loop = self._own_loop
        if loop is None or not loop.is_running():
            return
        # Thread-sensitive, as the reads: it runs in the thread that holds their connection.
        close = sync_to_async(connections.close_all, thread_sensitive=True)
        with contextlib.suppress(TimeoutError, RuntimeError):
            asyncio.run_coroutine_threadsafe(close(), loop).result(timeout=5)

    def sends_pending(self) -> int:
        """How many sends were handed to the loop and have not finished (nor timed out)."""
        with self._lock:
            return self._pending

    def _loop(self) -> asyncio.AbstractEventLoop | None:
        with self._lock:
            serving = self._serving_loop
            if serving is not None and serving.is_running():
                return serving
            if isinstance(get_channel_layer(), InMemoryChannelLayer):
                return None
            if self._own_loop is None or not self._own_loop.is_running():
                self._own_loop = _loop_in_thread()
            return self._own_loop

    def _schedule(self, make: Callable[[], Any], *, counted: bool = True) -> None:
        loop = self._loop()
        if loop is None:
            return
        if counted:
            with self._lock:
                if self._pending >= MAX_PENDING:
                    self._dropped += 1
                    if self._dropped == 1:
                        logger.warning("live: %s pushes waiting; dropping pushes", MAX_PENDING)
                    return
                self._pending += 1
        try:
            loop.call_soon_threadsafe(self._start, make, context=contextvars.Context())
        except RuntimeError:  # the loop closed meanwhile (a server shutting down)
            if counted:
                self._done()

    def _start(self, make: Callable[[], Any]) -> None:
        task = asyncio.get_running_loop().create_task(make())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _stock_offer(self, variant_ids: list[int], read: StockRead) -> None:
        loop = asyncio.get_running_loop()
        coalescer = self._stock.get(loop)
        if coalescer is None:
            coalescer = self._stock[loop] = Coalescer(
                window=settings.LIVE_STOCK_COALESCE_SECONDS,
                deliver=self._stock_due,
                gate=_shared_stock_window,
            )
        for variant_id in variant_ids:
            # With a gate the coalescer always hands on itself, at the window's end (`_stock_due`).
            coalescer.offer(variant_id, next(self._changes), read)

    async def _stock_due(self, variant_id: int, read: StockRead) -> None:
        """The SKU's window lets a push out: read it with the others due, then send it."""
        self._due_now([variant_id], read)

    def _due_now(self, variant_ids: Iterable[int], read: StockRead) -> None:
        loop = asyncio.get_running_loop()
        self._due.setdefault(loop, set()).update(variant_ids)
        reading = self._reading.get(loop)
        if reading is None or reading.done():  # else the running read takes it in its next round
            self._reading[loop] = loop.create_task(self._read_and_send(read))

    async def _read_and_send(self, read: StockRead) -> None:
        """Read every SKU due (those that fall due meanwhile in the next round) and send each
        its availability, all at once. A read that fails is tried once more a window later."""
        loop = asyncio.get_running_loop()
        retried = self._retried.setdefault(loop, set())
        window = settings.LIVE_STOCK_COALESCE_SECONDS
        while due := self._due.pop(loop, None):
            failed_before = due & retried
            retried -= due
            try:
                states = await database_sync_to_async(read)(sorted(due))
            except Exception:
                again = due - failed_before  # those that failed twice are dropped
                logger.exception(
                    "live: could not read the availability of %s SKUs (%s read again in %s s)",
                    len(due),
                    len(again),
                    window,
                )
                if again:
                    retried |= again
                    loop.call_later(window, self._due_now, again, read)
                continue
            await asyncio.gather(
                *(self._send_counted(variant_group(vid), message) for vid, message in states)
            )

    async def _send_counted(self, group: str, message: dict) -> None:
        with self._lock:
            self._pending += 1
        await self._send(group, message)

    async def _send(self, group: str, message: dict) -> None:
        try:
            await asyncio.wait_for(
                get_channel_layer().group_send(group, message),
                timeout=settings.LIVE_PUBLISH_TIMEOUT_SECONDS,
            )
        except Exception as error:  # down, slow or full: the push is lost, the snapshot is not
            self._failed(error)
        else:
            self._succeeded()
        finally:
            self._done()

    def _done(self) -> None:
        with self._lock:
            self._pending -= 1

    def _failed(self, error: Exception) -> None:
        with self._lock:
            first = not self._outage
            self._outage = True
        if first:
            logger.warning(
                "live: channel layer unavailable, pushes are dropped: %s",
                f"{type(error).__name__}: {error}" if str(error) else type(error).__name__,
            )

    def _succeeded(self) -> None:
        with self._lock:
            recovered, self._outage = self._outage, False
            dropped, self._dropped = self._dropped, 0
        if recovered:
            logger.info("live: channel layer available again")
        if dropped:
            logger.warning("live: %s pushes were dropped while too many waited", dropped)


async def _shared_stock_window(variant_id: int) -> float:
    """0 when this process may push the SKU now, else how long until it may try again.

    Every process that commits stock (each gunicorn worker, each Celery worker) coalesces on
    its own; on Redis they also share one window per SKU, so the sockets' server gets one push
    per window however many processes sell it. The process that finds the window taken keeps
    its newest value and tries again when the window ends: the last change still goes out.
    Fails open: without an answer from Redis the push goes ahead.
    """
    url = layer_redis_url()
    if url is None:
        return 0.0
    window_ms = max(1, round(1000 * settings.LIVE_STOCK_COALESCE_SECONDS))
    key = f"{settings.LIVE_LAYER_PREFIX}:stock-window:{variant_id}"
    try:
        async with layer_redis(url).pipeline(transaction=False) as pipe:
            pipe.set(key, 1, nx=True, px=window_ms)
            pipe.pttl(key)
            taken_now, left_ms = await asyncio.wait_for(pipe.execute(), TIMEOUT_SECONDS)
    except Exception:  # fail open
        return 0.0
    return 0.0 if taken_now else max(left_ms, 1) / 1000


def _loop_in_thread() -> asyncio.AbstractEventLoop:
    """Start an event loop in a daemon thread of its own and return it, running."""
    loop = asyncio.new_event_loop()
    started = threading.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.call_soon(started.set)
        loop.run_forever()

    threading.Thread(target=run, name="live-publisher", daemon=True).start()
    started.wait()
    return loop


publisher = Publisher()
