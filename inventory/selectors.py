"""Stock reads shared by the API, the admin, the checkout and the maintenance commands."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from django.db.models import Exists, F, IntegerField, OuterRef, QuerySet, Subquery, Sum, Value
from django.db.models.functions import Coalesce

from catalog.models import Product, Variant
from inventory.models import (
    AllocationState,
    StockAllocation,
    StockLevel,
    StockMovement,
    Warehouse,
)


def availability_by_variant(*, variant_ids: Iterable[int]) -> dict[int, int]:
    """Units each variant can still sell: Σ over active warehouses of on_hand - reserved.

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
        .annotate(available=Sum(F("on_hand") - F("reserved")))
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
        on_hand__gt=F("reserved"),
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


def variants_low_on_stock() -> list[tuple[Variant, int]]:
    """Active variants of active products at or below their threshold, with availability."""
    available = (
        StockLevel.objects.filter(variant=OuterRef("pk"), warehouse__is_active=True)
        .order_by()
        .values("variant")
        .annotate(total=Sum(F("on_hand") - F("reserved")))
        .values("total")
    )
    variants = (
        Variant.objects.filter(is_active=True, product__is_active=True)
        .select_related("product")
        .annotate(available=Coalesce(Subquery(available, output_field=IntegerField()), Value(0)))
        .filter(available__lte=F("low_stock_threshold"))
        .order_by("sku")
    )
    return [(variant, variant.available) for variant in variants]


@dataclass(frozen=True)
class LevelDrift:
    """A level whose stored figures disagree with its ledger or with its allocations."""

    level_id: int
    variant_sku: str
    warehouse_code: str
    on_hand: int
    reserved: int
    ledger_on_hand: int
    ledger_reserved: int
    allocated: int

    def __str__(self) -> str:
        return (
            f"level {self.level_id} ({self.variant_sku} @ {self.warehouse_code}): "
            f"on_hand {self.on_hand} vs ledger {self.ledger_on_hand}, "
            f"reserved {self.reserved} vs ledger {self.ledger_reserved} "
            f"vs allocations {self.allocated}"
        )


def stock_drift() -> list[LevelDrift]:
    """Return every level the ledger does not add up to; empty when the stock is sound.

    A level drifts when its on_hand or reserved differ from the sum of its movements, or its
    reserved from the units its allocations still hold (neither shipped nor released).
    """
    ledger = StockMovement.objects.filter(level=OuterRef("pk")).order_by().values("level")
    held = (
        StockAllocation.objects.filter(level=OuterRef("pk"), state=AllocationState.RESERVED)
        .order_by()
        .values("level")
        .annotate(total=Sum(F("quantity") - F("shipped") - F("released")))
        .values("total")
    )
    zero = Value(0)
    levels = (
        StockLevel.objects.select_related("variant", "warehouse")
        .annotate(
            ledger_on_hand=Coalesce(
                Subquery(ledger.annotate(t=Sum("on_hand_delta")).values("t")), zero
            ),
            ledger_reserved=Coalesce(
                Subquery(ledger.annotate(t=Sum("reserved_delta")).values("t")), zero
            ),
            allocated=Coalesce(Subquery(held, output_field=IntegerField()), zero),
        )
        .exclude(
            on_hand=F("ledger_on_hand"),
            reserved=F("ledger_reserved"),
            allocated=F("reserved"),
        )
        .order_by("pk")
    )
    return [
        LevelDrift(
            level_id=level.pk,
            variant_sku=level.variant.sku,
            warehouse_code=level.warehouse.code,
            on_hand=level.on_hand,
            reserved=level.reserved,
            ledger_on_hand=level.ledger_on_hand,
            ledger_reserved=level.ledger_reserved,
            allocated=level.allocated,
        )
        for level in levels
    ]


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
