"""Stock reads shared by the API, the admin, the checkout and the maintenance commands."""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from dataclasses import dataclass

from django.db.models import (
    Exists,
    F,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
)
from django.db.models.functions import Coalesce

from catalog.models import Product, Variant
from inventory.models import (
    AllocationState,
    Backorder,
    InventoryPolicy,
    PurchaseOrderLine,
    PurchaseOrderStatus,
    StockAllocation,
    StockLevel,
    StockMovement,
    StockPolicy,
    Warehouse,
    available_units,
)


def availability_by_variant(*, variant_ids: Iterable[int]) -> dict[int, int]:
    """Units each variant can still sell: Σ over active warehouses of each level's available
    units (on hand - reserved - unavailable - safety stock, at least 0).

    One query for any number of variants (a page of 50 products costs the same as one);
    variants without stock map to 0.
    """
    wanted = set(variant_ids)
    result = dict.fromkeys(wanted, 0)
    if not wanted:
        return result
    rows = (
        StockLevel.objects.filter(variant_id__in=wanted, warehouse__is_active=True)
        .order_by()
        .values("variant_id")
        .annotate(available=Sum(available_units()))
        .values_list("variant_id", "available")
    )
    result.update(rows)
    return result


def products_in_stock(queryset: QuerySet[Product]) -> QuerySet[Product]:
    """Keep the products with at least one available unit of an active variant."""
    sellable = StockLevel.objects.filter(
        variant__product=OuterRef("pk"),
        variant__is_active=True,
        warehouse__is_active=True,
        on_hand__gt=F("reserved") + F("unavailable") + F("safety_stock"),
    )
    return queryset.filter(Exists(sellable))


def stock_level_list(
    *, variant_id: int | None = None, warehouse_id: int | None = None
) -> QuerySet[StockLevel]:
    """Levels with their variant, product and warehouse joined, for the admin's listing."""
    levels = StockLevel.objects.select_related("variant__product", "warehouse").order_by(
        "variant__sku", "warehouse__priority", "warehouse__code"
    )
    if variant_id is not None:
        levels = levels.filter(variant_id=variant_id)
    if warehouse_id is not None:
        levels = levels.filter(warehouse_id=warehouse_id)
    return levels


def variant_available_units() -> Coalesce:
    """An expression for a `Variant` queryset: the variant's units for sale in active
    warehouses, counted as `availability_by_variant` counts them (0 without stock)."""
    available = (
        StockLevel.objects.filter(variant=OuterRef("pk"), warehouse__is_active=True)
        .order_by()
        .values("variant")
        .annotate(total=Sum(available_units()))
        .values("total")
    )
    return Coalesce(Subquery(available, output_field=IntegerField()), Value(0))


def variants_low_on_stock() -> list[tuple[Variant, int]]:
    """Active variants of active products at or below their threshold, with availability."""
    variants = (
        Variant.objects.filter(is_active=True, product__is_active=True)
        .select_related("product")
        .annotate(available=variant_available_units())
        .filter(available__lte=F("low_stock_threshold"))
        .order_by("sku")
    )
    return [(variant, variant.available) for variant in variants]


# The buckets the ledger replays, each a StockLevel column with its `<bucket>_delta` column.
BUCKETS = ("on_hand", "reserved", "incoming", "unavailable", "safety_stock")


@dataclass(frozen=True)
class LevelDrift:
    """A level whose stored buckets disagree with its ledger, its allocations (reserved) or
    its open purchase orders (incoming)."""

    level_id: int
    variant_sku: str
    warehouse_code: str
    stored: dict[str, int]
    ledger: dict[str, int]
    allocated: int
    ordered: int

    def __str__(self) -> str:
        differences = [
            f"{bucket} {self.stored[bucket]} vs ledger {self.ledger[bucket]}"
            for bucket in BUCKETS
            if self.stored[bucket] != self.ledger[bucket]
        ]
        if self.stored["reserved"] != self.allocated:
            differences.append(
                f"reserved {self.stored['reserved']} vs allocations {self.allocated}"
            )
        if self.stored["incoming"] != self.ordered:
            differences.append(
                f"incoming {self.stored['incoming']} vs purchase orders {self.ordered}"
            )
        return f"level {self.level_id} ({self.variant_sku} @ {self.warehouse_code}): " + ", ".join(
            differences
        )


