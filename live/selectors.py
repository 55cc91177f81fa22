"""What the sockets say: an order's state, a SKU's availability, each with its version.

Every read here answers with a version a client can order messages by: an order's is the id of
its latest timeline entry (OrderEvent; an order's changes lock its row, so they commit in id
order), a SKU's its `live.models.StockVersion` (`live.services` says why not a movement id).
Each is read in the same statement as the state it versions, so the pair is one snapshot.
"""

import functools
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.db.models import Model, OuterRef, Q, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce

from catalog.models import Variant
from inventory.selectors import variant_available_units, variants_low_on_stock
from live.models import StockVersion
from orders.models import Order, OrderEvent, OrderStatus

# Orders a customer still waits on; the snapshot lists them (and whatever changed since the
# version the client already has).
OPEN_STATUSES = (
    OrderStatus.PENDING_PAYMENT,
    OrderStatus.PAID,
    OrderStatus.PARTIALLY_SHIPPED,
    OrderStatus.SHIPPED,
)
# A snapshot lists at most this many orders, the most recently changed first.
SNAPSHOT_ORDERS = 50
# A staff snapshot lists at most this many flagged orders and low variants (the dashboard's
# panels show 10; their counts are exact).
SNAPSHOT_STAFF_ROWS = 50


@dataclass(frozen=True)
class StockState:
    variant_id: int
    sku: str
    product_id: int
    available: int
    version: int

    def message(self) -> dict[str, Any]:
        """The socket's `stock` message (and a snapshot's entry)."""
        return {
            "sku": self.sku,
            "product_id": self.product_id,
            "available": self.available,
            "version": self.version,
        }


def stock_states(*, variant_ids: Iterable[int]) -> list[StockState]:
    """The availability of each variant and its version, for a snapshot: once the pushes
    reading the variants right now committed (a share lock on their versions), so a later
    push always carries a higher version than this read."""
    ids = sorted(set(variant_ids))
    with transaction.atomic():
        if connection.vendor == "postgresql" and ids:
            # FOR SHARE waits only for a push's bump in flight: snapshots never wait for each
            # other (the ORM has no FOR SHARE).
            with connection.cursor() as cursor:
                cursor.execute(
                    f"SELECT 1 FROM {StockVersion._meta.db_table} WHERE variant_id = ANY(%s) "
                    "ORDER BY variant_id FOR SHARE",
                    [ids],
                )
        return stock_rows(variant_ids=ids)


def stock_rows(*, variant_ids: Iterable[int]) -> list[StockState]:
    """The availability of each variant, as `inventory.selectors.availability_by_variant`
    counts it (`available_units`: on hand less reserved, held and safety stock), with its
    version: one query for any number of variants."""
    rows = _variants_with_stock_and_version().filter(pk__in=set(variant_ids))
    return [StockState(*row) for row in rows]


@functools.cache
def _variants_with_stock_and_version() -> QuerySet:
    """Every variant with its availability and version, ordered by SKU: built once per
    process and only filtered per read. Building the annotations (a subquery each) cost 1.5 of
    the read's 2.5 ms of CPU, paid by every push of a SKU (bench/README.md)."""
    version = StockVersion.objects.filter(variant=OuterRef("pk")).values("version")
    return (
        Variant.objects.annotate(
            available=variant_available_units(),
            version=Coalesce(Subquery(version), Value(0)),
        )
        .order_by("sku")
        .values_list("pk", "sku", "product_id", "available", "version")
    )


def variants_named(*, skus: Iterable[str], product_ids: Iterable[int]) -> dict[int, str]:
    """The active variants of active products with one of `skus` or of one of `product_ids`:
    {variant id: SKU}."""
    rows = Variant.objects.filter(
        Q(sku__in=list(skus)) | Q(product_id__in=list(product_ids)),
        is_active=True,
        product__is_active=True,
    ).values_list("pk", "sku")
    return dict(rows)


def _latest_event() -> Any:
    return OrderEvent.objects.filter(order=OuterRef("pk")).order_by("-id")


