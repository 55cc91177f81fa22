"""Allocating back-ordered units once stock comes in: the oldest backorder first."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from inventory.models import (
    AllocationState,
    Backorder,
    InventoryPolicy,
    MovementReason,
    StockAllocation,
    StockPolicy,
)
from inventory.services.errors import InvalidStockOperation, sku_of
from inventory.services.events import stock_changed_send
from inventory.services.reservations import _reservation_candidates
from inventory.services.sql import RowsWrite, move_levels, movements_insert
from inventory.services.thresholds import availability_crossed_zero


@dataclass(frozen=True)
class BackorderAllocated:
    """Units of one variant reserved for a reference that waited for them."""

    reference: str
    variant_id: int
    quantity: int


def _allocations_upsert(*, reference: str) -> RowsWrite:
    """Return the INSERT adding the rows `v(level_id, dh, dr)` to `reference`'s allocations.

    A level the reference already holds units in grows by `dr` and holds units again, so its
    state is `reserved` (the allocation's CHECK: quantity above shipped + released).
    """
    now = timezone.now()
    table = StockAllocation._meta.db_table
    return RowsWrite(
        sql=(
            f"INSERT INTO {table} (reference, level_id, quantity, state, created_at, updated_at) "
            # WHERE true: SQLite reads ON CONFLICT after a bare SELECT as a join's constraint.
            "SELECT %s, level_id, dr, %s, %s, %s FROM v WHERE true "
            "ON CONFLICT (reference, level_id) DO UPDATE SET "
            f"quantity = {table}.quantity + excluded.quantity, state = excluded.state, "
            "updated_at = excluded.updated_at"
        ),
        params=(reference, AllocationState.RESERVED, now, now),
    )


@transaction.atomic
def backorders_allocate(
    *, references: Sequence[str], variant_ids: Sequence[int], actor=None
) -> list[BackorderAllocated]:
    """Reserve units of `variant_ids` now free for what `references` wait for, the oldest
    backorder first; return what each got.

    Only those variants: the caller chose the references as the oldest waiting for them, not
    for the references' other variants, whose older waiting orders it did not look at.

    The caller (orders, on `stock_changed` after the commit) holds the references' orders
    locked, so no shipment or cancellation of theirs runs meanwhile. Here the backorders are
    locked (primary-key order), then the variants' levels (primary-key order, as a checkout
    planning under locks does), then the policies in variant order: the lock order of every
    stock service. Each backorder takes free units from the warehouses in priority order,
    with the same guarded UPDATE as a checkout (never a unit on hold or of the safety stock);
    each reference's units are a ledger row per level (`backorder`) and grow its allocation
    there. A pre-order waits until its release date (nothing pre-ordered is reserved, so
    nothing ships, before it). Sends `stock_changed` when units were reserved; requests no tasks.
    """
    rows = list(
        Backorder.objects.select_for_update(no_key=True, of=("self",))
        .filter(
            reference__in=set(references),
            variant_id__in=set(variant_ids),
            quantity__gt=F("allocated") + F("cancelled"),
        )
        # A pre-order waits for its release date: nothing pre-ordered is reserved (and so
        # shipped) before it.
        .exclude(
            variant__stock_policy__policy=InventoryPolicy.PREORDER,
            variant__stock_policy__release_date__gt=timezone.localdate(),
        )
        .order_by("pk")
    )
    if not rows:
        return []
    rows.sort(key=lambda row: (row.created_at, row.pk))
    levels = _reservation_candidates(sorted({row.variant_id for row in rows}), lock_rows=True)
    free: dict[int, int] = {row[0]: row[2] for row in levels}
    by_variant: dict[int, list[tuple]] = defaultdict(list)
    for level in levels:
        by_variant[level[1]].append(level)
    plan: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    got: dict[int, int] = {}
    for row in rows:
        wanted = row.waiting
        for level_id, *_ in by_variant[row.variant_id]:
            take = min(wanted, free[level_id])
            if take > 0:
                plan[row.reference][level_id] += take
                free[level_id] -= take
                wanted -= take
        if wanted < row.waiting:
            got[row.pk] = row.waiting - wanted
    if not got:
        return []

    before = {level[0]: level[2] for level in levels}
    actor_id = actor.pk if actor is not None else None
    for reference, deltas in plan.items():
        changed = move_levels(
            deltas=[(level_id, 0, units) for level_id, units in deltas.items()],
            require_available=True,
            writes=[
                _allocations_upsert(reference=reference),
                movements_insert(
                    reason=MovementReason.BACKORDER, reference=reference, actor_id=actor_id
                ),
            ],
        )
        if len(changed) != len(deltas):
            raise InvalidStockOperation("a locked level changed under its lock; nothing moved")
    now = timezone.now()
    per_variant: dict[int, int] = defaultdict(int)
    for row in rows:
        if row.pk in got:
            Backorder.objects.filter(pk=row.pk).update(
                allocated=F("allocated") + got[row.pk], updated_at=now
            )
            per_variant[row.variant_id] += got[row.pk]
    for variant_id, units in sorted(per_variant.items()):
        if not StockPolicy.objects.filter(pk=variant_id, backordered__gte=units).update(
            backordered=F("backordered") - units, updated_at=now
        ):
            raise InvalidStockOperation(
                f"the policy of {sku_of(variant_id)} counts fewer units waiting than its "
                "backorders; run `manage.py inventory_verify`"
            )
    stock_changed_send(
        sender=backorders_allocate,
        variant_ids=sorted(per_variant),
        product_ids=sorted({level[4] for level in levels if level[1] in per_variant}),
        availability_crossed_zero=availability_crossed_zero(
            (before[level_id], free[level_id]) for level_id in before
        ),
        availability_grew=False,
    )
    return [
        BackorderAllocated(
            reference=row.reference,
            variant_id=row.variant_id,
            quantity=got[row.pk],
        )
        for row in rows
        if row.pk in got
    ]