def stock_drift() -> list[LevelDrift]:
    """Return every level the ledger does not add up to; empty when the stock is sound.

    A level drifts when a bucket differs from the sum of its movements' deltas, its reserved
    from the units its allocations still hold (neither shipped nor released), or its incoming
    from the units its warehouse's open purchase orders still expect of its variant.
    """
    ledger = StockMovement.objects.filter(level=OuterRef("pk")).order_by().values("level")
    held = (
        StockAllocation.objects.filter(level=OuterRef("pk"), state=AllocationState.RESERVED)
        .order_by()
        .values("level")
        .annotate(total=Sum(F("quantity") - F("shipped") - F("released")))
        .values("total")
    )
    ordered = (
        PurchaseOrderLine.objects.filter(
            purchase_order__status=PurchaseOrderStatus.OPEN,
            purchase_order__warehouse=OuterRef("warehouse"),
            variant=OuterRef("variant"),
        )
        .order_by()
        .values("variant")
        .annotate(total=Sum(F("quantity") - F("received") - F("closed")))
        .values("total")
    )
    zero = Value(0)
    levels = (
        StockLevel.objects.select_related("variant", "warehouse")
        .annotate(
            **{
                f"ledger_{bucket}": Coalesce(
                    Subquery(ledger.annotate(t=Sum(f"{bucket}_delta")).values("t")), zero
                )
                for bucket in BUCKETS
            },
            allocated=Coalesce(Subquery(held, output_field=IntegerField()), zero),
            ordered=Coalesce(Subquery(ordered, output_field=IntegerField()), zero),
        )
        .exclude(
            **{bucket: F(f"ledger_{bucket}") for bucket in BUCKETS},
            allocated=F("reserved"),
            ordered=F("incoming"),
        )
        .order_by("pk")
    )
    return [
        LevelDrift(
            level_id=level.pk,
            variant_sku=level.variant.sku,
            warehouse_code=level.warehouse.code,
            stored={bucket: getattr(level, bucket) for bucket in BUCKETS},
            ledger={bucket: getattr(level, f"ledger_{bucket}") for bucket in BUCKETS},
            allocated=level.allocated,
            ordered=level.ordered,
        )
        for level in levels
    ]


@dataclass(frozen=True)
class BackorderDrift:
    """A variant whose policy counts other units waiting than its backorders do."""

    variant_sku: str
    counted: int
    waiting: int

    def __str__(self) -> str:
        return (
            f"{self.variant_sku}: the stock policy counts {self.counted} units back-ordered, "
            f"its backorders wait for {self.waiting}"
        )


def backorder_drift() -> list[BackorderDrift]:
    """Variants whose policy's `backordered` is not the units their backorders wait for.

    Driven by the backorders as much as by the policies: a variant whose backorders wait
    with no policy row counting them (none should exist: a backorder is recorded only with
    its policy's count) is drift too, counted 0.
    """
    waiting = (
        Backorder.objects.filter(variant=OuterRef("pk"))
        .order_by()
        .values("variant")
        .annotate(total=Sum(F("quantity") - F("allocated") - F("cancelled")))
        .values("total")
    )
    zero = Value(0)
    variants = (
        Variant.objects.filter(
            Q(pk__in=StockPolicy.objects.values("variant_id"))
            | Q(pk__in=Backorder.objects.values("variant_id"))
        )
        .annotate(
            counted=Coalesce(F("stock_policy__backordered"), zero),
            waiting=Coalesce(Subquery(waiting, output_field=IntegerField()), zero),
        )
        .exclude(counted=F("waiting"))
        .order_by("sku")
    )
    return [
        BackorderDrift(variant_sku=variant.sku, counted=variant.counted, waiting=variant.waiting)
        for variant in variants
    ]


def backordered_variant_ids() -> list[int]:
    """The variants some backorder still waits for (the waiting backorders' partial index)."""
    return list(
        Backorder.objects.filter(quantity__gt=F("allocated") + F("cancelled"))
        .order_by("variant_id")
        .values_list("variant_id", flat=True)
        .distinct()
    )


