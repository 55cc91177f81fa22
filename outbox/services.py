"""Request Celery tasks so that none is lost and none outlives a rollback (design rule 4).

`outbox_enqueue` writes the request in the caller's transaction and hands it to the broker when
that transaction commits. If the broker is down or the process dies between commit and publish,
the row stays unsent and `outbox_relay` publishes it later. Tasks are idempotent, so the rare
double publish (broker took it, marking it sent failed) has one effect.
"""

import logging
import random
from datetime import timedelta
from functools import partial
from typing import Any

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from outbox.models import OutboxMessage

logger = logging.getLogger(__name__)

# A row younger than this is still being published by the process that wrote it.
RELAY_GRACE = timedelta(seconds=10)
# Backoff for rows the broker refused: doubles per attempt, capped so a long outage is retried
# every few minutes, with jitter so relays on many hosts do not stampede a recovering broker.
RELAY_BACKOFF_BASE_SECONDS = 5
RELAY_BACKOFF_CAP_SECONDS = 300
RELAY_BATCH_SIZE = 200
SENT_RETENTION = timedelta(days=7)


def outbox_enqueue(
    *, task_name: str, kwargs: dict[str, Any], dedupe_key: str | None = None
) -> None:
    """Request `task_name(**kwargs)` once the current transaction commits.

    Call inside the business transaction. A second request with the same `dedupe_key` is
    dropped (the first one stands), so a receiver may run twice without doubling an e-mail.
    """
    message = OutboxMessage(task_name=task_name, kwargs=kwargs, dedupe_key=dedupe_key)
    OutboxMessage.objects.bulk_create([message], ignore_conflicts=dedupe_key is not None)
    transaction.on_commit(
        partial(_publish_after_commit, message_id=message.pk, task_name=task_name, kwargs=kwargs)
    )


def _publish(*, message_id, task_name: str, kwargs: dict[str, Any]) -> None:
    """Hand one task to the broker (or run it in-process when tasks are eager)."""
    from config.celery import app

    app.tasks[task_name].apply_async(kwargs=kwargs, task_id=str(message_id))


def _publish_after_commit(*, message_id, task_name: str, kwargs: dict[str, Any]) -> None:
    """Publish a just-committed request; on failure leave it to the relay."""
    try:
        _publish(message_id=message_id, task_name=task_name, kwargs=kwargs)
    except Exception as error:
        logger.warning(
            "outbox publish failed, the relay will retry",
            extra={"task_name": task_name, "message_id": str(message_id), "error": repr(error)},
        )
        OutboxMessage.objects.filter(pk=message_id).update(
            attempts=F("attempts") + 1,
            last_error=repr(error)[:2000],
            next_attempt_at=timezone.now() + _backoff(1),
        )
        return
    OutboxMessage.objects.filter(pk=message_id).update(sent_at=timezone.now())


def _backoff(attempts: int) -> timedelta:
    seconds = min(RELAY_BACKOFF_CAP_SECONDS, RELAY_BACKOFF_BASE_SECONDS * 2 ** (attempts - 1))
    return timedelta(seconds=seconds * random.uniform(0.8, 1.2))


def outbox_relay(*, batch_size: int = RELAY_BATCH_SIZE, grace: timedelta = RELAY_GRACE) -> int:
    """Publish requests still unsent after `grace`; return how many were handed to the broker.

    Rows are claimed with `SELECT … FOR UPDATE SKIP LOCKED`, so relays running at once (beat on
    two hosts, a manual `outbox_relay`) never publish the same row twice.
    """
    now = timezone.now()
    published = 0
    with transaction.atomic():
        batch = list(
            OutboxMessage.objects.select_for_update(skip_locked=True)
            .filter(sent_at__isnull=True, created_at__lte=now - grace)
            .exclude(next_attempt_at__gt=now)
            .order_by("created_at")[:batch_size]
        )
        for message in batch:
            try:
                _publish(message_id=message.pk, task_name=message.task_name, kwargs=message.kwargs)
            except Exception as error:
                message.attempts += 1
                message.last_error = repr(error)[:2000]
                message.next_attempt_at = now + _backoff(message.attempts)
                message.save(update_fields=["attempts", "last_error", "next_attempt_at"])
                logger.warning(
                    "outbox relay could not publish",
                    extra={"task_name": message.task_name, "attempts": message.attempts},
                )
                continue
            message.sent_at = timezone.now()
            message.save(update_fields=["sent_at"])
            published += 1
    return published


def outbox_prune(*, older_than: timedelta = SENT_RETENTION) -> int:
    """Delete requests the broker took longer ago than `older_than`; return how many."""
    deleted, _ = OutboxMessage.objects.filter(
        sent_at__isnull=False, sent_at__lt=timezone.now() - older_than
    ).delete()
    return deleted
