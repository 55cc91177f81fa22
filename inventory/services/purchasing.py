"""Purchase orders: units ordered from a supplier are `incoming` until received on hand."""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from audit.models import AuditAction
from audit.services import audit_record
from catalog.models import Variant
from inventory.models import (
    MovementReason,
    PurchaseOrder,
    PurchaseOrderLine,
    PurchaseOrderStatus,
    StockLevel,
    StockMovement,
    Warehouse,
)
from inventory.services.errors import MAX_UNITS, InvalidStockOperation, positive_quantity
from inventory.services.events import stock_changed_send
from inventory.services.levels import level_free
from inventory.services.sql import insert_levels
from inventory.services.thresholds import availability_crossed_zero

SUPPLIER_MAX_LENGTH = PurchaseOrder._meta.get_field("supplier").max_length
NUMBER_MAX_LENGTH = PurchaseOrder._meta.get_field("number").max_length


@dataclass(frozen=True)
class PurchaseUnits:
    """Units of one variant ordered from a supplier, or received from one."""

    variant_id: int
    quantity: int


def _units_by_variant(units: Sequence[PurchaseUnits]) -> dict[int, int]:
    summed: dict[int, int] = {}
    for unit in units:
        if isinstance(unit.variant_id, bool) or not isinstance(unit.variant_id, int):
            raise InvalidStockOperation(f"variant id must be an integer, got {unit.variant_id!r}")
        summed[unit.variant_id] = summed.get(unit.variant_id, 0) + positive_quantity(unit.quantity)
    if not summed:
        raise InvalidStockOperation("a purchase order needs at least one line")
    if max(summed.values()) > MAX_UNITS:
        raise InvalidStockOperation(f"at most {MAX_UNITS} units of one variant")
    return dict(sorted(summed.items()))


def _levels_locked(*, warehouse_id: int, variant_ids: list[int]) -> dict[int, StockLevel]:
    """The warehouse's levels of these variants (created when missing), locked in
    primary-key order, by variant."""
    insert_levels([(variant_id, warehouse_id, 0) for variant_id in variant_ids])
    levels = (
        StockLevel.objects.select_for_update(no_key=True, of=("self",))
        .select_related("variant__product", "warehouse")
        .filter(warehouse_id=warehouse_id, variant_id__in=variant_ids)
        .order_by("pk")
    )
    return {level.variant_id: level for level in levels}


def _incoming_move(
    *,
    level: StockLevel,
    incoming: int,
    on_hand: int,
    reason: str,
    purchase_order: PurchaseOrder,
    actor,
    note: str = "",
) -> None:
    """Move the locked level's incoming (and on hand) units, with a ledger row and an audit
    entry; the CHECK constraints refuse a bucket going below zero, and no bucket may grow
    beyond MAX_UNITS (its column's range: one more purchase order must be refused, not fail)."""
    for bucket, was, delta in (
        ("incoming", level.incoming, incoming),
        ("on hand", level.on_hand, on_hand),
    ):
        if was + delta > MAX_UNITS:
            raise InvalidStockOperation(
                f"{level.variant.sku} in {level.warehouse.code} would have more than "
                f"{MAX_UNITS} units {bucket}"
            )
    StockLevel.objects.filter(pk=level.pk).update(
        incoming=F("incoming") + incoming, on_hand=F("on_hand") + on_hand, updated_at=timezone.now()
    )
    StockMovement.objects.create(
        level=level,
        incoming_delta=incoming,
        on_hand_delta=on_hand,
        reason=reason,
        reference=purchase_order.number,
        actor=actor,
        note=note[:255],
    )
    before = (level.incoming, level.on_hand)
    level.refresh_from_db()
    audit_record(
        action=AuditAction.STOCK,
        obj=level,
        changes={
            "incoming": [before[0], level.incoming],
            "on_hand": [before[1], level.on_hand],
            "reason": [None, reason],
            "purchase_order": [None, purchase_order.number],
        },
        actor=actor,
    )


