"""Staff-facing stock changes: warehouses, receipts and adjustments (audited)."""

from __future__ import annotations

from django.db import transaction
from django.db.models import F
from django.db.models.lookups import GreaterThanOrEqual
from django.utils import timezone

from audit.models import AuditAction
from audit.services import audit_record
from catalog.models import Variant
from inventory.models import (
    HOLD_REASONS,
    MovementReason,
    StockLevel,
    StockMovement,
    Warehouse,
)
from inventory.selectors import availability_by_variant
from inventory.services.errors import MAX_UNITS, InvalidStockOperation, positive_quantity
from inventory.services.events import stock_changed_send
from inventory.services.thresholds import availability_crossed_zero, crossings


@transaction.atomic
def warehouse_active_set(*, warehouse: Warehouse, is_active: bool) -> None:
    """Open a warehouse to sales or close it: only an active warehouse's free units count.

    Opening one frees its units to sell all at once, as a receipt would: `stock_changed` goes
    out for the variants stocked there (`availability_grew` when any has free units), so the
    orders waiting for them get those units after the commit, the oldest first, before any
    newer checkout. Closing one sends it too (availability fell). A no-op when the warehouse
    already is so. Requests no tasks.
    """
    moved = (
        Warehouse.objects.filter(pk=warehouse.pk)
        .exclude(is_active=is_active)
        .update(is_active=is_active)
    )
    warehouse.is_active = is_active
    if not moved:
        return
    levels = list(StockLevel.objects.filter(warehouse=warehouse).select_related("variant"))
    if not levels:
        return
    free_there = {level.variant_id: max(level_free(level), 0) for level in levels}
    # What the other active warehouses have: the availability on the closed side of the move.
    elsewhere = availability_by_variant(variant_ids=free_there)
    if is_active:
        elsewhere = {v: units - free_there[v] for v, units in elsewhere.items()}
    stock_changed_send(
        sender=warehouse_active_set,
        variant_ids=sorted(free_there),
        product_ids=sorted({level.variant.product_id for level in levels}),
        availability_crossed_zero=any(
            units > 0 and elsewhere[variant_id] <= 0 for variant_id, units in free_there.items()
        ),
        availability_grew=is_active and any(free_there.values()),
    )


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
    level.refresh_from_db()
    _audit_stock_change(
        level=level, actor=actor, on_hand_delta=quantity, reason="receipt", note=note
    )
    free = level_free(level)
    for_sale = warehouse.is_active  # an inactive warehouse's units count in no availability
    stock_changed_send(
        sender=stock_receive,
        variant_ids=[variant.pk],
        product_ids=[variant.product_id],
        availability_crossed_zero=for_sale and availability_crossed_zero([(free - quantity, free)]),
        availability_grew=for_sale,
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
    # on_hand - reserved - unavailable >= -delta keeps the reserved and unavailable units and
    # the CHECK constraints intact; on_hand + delta <= MAX_UNITS keeps the sum in its column.
    # Each side is computed from values within the column's range, so no guard overflows it.
    updated = StockLevel.objects.filter(
        GreaterThanOrEqual(F("on_hand") - F("reserved") - F("unavailable"), -on_hand_delta),
        pk=level.pk,
        on_hand__lte=MAX_UNITS - on_hand_delta,
    ).update(on_hand=F("on_hand") + on_hand_delta, updated_at=timezone.now())
    if updated == 0:
        raise InvalidStockOperation(
            f"adjusting by {on_hand_delta} would put more than {MAX_UNITS} units on hand"
            if on_hand_delta > 0
            else f"adjusting by {on_hand_delta} would leave fewer units on hand than are "
            "reserved and unavailable"
        )
    StockMovement.objects.create(
        level=level,
        on_hand_delta=on_hand_delta,
        reason=MovementReason.ADJUSTMENT,
        actor=actor,
        note=note.strip()[:255],
    )
    level.refresh_from_db()
    _audit_stock_change(
        level=level,
        actor=actor,
        on_hand_delta=on_hand_delta,
        reason="adjustment",
        note=note.strip()[:255],
    )
    _free_units_moved(sender=stock_adjust, level=level, variant=variant, freed=on_hand_delta)
    return level


def level_free(level: StockLevel) -> int:
    """The level's units free to sell, before the floor at zero (see `StockLevel.available`)."""
    return level.on_hand - level.reserved - level.unavailable - level.safety_stock


def _free_units_moved(*, sender, level: StockLevel, variant: Variant, freed: int) -> None:
    """Send `stock_changed` (and `stock_low` on a fall through the threshold) for a staff move
    that changed the level's free units by `freed`; `level` is read after the move.

    A level in an inactive warehouse counts in no availability: its move changes none (no
    crossing, no `stock_low`, nothing grew).
    """
    if not level.warehouse.is_active:
        stock_changed_send(
            sender=sender,
            variant_ids=[variant.pk],
            product_ids=[variant.product_id],
            availability_crossed_zero=False,
            availability_grew=False,
        )
        return
    free = level_free(level)
    was = free - freed
    after = availability_by_variant(variant_ids=[variant.pk])[variant.pk]
    # The variant's availability counts the level's free units at zero at least.
    before = after - max(free, 0) + max(was, 0)
    stock_changed_send(
        sender=sender,
        variant_ids=[variant.pk],
        product_ids=[variant.product_id],
        availability_crossed_zero=availability_crossed_zero([(was, free)]),
        availability_grew=max(free, 0) > max(was, 0),
        low=crossings(
            before={variant.pk: before},
            after={variant.pk: after},
            thresholds={variant.pk: variant.low_stock_threshold},
        ),
    )


def _level_of(*, variant: Variant, warehouse: Warehouse) -> StockLevel:
    level = (
        StockLevel.objects.filter(variant=variant, warehouse=warehouse)
        .select_related("variant__product", "warehouse")
        .first()
    )
    if level is None:
        raise InvalidStockOperation(f"no stock level for {variant.sku} in {warehouse.code}")
    return level


@transaction.atomic
def stock_hold(
    *, variant: Variant, warehouse: Warehouse, quantity: int, reason: str, note: str, actor=None
) -> StockLevel:
    """Move `quantity` units on hand and free to sell into `unavailable` (damaged, quality hold).

    `reason` is `damaged` or `quality_hold`, `note` says what happened. Only units neither
    reserved nor already unavailable can go (the guarded UPDATE; safety stock may go, it is
    a floor, not units). Writes a ledger row with the reason and an audit entry. Sends
    `stock_changed` (and `stock_low` on a fall through the threshold); requests no tasks.
    """
    quantity = positive_quantity(quantity)
    if reason not in HOLD_REASONS:
        raise InvalidStockOperation(f"a hold's reason is one of {', '.join(HOLD_REASONS)}")
    note = _required_note(note)
    level = _level_of(variant=variant, warehouse=warehouse)
    if not StockLevel.objects.filter(
        GreaterThanOrEqual(F("on_hand") - F("reserved") - F("unavailable"), quantity),
        pk=level.pk,
    ).update(unavailable=F("unavailable") + quantity, updated_at=timezone.now()):
        raise InvalidStockOperation(
            f"{variant.sku} in {warehouse.code} has fewer than {quantity} units neither "
            "reserved nor unavailable"
        )
    _bucket_moved(
        level=level,
        actor=actor,
        reason=reason,
        note=note,
        deltas={"unavailable": quantity},
    )
    _free_units_moved(sender=stock_hold, level=level, variant=variant, freed=-quantity)
    return level


@transaction.atomic
def stock_unhold(
    *,
    variant: Variant,
    warehouse: Warehouse,
    quantity: int,
    note: str,
    write_off: bool = False,
    actor=None,
) -> StockLevel:
    """Take `quantity` units out of `unavailable`: back for sale, or with `write_off` out of
    the warehouse for good (they leave on hand too).

    Writes a ledger row (`hold_released` or `write_off`) with the note and an audit entry.
    Sends `stock_changed` (availability grows when units come back for sale); requests no tasks.
    """
    quantity = positive_quantity(quantity)
    note = _required_note(note)
    level = _level_of(variant=variant, warehouse=warehouse)
    changes = {"unavailable": F("unavailable") - quantity}
    if write_off:
        changes["on_hand"] = F("on_hand") - quantity
    if not StockLevel.objects.filter(pk=level.pk, unavailable__gte=quantity).update(
        **changes, updated_at=timezone.now()
    ):
        raise InvalidStockOperation(
            f"{variant.sku} in {warehouse.code} has fewer than {quantity} units unavailable"
        )
    _bucket_moved(
        level=level,
        actor=actor,
        reason=MovementReason.WRITE_OFF if write_off else MovementReason.HOLD_RELEASED,
        note=note,
        deltas={"unavailable": -quantity, "on_hand": -quantity if write_off else 0},
    )
    _free_units_moved(
        sender=stock_unhold, level=level, variant=variant, freed=0 if write_off else quantity
    )
    return level


@transaction.atomic
def stock_safety_set(
    *, variant: Variant, warehouse: Warehouse, quantity: int, actor=None, note: str = ""
) -> StockLevel:
    """Set the level's safety stock: the units on hand never sold (0 removes it).

    A ledger row (`safety_stock`) records the change and an audit entry who made it. Sends
    `stock_changed` (and `stock_low` on a fall through the threshold); requests no tasks.
    """
    if (
        isinstance(quantity, bool)
        or not isinstance(quantity, int)
        or not 0 <= quantity <= MAX_UNITS
    ):
        raise InvalidStockOperation(f"safety stock is a whole number from 0 to {MAX_UNITS}")
    level = _level_of(variant=variant, warehouse=warehouse)
    locked = StockLevel.objects.select_for_update(no_key=True).get(pk=level.pk)
    delta = quantity - locked.safety_stock
    if delta == 0:
        return locked
    StockLevel.objects.filter(pk=level.pk).update(safety_stock=quantity, updated_at=timezone.now())
    _bucket_moved(
        level=level,
        actor=actor,
        reason=MovementReason.SAFETY_STOCK,
        note=note.strip()[:255],
        deltas={"safety_stock": delta},
    )
    _free_units_moved(sender=stock_safety_set, level=level, variant=variant, freed=-delta)
    return level


def _required_note(note: str) -> str:
    if not note or not note.strip():
        raise InvalidStockOperation("say what happened in `note`")
    return note.strip()[:255]


def _bucket_moved(
    *, level: StockLevel, actor, reason: str, note: str, deltas: dict[str, int], reference=""
) -> None:
    """Write the ledger row and the audit entry of a staff move of `level`'s buckets, and
    read the level afresh.

    `deltas` maps bucket names (on_hand, incoming, unavailable, safety_stock) to their change.
    """
    StockMovement.objects.create(
        level=level,
        reason=reason,
        reference=reference,
        actor=actor,
        note=note,
        **{f"{bucket}_delta": delta for bucket, delta in deltas.items()},
    )
    level.refresh_from_db()
    audit_record(
        action=AuditAction.STOCK,
        obj=level,
        changes={
            **{
                bucket: [getattr(level, bucket) - delta, getattr(level, bucket)]
                for bucket, delta in deltas.items()
                if delta
            },
            "reason": [None, reason],
            "note": [None, note],
        },
        actor=actor,
    )
