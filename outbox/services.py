"""Request Celery tasks so that none is lost and none outlives a rollback.

`outbox_enqueue` writes the request in the caller's transaction. Who hands it to the broker
depends on `settings.OUTBOX_PUBLISH`: with "relay" (PostgreSQL and a broker) the same statement
sends a NOTIFY that PostgreSQL delivers on commit, and the listening relay (`outbox_relay --loop`,
`RelayWakeups`) publishes what is due, in batches, so no request waits on the broker; with
"commit" (and whenever tasks run eagerly) the committing process publishes it right after the
commit. The row stays open until the task has done its work: a worker's
`task_success` marks it done, its final `task_failure` marks it failed (with a TaskFailure row).
`outbox_relay` publishes what the broker never took (down at commit, process killed between
commit and publish) and, after `OUTBOX_REDELIVER_AFTER_SECONDS`, what it took and lost (a Redis
without persistence restarted, a worker died and its message went with it). Tasks are
idempotent, so a double publish has one effect.
"""

import json
import logging
import random
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any
from uuid import UUID, uuid4

from celery import Task, current_app
from django.conf import settings
from django.db import close_old_connections, connection, connections, router, transaction
from django.db.models import F, Q
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerUnavailable

from core.sessions import own_session_params
from outbox.models import OutboxMessage, TaskFailure

logger = logging.getLogger(__name__)

# A row younger than this is still being published by the process that wrote it (when
# `OUTBOX_PUBLISH` is "commit"; a relay woken by NOTIFY publishes at once, `RELAY_WOKEN_GRACE`).
RELAY_GRACE = timedelta(seconds=10)
RELAY_WOKEN_GRACE = timedelta(0)
# The PostgreSQL NOTIFY channel on which a committed request wakes the listening relay.
RELAY_CHANNEL = "stockwire_outbox"
# Backoff for rows the broker refused: doubles per attempt, capped so a long outage is retried
# every few minutes, with jitter so relays on many hosts do not stampede a recovering broker.
RELAY_BACKOFF_BASE_SECONDS = 5
RELAY_BACKOFF_CAP_SECONDS = 300
# Small enough that one relay run stays well inside the statement timeout while holding its
# row locks, large enough to drain a backlog of thousands within a minute of 5-second runs.
RELAY_BATCH_SIZE = 200
# A relay claims a batch for this long before it publishes it outside any transaction; a relay
# that died mid-batch leaves its rows to the next one after this.
RELAY_CLAIM_LEASE = timedelta(minutes=2)
DONE_RETENTION = timedelta(days=7)
TASK_FAILURE_RETENTION = timedelta(days=30)
# After a publish fails because the broker is unreachable, on-commit publishes in this process
# skip the broker for this long and leave their rows to the relay: a hung broker then costs one
# request one socket timeout, not every request of the outage.
PUBLISH_PAUSE_SECONDS = 5.0
_ERROR_MAX_LENGTH = 2000

_broker_paused_until = 0.0
_task_modules_imported = False


def outbox_enqueue(
    *, task_name: str, kwargs: dict[str, Any], dedupe_key: str | None = None
) -> UUID | None:
    """Request `task_name(**kwargs)` once the current transaction commits; return the request's
    id (the task id), or None when an earlier request with `dedupe_key` stands.

    Call inside the business transaction. A second request with the same `dedupe_key` is
    dropped (the first one stands), so a receiver may run twice without doubling an e-mail.
    Outside a transaction (autocommit) the row is written and published at once.
    When the relay publishes (`relay_publishes()`), the commit wakes it instead.

    Requests: `task_name` with `kwargs`, on commit.
    """
    message_id = uuid4()
    wake_relay = relay_publishes()
    if not _insert_unless_duplicate(
        message_id=message_id,
        task_name=task_name,
        kwargs=kwargs,
        dedupe_key=dedupe_key,
        wake_relay=wake_relay,
    ):
        return None  # an earlier request with this key stands; publishing this would double it
    if wake_relay:
        return message_id
    transaction.on_commit(
        partial(_publish_after_commit, message_id=message_id, task_name=task_name, kwargs=kwargs)
    )
    return message_id


