"""Read replicas: which reads may leave the primary, and which replica serves them.

Every query goes to the primary (`default`) unless the code running it opted in with
`replica_reads`, and even then it stays on the primary when
- the request is unsafe (POST, PUT, PATCH, DELETE) or has written already (`ReplicaPinMiddleware`;
  any ORM write pins the rest of its request), so a request reads its own writes;
- the primary's connection is inside a transaction, whose reads must see its own writes;
- no replica is usable: each is down or lags more than DATABASE_REPLICA_MAX_LAG_SECONDS
  (`core.replica_monitor`, measured in the background: no request waits for a check).
A read that fails on a replica (the server went away, a recovery conflict cancelled it) runs once
more on the primary, so a replica's failure costs time, never an error. Code that stores what it
reads as current (the storefront's read cache) reads within `caught_up_with_primary()`.
Without DATABASE_REPLICA_URLS none of this runs: `replica_reads` calls straight through.
"""

import contextlib
import functools
import logging
import os
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections
from django.http import HttpRequest, HttpResponse

from core.replica_monitor import replica_monitor
from core.retries import TRANSIENT_DATABASE_ERRORS

logger = logging.getLogger("stockwire.replicas")

PRIMARY = DEFAULT_DB_ALIAS
# How long a read to be stored as current waits for a replica to replay what the primary had
# written when the read began; after that it reads the primary. A healthy replica on the same
# network replays a commit within a millisecond or two.
CATCH_UP_WAIT_SECONDS = 0.05
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})

P = ParamSpec("P")
T = TypeVar("T")


@dataclass
class _ReadScope:
    """One opted-in read: the database all its queries use, chosen at its first query."""

    caught_up: bool = False
    primary_only: bool = False
    alias: str | None = None


_scope: ContextVar[_ReadScope | None] = ContextVar("replica_read_scope", default=None)
_caught_up: ContextVar[bool] = ContextVar("replica_reads_caught_up", default=False)
_pinned: ContextVar[bool] = ContextVar("replica_reads_pinned_to_primary", default=False)

_counts: Counter[str] = Counter()
_counts_lock = threading.Lock()


def replica_reads(read: Callable[P, T]) -> Callable[P, T]:
    """Let `read`'s queries go to a usable replica; if one fails there, run `read` again on
    the primary. `read` must only read: it may run twice."""

    @functools.wraps(read)
    def reading(*args: P.args, **kwargs: P.kwargs) -> T:
        if not settings.DATABASE_REPLICAS or _scope.get() is not None:
            return read(*args, **kwargs)
        scope = _ReadScope(caught_up=_caught_up.get())
        token = _scope.set(scope)
        try:
            value = read(*args, **kwargs)
        except TRANSIENT_DATABASE_ERRORS as error:
            if scope.alias in (None, PRIMARY):
                raise
            _replica_failed(scope.alias, error)
        else:
            if scope.alias is not None:
                _count("replica" if scope.alias != PRIMARY else "primary")
            return value
        finally:
            _scope.reset(token)
        token = _scope.set(_ReadScope(primary_only=True))
        try:
            value = read(*args, **kwargs)
        finally:
            _scope.reset(token)
        _count("fallback")
        return value

    return reading


@contextlib.contextmanager
def caught_up_with_primary() -> Iterator[None]:
    """Within this block a replica serves a read only once it has replayed everything the
    primary had written when the read began (else the primary serves it).

    For reads stored as current, such as cache entries checked against versions read just
    before: a lagging replica could miss a commit whose invalidation those versions saw.
    """
    token = _caught_up.set(True)
    try:
        yield
    finally:
        _caught_up.reset(token)


def _replica_failed(alias: str, error: Exception) -> None:
    logger.warning(
        "a read failed on replica %s and is read again on the primary: %s",
        alias,
        str(error).strip(),
        extra={"replica": alias},
    )
    replica_monitor().read_failed(alias, error)
    # The session is dead or in an unknown state; the next read opens a new one.
    with contextlib.suppress(DatabaseError):
        connections[alias].close()


def _count(outcome: str) -> None:
    with _counts_lock:
        _counts[outcome] += 1


def _alias_chosen(scope: _ReadScope) -> str:
    """A usable replica for `scope`, or the primary when there is none or it lags behind."""
    usable = [] if scope.primary_only else replica_monitor().usable()
    if not usable:
        return PRIMARY
    # Recorded before the catch-up check: a failure there is a replica failure too.
    scope.alias = random.choice(usable)
    if scope.caught_up and not _replayed_what_primary_wrote(scope.alias):
        return PRIMARY
    return scope.alias