def backorder_references(*, variant_ids: Iterable[int]) -> list[str]:
    """The references waiting for these variants that the units free now can serve, oldest
    backorder first: those first in line until the free units run out.

    What the allocation of backorders locks; read without locks, so a race may serve fewer
    (the next stock change, or the minute's sweep, serves the rest) but never skips an older
    reference. One query (on the waiting backorders' partial index) when none waits, as in a
    shop that never back-orders; one more for the availability otherwise.
    """
    waiting = list(
        Backorder.objects.filter(
            variant_id__in=set(variant_ids), quantity__gt=F("allocated") + F("cancelled")
        )
        .order_by("created_at", "pk")
        .values_list("reference", "variant_id", "quantity", "allocated", "cancelled")
    )
    if not waiting:
        return []
    free = availability_by_variant(variant_ids={row[1] for row in waiting})
    references: list[str] = []
    for reference, variant_id, quantity, allocated, cancelled in waiting:
        if free[variant_id] <= 0:
            continue
        free[variant_id] -= quantity - allocated - cancelled
        if reference not in references:
            references.append(reference)
    return references


@dataclass(frozen=True)
class StockOutlook:
    """What a product page says of a variant's stock beyond its available units: how it sells
    when they run out, and the next purchase order's units expected (None: none open)."""

    policy: str
    release_date: datetime.date | None
    incoming_on: datetime.date | None
    incoming: int


def stock_outlook(*, variant_ids: Iterable[int]) -> dict[int, StockOutlook]:
    """Each variant's policy and next incoming units (open purchase orders to active
    warehouses, the earliest expected date, all its units due that day), in one query."""
    open_lines = PurchaseOrderLine.objects.filter(
        variant=OuterRef("pk"),
        purchase_order__status=PurchaseOrderStatus.OPEN,
        purchase_order__warehouse__is_active=True,
        quantity__gt=F("received") + F("closed"),
    ).order_by()
    next_date = open_lines.order_by("purchase_order__expected_on").values(
        "purchase_order__expected_on"
    )[:1]
    due = (
        open_lines.filter(purchase_order__expected_on=OuterRef("incoming_on"))
        .values("variant")
        .annotate(total=Sum(F("quantity") - F("received") - F("closed")))
        .values("total")
    )
    rows = (
        Variant.objects.filter(pk__in=set(variant_ids))
        .annotate(incoming_on=Subquery(next_date))
        .annotate(incoming=Coalesce(Subquery(due, output_field=IntegerField()), Value(0)))
        .values_list(
            "pk", "stock_policy__policy", "stock_policy__release_date", "incoming_on", "incoming"
        )
    )
    return {
        pk: StockOutlook(
            policy=policy or InventoryPolicy.DENY,
            release_date=release_date,
            incoming_on=incoming_on,
            incoming=incoming,
        )
        for pk, policy, release_date, incoming_on, incoming in rows
    }


@dataclass(frozen=True)
class AllocatedUnits:
    """What a reference has of one variant in one warehouse: units still held (reserved) and
    units shipped and not returned."""

    variant_id: int
    warehouse_id: int
    warehouse_code: str
    held: int
    out: int


def allocated_units(*, reference: str) -> list[AllocatedUnits]:
    """The reference's allocations by variant and warehouse, in warehouse priority order.

    What a shipment form offers: the warehouses that hold an order's units, the first first.
    """
    rows = (
        StockAllocation.objects.filter(reference=reference)
        .order_by("level__warehouse__priority", "level__warehouse_id", "level__variant_id")
        .values_list(
            "level__variant_id",
            "level__warehouse_id",
            "level__warehouse__code",
            "quantity",
            "shipped",
            "released",
            "returned",
        )
    )
    return [
        AllocatedUnits(
            variant_id=variant_id,
            warehouse_id=warehouse_id,
            warehouse_code=code,
            held=quantity - shipped - released,
            out=shipped - returned,
        )
        for variant_id, warehouse_id, code, quantity, shipped, released, returned in rows
    ]


def warehouse_get(*, code: str) -> Warehouse:
    """The warehouse with this code; raises Warehouse.DoesNotExist."""
    return Warehouse.objects.get(code=code)