def relay_publishes() -> bool:
    """Whether committed requests are left to the listening relay (`OUTBOX_PUBLISH = "relay"`)
    rather than published by the process that committed them.

    Eager tasks (the embedded default, and tests without a worker) always run on commit in
    the requesting process: there is no broker to publish to.
    """
    return settings.OUTBOX_PUBLISH == "relay" and not current_app.conf.task_always_eager


def _insert_unless_duplicate(
    *,
    message_id: UUID,
    task_name: str,
    kwargs: dict[str, Any],
    dedupe_key: str | None,
    wake_relay: bool = False,
) -> bool:
    """Write one request row unless its `dedupe_key` is taken; return whether it was written.

    One `INSERT … ON CONFLICT DO NOTHING` whose row count answers, rather than the ORM's
    insert plus a look-up: this runs inside every checkout, where each round trip counts.
    A NULL key never conflicts. Values go through the fields' own database preparation, so
    the UUID and JSON columns are stored as the ORM stores them on either database.

    With `wake_relay` (PostgreSQL only) the INSERT is a CTE and the statement selects
    `pg_notify(RELAY_CHANNEL, '')` once per row written, still one round trip: the answer has a
    row only when the request was written, and a duplicate sends nothing. What the statement
    guarantees comes from NOTIFY itself: PostgreSQL delivers the notification only when the
    transaction commits (after the row is visible to the relay it wakes), never when it rolls
    back, and the notifications of one transaction with the same payload arrive as one.
    """
    connection = connections[router.db_for_write(OutboxMessage)]
    meta = OutboxMessage._meta
    values = {
        "id": message_id,
        "task_name": task_name,
        "kwargs": kwargs,
        "dedupe_key": dedupe_key,
        "created_at": timezone.now(),
        "attempts": 0,
        "redeliveries": 0,
        "last_error": "",
    }
    fields = [meta.get_field(name) for name in values]
    columns = ", ".join(connection.ops.quote_name(field.column) for field in fields)
    params = [
        field.get_db_prep_save(value, connection)
        for field, value in zip(fields, values.values(), strict=True)
    ]
    sql = (
        f"INSERT INTO {connection.ops.quote_name(meta.db_table)} ({columns}) "
        f"VALUES ({', '.join(['%s'] * len(fields))}) "
        f"ON CONFLICT ({connection.ops.quote_name(meta.get_field('dedupe_key').column)}) "
        "DO NOTHING"
    )
    if wake_relay:
        sql = f"WITH written AS ({sql} RETURNING 1) SELECT pg_notify(%s, '') FROM written"
        params.append(RELAY_CHANNEL)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount == 1


def _task(task_name: str) -> Task:
    """Return the registered task, importing every app's `tasks` module on first use.

    Celery discovers task modules only when a worker starts; a web process that publishes must
    import them itself, or every lookup would fail and each request would wait for the relay.
    """
    global _task_modules_imported
    if not _task_modules_imported:
        current_app.loader.import_default_modules()
        _task_modules_imported = True
    return current_app.tasks[task_name]


def _publish(*, message_id: UUID, task_name: str, kwargs: dict[str, Any]) -> None:
    """Hand one task to the broker (or run it in-process when tasks are eager).

    The outbox id is the Celery task id, so a worker's log line leads back to the row.
    """
    _task(task_name).apply_async(kwargs=kwargs, task_id=str(message_id))


def _broker_paused() -> bool:
    return not current_app.conf.task_always_eager and time.monotonic() < _broker_paused_until


def _pause_broker() -> None:
    global _broker_paused_until
    _broker_paused_until = time.monotonic() + PUBLISH_PAUSE_SECONDS


def _resume_broker() -> None:
    global _broker_paused_until
    _broker_paused_until = 0.0


