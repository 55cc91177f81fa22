"""The stock coalescer: the newest value per key, at most once per window."""

import asyncio

from live.coalesce import Coalescer


def test_a_snapshot_drops_a_waiting_value_it_already_covers():
    """A value waiting for its window is as old as (or older than) the snapshot a socket was
    just sent: handing it on after the snapshot would step the client back."""

    async def body() -> tuple[list, bool, bool]:
        handed: list = []

        async def deliver(key, value) -> None:
            handed.append((key, value))

        coalescer = Coalescer(window=0.05, deliver=deliver)
        assert coalescer.offer("MUG", 1, "v1")  # quiet: the caller hands it on now
        assert not coalescer.offer("MUG", 2, "v2")  # waits for the window's end
        coalescer.seed("MUG", 2)  # the snapshot just sent holds version 2
        await asyncio.sleep(0.15)
        as_old = coalescer.offer("MUG", 2, "v2 again")
        newer = coalescer.offer("MUG", 3, "v3")
        return handed, as_old, newer

    handed, as_old, newer = asyncio.run(body())

    assert handed == []
    assert not as_old
    assert newer
