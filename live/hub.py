"""One channel-layer subscription per process and SKU, fanned out to the process's sockets.

Why: a SKU's group on the channel layer used to hold every socket that follows it, so one push
was one layer message per socket (a Redis list push, msgpack both ways, a consumer's receive
loop each). With a thousand sockets on a hot SKU that per-socket cost, not the database, set the
latency. Here each serving process joins a SKU's group once, with one channel of its own (the
hub's), receives each push once, and hands its already-encoded text to its local sockets
directly on the loop they live on: Redis carries one message per process per push.

How:
- `StockHub.join(variant_id, socket)` waits until the hub's channel is in the SKU's group and
  the SKU is marked followed (`live.following`: commits push only followed SKUs), both done
  once for all the local sockets that follow it, and notes the socket; `leave` forgets it
  and, when the SKU's last local socket left, discards the group (the mark lapses by itself:
  another process may follow it).
- One receive task per hub coalesces each SKU's `live.stock` messages (`live.coalesce`: at most
  one per `LIVE_STOCK_COALESCE_SECONDS`, the newest always) and hands what goes out to every
  socket following the key (`StockSocket.live_stock`, which drops what is not newer than what
  the socket has). Once per process, not once per socket: a push costs the hub one timer at
  most, whatever the number of sockets, and a socket late in a fan-out is not made to wait
  a window of its own for the next push. A socket that fails to take it is logged and
  skipped; the others still get it.
- A refresh task renews the marks every `live.following.RENEW_SECONDS` and adds the hub to
  its groups again every half `group_expiry`: a long-lived subscription never lapses.
- When the layer fails under the receive task (Redis down), the hub closes its sockets with
  4503, like a socket whose own receive fails: they may have missed pushes, and a client that
  reconnects gets a fresh snapshot. The hub starts afresh with the next subscribe, whose join
  fails (and closes that socket 4503) while the layer is still down: the clients' reconnect
  back-off paces the retries.
- When the last socket leaves (or the server shuts down, closing its sockets) both tasks stop.

One hub per event loop and channel layer (`hub_for`): the in-memory layer's queues belong to one
loop, and the tests run each scenario on a loop of its own.
"""

import asyncio
import logging
import weakref
from typing import Any, Protocol

from django.conf import settings

from live import following
from live.coalesce import Coalescer
from live.groups import variant_group

logger = logging.getLogger("stockwire.live")

# channels' own default membership lifetime, for a layer that does not say.
DEFAULT_GROUP_EXPIRY_SECONDS = 86400


class Follower(Protocol):
    """What the hub needs of a socket (`live.consumers.StockSocket`)."""

    async def live_stock(self, event: dict) -> None: ...

    async def layer_lost(self) -> None: ...