def _publish_after_commit(*, message_id: UUID, task_name: str, kwargs: dict[str, Any]) -> None:
    """Publish a just-committed request; on any failure log it and leave the row to the relay.

    Never raises: it runs after the caller's COMMIT, where an error would reach a caller whose
    work is saved (a placed order answered as a failure) and stop Django from running the
    transaction's later on-commit callbacks (counters, cache invalidation). A failing on-commit
    effect is logged and retried through the outbox: the row stays pending.
    Not `core.commit.on_commit_robust`: a failure here is logged as the relay's to pick up,
    and a refusing broker pauses publishing.
    """
    if _broker_paused():
        return
    log = {"task_name": task_name, "message_id": str(message_id)}
    try:
        _publish(message_id=message_id, task_name=task_name, kwargs=kwargs)
    except Exception as error:
        if isinstance(error, BrokerUnavailable | OSError):
            _pause_broker()
        logger.warning(
            "outbox publish failed, the relay will retry", extra={**log, "error": repr(error)}
        )
        try:
            _record_publish_failure(message_id=message_id, error=error)
        except Exception as bookkeeping_error:
            logger.warning(
                "outbox publish failure not recorded, the relay will retry without backoff",
                extra={**log, "error": repr(bookkeeping_error)},
            )
        return
    try:
        _mark_published(message_id)
    except Exception as error:
        # The broker has the task; the relay publishes the row again unless the task marks it
        # done first, and the idempotent task runs once more to no effect.
        logger.warning(
            "outbox row published but not marked published, the relay will publish it again",
            extra={**log, "error": repr(error)},
        )


def _record_publish_failure(*, message_id: UUID, error: Exception) -> None:
    """Keep the error on the row and give it its first backoff before the relay's next try."""
    OutboxMessage.objects.filter(pk=message_id).update(
        attempts=F("attempts") + 1,
        last_error=repr(error)[:_ERROR_MAX_LENGTH],
        next_attempt_at=timezone.now() + _backoff(1),
    )


def _mark_published(message_id: UUID) -> None:
    """Record that the broker took the request, so the relay leaves it alone until the
    redelivery deadline.

    Written out, like the INSERT: it runs after every commit that requested a task, where the
    ORM's compilation of the UPDATE cost more than the statement. An eager task has already
    run (and may be marked done) when this runs; the guard keeps the first publish time.
    """
    connection = connections[router.db_for_write(OutboxMessage)]
    meta = OutboxMessage._meta
    published_at, pk = meta.get_field("published_at"), meta.pk
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {quote(meta.db_table)} SET {quote(published_at.column)} = %s "
            f"WHERE {quote(pk.column)} = %s AND {quote(published_at.column)} IS NULL",
            [
                published_at.get_db_prep_save(timezone.now(), connection),
                pk.get_db_prep_save(message_id, connection),
            ],
        )


def _backoff(attempts: int) -> timedelta:
    seconds = min(RELAY_BACKOFF_CAP_SECONDS, RELAY_BACKOFF_BASE_SECONDS * 2 ** (attempts - 1))
    return timedelta(seconds=seconds * random.uniform(0.8, 1.2))


@dataclass(frozen=True)
class _RelayBatch:
    """What one relay batch did: rows published and tried, where it stopped, and whether it
    stopped because the broker is unreachable."""

    published: int
    tried: int
    last: tuple[datetime, UUID] | None
    broker_unreachable: bool


def redeliver_after() -> timedelta:
    """How long a published row may go without an end before the relay publishes it again."""
    return timedelta(seconds=settings.OUTBOX_REDELIVER_AFTER_SECONDS)


