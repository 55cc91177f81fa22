"""Locks held by another connection, for tests that prove who waits on whom (PostgreSQL)."""

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from django.db import connection, connections, transaction


class _RolledBack(Exception):
    pass


class _Holder:
    """`hold()` run in a transaction of another thread, kept open until `release()`, which
    then commits it (`commit`) or rolls it back. Started and holding once constructed."""

    def __init__(self, hold: Callable[[], None], *, commit: bool) -> None:
        self.error: BaseException | None = None
        self._holding, self._released = threading.Event(), threading.Event()
        self._thread = threading.Thread(target=self._run, args=(hold, commit))
        self._thread.start()
        assert self._holding.wait(10)
        assert self.error is None, self.error

    def _run(self, hold: Callable[[], None], commit: bool) -> None:
        try:
            with transaction.atomic():
                hold()
                self._holding.set()
                self._released.wait(10)
                if not commit:
                    raise _RolledBack
        except _RolledBack:
            pass
        except BaseException as error:  # reported to the test's thread
            self.error = error
            self._holding.set()
        finally:
            connections.close_all()

    def release(self) -> None:
        self._released.set()
        self._thread.join(15)


@contextmanager
def held_by_another_transaction(hold: Callable[[], None]) -> Iterator[None]:
    """Run `hold()` in another thread's transaction, which stays open (and then rolls back)
    while the block runs with this connection's lock_timeout at 300 ms.

    A statement of the block that waits on what `hold()` locked fails with `lock_timeout`
    instead of stalling, so a test proves by its outcome that nothing waited.
    """
    holder = _Holder(hold, commit=False)
    with connection.cursor() as cursor:
        cursor.execute("SET lock_timeout = '300ms'")
    try:
        yield
    finally:
        holder.release()
        with connection.cursor() as cursor:
            cursor.execute("RESET lock_timeout")


def waits_on_a_lock(backend_pid: int) -> bool:
    """Whether the backend `backend_pid` is waiting for a lock right now (read afresh: unlike
    `pg_stat_activity`, `pg_locks` is not kept as a snapshot for the reader's transaction)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE pid = %s AND NOT granted)", [backend_pid]
        )
        return cursor.fetchone()[0]


def committed_while_waited_on(*, hold: Callable[[], None], waiter: Callable[[], Any]) -> Any:
    """Run `hold()` in a transaction of another thread and, while it is open, `waiter()` in a
    third; commit `hold()`'s transaction once `waiter()` waits on a lock (asserted), and return
    what `waiter()` returned (raising what it raised).

    The race a test stages with it: a change that read its rows before another one committed,
    then waited on that one's lock, and goes on with what it read.
    """
    holder = _Holder(hold, commit=True)
    waiter_pid: list[int] = []
    outcome: dict[str, Any] = {}

    def waiting() -> None:
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_backend_pid()")
                waiter_pid.append(cursor.fetchone()[0])
            outcome["result"] = waiter()
        except BaseException as error:  # reported by the caller's thread
            outcome["error"] = error
        finally:
            connections.close_all()

    waited = threading.Thread(target=waiting)
    waited.start()
    deadline = time.monotonic() + 10
    while not (waiter_pid and waits_on_a_lock(waiter_pid[0])) and time.monotonic() < deadline:
        time.sleep(0.01)
    was_waiting = bool(waiter_pid) and waits_on_a_lock(waiter_pid[0])
    holder.release()
    waited.join(15)
    assert holder.error is None, holder.error
    assert was_waiting, "the waiter never waited on a lock the holder took"
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("result")
