"""Locks held by another connection, for tests that prove who waits on whom (PostgreSQL)."""

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from django.db import connection, connections, transaction


class _RolledBack(Exception):
    pass


@contextmanager
def held_by_another_transaction(hold: Callable[[], None]) -> Iterator[None]:
    """Run `hold()` in another thread's transaction, which stays open (and then rolls back)
    while the block runs with this connection's lock_timeout at 300 ms.

    A statement of the block that waits on what `hold()` locked fails with `lock_timeout`
    instead of stalling, so a test proves by its outcome that nothing waited.
    """
    holding, release = threading.Event(), threading.Event()

    def holder() -> None:
        try:
            with transaction.atomic():
                hold()
                holding.set()
                release.wait(10)
                raise _RolledBack
        except _RolledBack:
            pass
        finally:
            connections.close_all()

    thread = threading.Thread(target=holder)
    thread.start()
    assert holding.wait(10)
    with connection.cursor() as cursor:
        cursor.execute("SET lock_timeout = '300ms'")
    try:
        yield
    finally:
        release.set()
        thread.join(10)
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