class StockHub:
    """The SKUs this process's sockets follow on one loop, and the one channel that hears them."""

    def __init__(self, layer: Any) -> None:
        self.layer = layer
        self.channel_name: str | None = None
        self.followers: dict[int, set[Follower]] = {}
        self._tasks: list[asyncio.Task] = []
        # Per SKU followed here: its group joined and its mark set (or on their way).
        self._joined: dict[int, asyncio.Future] = {}
        self.coalescer = Coalescer(
            window=settings.LIVE_STOCK_COALESCE_SECONDS, deliver=self._hand_out
        )

    async def join(self, variant_id: int, follower: Follower) -> None:
        """Follow `variant_id` for `follower`; raises what the layer raises (the socket closes
        4503) and then leaves nothing noted."""
        if self.channel_name is None:
            self.channel_name = await self.layer.new_channel()
        await self._joined_and_marked(variant_id)
        self.followers.setdefault(variant_id, set()).add(follower)
        if not self._tasks:
            self._tasks = [
                asyncio.create_task(self._receive()),
                asyncio.create_task(self._refresh()),
            ]

    async def leave(self, variant_id: int, follower: Follower) -> None:
        """Stop handing `variant_id` to `follower`; the last one out leaves the group."""
        local = self.followers.get(variant_id)
        if local is None or follower not in local:
            return
        local.discard(follower)
        if local:
            return
        del self.followers[variant_id]
        self._joined.pop(variant_id, None)
        self.coalescer.forget(variant_id)
        if not self.followers:
            self._stop()
        await self._discard(variant_id)
        if variant_id in self.followers:  # followed again while the discard was on its way
            try:
                await self._add(variant_id)
            except Exception:  # the next subscribe or refresh adds it again
                return

    async def _add(self, variant_id: int) -> None:
        await asyncio.wait_for(
            self.layer.group_add(variant_group(variant_id), self.channel_name),
            settings.LIVE_PUBLISH_TIMEOUT_SECONDS,
        )

    async def _joined_and_marked(self, variant_id: int) -> None:
        """Return once the hub is in the SKU's group and the SKU is marked followed (so the
        socket may read its snapshot). Once for every socket that joins meanwhile, not once
        each: a thousand subscribing at once would otherwise hold a hundred of the layer's
        Redis connections at a time (its pool's limit) and the later ones miss their timeout.
        The refresh task renews both while the SKU is followed here."""
        joined = self._joined.get(variant_id)
        if joined is None or (
            joined.done() and (joined.cancelled() or joined.exception() is not None)
        ):
            joined = self._joined[variant_id] = asyncio.ensure_future(self._follow(variant_id))
        await asyncio.shield(joined)

    async def _follow(self, variant_id: int) -> None:
        await self._add(variant_id)
        await asyncio.wait_for(
            following.mark([variant_group(variant_id)]), settings.LIVE_PUBLISH_TIMEOUT_SECONDS
        )

    async def _discard(self, variant_id: int) -> None:
        try:
            await asyncio.wait_for(
                self.layer.group_discard(variant_group(variant_id), self.channel_name),
                settings.LIVE_PUBLISH_TIMEOUT_SECONDS,
            )
        except Exception:  # the membership expires on the layer by itself
            return

    def _stop(self) -> None:
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            if task is not asyncio.current_task():
                task.cancel()

    async def _receive(self) -> None:
        while True:
            try:
                event = await self.layer.receive(self.channel_name)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                logger.warning("live: stock hub lost the channel layer: %s", type(error).__name__)
                await self._lost()
                return
            if event.get("type") == "live.stock" and self.coalescer.offer(
                event["key"], event["version"], event
            ):
                await self._hand_out(event["key"], event)

    async def _hand_out(self, variant_id: int, event: dict) -> None:
        for follower in list(self.followers.get(variant_id, ())):
            try:
                await follower.live_stock(event)
            except Exception:  # one socket's failure is not its neighbours'
                logger.exception("live: a socket failed to take a stock push")

    async def _refresh(self) -> None:
        loop = asyncio.get_running_loop()
        expiry = getattr(self.layer, "group_expiry", DEFAULT_GROUP_EXPIRY_SECONDS)
        added = loop.time()
        while True:
            await asyncio.sleep(min(following.RENEW_SECONDS, expiry / 2))
            try:
                await asyncio.wait_for(
                    following.mark(map(variant_group, self.followers)),
                    settings.LIVE_PUBLISH_TIMEOUT_SECONDS,
                )
                if loop.time() - added >= expiry / 2:
                    for variant_id in list(self.followers):
                        await self._add(variant_id)
                    added = loop.time()
            except Exception as error:  # the receive task notices an outage and acts on it
                logger.info("live: could not renew the hub's marks (%s)", type(error).__name__)

    async def _lost(self) -> None:
        """The layer failed: close every local socket (4503) and start afresh."""
        followers = {f for local in self.followers.values() for f in local}
        self.followers.clear()
        self._joined.clear()
        self.coalescer.close()
        self._stop()
        self.channel_name = None
        for follower in followers:
            try:
                await follower.layer_lost()
            except Exception:  # the client went too
                continue


_hubs: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def hub_for(layer: Any) -> StockHub:
    """The running loop's hub on `layer` (a new one when the layer changed)."""
    loop = asyncio.get_running_loop()
    hub = _hubs.get(loop)
    if hub is None or hub.layer is not layer:
        hub = _hubs[loop] = StockHub(layer)
    return hub
