"""Stock writes: receive, adjust, reserve, release, ship, return, and the import's bulk set.

Every service is one transaction, writes a ledger row for every change of a level, and sends
`stock_changed(variant_ids=[...])` once, inside that transaction. Stock moves only through
guarded conditional UPDATEs whose row counts decide (design rule 5); rows are touched in
primary-key order so concurrent callers cannot deadlock.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from django.db import connection, transaction
from django.db.models import F, Sum
from django.utils import timezone

from audit.models import AuditAction
from audit.services import audit_record
from catalog.models import Variant
from inventory.models import (
    AllocationState,
    MovementReason,
    StockAllocation,
    StockLevel,
    StockMovement,
    Warehouse,
)
from inventory.signals import stock_changed, stock_low


@dataclass(frozen=True)
class Shortage:
    """One variant an order cannot have: how many it asked for and how many are available."""

    variant_id: int
    requested: int
    available: int


class OutOfStock(Exception):
    """Not enough available units for at least one variant; nothing was reserved.

    `retryable` is True when the failure came from a stale plan (another buyer took the units
    of one warehouse between our read and our update) and the fresh availability in `shortages`
    would now cover every request: the caller may run its whole transaction once more.
    """

    code = "out_of_stock"

    def __init__(self, shortages: list[Shortage], *, retryable: bool = False) -> None:
        self.shortages = shortages
        self.retryable = retryable
        super().__init__(
            "out of stock: "
            + ", ".join(
                f"variant {s.variant_id} requested {s.requested}, available {s.available}"
                for s in shortages
            )
        )


class InvalidStockOperation(ValueError):
    """A stock request that can never succeed as asked (bad quantity, missing reason, ...)."""

    code = "invalid_stock_operation"


@dataclass(frozen=True)
class LowStockCrossing:
    variant_id: int
    available: int
    threshold: int


def _positive_quantity(value: Any, *, name: str = "quantity") -> int:
    # bool is an int subclass, and True units of stock is a bug in the caller.
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidStockOperation(f"{name} must be a whole number, got {value!r}")
    if value <= 0:
        raise InvalidStockOperation(f"{name} must be positive, got {value}")
    return value


def _crossings(
    *, before: Mapping[int, int], after: Mapping[int, int], thresholds: Mapping[int, int]
) -> list[LowStockCrossing]:
    """Variants whose availability fell through their threshold: before > threshold >= after."""
    return [
        LowStockCrossing(variant_id=variant_id, available=after[variant_id], threshold=threshold)
        for variant_id, threshold in sorted(thresholds.items())
        if before[variant_id] > threshold >= after[variant_id]
    ]


def _variant_availability(variant_id: int) -> int:
    total = StockLevel.objects.filter(variant_id=variant_id, warehouse__is_active=True).aggregate(
        available=Sum(F("on_hand") - F("reserved"))
    )["available"]
    return total or 0


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

    Sends `stock_changed`. Records a `stock` audit entry.
    """
    quantity = _positive_quantity(quantity)
    level, _ = StockLevel.objects.get_or_create(variant=variant, warehouse=warehouse)
    StockLevel.objects.filter(pk=level.pk).update(
        on_hand=F("on_hand") + quantity, updated_at=timezone.now()
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
    stock_changed.send(sender=stock_receive, variant_ids=[variant.pk])
    return level


@transaction.atomic
def stock_adjust(
    *, variant: Variant, warehouse: Warehouse, on_hand_delta: int, note: str, actor=None
) -> StockLevel:
    """Correct the counted units of an existing level by `on_hand_delta`, never below reserved.

    `note` is the required reason (a stocktake, breakage). Sends `stock_changed`, and
    `stock_low` when the variant's availability falls through its threshold. Records a `stock`
    audit entry.
    """
    if isinstance(on_hand_delta, bool) or not isinstance(on_hand_delta, int):
        raise InvalidStockOperation(f"on_hand_delta must be a whole number, got {on_hand_delta!r}")
    if on_hand_delta == 0:
        raise InvalidStockOperation("on_hand_delta must not be zero")
    if not note or not note.strip():
        raise InvalidStockOperation("an adjustment needs a reason in `note`")
    level = StockLevel.objects.filter(variant=variant, warehouse=warehouse).first()
    if level is None:
        raise InvalidStockOperation(
            f"no stock level for variant {variant.pk} in warehouse {warehouse.code}"
        )
    # on_hand + delta >= reserved keeps the reserved units and the CHECK constraints intact.
    updated = StockLevel.objects.filter(
        pk=level.pk, on_hand__gte=F("reserved") - on_hand_delta
    ).update(on_hand=F("on_hand") + on_hand_delta, updated_at=timezone.now())
    if updated == 0:
        raise InvalidStockOperation(
            f"adjusting by {on_hand_delta} would leave fewer units on hand than are reserved"
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
    after = _variant_availability(variant.pk)
    for crossing in _crossings(
        before={variant.pk: after - on_hand_delta},
        after={variant.pk: after},
        thresholds={variant.pk: variant.low_stock_threshold},
    ):
        stock_low.send(
            sender=stock_adjust,
            variant_id=crossing.variant_id,
            available=crossing.available,
            threshold=crossing.threshold,
        )
    stock_changed.send(sender=stock_adjust, variant_ids=[variant.pk])
    return level


def _summed(quantities: Iterable[tuple[int, int]]) -> dict[int, int]:
    requested: dict[int, int] = defaultdict(int)
    for variant_id, quantity in quantities:
        if isinstance(variant_id, bool) or not isinstance(variant_id, int):
            raise InvalidStockOperation(f"variant id must be an integer, got {variant_id!r}")
        requested[variant_id] += _positive_quantity(quantity)
    if not requested:
        raise InvalidStockOperation("nothing to reserve")
    return dict(sorted(requested.items()))


def _with_rows(
    *, names: tuple[str, ...], types: tuple[str, ...], rows: list[tuple], sql: str, tail: list
) -> list[tuple]:
    """Run `sql` (which starts `WITH v(...) AS ({rows}) ...`) for `rows`; return what it returns.

    On PostgreSQL the rows travel as one array per column through `unnest`, so the statement
    has a handful of parameters whatever the number of rows (thousands of placeholders cost
    more to bind than the work they describe). SQLite gets a VALUES list, in chunks that stay
    under its limit of bound parameters. `tail` are the parameters after the rows.
    """
    if not rows:
        return []
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            arrays = ", ".join(f"%s::{kind}[]" for kind in types)
            columns = [list(column) for column in zip(*rows, strict=True)]
            cursor.execute(sql.format(rows=f"SELECT * FROM unnest({arrays})"), columns + tail)
            return list(cursor.fetchall()) if cursor.description else []
        result: list[tuple] = []
        chunk = max(1, (connection.features.max_query_params - len(tail)) // len(names))
        for start in range(0, len(rows), chunk):
            part = rows[start : start + chunk]
            row = "(" + ", ".join(["%s"] * len(names)) + ")"
            params = [value for values in part for value in values]
            cursor.execute(sql.format(rows="VALUES " + ", ".join([row] * len(part))), params + tail)
            if cursor.description:
                result.extend(cursor.fetchall())
        return result


def _update_levels(
    *, columns: tuple[str, ...], rows: list[tuple], assignments: str, guard: str
) -> list[tuple[int, int, int, int]]:
    """Run one guarded UPDATE of many levels from rows `v(level_id, *columns)` of integers.

    `assignments` and `guard` are SQL over `l` (the level) and `v` (its row of values). Returns
    (level_id, variant_id, on_hand, reserved) after the change for the rows changed; the caller
    compares the count with what it asked for. On PostgreSQL the rows are locked in level-id
    order inside the statement: a join's own order is the planner's choice and could differ
    between two transactions, which would let them deadlock.
    """
    names = ("level_id", *columns)
    if connection.vendor == "postgresql":
        sql = (
            f"WITH v({', '.join(names)}) AS ({{rows}}), "
            "locked AS (SELECT s.id FROM inventory_stocklevel s "
            "WHERE s.id IN (SELECT level_id FROM v) ORDER BY s.id FOR NO KEY UPDATE) "
            f"UPDATE inventory_stocklevel AS l SET {assignments}, updated_at = %s "
            f"FROM v, locked WHERE l.id = v.level_id AND locked.id = l.id AND ({guard}) "
            "RETURNING l.id, l.variant_id, l.on_hand, l.reserved"
        )
    else:
        # SQLite has one writer at a time, so there is no lock order to keep.
        sql = (
            f"WITH v({', '.join(names)}) AS ({{rows}}) "
            f"UPDATE inventory_stocklevel AS l SET {assignments}, updated_at = %s "
            f"FROM v WHERE l.id = v.level_id AND ({guard}) "
            # SQLite's RETURNING names the columns of the updated table without its alias.
            "RETURNING id, variant_id, on_hand, reserved"
        )
    return _with_rows(
        names=names,
        types=("bigint",) * len(names),
        rows=sorted(rows),
        sql=sql,
        tail=[timezone.now()],
    )


def _move_levels(
    *, deltas: list[tuple[int, int, int]], require_available: bool
) -> list[tuple[int, int, int, int]]:
    """Apply (level_id, Δon_hand, Δreserved) to many levels in one guarded statement.

    A row changes only if afterwards `0 <= reserved <= on_hand` holds and, with
    `require_available`, only if it had Δreserved units available before.
    """
    guard = "l.reserved + v.dr >= 0 AND l.on_hand + v.dh >= l.reserved + v.dr"
    if require_available:
        guard = "l.on_hand - l.reserved >= v.dr AND " + guard
    return _update_levels(
        columns=("dh", "dr"),
        rows=deltas,
        assignments="on_hand = l.on_hand + v.dh, reserved = l.reserved + v.dr",
        guard=guard,
    )


# The checkout's statements are written out: on the hot path the ORM's query compilation
# costs more Python time than the database spends on them.
_CANDIDATES_SQL = (
    "SELECT l.id, l.variant_id, l.on_hand, l.reserved, v.low_stock_threshold "
    f"FROM {StockLevel._meta.db_table} l "
    f"JOIN {Warehouse._meta.db_table} w ON w.id = l.warehouse_id "
    f"JOIN {Variant._meta.db_table} v ON v.id = l.variant_id "
    "WHERE w.is_active AND l.variant_id IN ({ids}) "
    "ORDER BY l.variant_id, w.priority, w.id"
)


def _reservation_candidates(variant_ids: list[int]) -> list[tuple[int, int, int, int, int]]:
    """(level_id, variant_id, on_hand, reserved, threshold) of the active levels of these
    variants, each variant's levels in warehouse priority order. Unlocked: it only plans."""
    with connection.cursor() as cursor:
        cursor.execute(
            _CANDIDATES_SQL.format(ids=", ".join(["%s"] * len(variant_ids))), variant_ids
        )
        return cursor.fetchall()


def _insert_allocations(*, reference: str, plan: list[tuple[int, int]]) -> None:
    """Record which levels hold how many units for `reference`, in one INSERT."""
    now = timezone.now()
    _with_rows(
        names=("level_id", "quantity"),
        types=("bigint", "integer"),
        rows=plan,
        sql=(
            "WITH v(level_id, quantity) AS ({rows}) "
            f"INSERT INTO {StockAllocation._meta.db_table} "
            "(reference, level_id, quantity, state, created_at, updated_at) "
            "SELECT %s, level_id, quantity, %s, %s, %s FROM v"
        ),
        tail=[reference, AllocationState.RESERVED.value, now, now],
    )


def stock_reserve(*, reference: str, quantities: Iterable[tuple[int, int]], actor=None) -> None:
    """Hold the requested units for `reference` (an order number), all or nothing.

    `quantities` are (variant_id, quantity) pairs; a variant may repeat and is summed first.
    Units are drawn from active warehouses in priority order. Lock-late, for the checkout's
    hot path: one unlocked SELECT plans the split, the allocations and ledger rows are
    inserted, and ONE conditional UPDATE for all planned levels comes last, so the stock rows
    stay locked only for that statement and the commit. Four queries whatever the number of
    lines. Call it as the last write of the caller's transaction.

    Raises `OutOfStock` with nothing reserved. When the plan already shows a shortage it is
    raised before any write, and the caller's transaction stays usable. When the UPDATE finds
    a level emptied since the plan (a concurrent buyer), the writes are already made and no
    savepoint is taken (two statements fewer on the hot path): the caller's transaction must
    roll back. `OutOfStock.retryable` is then True if the fresh availability would suffice,
    and the caller may run its whole transaction once more.

    Sends `stock_changed`, and `stock_low` for each variant whose availability falls through
    its threshold.
    """
    if not reference:
        raise InvalidStockOperation("a reservation needs a reference")
    requested = _summed(quantities)
    levels = _reservation_candidates(list(requested))
    available: dict[int, int] = dict.fromkeys(requested, 0)
    thresholds: dict[int, int] = {}
    plan: dict[int, int] = {}
    plan_variant: dict[int, int] = {}
    planned_free: dict[int, int] = {}
    remaining = dict(requested)
    for level_id, variant_id, on_hand, reserved, threshold in levels:
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
        _insert_allocations(reference=reference, plan=sorted(plan.items()))
        actor_id = actor.pk if actor is not None else None
        _insert_movements(
            [
                (level_id, 0, quantity, MovementReason.RESERVATION.value, reference, actor_id, "")
                for level_id, quantity in sorted(plan.items())
            ]
        )
        changed = _move_levels(
            deltas=[(level_id, 0, quantity) for level_id, quantity in plan.items()],
            require_available=True,
        )
        if len(changed) != len(plan):
            raise _stale_plan(
                requested=requested, plan=plan, plan_variant=plan_variant, changed=changed
            )

        # Availability after our update: exact for the rows we changed (their values under our
        # lock), as planned for the rows we did not touch.
        after = dict(available)
        for level_id, variant_id, on_hand, reserved in changed:
            after[variant_id] += (on_hand - reserved) - planned_free[level_id]
        before = {variant_id: after[variant_id] + requested[variant_id] for variant_id in requested}
        for crossing in _crossings(before=before, after=after, thresholds=thresholds):
            stock_low.send(
                sender=stock_reserve,
                variant_id=crossing.variant_id,
                available=crossing.available,
                threshold=crossing.threshold,
            )
        stock_changed.send(sender=stock_reserve, variant_ids=list(requested))


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
    # Our own statement already holds the units of the rows it did change: give them back.
    held_by_us: dict[int, int] = defaultdict(int)
    for level_id in changed_ids:
        held_by_us[plan_variant[level_id]] += plan[level_id]
    shortages = [
        Shortage(
            variant_id=variant_id,
            requested=requested[variant_id],
            available=(fresh.get(variant_id) or 0) + held_by_us[variant_id],
        )
        for variant_id in failed_variants
    ]
    return OutOfStock(shortages, retryable=all(s.available >= s.requested for s in shortages))


def _allocations_move(*, reference: str, from_state: str, to_state: str) -> list[tuple[int, int]]:
    """Move every allocation of `reference` in `from_state` to `to_state`; return
    (level_id, quantity) of those moved.

    The state guard is the transition: of two concurrent calls for one reference, the second
    waits for the first's row locks and then finds nothing left to move.
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
    reference: str,
    from_state: str,
    to_state: str,
    on_hand_sign: int,
    reserved_sign: int,
    reason: str,
    actor,
    note: str,
) -> list[int]:
    """Move what `reference` holds in `from_state` and write the ledger; return variant ids."""
    moved = _allocations_move(reference=reference, from_state=from_state, to_state=to_state)
    if not moved:
        return []
    StockMovement.objects.bulk_create(
        [
            StockMovement(
                level_id=level_id,
                on_hand_delta=on_hand_sign * quantity,
                reserved_delta=reserved_sign * quantity,
                reason=reason,
                reference=reference,
                actor=actor,
                note=note[:255],
            )
            for level_id, quantity in moved
        ]
    )
    changed = _move_levels(
        deltas=[
            (level_id, on_hand_sign * quantity, reserved_sign * quantity)
            for level_id, quantity in moved
        ],
        require_available=False,
    )
    if len(changed) != len(moved):
        # Only drift (a level changed behind the ledger's back) can get here; roll back.
        raise InvalidStockOperation(
            f"the stock levels no longer hold what {reference!r} has {from_state}; "
            "run `manage.py inventory_verify`"
        )
    return sorted({row[1] for row in changed})


@transaction.atomic
def stock_release(*, reference: str, actor=None, note: str = "") -> None:
    """Give back every unit `reference` still holds (order cancelled or expired).

    A no-op when the reference holds nothing, so a repeated cancel changes nothing.
    Sends `stock_changed` when units were released.
    """
    variant_ids = _settle(
        reference=reference,
        from_state=AllocationState.RESERVED,
        to_state=AllocationState.RELEASED,
        on_hand_sign=0,
        reserved_sign=-1,
        reason=MovementReason.RELEASE,
        actor=actor,
        note=note,
    )
    if variant_ids:
        stock_changed.send(sender=stock_release, variant_ids=variant_ids)


@transaction.atomic
def stock_ship(*, reference: str, actor=None) -> None:
    """Ship exactly what `reference` holds: on_hand and reserved both fall by those units.

    Raises `InvalidStockOperation` when the reference holds nothing (never reserved, already
    shipped or released): shipping goods that were never held is a bug to surface.
    Sends `stock_changed`.
    """
    variant_ids = _settle(
        reference=reference,
        from_state=AllocationState.RESERVED,
        to_state=AllocationState.SHIPPED,
        on_hand_sign=-1,
        reserved_sign=-1,
        reason=MovementReason.SHIPMENT,
        actor=actor,
        note="",
    )
    if not variant_ids:
        raise InvalidStockOperation(f"{reference!r} holds no reserved stock to ship")
    stock_changed.send(sender=stock_ship, variant_ids=variant_ids)


@transaction.atomic
def stock_return(*, reference: str, actor=None, note: str = "") -> None:
    """Put the units shipped for `reference` back on hand, in the warehouses they left.

    Raises `InvalidStockOperation` when nothing was shipped for the reference (or it was
    already returned). Sends `stock_changed`.
    """
    variant_ids = _settle(
        reference=reference,
        from_state=AllocationState.SHIPPED,
        to_state=AllocationState.RETURNED,
        on_hand_sign=1,
        reserved_sign=0,
        reason=MovementReason.RETURN,
        actor=actor,
        note=note,
    )
    if not variant_ids:
        raise InvalidStockOperation(f"{reference!r} has no shipped stock to return")
    stock_changed.send(sender=stock_return, variant_ids=variant_ids)


@dataclass(frozen=True)
class OnHandProblem:
    """Why one (variant_id, warehouse_id) target of `stock_set_on_hand` was not applied."""

    key: tuple[int, int]
    message: str


@dataclass(frozen=True)
class OnHandResult:
    changed_level_ids: list[int]
    problems: list[OnHandProblem]


def _insert_movements(rows: list[tuple[int, int, int, str, str, int | None, str]]) -> None:
    """Append ledger rows (level_id, Δon_hand, Δreserved, reason, reference, actor_id, note)
    in one INSERT without building a model instance per row (the import writes 100,000s)."""
    names = ("level_id", "on_hand_delta", "reserved_delta", "reason", "reference", "actor_id")
    _with_rows(
        names=(*names, "note"),
        types=("bigint", "integer", "integer", "text", "text", "bigint", "text"),
        rows=rows,
        sql=(
            f"WITH v({', '.join(names)}, note) AS ({{rows}}) "
            f"INSERT INTO inventory_stockmovement ({', '.join(names)}, note, created_at) "
            f"SELECT {', '.join(names)}, note, %s FROM v"
        ),
        tail=[timezone.now()],
    )


def _insert_levels(rows: list[tuple[int, int, int]]) -> list[tuple[int, int, int, int]]:
    """Create levels (variant_id, warehouse_id, on_hand) that do not exist yet; return
    (id, variant_id, warehouse_id, on_hand) of those created. A level created meanwhile by
    another transaction is skipped (the unique constraint decides), not overwritten."""
    return _with_rows(
        names=("variant_id", "warehouse_id", "on_hand"),
        types=("bigint", "bigint", "integer"),
        rows=sorted(rows),
        sql=(
            "WITH v(variant_id, warehouse_id, on_hand) AS ({rows}) "
            "INSERT INTO inventory_stocklevel (variant_id, warehouse_id, on_hand, reserved, "
            "updated_at) SELECT variant_id, warehouse_id, on_hand, 0, %s FROM v WHERE true "
            "ON CONFLICT (variant_id, warehouse_id) DO NOTHING "
            "RETURNING id, variant_id, warehouse_id, on_hand"
        ),
        tail=[timezone.now()],
    )


@transaction.atomic
def stock_set_on_hand(
    *, targets: Mapping[tuple[int, int], int], actor=None, note: str = "", reference: str = ""
) -> OnHandResult:
    """Set on_hand of many (variant_id, warehouse_id) levels, creating missing ones; each
    difference is written to the ledger as an `import` movement, so setting the same figures
    twice changes nothing. For the catalog import (inventory-internal).

    A missing level is inserted with its target; an existing one moves by compare-and-set on
    the value read (`WHERE on_hand = <read>`), so a level changed by a concurrent sale is
    reported, not overwritten. A target below the units reserved is reported too. Returns the
    levels changed and the targets not applied.

    Sends `stock_changed` for the variants whose levels changed, and `stock_low` for each
    variant whose availability falls through its threshold.
    """
    for quantity in targets.values():
        if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 0:
            raise InvalidStockOperation(f"on_hand must be a whole number >= 0, got {quantity!r}")
    if not targets:
        return OnHandResult(changed_level_ids=[], problems=[])
    variant_ids = sorted({variant_id for variant_id, _ in targets})

    def read() -> dict[tuple[int, int], tuple]:
        return {
            (row[1], row[2]): row
            for row in StockLevel.objects.filter(variant_id__in=variant_ids).values_list(
                "id", "variant_id", "warehouse_id", "on_hand", "reserved"
            )
        }

    levels = read()
    missing = [(v, w, targets[(v, w)]) for v, w in targets if (v, w) not in levels]
    created = _insert_levels(missing)
    if len(created) != len(missing):
        levels = read()
    else:
        levels.update(((row[1], row[2]), (*row, 0)) for row in created)
    created_ids = {row[0] for row in created}

    problems: list[OnHandProblem] = []
    planned: list[tuple[int, int, int]] = []
    for key, target in targets.items():
        level_id, _, _, on_hand, reserved = levels[key]
        if level_id in created_ids or target == on_hand:
            continue
        if target < reserved:
            problems.append(
                OnHandProblem(key=key, message=f"on_hand {target} is below the {reserved} reserved")
            )
            continue
        planned.append((level_id, on_hand, target))
    changed = (
        _update_levels(
            columns=("expected", "target"),
            rows=planned,
            assignments="on_hand = v.target",
            guard="l.on_hand = v.expected AND v.target >= l.reserved",
        )
        if planned
        else []
    )
    changed_ids = {row[0] for row in changed}
    key_of = {row[0]: key for key, row in levels.items()}
    problems.extend(
        OnHandProblem(key=key_of[level_id], message="stock changed while importing; run again")
        for level_id, _, _ in planned
        if level_id not in changed_ids
    )
    applied = [(row[0], row[3]) for row in created if row[3] != 0]
    applied += [(level_id, t - e) for level_id, e, t in planned if level_id in changed_ids]
    actor_id = actor.pk if actor is not None else None
    _insert_movements(
        [
            (level_id, delta, 0, MovementReason.IMPORT.value, reference, actor_id, note[:255])
            for level_id, delta in applied
        ]
    )
    touched = sorted({key_of[level_id][0] for level_id, _ in applied})
    if touched:
        for crossing in _import_crossings(
            levels=levels, created_ids=created_ids, applied=applied, touched=touched
        ):
            stock_low.send(
                sender=stock_set_on_hand,
                variant_id=crossing.variant_id,
                available=crossing.available,
                threshold=crossing.threshold,
            )
        stock_changed.send(sender=stock_set_on_hand, variant_ids=touched)
    return OnHandResult(changed_level_ids=[level_id for level_id, _ in applied], problems=problems)


def _import_crossings(
    *,
    levels: dict[tuple[int, int], tuple],
    created_ids: set[int],
    applied: list[tuple[int, int]],
    touched: list[int],
) -> list[LowStockCrossing]:
    """The variants the import pushed through their low-stock threshold."""
    active = set(Warehouse.objects.filter(is_active=True).values_list("pk", flat=True))
    thresholds = dict(
        Variant.objects.filter(pk__in=touched).values_list("pk", "low_stock_threshold")
    )
    delta_of = dict(applied)
    before: dict[int, int] = defaultdict(int)
    after: dict[int, int] = defaultdict(int)
    for (variant_id, warehouse_id), (level_id, _, _, on_hand, reserved) in levels.items():
        if warehouse_id not in active:
            continue
        # `levels` holds a created level with its target (nothing before), an existing one
        # as read before the update.
        was = 0 if level_id in created_ids else on_hand - reserved
        before[variant_id] += was
        after[variant_id] += was + delta_of.get(level_id, 0)
    return _crossings(before=before, after=after, thresholds=thresholds)
