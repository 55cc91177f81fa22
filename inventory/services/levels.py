"""Staff-facing stock changes: warehouses, receipts and adjustments (audited)."""

from __future__ import annotations

from django.db import transaction
from django.db.models import F
from django.db.models.lookups import GreaterThanOrEqual
from django.utils import timezone

from audit.models import AuditAction
from audit.services import audit_record
from catalog.models import Variant
from inventory.models import MovementReason, StockLevel, StockMovement, Warehouse
from inventory.selectors import availability_by_variant
from inventory.services.errors import MAX_UNITS, InvalidStockOperation, positive_quantity
from inventory.services.events import stock_changed_send
from inventory.services.thresholds import availability_crossed_zero, crossings


def _audit_stock_change(
    *, level: StockLevel, actor, on_hand_delta: int, reason: str, note: str
) -> None:
    """Record a receipt or an adjustment in the audit trail; it commits with the change."""
    audit_record(
        action=AuditAction.STOCK,
        obj=level,
        changes={
            "on_hand": [level.on_hand - on_hand_delta, level.on_hand],
            "reason": [None, reason],
            "note": [None, note],
        },
        actor=actor,
    )


@transaction.atomic
def warehouse_ensure(*, code: str, name: str, priority: int = 100) -> Warehouse:
    """Return the warehouse `code`, creating it with `name` and `priority` when missing.

    An existing warehouse is left as staff configured it, so running this twice changes nothing.
    Sends no custom signals (a new warehouse is audited through post_save), requests no tasks.
    """
    warehouse, _ = Warehouse.objects.get_or_create(
        code=code, defaults={"name": name, "priority": priority}
    )
    return warehouse


@transaction.atomic
def stock_receive(
    *,
    variant: Variant,
    warehouse: Warehouse,
    quantity: int,
    actor=None,
    note: str = "",
    reference: str = "",
) -> StockLevel:
    """Add `quantity` received units to the variant's level in the warehouse (created if new).

    Records a `stock` audit entry. Sends `stock_changed`; requests no tasks.
    """
    quantity = positive_quantity(quantity)
    # Joined: the audit entry names the level by its SKU, product and warehouse.
    level, _ = StockLevel.objects.select_related("variant__product", "warehouse").get_or_create(
        variant=variant, warehouse=warehouse
    )
    # Guarded, not checked against a read: the level's column must hold the sum.
    updated = StockLevel.objects.filter(pk=level.pk, on_hand__lte=MAX_UNITS - quantity).update(
        on_hand=F("on_hand") + quantity, updated_at=timezone.now()
    )
    if updated == 0:
        raise InvalidStockOperation(
            f"receiving {quantity} would put more than {MAX_UNITS} units on hand"
        )
    StockMovement.objects.create(
        level=level,
        on_hand_delta=quantity,
        reason=MovementReason.RECEIPT,
        reference=reference,
        actor=actor,
        note=note,
    )
    level.refresh_from_db(fields=["on_hand", "reserved", "updated_at"])
    _audit_stock_change(
        level=level, actor=actor, on_hand_delta=quantity, reason="receipt", note=note
    )
    free = level.on_hand - level.reserved
    stock_changed_send(
        sender=stock_receive,
        variant_ids=[variant.pk],
        product_ids=[variant.product_id],
        availability_crossed_zero=availability_crossed_zero([(free - quantity, free)]),
    )
    return level


@transaction.atomic
def stock_adjust(
    *, variant: Variant, warehouse: Warehouse, on_hand_delta: int, note: str, actor=None
) -> StockLevel:
    """Correct the counted units of an existing level by `on_hand_delta`, never below reserved.

    `note` is the required reason (a stocktake, breakage). Sends `stock_changed`, and
    `stock_low` when the variant's availability falls through its threshold. Records a `stock`
    audit entry. Requests no tasks itself; the `stock_low` receiver requests
    `inventory.low_stock_alert`.
    """
    if isinstance(on_hand_delta, bool) or not isinstance(on_hand_delta, int):
        raise InvalidStockOperation(f"on_hand_delta must be a whole number, got {on_hand_delta!r}")
    if on_hand_delta == 0:
        raise InvalidStockOperation("on_hand_delta must not be zero")
    if abs(on_hand_delta) > MAX_UNITS:
        raise InvalidStockOperation(f"an adjustment moves at most {MAX_UNITS} units")
    if not note or not note.strip():
        raise InvalidStockOperation("an adjustment needs a reason in `note`")
    level = (
        StockLevel.objects.filter(variant=variant, warehouse=warehouse)
        .select_related("variant__product", "warehouse")
        .first()
    )
    if level is None:
        raise InvalidStockOperation(
            f"no stock level for variant {variant.pk} in warehouse {warehouse.code}"
        )
    # on_hand - reserved >= -delta keeps the reserved units and the CHECK constraints intact;
    # on_hand + delta <= MAX_UNITS keeps the sum in its column. Each side is computed from
    # values within the column's range, so no guard overflows it itself.
    updated = StockLevel.objects.filter(
        GreaterThanOrEqual(F("on_hand") - F("reserved"), -on_hand_delta),
        pk=level.pk,
        on_hand__lte=MAX_UNITS - on_hand_delta,
    ).update(on_hand=F("on_hand") + on_hand_delta, updated_at=timezone.now())
    if updated == 0:
        raise InvalidStockOperation(
            f"adjusting by {on_hand_delta} would put more than {MAX_UNITS} units on hand"
            if on_hand_delta > 0
            else f"adjusting by {on_hand_delta} would leave fewer units on hand than are reserved"
        )
    StockMovement.objects.create(
        level=level,
        on_hand_delta=on_hand_delta,
        reason=MovementReason.ADJUSTMENT,
        actor=actor,
        note=note.strip()[:255],
    )
    level.refresh_from_db(fields=["on_hand", "reserved", "updated_at"])
    _audit_stock_change(
        level=level,
        actor=actor,
        on_hand_delta=on_hand_delta,
        reason="adjustment",
        note=note.strip()[:255],
    )
    after = availability_by_variant(variant_ids=[variant.pk])[variant.pk]
    free = level.on_hand - level.reserved
    stock_changed_send(
        sender=stock_adjust,
        variant_ids=[variant.pk],
        product_ids=[variant.product_id],
        availability_crossed_zero=availability_crossed_zero([(free - on_hand_delta, free)]),
        low=crossings(
            before={variant.pk: after - on_hand_delta},
            after={variant.pk: after},
            thresholds={variant.pk: variant.low_stock_threshold},
        ),
    )
    return level
