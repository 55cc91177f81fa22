"""The stock coalescer: the newest value per key, at most once per window."""

import asyncio

from live.coalesce import Coalescer


def test_a_burst_is_handed_on_twice_the_first_at_once_the_newest_at_the_windows_end():
    """What the publisher and each hub promise: a quiet key goes out at once (by the caller),
    a burst behind it waits for the window's end and only its newest value goes out; a value
    not newer than one handed on or waiting is dropped."""

    async def body() -> tuple[list, list, float]:
        loop = asyncio.get_running_loop()
        handed: list = []

        async def deliver(key, value) -> None:
            handed.append((key, value, loop.time()))

        coalescer = Coalescer(window=0.1, deliver=deliver)
        started = loop.time()
        answers = [
            coalescer.offer("MUG", 1, "v1"),  # quiet: the caller hands it on now
            coalescer.offer("MUG", 3, "v3"),
            coalescer.offer("MUG", 2, "v2"),  # older than the one waiting
            coalescer.offer("MUG", 4, "v4"),
            coalescer.offer("MUG", 4, "v4 again"),
            coalescer.offer("CUP", 1, "c1"),  # another key has a window of its own
        ]
        await asyncio.sleep(0.25)
        answers.append(coalescer.offer("MUG", 4, "v4 late"))  # handed on already
        return answers, handed, started

    answers, handed, started = asyncio.run(body())

    assert answers == [True, False, False, False, False, True, False]
    assert [(key, value) for key, value, _ in handed] == [("MUG", "v4")]
    assert handed[0][2] - started >= 0.1


def test_a_forgotten_key_hands_on_nothing_and_starts_quiet():
    async def body() -> tuple[list, bool]:
        handed: list = []

        async def deliver(key, value) -> None:
            handed.append(value)

        coalescer = Coalescer(window=0.1, deliver=deliver)
        coalescer.offer("MUG", 1, "v1")
        coalescer.offer("MUG", 2, "v2")
        coalescer.forget("MUG")  # the last follower left
        await asyncio.sleep(0.2)
        return handed, coalescer.offer("MUG", 1, "v1 again")

    handed, quiet = asyncio.run(body())

    assert handed == []
    assert quiet
