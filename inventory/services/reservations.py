"""Reservations and what follows them: reserve (the checkout's hot path), release, ship, return."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable

from django.db import connection, transaction
from django.db.models import F, Sum
from django.utils import timezone

from catalog.models import Variant
from inventory.models import (
    AllocationState,
    MovementReason,
    StockAllocation,
    StockLevel,
    Warehouse,
)
from inventory.services.errors import InvalidStockOperation, OutOfStock, Shortage, positive_quantity
from inventory.services.events import stock_changed_send
from inventory.services.sql import RowsWrite, move_levels, movements_insert
from inventory.services.thresholds import availability_crossed_zero, crossings


def _summed(quantities: Iterable[tuple[int, int]]) -> dict[int, int]:
    requested: dict[int, int] = defaultdict(int)
    for variant_id, quantity in quantities:
        if isinstance(variant_id, bool) or not isinstance(variant_id, int):
            raise InvalidStockOperation(f"variant id must be an integer, got {variant_id!r}")
        requested[variant_id] += positive_quantity(quantity)
    if not requested:
        raise InvalidStockOperation("nothing to reserve")
    return dict(sorted(requested.items()))


# The checkout's statements are written out: on the hot path the ORM's query compilation
# costs more Python time than the database spends on them.
_CANDIDATES_SQL = (
    "SELECT l.id, l.variant_id, l.on_hand, l.reserved, v.low_stock_threshold, v.product_id, "
    "w.priority, w.id "
    f"FROM {StockLevel._meta.db_table} l "
    f"JOIN {Warehouse._meta.db_table} w ON w.id = l.warehouse_id "
    f"JOIN {Variant._meta.db_table} v ON v.id = l.variant_id "
    "WHERE w.is_active AND l.variant_id IN ({ids}) "
)
# The plan's order: each variant's levels by warehouse priority.
_PLAN_ORDER = "ORDER BY l.variant_id, w.priority, w.id"
# Locked in primary-key order, the order every statement on stock levels keeps, so two
# checkouts cannot deadlock; the plan's order is then restored in Python. SQLite has no row
# locks: its one writer at a time, which the caller's earlier INSERTs made this transaction,
# keeps the plan fresh.
_LOCKED = "ORDER BY l.id FOR NO KEY UPDATE OF l"


def _reservation_candidates(
    variant_ids: list[int], *, lock_rows: bool
) -> list[tuple[int, int, int, int, int, int, int, int]]:
    """Return the active levels of these variants, each variant's in warehouse priority order.

    Rows are (level_id, variant_id, on_hand, reserved, threshold, product_id, priority,
    warehouse_id). Unlocked it only plans; with `lock_rows` the figures hold until the commit.
    """
    sql = _CANDIDATES_SQL.format(ids=", ".join(["%s"] * len(variant_ids)))
    with connection.cursor() as cursor:
        locked = lock_rows and connection.features.has_select_for_no_key_update
        cursor.execute(sql + (_LOCKED if locked else _PLAN_ORDER), variant_ids)
        rows = cursor.fetchall()
    if locked:
        rows.sort(key=lambda row: (row[1], row[6], row[7]))
    return rows


def _allocations_insert(*, reference: str) -> RowsWrite:
    """Return the INSERT recording which levels hold how many units for `reference`.

    It reads the reservation's rows `v(level_id, dh, dr)` and goes with the reservation's UPDATE.
    """
    now = timezone.now()
    return RowsWrite(
        sql=(
            f"INSERT INTO {StockAllocation._meta.db_table} "
            "(reference, level_id, quantity, state, created_at, updated_at) "
            "SELECT %s, level_id, dr, %s, %s, %s FROM v"
        ),
        params=(reference, AllocationState.RESERVED, now, now),
    )


def stock_reserve(
    *,
    reference: str,
    quantities: Iterable[tuple[int, int]],
    actor=None,
    lock_rows: bool = False,
) -> None:
    """Hold the requested units for `reference` (an order number), all or nothing.

    `quantities` are (variant_id, quantity) pairs, summed per variant, drawn from active
    warehouses in priority order. Lock-late: an unlocked SELECT plans, then one conditional UPDATE
    (writing the allocations and ledger rows, on PostgreSQL) comes last; call it as the caller's
    last write. Raises `OutOfStock` with nothing reserved; if the UPDATE finds a level emptied
    since the plan, the caller must roll back and may retry once if `OutOfStock.retryable`, with
    `lock_rows` (the plan then locks the levels in primary-key order: its shortage is true).
    Sends `stock_changed`, and `stock_low` per variant falling through its threshold; requests
    no tasks.
    """
    if not reference:
        raise InvalidStockOperation("a reservation needs a reference")
    requested = _summed(quantities)
    levels = _reservation_candidates(list(requested), lock_rows=lock_rows)
    available: dict[int, int] = dict.fromkeys(requested, 0)
    thresholds: dict[int, int] = {}
    plan: dict[int, int] = {}
    plan_variant: dict[int, int] = {}
    planned_free: dict[int, int] = {}
    remaining = dict(requested)
    for level_id, variant_id, on_hand, reserved, threshold, *_ in levels:
        thresholds[variant_id] = threshold
        free = on_hand - reserved
        available[variant_id] += free
        take = min(free, remaining[variant_id])
        if take > 0:
            plan[level_id] = take
            plan_variant[level_id] = variant_id
            planned_free[level_id] = free
            remaining[variant_id] -= take
    shortages = [
        Shortage(variant_id=variant_id, requested=quantity, available=available[variant_id])
        for variant_id, quantity in requested.items()
        if remaining[variant_id] > 0
    ]
    if shortages:
        raise OutOfStock(shortages)

    with transaction.atomic(savepoint=False):
        changed = move_levels(
            deltas=[(level_id, 0, quantity) for level_id, quantity in plan.items()],
            require_available=True,
            writes=[
                _allocations_insert(reference=reference),
                movements_insert(
                    reason=MovementReason.RESERVATION,
                    reference=reference,
                    actor_id=actor.pk if actor is not None else None,
                ),
            ],
        )
        if len(changed) != len(plan):
            raise _stale_plan(
                requested=requested, plan=plan, plan_variant=plan_variant, changed=changed
            )

        # Availability after this update: exact for the rows it changed (their values under
        # this transaction's lock), as planned for the rows it did not touch.
        after = dict(available)
        for level_id, variant_id, on_hand, reserved in changed:
            after[variant_id] += (on_hand - reserved) - planned_free[level_id]
        before = {variant_id: after[variant_id] + requested[variant_id] for variant_id in requested}
        stock_changed_send(
            sender=stock_reserve,
            variant_ids=list(requested),
            product_ids=sorted({row[5] for row in levels}),
            availability_crossed_zero=availability_crossed_zero(
                (planned_free[level_id], on_hand - reserved)
                for level_id, _, on_hand, reserved in changed
            ),
            low=crossings(before=before, after=after, thresholds=thresholds),
        )


def _stale_plan(
    *,
    requested: dict[int, int],
    plan: dict[int, int],
    plan_variant: dict[int, int],
    changed: list[tuple[int, int, int, int]],
) -> OutOfStock:
    """Build the `OutOfStock` for a plan a concurrent buyer made stale, with fresh figures."""
    changed_ids = {row[0] for row in changed}
    failed_variants = sorted(
        {plan_variant[level_id] for level_id in plan if level_id not in changed_ids}
    )
    fresh = dict(
        StockLevel.objects.filter(variant_id__in=failed_variants, warehouse__is_active=True)
        .values("variant_id")
        .annotate(available=Sum(F("on_hand") - F("reserved")))
        .values_list("variant_id", "available")
    )
    # This transaction's own UPDATE still holds the units of the rows it did change, and the
    # refusal gives them back: count them as available.
    held_by_this_order: dict[int, int] = defaultdict(int)
    for level_id in changed_ids:
        held_by_this_order[plan_variant[level_id]] += plan[level_id]
    figures = [
        Shortage(
            variant_id=variant_id,
            requested=requested[variant_id],
            available=(fresh.get(variant_id) or 0) + held_by_this_order[variant_id],
        )
        for variant_id in failed_variants
    ]
    # A refusal names only the variants that are short now; when none is, a retry will do.
    short = [figure for figure in figures if figure.available < figure.requested]
    return OutOfStock(short or figures, retryable=not short)


def _allocations_move(*, reference: str, from_state: str, to_state: str) -> list[tuple[int, int]]:
    """Move every allocation of `reference` in `from_state` to `to_state`; return what moved.

    Rows are (level_id, quantity). The state guard is the transition: of two concurrent calls for
    one reference, the second waits for the first's row locks and then finds nothing left to move.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE inventory_stockallocation SET state = %s, updated_at = %s "
            "WHERE reference = %s AND state = %s RETURNING level_id, quantity",
            [to_state, timezone.now(), reference, from_state],
        )
        return sorted(cursor.fetchall())


