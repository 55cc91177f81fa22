"""At most one message per key per time window, and always the newest one.

A flash sale moves one SKU's stock many times a second; its subscribers need its latest
availability, not every step. A `Coalescer` hands on a key's value at once when the key was
quiet for a window, else once the window ends, with the newest value offered meanwhile (the
highest version): the last change always goes out, a burst costs one message per window.
Two use it: the publisher (`live.publish`, per process that commits) and each serving
process's hub (`live.hub`, once for all its sockets).

An optional `gate` widens the window beyond this coalescer: asked before each hand-on, it
answers 0 to go ahead or how many seconds to wait (the publisher's gate is a window shared by
every process on Redis); the value stays pending, and is replaced by newer ones, meanwhile.
"""

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

Deliver = Callable[[Any, Any], Awaitable[None]]
# What `_handed` says of a key never handed on: version 0, at a time before any window.
_NEVER = (0, float("-inf"))
Gate = Callable[[Any], Awaitable[float]]


class Coalescer:
    """Coalesce values by key on the running event loop (not thread-safe: one loop only)."""

    def __init__(self, *, window: float, deliver: Deliver, gate: Gate | None = None) -> None:
        self._window = window
        self._deliver = deliver
        self._gate = gate
        self._pending: dict[Any, tuple[int, Any]] = {}  # key -> (version, value) to hand on
        self._handed: dict[Any, tuple[int, float]] = {}  # key -> (version, loop time) last handed
        self._scheduled: dict[Any, asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task] = set()

    def offer(self, key: Any, version: int, value: Any) -> bool:
        """Hand on `value` at the end of the key's window, unless a value of the same or a
        newer version was handed on or is waiting; return True when the key was quiet for a
        window (and no gate asks): the caller hands `value` on itself, now, with no task or
        timer in between (the common case of a quiet SKU)."""
        newest = max(self._pending.get(key, (0, None))[0], self._handed.get(key, _NEVER)[0])
        if version <= newest:
            return False
        if key in self._scheduled:
            self._pending[key] = (version, value)
            return False
        loop = asyncio.get_running_loop()
        wait = self._handed.get(key, _NEVER)[1] + self._window - loop.time()
        if wait <= 0 and self._gate is None:
            self._handed[key] = (version, loop.time())
            return True
        self._pending[key] = (version, value)
        self._scheduled[key] = loop.call_later(max(wait, 0), self._start, key)
        return False

    def forget(self, key: Any) -> None:
        """Drop what waits for `key` and what was handed on (an unsubscribe)."""
        timer = self._scheduled.pop(key, None)
        if timer is not None:
            timer.cancel()
        self._pending.pop(key, None)
        self._handed.pop(key, None)

    def close(self) -> None:
        """Cancel every waiting value (the socket closed)."""
        for key in list(self._scheduled):
            self.forget(key)

    def _start(self, key: Any) -> None:
        task = asyncio.get_running_loop().create_task(self._hand_on(key))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _hand_on(self, key: Any) -> None:
        if self._gate is not None:
            wait = await self._gate(key)
            if wait > 0 and key in self._pending:
                loop = asyncio.get_running_loop()
                self._scheduled[key] = loop.call_later(wait, self._start, key)
                return
        self._scheduled.pop(key, None)
        if key not in self._pending:  # forgotten meanwhile
            return
        version, value = self._pending.pop(key)
        self._handed[key] = (version, asyncio.get_running_loop().time())
        await self._deliver(key, value)