@transaction.atomic
def purchase_order_create(
    *,
    number: str,
    supplier: str,
    warehouse: Warehouse,
    expected_on: datetime.date,
    lines: Sequence[PurchaseUnits],
    actor=None,
) -> PurchaseOrder:
    """Record units ordered from `supplier` for `warehouse`, expected on `expected_on`: each
    line's units become `incoming` in the warehouse's level (created when missing), a ledger
    row (`po_ordered`) per level.

    Raises InvalidStockOperation (a blank or taken number, a blank supplier, a bad line, an
    unknown variant); nothing is written then. Sends `stock_changed` (no availability moved:
    incoming units are not for sale, but product pages show them); requests no tasks.
    """
    number = (number or "").strip()
    supplier = (supplier or "").strip()
    if not number or len(number) > NUMBER_MAX_LENGTH:
        raise InvalidStockOperation(f"a purchase order needs a number of 1 to {NUMBER_MAX_LENGTH}")
    if not supplier or len(supplier) > SUPPLIER_MAX_LENGTH:
        raise InvalidStockOperation(f"a supplier of 1 to {SUPPLIER_MAX_LENGTH} characters")
    if not isinstance(expected_on, datetime.date):
        raise InvalidStockOperation("a purchase order needs its expected date")
    units = _units_by_variant(lines)
    if Variant.objects.filter(pk__in=units).count() != len(units):
        raise InvalidStockOperation("a purchase order names a variant that does not exist")
    try:
        # The unique number decides, not a read before the INSERT: two clerks placing the same
        # number at once both pass a read.
        with transaction.atomic():
            purchase_order = PurchaseOrder.objects.create(
                number=number,
                supplier=supplier,
                warehouse=warehouse,
                expected_on=expected_on,
                created_by=actor,
            )
    except IntegrityError:
        if not PurchaseOrder.objects.filter(number=number).exists():
            raise
        raise InvalidStockOperation(f"purchase order {number} exists already") from None
    PurchaseOrderLine.objects.bulk_create(
        PurchaseOrderLine(purchase_order=purchase_order, variant_id=variant_id, quantity=quantity)
        for variant_id, quantity in units.items()
    )
    levels = _levels_locked(warehouse_id=warehouse.pk, variant_ids=list(units))
    for variant_id, quantity in units.items():
        _incoming_move(
            level=levels[variant_id],
            incoming=quantity,
            on_hand=0,
            reason=MovementReason.PURCHASE_ORDER,
            purchase_order=purchase_order,
            actor=actor,
            note=f"expected {expected_on.isoformat()} from {supplier}",
        )
    _incoming_changed(sender=purchase_order_create, levels=levels)
    return purchase_order


def _incoming_changed(*, sender, levels: dict[int, StockLevel]) -> None:
    """Send `stock_changed` for a move of incoming units only: no availability moved."""
    stock_changed_send(
        sender=sender,
        variant_ids=sorted(levels),
        product_ids=sorted({level.variant.product_id for level in levels.values()}),
        availability_crossed_zero=False,
        availability_grew=False,
    )


def _locked_open(purchase_order: PurchaseOrder) -> tuple[PurchaseOrder, list[PurchaseOrderLine]]:
    locked = PurchaseOrder.objects.select_for_update().get(pk=purchase_order.pk)
    if locked.status != PurchaseOrderStatus.OPEN:
        raise InvalidStockOperation(
            f"purchase order {locked.number} is {locked.get_status_display().lower()}"
        )
    return locked, list(locked.lines.order_by("variant_id"))