def _settle(
    *,
    sender: Callable[..., object],
    reference: str,
    from_state: str,
    to_state: str,
    on_hand_sign: int,
    reserved_sign: int,
    reason: str,
    actor,
    note: str,
) -> bool:
    """Move what `reference` holds in `from_state`, write the ledger and send `stock_changed`.

    Sent as `sender`, the service settling. Returns False, sending nothing, when the reference
    held nothing.
    """
    moved = _allocations_move(reference=reference, from_state=from_state, to_state=to_state)
    if not moved:
        return False
    # Read before the UPDATE below, which keeps the levels locked until the commit.
    product_ids = sorted(
        set(
            StockLevel.objects.filter(pk__in=[level_id for level_id, _ in moved]).values_list(
                "variant__product_id", flat=True
            )
        )
    )
    changed = move_levels(
        deltas=[
            (level_id, on_hand_sign * quantity, reserved_sign * quantity)
            for level_id, quantity in moved
        ],
        require_available=False,
        writes=[
            movements_insert(
                reason=reason,
                reference=reference,
                actor_id=actor.pk if actor is not None else None,
                note=note,
            )
        ],
    )
    if len(changed) != len(moved):
        # Only drift (a level changed behind the ledger's back) can get here; roll back.
        raise InvalidStockOperation(
            f"the stock levels no longer hold what {reference!r} has {from_state}; "
            "run `manage.py inventory_verify`"
        )
    # Each level's availability moved by (Δon_hand - Δreserved) per unit: a shipment, which
    # takes both, leaves it where it was.
    freed_per_unit = on_hand_sign - reserved_sign
    quantity_of = dict(moved)
    stock_changed_send(
        sender=sender,
        variant_ids=sorted({row[1] for row in changed}),
        product_ids=product_ids,
        availability_crossed_zero=availability_crossed_zero(
            (on_hand - reserved - freed_per_unit * quantity_of[level_id], on_hand - reserved)
            for level_id, _, on_hand, reserved in changed
        ),
    )
    return True


