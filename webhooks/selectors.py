"""Reads of the webhooks app: who subscribes to what, kept per process so a checkout nobody
subscribes to pays no query for it."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping

from django.db.models import QuerySet

from webhooks.models import DeliveryState, WebhookDelivery, WebhookEndpoint

# How stale this process's copy of the subscriptions may get. Saving an endpoint forgets the
# copy of the process that saved it at once; every other process (web workers, Celery workers)
# reloads within this many seconds, for one query. A subscription therefore starts receiving
# within this time everywhere; an endpoint deactivated meanwhile gets no delivery rows, since
# the rows are written only for endpoints still active in the database.
SUBSCRIPTIONS_REFRESH_SECONDS = 10.0

_Subscriptions = Mapping[str, tuple[int, ...]]
_snapshot: tuple[float, _Subscriptions] | None = None
_lock = threading.Lock()


def _subscriptions_load() -> _Subscriptions:
    by_event: dict[str, list[int]] = {}
    for endpoint_id, events in WebhookEndpoint.objects.filter(active=True).values_list(
        "pk", "events"
    ):
        for event_type in events or ():
            by_event.setdefault(event_type, []).append(endpoint_id)
    return {event_type: tuple(ids) for event_type, ids in by_event.items()}


def subscribed_endpoint_ids(event_type: str) -> tuple[int, ...]:
    """The active endpoints subscribed to `event_type`, from this process's copy (no query
    unless the copy is missing or older than SUBSCRIPTIONS_REFRESH_SECONDS)."""
    global _snapshot
    snapshot = _snapshot
    if snapshot is None or time.monotonic() - snapshot[0] > SUBSCRIPTIONS_REFRESH_SECONDS:
        with _lock:
            snapshot = (time.monotonic(), _subscriptions_load())
            _snapshot = snapshot
    return snapshot[1].get(event_type, ())


def subscriptions_forget(*, known: _Subscriptions | None = None) -> None:
    """Drop this process's copy (the next event reloads it), or replace it with `known`.

    `known` is for a caller that knows what the table holds: the test suite, whose every test
    starts without endpoints.
    """
    global _snapshot
    _snapshot = None if known is None else (time.monotonic(), dict(known))


def deliveries_due(*, now, limit: int) -> QuerySet[WebhookDelivery]:
    """Pending deliveries of active endpoints whose next attempt is due, oldest first, locked
    with SKIP LOCKED so dispatchers running at once split them."""
    return (
        WebhookDelivery.objects.select_for_update(skip_locked=True, of=("self",))
        .filter(state=DeliveryState.PENDING, next_attempt_at__lte=now, endpoint__active=True)
        .order_by("next_attempt_at", "id")[:limit]
    )