def _with_version(orders: Any) -> Any:
    latest = _latest_event()
    return orders.annotate(
        event_id=Subquery(latest.values("id")[:1]),
        event_at=Subquery(latest.values("created_at")[:1]),
    )


@dataclass(frozen=True)
class OrderState:
    number: str
    status: str
    event_id: int
    at: str
    tracking_number: str
    needs_attention: bool

    def message(self) -> dict[str, Any]:
        return asdict(self)


_STATE_FIELDS = ("number", "status", "event_id", "event_at", "tracking_number", "needs_attention")


def _state(row: tuple) -> OrderState:
    number, status, event_id, event_at, tracking_number, needs_attention = row
    return OrderState(
        number=number,
        status=status,
        event_id=event_id,
        at=event_at.isoformat(),
        tracking_number=tracking_number,
        needs_attention=needs_attention,
    )


def order_state(*, order_id: int) -> tuple[OrderState, str] | None:
    """The order's state now and its `attention_reason` (None if gone)."""
    row = (
        _with_version(Order.objects.filter(pk=order_id))
        .values_list(*_STATE_FIELDS, "attention_reason")
        .first()
    )
    if row is None:
        return None
    return _state(row[:-1]), row[-1]


def customer_orders(*, customer_id: int, since: int = 0) -> tuple[list[OrderState], bool]:
    """The customer's open orders and every order of theirs changed after version `since`
    (a cancellation or a delivery the client missed), the most recently changed first, at
    most SNAPSHOT_ORDERS of them; and whether that is all of them."""
    changed = OrderEvent.objects.filter(id__gt=since, order__customer_id=customer_id)
    wanted = Q(status__in=OPEN_STATUSES) | (Q(pk__in=changed.values("order_id")) if since else Q())
    orders = Order.objects.filter(wanted, customer_id=customer_id)
    rows = _with_version(orders).order_by("-event_id").values_list(*_STATE_FIELDS)
    found = [_state(row) for row in rows[: SNAPSHOT_ORDERS + 1]]
    return found[:SNAPSHOT_ORDERS], len(found) <= SNAPSHOT_ORDERS


def staff_attention() -> tuple[int, list[dict[str, Any]]]:
    """How many orders are flagged, and the longest-waiting of them with their reasons."""
    flagged = Order.objects.filter(needs_attention=True)
    rows = (
        _with_version(flagged)
        .order_by("placed_at", "id")
        .values_list(*_STATE_FIELDS, "attention_reason")[:SNAPSHOT_STAFF_ROWS]
    )
    return flagged.count(), [
        {**_state(row[:-1]).message(), "attention_reason": row[-1]} for row in rows
    ]


def staff_low_stock() -> tuple[int, list[dict[str, Any]]]:
    """How many variants are at or below their threshold, and the first of them by SKU."""
    low = variants_low_on_stock()
    return len(low), [
        {
            "sku": variant.sku,
            "product_id": variant.product_id,
            "available": available,
            "threshold": variant.low_stock_threshold,
        }
        for variant, available in low[:SNAPSHOT_STAFF_ROWS]
    ]


# --- Whose sockets a change of permissions concerns -------------------------------------------


def user_ids_in_roles(*, group_ids: Iterable[int]) -> list[int]:
    """The users holding any of these roles (auth groups)."""
    users = get_user_model().objects.filter(groups__in=set(group_ids))
    return list(users.order_by().values_list("pk", flat=True).distinct())


def linked_ids(*, through: type[Model], instance: Model, model: type[Model]) -> list[int]:
    """The ids of the `model` rows that the many-to-many table `through` links to `instance`
    (what a `clear()` of that relation is about to unlink)."""
    fields = through._meta.concrete_fields
    mine = next(f.attname for f in fields if f.related_model is type(instance))
    theirs = next(f.attname for f in fields if f.related_model is model)
    rows = through.objects.filter(**{mine: instance.pk})
    return list(rows.values_list(theirs, flat=True))