def outbox_relay(
    *,
    batch_size: int = RELAY_BATCH_SIZE,
    grace: timedelta = RELAY_GRACE,
    now_due: bool = False,
    message_ids: Iterable[UUID] | None = None,
) -> int:
    """Publish one batch of due requests, oldest first; return how many were handed to the
    broker.

    Due: never published and older than `grace`, or published longer ago than
    `redeliver_after()` and neither done nor failed (the broker or a worker lost it). A batch
    is claimed with `SELECT … FOR UPDATE SKIP LOCKED` and a short lease in one transaction and
    published after it commits, so relays running at once (beat on two hosts, a manual
    `outbox_relay`) never publish the same row twice and no lock is held while the broker is
    slow. A row the broker refused waits out its own backoff; `now_due` (an operator who fixed
    the broker) or explicit `message_ids` (the admin's "relay now", which may also re-send a
    published row) publish regardless of grace and backoff. The first sign that the broker is
    unreachable ends the run: the rest of the batch would only wait for the same timeout.
    Sends no signals and requests no tasks: it publishes tasks other code requested.
    """
    return _relay_batch(
        batch_size=batch_size, grace=grace, now_due=now_due, message_ids=message_ids
    ).published


def outbox_relay_drain(
    *,
    now_due: bool = False,
    stopping: Callable[[], bool] = lambda: False,
    grace: timedelta = RELAY_GRACE,
) -> int:
    """Relay batch after batch until every due row was tried once; return how many were
    published.

    Each batch starts after the last row the one before tried, so one run tries a row at most
    once and reaches every row behind those it cannot publish (a task no longer deployed, which
    `now_due` would otherwise hand every batch first). The run ends with a batch that finds
    fewer rows than it may take, at the first sign of an unreachable broker, or when
    `stopping()` says so. A listening relay passes `RELAY_WOKEN_GRACE`: nobody else publishes
    the rows that woke it. Sends no signals and requests no tasks.
    """
    total, after = 0, None
    while not stopping():
        batch = _relay_batch(now_due=now_due, after=after, grace=grace)
        total += batch.published
        if batch.broker_unreachable or batch.tried < RELAY_BATCH_SIZE:
            break
        after = batch.last
    return total