@transaction.atomic
def stock_release(*, reference: str, actor=None, note: str = "") -> None:
    """Give back every unit `reference` still holds (order cancelled or expired).

    A no-op when the reference holds nothing, so a repeated cancel changes nothing.
    Sends `stock_changed` when units were released; requests no tasks.
    """
    _settle(
        sender=stock_release,
        reference=reference,
        from_state=AllocationState.RESERVED,
        to_state=AllocationState.RELEASED,
        on_hand_sign=0,
        reserved_sign=-1,
        reason=MovementReason.RELEASE,
        actor=actor,
        note=note,
    )


@transaction.atomic
def stock_ship(*, reference: str, actor=None) -> None:
    """Ship exactly what `reference` holds: on_hand and reserved both fall by those units.

    Raises `InvalidStockOperation` when the reference holds nothing (never reserved, already
    shipped or released): shipping goods that were never held is a bug to surface.
    Sends `stock_changed`; requests no tasks.
    """
    if not _settle(
        sender=stock_ship,
        reference=reference,
        from_state=AllocationState.RESERVED,
        to_state=AllocationState.SHIPPED,
        on_hand_sign=-1,
        reserved_sign=-1,
        reason=MovementReason.SHIPMENT,
        actor=actor,
        note="",
    ):
        raise InvalidStockOperation(f"{reference!r} holds no reserved stock to ship")


@transaction.atomic
def stock_return(*, reference: str, actor=None, note: str = "") -> None:
    """Put the units shipped for `reference` back on hand, in the warehouses they left.

    Raises `InvalidStockOperation` when nothing was shipped for the reference (or it was
    already returned). Sends `stock_changed`; requests no tasks.
    """
    if not _settle(
        sender=stock_return,
        reference=reference,
        from_state=AllocationState.SHIPPED,
        to_state=AllocationState.RETURNED,
        on_hand_sign=1,
        reserved_sign=0,
        reason=MovementReason.RETURN,
        actor=actor,
        note=note,
    ):
        raise InvalidStockOperation(f"{reference!r} has no shipped stock to return")