@transaction.atomic
def purchase_order_receive(
    *,
    purchase_order: PurchaseOrder,
    units: Sequence[PurchaseUnits] | None = None,
    actor=None,
    note: str = "",
) -> PurchaseOrder:
    """Receive a delivery of an open purchase order: `units` (None: everything outstanding)
    move from incoming to on hand in its warehouse, a ledger row (`receipt`) per level.

    Partial deliveries are fine; the order becomes `received` when nothing is outstanding.
    Under the purchase order's row lock, so two clerks receiving one delivery cannot count it
    twice. Raises InvalidStockOperation (not open, a variant not on it, more than a line has
    outstanding); nothing moves then. Sends `stock_changed` (availability grows, so
    back-ordered units get allocated after the commit); requests no tasks.
    """
    locked, lines = _locked_open(purchase_order)
    by_variant = {line.variant_id: line for line in lines}
    wanted = (
        {line.variant_id: line.outstanding for line in lines if line.outstanding}
        if units is None
        else _units_by_variant(units)
    )
    problems = [
        f"variant {variant_id} is not on {locked.number}"
        if variant_id not in by_variant
        else f"{by_variant[variant_id].variant} has {by_variant[variant_id].outstanding} "
        f"outstanding, not {quantity}"
        for variant_id, quantity in wanted.items()
        if variant_id not in by_variant or quantity > by_variant[variant_id].outstanding
    ]
    if problems:
        raise InvalidStockOperation("; ".join(problems))
    if not wanted:
        raise InvalidStockOperation(f"purchase order {locked.number} has nothing left")
    levels = _levels_locked(warehouse_id=locked.warehouse_id, variant_ids=list(wanted))
    crossed = []
    for variant_id, quantity in wanted.items():
        PurchaseOrderLine.objects.filter(pk=by_variant[variant_id].pk).update(
            received=F("received") + quantity
        )
        level = levels[variant_id]
        was = level_free(level)
        _incoming_move(
            level=level,
            incoming=-quantity,
            on_hand=quantity,
            reason=MovementReason.RECEIPT,
            purchase_order=locked,
            actor=actor,
            note=note,
        )
        crossed.append((was, was + quantity))
    _status_settle(purchase_order=locked, actor=actor)
    stock_changed_send(
        sender=purchase_order_receive,
        variant_ids=list(wanted),
        product_ids=sorted({levels[variant_id].variant.product_id for variant_id in wanted}),
        availability_crossed_zero=availability_crossed_zero(crossed),
        availability_grew=True,
    )
    purchase_order.refresh_from_db()
    return purchase_order


@transaction.atomic
def purchase_order_close(
    *, purchase_order: PurchaseOrder, actor=None, note: str = ""
) -> PurchaseOrder:
    """Give up on what an open purchase order still has outstanding: those units leave
    incoming (a ledger row `po_closed` per level) and the order is `closed`.

    Raises InvalidStockOperation when it is not open. Sends `stock_changed` when units left
    incoming (no availability moved); requests no tasks.
    """
    locked, lines = _locked_open(purchase_order)
    outstanding = {line.variant_id: line for line in lines if line.outstanding}
    levels = _levels_locked(warehouse_id=locked.warehouse_id, variant_ids=list(outstanding))
    for variant_id, line in outstanding.items():
        PurchaseOrderLine.objects.filter(pk=line.pk).update(closed=F("closed") + line.outstanding)
        _incoming_move(
            level=levels[variant_id],
            incoming=-line.outstanding,
            on_hand=0,
            reason=MovementReason.PURCHASE_ORDER_CLOSED,
            purchase_order=locked,
            actor=actor,
            note=note,
        )
    _status_settle(purchase_order=locked, actor=actor, to=PurchaseOrderStatus.CLOSED)
    if levels:
        _incoming_changed(sender=purchase_order_close, levels=levels)
    purchase_order.refresh_from_db()
    return purchase_order


def _status_settle(*, purchase_order: PurchaseOrder, actor, to: str | None = None) -> None:
    """Mark the purchase order `to`, or `received` once no line has units outstanding."""
    if to is None:
        if any(line.outstanding for line in purchase_order.lines.all()):
            return
        to = PurchaseOrderStatus.RECEIVED
    before = purchase_order.status
    PurchaseOrder.objects.filter(pk=purchase_order.pk).update(status=to, updated_at=timezone.now())
    purchase_order.refresh_from_db()
    audit_record(
        action=AuditAction.UPDATE,
        obj=purchase_order,
        changes={"status": [before, purchase_order.status]},
        actor=actor,
    )