class RelayWakeups:
    """A PostgreSQL connection of its own that LISTENs on `RELAY_CHANNEL` for the relay loop.

    Its own, not Django's: Django closes and replaces its connections (age, health checks,
    `connections_renew`), and a replaced connection would silently stop listening. Autocommit,
    so a notification is read as soon as it arrives. Open it before the first drain: a request
    committed after `open()` wakes `wait()`, one committed before it is found by that drain, so
    none waits for the next timed pass. Use as a context manager; errors from a lost connection
    are psycopg's `OperationalError`.
    """

    def __init__(self, alias: str = "default") -> None:
        self.alias = alias
        self._connection = None

    def open(self) -> "RelayWakeups":
        import psycopg

        self._connection = psycopg.connect(**own_session_params(self.alias), autocommit=True)
        self._connection.execute(f"LISTEN {RELAY_CHANNEL}")
        return self

    def wait(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for a notification; return whether one came. Those that
        arrived meanwhile are consumed too: one drain publishes every request they announce."""
        woken = False
        for _ in self._connection.notifies(timeout=timeout, stop_after=1):
            woken = True
        if woken:
            for _ in self._connection.notifies(timeout=0):
                pass
        return woken

    @property
    def is_open(self) -> bool:
        return self._connection is not None and not self._connection.closed

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def __enter__(self) -> "RelayWakeups":
        return self.open()

    def __exit__(self, *exc_info) -> None:
        self.close()


@dataclass(frozen=True)
class _Claimed:
    pk: UUID
    task_name: str
    kwargs: dict[str, Any]
    created_at: datetime
    published_at: datetime | None
    attempts: int


def _relay_batch(
    *,
    batch_size: int = RELAY_BATCH_SIZE,
    grace: timedelta = RELAY_GRACE,
    now_due: bool = False,
    message_ids: Iterable[UUID] | None = None,
    after: tuple[datetime, UUID] | None = None,
) -> _RelayBatch:
    """`outbox_relay`'s batch, from the row after `after` (created_at, id) when given."""
    now = timezone.now()
    claimed = _claim_batch(
        now=now,
        batch_size=batch_size,
        grace=grace,
        now_due=now_due,
        message_ids=message_ids,
        after=after,
    )
    published: list[_Claimed] = []
    unreachable = False
    for position, message in enumerate(claimed):
        try:
            _publish(message_id=message.pk, task_name=message.task_name, kwargs=message.kwargs)
        except Exception as error:
            _record_relay_failure(message=message, error=error, now=now)
            if isinstance(error, BrokerUnavailable | OSError):
                _pause_broker()
                unreachable = True
                untried = [later.pk for later in claimed[position + 1 :]]
                OutboxMessage.objects.filter(pk__in=untried).update(claimed_until=None)
                claimed = claimed[: position + 1]
                break
            continue
        if message.published_at is not None:
            logger.warning(
                "outbox row published but never done: publishing it again",
                extra={
                    "task_name": message.task_name,
                    "message_id": str(message.pk),
                    "published_at": message.published_at.isoformat(),
                },
            )
        published.append(message)
    if published:
        _resume_broker()
        _mark_batch_published(published)
    last = (claimed[-1].created_at, claimed[-1].pk) if claimed else None
    return _RelayBatch(
        published=len(published), tried=len(claimed), last=last, broker_unreachable=unreachable
    )


def _claim_batch(
    *,
    now: datetime,
    batch_size: int,
    grace: timedelta,
    now_due: bool,
    message_ids: Iterable[UUID] | None,
    after: tuple[datetime, UUID] | None,
) -> list[_Claimed]:
    """Lease the batch's rows to this relay and return them, oldest first, in one statement.

    `UPDATE … SET claimed_until = <lease> WHERE id IN (SELECT … ORDER BY created_at, id LIMIT n
    FOR UPDATE SKIP LOCKED) RETURNING …`, in autocommit: the subquery locks the due rows no other
    relay holds (a row another relay is claiming is skipped, one it claimed and committed is
    re-checked by PostgreSQL against `claimed_until` and left out), and the statement's commit
    makes the lease visible to every other relay. Written out rather than the ORM's
    SELECT-then-UPDATE transaction because a listening relay runs it for every few orders:
    four round trips and two compilations were most of its CPU. SQLite (one writer at a time)
    runs the same statement without the locking clause.
    """
    if message_ids is not None:
        message_ids = list(message_ids)
        if not message_ids:
            return []
    connection = connections[router.db_for_write(OutboxMessage)]
    meta = OutboxMessage._meta
    quote = connection.ops.quote_name

    def column(name: str) -> str:
        return quote(meta.get_field(name).column)

    def value(name: str, raw: Any) -> Any:
        return meta.get_field(name).get_db_prep_value(raw, connection)

    params: list[Any] = [value("claimed_until", now + RELAY_CLAIM_LEASE)]
    due = [
        f"{column('done_at')} IS NULL AND {column('failed_at')} IS NULL",
        f"({column('claimed_until')} IS NULL OR {column('claimed_until')} <= %s)",
    ]
    params.append(value("claimed_until", now))
    if message_ids is not None:
        due.append(f"{column('id')} IN ({', '.join(['%s'] * len(message_ids))})")
        params += [value("id", pk) for pk in message_ids]
    else:
        never_published = f"{column('published_at')} IS NULL"
        overdue = f"{column('published_at')} <= %s"
        never_params: list[Any] = []
        overdue_params = [value("published_at", now - redeliver_after())]
        if not now_due:
            # A publish the broker refused waits out its backoff, a redelivery's as a first's.
            backoff = f"({column('next_attempt_at')} IS NULL OR {column('next_attempt_at')} <= %s)"
            never_published += f" AND {column('created_at')} <= %s AND {backoff}"
            never_params = [value("created_at", now - grace), value("next_attempt_at", now)]
            overdue += f" AND {backoff}"
            overdue_params.append(value("next_attempt_at", now))
        due.append(f"(({never_published}) OR ({overdue}))")
        params += never_params + overdue_params
    if after is not None:
        created_at, pk = after
        due.append(
            f"({column('created_at')} > %s OR ({column('created_at')} = %s AND "
            f"{column('id')} > %s))"
        )
        params += [value("created_at", created_at), value("created_at", created_at)]
        params.append(value("id", pk))
    params.append(batch_size)
    locking = (
        " FOR UPDATE SKIP LOCKED" if connection.features.has_select_for_update_skip_locked else ""
    )
    table = quote(meta.db_table)
    sql = (
        f"UPDATE {table} SET {column('claimed_until')} = %s WHERE {column('id')} IN ("
        f"SELECT {column('id')} FROM {table} WHERE {' AND '.join(due)} "
        f"ORDER BY {column('created_at')}, {column('id')} LIMIT %s{locking}) "
        f"RETURNING {column('id')}, {column('task_name')}, {column('kwargs')}, "
        f"{column('created_at')}, {column('published_at')}, {column('attempts')}"
    )
    # raw() turns the returned columns into Python values as the fields would.
    rows = [
        _Claimed(
            pk=row.pk,
            task_name=row.task_name,
            kwargs=row.kwargs,
            created_at=row.created_at,
            published_at=row.published_at,
            attempts=row.attempts,
        )
        for row in OutboxMessage.objects.raw(sql, params)
    ]
    return sorted(rows, key=lambda row: (row.created_at, row.pk))


def _mark_batch_published(messages: list[_Claimed]) -> None:
    """Mark a batch published and end this relay's lease on it, in one written-out UPDATE; a
    row published before counts one more redelivery (the old `published_at` decides)."""
    connection = connections[router.db_for_write(OutboxMessage)]
    meta = OutboxMessage._meta
    quote = connection.ops.quote_name
    published_at, claimed_until = (
        quote(meta.get_field(name).column) for name in ("published_at", "claimed_until")
    )
    redeliveries = quote(meta.get_field("redeliveries").column)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {quote(meta.db_table)} SET {published_at} = %s, {claimed_until} = NULL, "
            f"{redeliveries} = {redeliveries} + "
            f"CASE WHEN {published_at} IS NULL THEN 0 ELSE 1 END "
            f"WHERE {quote(meta.pk.column)} IN ({', '.join(['%s'] * len(messages))})",
            [
                meta.get_field("published_at").get_db_prep_value(timezone.now(), connection),
                *(meta.pk.get_db_prep_value(message.pk, connection) for message in messages),
            ],
        )


