"""At most one message per key per time window, and always the newest one.

A flash sale moves one SKU's stock many times a second; its subscribers need its latest
availability, not every step. A `Coalescer` hands on a key's value at once when the key was
quiet for a window, else once the window ends, with the newest value offered meanwhile (the
highest version): the last change always goes out, a burst costs one message per window.
"""

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

Deliver = Callable[[Any, Any], Awaitable[None]]


class Coalescer:
    """Coalesce values by key on the running event loop (not thread-safe: one loop only)."""

    def __init__(self, *, window: float, deliver: Deliver) -> None:
        self._window = window
        self._deliver = deliver
        self._pending: dict[Any, tuple[int, Any]] = {}  # key -> (version, value) to hand on
        self._handed: dict[Any, tuple[int, float]] = {}  # key -> (version, loop time) last handed
        self._timers: dict[Any, asyncio.TimerHandle] = {}
        self._deliveries: set[asyncio.Task] = set()

    def seed(self, key: Any, version: int) -> None:
        """Note that the receiver already has `key` at `version` (a snapshot): older values
        offered later are dropped."""
        handed_version, handed_at = self._handed.get(key, (0, float("-inf")))
        self._handed[key] = (max(version, handed_version), handed_at)

    def offer(self, key: Any, version: int, value: Any) -> None:
        """Hand on `value` now or at the end of the key's window, unless a value of the same
        or a newer version was handed on or is waiting."""
        newest = max(self._pending.get(key, (0, None))[0], self._handed.get(key, (0, 0.0))[0])
        if version <= newest:
            return
        self._pending[key] = (version, value)
        if key in self._timers:
            return
        loop = asyncio.get_running_loop()
        wait = self._handed.get(key, (0, float("-inf")))[1] + self._window - loop.time()
        if wait <= 0:
            self._hand_on(key)
        else:
            self._timers[key] = loop.call_later(wait, self._hand_on, key)

    def forget(self, key: Any) -> None:
        """Drop what waits for `key` and what was handed on (an unsubscribe)."""
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()
        self._pending.pop(key, None)
        self._handed.pop(key, None)

    def close(self) -> None:
        """Cancel every waiting value (the socket closed)."""
        for key in list(self._timers):
            self.forget(key)

    def _hand_on(self, key: Any) -> None:
        self._timers.pop(key, None)
        version, value = self._pending.pop(key)
        self._handed[key] = (version, asyncio.get_running_loop().time())
        task = asyncio.get_running_loop().create_task(self._deliver(key, value))
        self._deliveries.add(task)
        task.add_done_callback(self._deliveries.discard)