# Where the primary stands: the end of every commit already answered (flushed, unless commits
# do not wait for their flush, synchronous_commit off; then what is inserted in the log, which
# the WAL writer flushes within a fraction of a second), and its snapshot: which transactions
# have ended. (Inserted is not used always: it holds records no commit has flushed yet, a read's
# page pruning among them, which would keep a replica "behind" longer.)
_PRIMARY_COMMITTED_SQL = (
    "SELECT CASE current_setting('synchronous_commit') WHEN 'off'"
    " THEN pg_current_wal_insert_lsn() ELSE pg_current_wal_flush_lsn() END,"
    " pg_current_snapshot()::text"
)
# A replica has replayed every commit answered when its replay reached that position, or when
# its snapshot sees every transaction the primary's saw ended as ended: none still running
# there below the primary's horizon but those running on the primary. The position alone can
# stay out of reach on an idle primary: the flush may end inside a record not complete yet (one
# that crosses into a page not written), and a replica replays only whole records.
_REPLAYED_SQL = (
    "SELECT pg_last_wal_replay_lsn() >= %(written)s::pg_lsn"
    " OR (pg_snapshot_xmax(pg_current_snapshot()) >= pg_snapshot_xmax(%(ended)s::pg_snapshot)"
    " AND NOT EXISTS (SELECT FROM pg_snapshot_xip(pg_current_snapshot()) AS running(xid)"
    " WHERE running.xid < pg_snapshot_xmax(%(ended)s::pg_snapshot)"
    " AND running.xid NOT IN (SELECT pg_snapshot_xip(%(ended)s::pg_snapshot))))"
)


def _replayed_what_primary_wrote(alias: str) -> bool:
    """Whether `alias` replays, within CATCH_UP_WAIT_SECONDS, every commit the primary has
    answered by now."""
    with connections[PRIMARY].cursor() as cursor:
        cursor.execute(_PRIMARY_COMMITTED_SQL)
        written, ended = cursor.fetchone()
    deadline = time.monotonic() + CATCH_UP_WAIT_SECONDS
    pause = 0.001
    with connections[alias].cursor() as cursor:
        while True:
            cursor.execute(_REPLAYED_SQL, {"written": written, "ended": ended})
            if cursor.fetchone()[0]:
                return True
            if time.monotonic() + pause > deadline:
                return False
            time.sleep(pause)
            pause *= 2


class ReplicaRouter:
    """Django's database router: the primary, unless an opted-in read may use a replica."""

    def db_for_read(self, model: type, **hints: Any) -> str:
        scope = _scope.get()
        if scope is None or _pinned.get() or connections[PRIMARY].in_atomic_block:
            return PRIMARY
        if scope.alias is None:
            scope.alias = _alias_chosen(scope)
        return scope.alias

    def db_for_write(self, model: type, **hints: Any) -> str:
        # What this request (or task) goes on to read must see what it wrote.
        _pinned.set(True)
        return PRIMARY

    def allow_relation(self, obj1: Any, obj2: Any, **hints: Any) -> bool:
        # Every alias is the same database: a replica's rows are the primary's.
        return True

    def allow_migrate(self, db: str, app_label: str, **hints: Any) -> bool | None:
        return False if db in settings.DATABASE_REPLICAS else None


class ReplicaPinMiddleware:
    """Keep an unsafe request's reads on the primary, and end a write's pin with its request.

    A thread serves one request after another, so without the reset a pin would outlive the
    request that set it.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        token = _pinned.set(request.method not in SAFE_METHODS)
        try:
            return self.get_response(request)
        finally:
            _pinned.reset(token)


def replica_report() -> dict[str, Any]:
    """This process's opted-in reads by where they were served, and its replicas' states.

    `replica`: served by a replica; `primary`: opted in, but no replica was usable or caught
    up; `fallback`: failed on a replica and served again by the primary.
    """
    with _counts_lock:
        reads = {outcome: _counts[outcome] for outcome in ("replica", "primary", "fallback")}
    return {
        "pid": os.getpid(),
        "reads": reads,
        "replicas": [
            {
                "alias": state.alias,
                "status": state.status,
                "lag_seconds": None if state.lag_seconds is None else round(state.lag_seconds, 1),
            }
            for state in replica_monitor().states()
        ],
    }