def _record_relay_failure(*, message: _Claimed, error: Exception, now: datetime) -> None:
    """Keep the broker's refusal on the row, give it its backoff and end this relay's lease."""
    attempts = message.attempts + 1
    OutboxMessage.objects.filter(pk=message.pk).update(
        attempts=attempts,
        last_error=repr(error)[:_ERROR_MAX_LENGTH],
        next_attempt_at=now + _backoff(attempts),
        claimed_until=None,
    )
    logger.warning(
        "outbox relay could not publish",
        extra={"task_name": message.task_name, "attempts": attempts, "error": repr(error)},
    )


def outbox_prune(
    *,
    older_than: timedelta = DONE_RETENTION,
    failures_older_than: timedelta = TASK_FAILURE_RETENTION,
) -> int:
    """Delete requests whose task ended (done or failed), and task failures, past retention;
    return how many.

    A row still pending or published without an end is never pruned, however old: it is work
    still owed. Sends no signals, requests no tasks.
    """
    now = timezone.now()
    cutoff = now - older_than
    ended, _ = OutboxMessage.objects.filter(
        Q(done_at__lt=cutoff) | Q(failed_at__lt=cutoff)
    ).delete()
    failures, _ = TaskFailure.objects.filter(failed_at__lt=now - failures_older_than).delete()
    return ended + failures


