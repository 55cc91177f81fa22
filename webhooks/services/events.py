"""Events: written in the transaction that caused them, one delivery row per subscribed
endpoint, each delivery requested through the outbox (published on commit, re-sent by the
relay if the broker missed it)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import timedelta
from functools import partial
from typing import Any
from uuid import uuid4

from django.db import connections, router, transaction
from django.utils import timezone

from webhooks import payloads
from webhooks.models import (
    ChangeKind,
    DeliveryState,
    EventType,
    PendingChange,
    ResourceSequence,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
)
from webhooks.selectors import subscribed_endpoint_ids
from webhooks.services.deliveries import REQUEST_LEASE, delivery_attempt_request

PAYLOAD_VERSION = "1"
CHANGES_BATCH_SIZE = 200
# Events and their delivery logs are kept this long once no delivery is pending.
EVENT_RETENTION = timedelta(days=30)
_CHANGE_EVENTS = {
    ChangeKind.STOCK: EventType.STOCK_CHANGED,
    ChangeKind.PRODUCT: EventType.PRODUCT_UPDATED,
}
_CHANGE_RESOURCES = {ChangeKind.STOCK: "variant", ChangeKind.PRODUCT: "product"}


def _sequence_next(*, resource_type: str, resource_id: int) -> int:
    """Take the resource's next event sequence number.

    One upsert whose row lock lasts to the commit, so two transactions emitting for the same
    resource number their events in commit order, and a rolled-back event gives its number
    back. Written out: the ORM's upsert cannot add to the stored value.
    """
    connection = connections[router.db_for_write(ResourceSequence)]
    quote = connection.ops.quote_name
    meta = ResourceSequence._meta
    table = quote(meta.db_table)
    kind, key, last = (
        quote(meta.get_field(name).column)
        for name in ("resource_type", "resource_id", "last_sequence")
    )
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} ({kind}, {key}, {last}) VALUES (%s, %s, 1) "
            f"ON CONFLICT ({kind}, {key}) DO UPDATE SET {last} = {table}.{last} + 1 "
            f"RETURNING {last}",
            [resource_type, resource_id],
        )
        return cursor.fetchone()[0]


def event_emit(
    *,
    event_type: str,
    resource_type: str,
    resource_id: int,
    data: Callable[[], dict[str, Any]],
) -> WebhookEvent | None:
    """Write an event for the endpoints subscribed to `event_type`; return it (None when no
    endpoint subscribes).

    Call inside the business transaction: the event, its deliveries and their outbox requests
    commit or roll back with the cause. `data` builds the resource only when someone listens,
    so an event nobody subscribes to costs no query.
    Sends no signals; requests `webhooks.delivery_attempt` once per delivery, on commit.
    """
    endpoint_ids = subscribed_endpoint_ids(event_type)
    if not endpoint_ids:
        return None
    now = timezone.now()
    sequence = _sequence_next(resource_type=resource_type, resource_id=resource_id)
    event_id = uuid4()
    event = WebhookEvent.objects.create(
        id=event_id,
        type=event_type,
        resource_type=resource_type,
        resource_id=resource_id,
        sequence=sequence,
        created_at=now,
        payload={
            "id": str(event_id),
            "type": event_type,
            "version": PAYLOAD_VERSION,
            "created_at": now.isoformat(),
            "sequence": sequence,
            "data": data(),
        },
    )
    # Only endpoints still active in the database: this process's copy of the subscriptions
    # may be a few seconds old.
    active = WebhookEndpoint.objects.filter(pk__in=endpoint_ids, active=True).values_list(
        "pk", flat=True
    )
    deliveries = WebhookDelivery.objects.bulk_create(
        WebhookDelivery(
            event=event,
            endpoint_id=endpoint_id,
            state=DeliveryState.PENDING,
            next_attempt_at=now + REQUEST_LEASE,
            created_at=now,
        )
        for endpoint_id in sorted(active)
    )
    for delivery in deliveries:
        delivery_attempt_request(delivery_id=delivery.pk, attempt=1)
    return event


def changes_mark(*, kind: str, object_ids: Iterable[int]) -> None:
    """Note that these variants' stock or these products changed, for the coalesced event.

    Call inside the changing transaction. Nothing is written while no endpoint subscribes to
    the event. One upsert for the batch, in id order (as every writer takes these rows, so two
    never wait on each other in a circle); updating an existing row locks it, so
    `changes_emit` cannot consume it before this transaction's change is committed.
    Sends no signals and requests no tasks.
    """
    if not subscribed_endpoint_ids(_CHANGE_EVENTS[kind]):
        return
    now = timezone.now()
    PendingChange.objects.bulk_create(
        [
            PendingChange(kind=kind, object_id=object_id, marked_at=now)
            for object_id in sorted(set(object_ids))
        ],
        update_conflicts=True,
        unique_fields=["kind", "object_id"],
        update_fields=["marked_at"],
    )


def changes_emit() -> int:
    """Emit the coalesced events for every change noted so far; return how many were emitted.

    Run by beat every 30 seconds: at most one stock.changed per variant and one
    product.updated per product per run, however often they changed in between.

    Batch after batch, each its own transaction: marks are taken with SKIP LOCKED (a mark a
    running transaction is updating waits for the next run), the state is read as committed
    now, one event is written per variant or product, and the marks are deleted.
    Sends no signals; requests `webhooks.delivery_attempt` per delivery.
    """
    emitted = 0
    while True:
        batch, taken = _changes_emit_batch()
        emitted += batch
        if taken < CHANGES_BATCH_SIZE:
            return emitted


@transaction.atomic
def _changes_emit_batch() -> tuple[int, int]:
    marks = list(
        PendingChange.objects.select_for_update(skip_locked=True).order_by("id")[
            :CHANGES_BATCH_SIZE
        ]
    )
    emitted = 0
    for kind in ChangeKind:
        ids = sorted(mark.object_id for mark in marks if mark.kind == kind)
        if not ids:
            continue
        found = (
            payloads.stock_levels(variant_ids=ids)
            if kind == ChangeKind.STOCK
            else payloads.products(product_ids=ids)
        )
        for object_id, data in found.items():
            event = event_emit(
                event_type=_CHANGE_EVENTS[kind],
                resource_type=_CHANGE_RESOURCES[kind],
                resource_id=object_id,
                data=partial(dict, data),
            )
            emitted += event is not None
    PendingChange.objects.filter(pk__in=[mark.pk for mark in marks]).delete()
    return emitted, len(marks)


def events_prune(*, now=None) -> int:
    """Delete events older than EVENT_RETENTION that no delivery still waits to deliver
    (their deliveries and attempts go with them); return how many events were deleted."""
    cutoff = (now or timezone.now()) - EVENT_RETENTION
    finished = WebhookEvent.objects.filter(created_at__lt=cutoff).exclude(
        deliveries__state=DeliveryState.PENDING
    )
    _, per_model = finished.delete()
    return per_model.get(WebhookEvent._meta.label, 0)