def _jsonable(value: Any) -> Any:
    """Return `value` as JSON can store it (anything exotic becomes its repr)."""
    return json.loads(json.dumps(value, default=repr))


def _message_id(task_id: str | None) -> UUID | None:
    """The outbox row a Celery task id names, if it can be one (beat's runs have no row)."""
    try:
        return UUID(str(task_id))
    except ValueError:
        return None


def connections_renew() -> None:
    """Drop this thread's database connections that broke or outlived their age, so the next
    query gets a fresh one (what Django does between requests).

    A worker's signal receivers run on the connection the task used, and a long-running loop
    keeps its connection across a restart of the database; either would otherwise fail on a
    connection that was cut. Inside a transaction (an eager task in a test's) nothing is closed.
    """
    if not connection.in_atomic_block:
        close_old_connections()


def _open_row(message_id: UUID):
    return OutboxMessage.objects.filter(pk=message_id, done_at__isnull=True, failed_at__isnull=True)


def outbox_task_done(*, task_id: str | None) -> None:
    """Close the request whose task returned: the relay stops watching it.

    Sends no signals, requests no tasks.
    """
    message_id = _message_id(task_id)
    if message_id is not None:
        connections_renew()
        _open_row(message_id).update(done_at=timezone.now(), claimed_until=None)


def outbox_task_retrying(*, task_id: str | None) -> None:
    """Restart the redelivery deadline of a task that handed itself back to the broker to retry.

    A retry is a publish: a countdown of up to ten minutes and the hour a task may retry must
    not look like a lost task to the relay. Sends no signals, requests no tasks.
    """
    message_id = _message_id(task_id)
    if message_id is not None:
        connections_renew()
        _open_row(message_id).update(published_at=timezone.now())


def task_failure_record(
    *,
    task_name: str,
    task_id: str | None,
    args: Iterable[Any] | None,
    kwargs: dict[str, Any] | None,
    exception: BaseException,
    hostname: str = "",
) -> TaskFailure:
    """Keep a task's final failure (retries exhausted or none allowed) where staff can see it,
    and close its outbox request as failed.

    The worker log alone scrolls away; a row in the admin is what an operator can act on (fix
    the cause and re-run it). Written on a fresh connection when the task's own broke (the
    failure may be that very connection); failure row and request close in one transaction.
    Sends no signals, requests no tasks.
    """
    connections_renew()
    with transaction.atomic():
        failure = TaskFailure.objects.create(
            task_name=task_name[:200],
            task_id=task_id or "",
            args=_jsonable(list(args or [])),
            kwargs=_jsonable(dict(kwargs or {})),
            exception=repr(exception)[:_ERROR_MAX_LENGTH],
            traceback="".join(traceback.format_exception(exception))[-20_000:],
            hostname=hostname[:200],
        )
        message_id = _message_id(task_id)
        if message_id is not None:
            _open_row(message_id).update(failed_at=failure.failed_at, claimed_until=None)
    return failure


@transaction.atomic
def task_failure_rerun(*, failure: TaskFailure, actor=None) -> UUID | None:
    """Request a failed task again through the outbox, once per failure; return the new
    request's id, or None when it was re-run already or cannot be (it took positional
    arguments, which the outbox does not carry).

    For staff who fixed the cause (the mail server is back, the file restored). The failure
    row's lock makes two clicks one re-run, and the dedupe key keeps it one if the row is read
    stale. Sends no signals; requests the failed task with its keyword arguments, on commit.
    """
    failure = TaskFailure.objects.select_for_update().get(pk=failure.pk)
    if failure.rerun_at is not None or failure.args:
        return None
    request_id = outbox_enqueue(
        task_name=failure.task_name, kwargs=failure.kwargs, dedupe_key=f"rerun:{failure.pk}"
    )
    if request_id is None:
        return None
    failure.rerun_at, failure.rerun_by, failure.rerun_request = timezone.now(), actor, request_id
    failure.save(update_fields=["rerun_at", "rerun_by", "rerun_request"])
    return request_id
