"""Reservations and what follows them: reserve (the checkout's hot path), release, ship, return."""

from __future__ import annotations

import datetime
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from django.db import connection, transaction
from django.db.models import F, Q, Sum
from django.utils import timezone

from catalog.models import Variant
from core.sql import with_rows
from inventory.models import (
    AllocationState,
    Backorder,
    InventoryPolicy,
    MovementReason,
    StockAllocation,
    StockLevel,
    StockPolicy,
    Warehouse,
    available_units,
)
from inventory.services.errors import (
    InvalidStockOperation,
    OutOfStock,
    Shortage,
    UnitsNotHeld,
    positive_quantity,
    sku_of,
)
from inventory.services.events import stock_changed_send
from inventory.services.sql import (
    FREE_SQL,
    RowsWrite,
    insert_levels,
    move_levels,
    movements_insert,
)
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
# costs more Python time than the database spends on them. The variant's stock policy rides
# along (LEFT JOIN, NULL for a variant without one: it denies), so deciding a back-order, or
# that units freed belong to the back-orders already waiting, costs no query of its own.
_CANDIDATES_SQL = (
    f"SELECT l.id, l.variant_id, {FREE_SQL}, v.low_stock_threshold, v.product_id, "
    'w.priority, w.id, p.policy, p."limit", p.release_date, p.backordered '
    f"FROM {StockLevel._meta.db_table} l "
    f"JOIN {Warehouse._meta.db_table} w ON w.id = l.warehouse_id "
    f"JOIN {Variant._meta.db_table} v ON v.id = l.variant_id "
    f"LEFT JOIN {StockPolicy._meta.db_table} p ON p.variant_id = l.variant_id "
    "WHERE w.is_active AND l.variant_id IN ({ids}) "
)
# The plan's order: each variant's levels by warehouse priority.
_PLAN_ORDER = "ORDER BY l.variant_id, w.priority, w.id"
# Locked in primary-key order, the order every statement on stock levels keeps, so two
# checkouts cannot deadlock; the plan's order is then restored in Python. SQLite has no row
# locks: its one writer at a time, which the caller's earlier INSERTs made this transaction,
# keeps the plan fresh.
_LOCKED = "ORDER BY l.id FOR NO KEY UPDATE OF l"


def _reservation_candidates(variant_ids: list[int], *, lock_rows: bool) -> list[tuple]:
    """Return the active levels of these variants, each variant's in warehouse priority order.

    Rows are (level_id, variant_id, free, threshold, product_id, priority, warehouse_id,
    policy, limit, release_date, backordered), `free` the units the level may sell
    (`FREE_SQL`: below zero when safety stock exceeds the rest), the last four the variant's
    `StockPolicy` (all None without one). Unlocked it only plans; with `lock_rows` the
    levels' figures hold until the commit (the policy's are read, not locked).
    """
    sql = _CANDIDATES_SQL.format(ids=", ".join(["%s"] * len(variant_ids)))
    with connection.cursor() as cursor:
        locked = lock_rows and connection.features.has_select_for_no_key_update
        cursor.execute(sql + (_LOCKED if locked else _PLAN_ORDER), variant_ids)
        rows = cursor.fetchall()
    if locked:
        rows.sort(key=lambda row: (row[1], row[5], row[6]))
    return rows


@dataclass(frozen=True)
class _Policy:
    """A variant's `StockPolicy` as the plan read it."""

    policy: str
    limit: int | None
    release_date: datetime.date | None
    backordered: int

    def preorder_open(self) -> bool:
        """A pre-order before its release date: every unit sold waits for the release."""
        return (
            self.policy == InventoryPolicy.PREORDER
            and self.release_date is not None
            and timezone.localdate() < self.release_date
        )

    def room(self) -> int | None:
        """Units more the variant may sell beyond its availability: None without a limit."""
        return _room(
            policy=self.policy,
            limit=self.limit,
            release_date=self.release_date,
            waiting=self.backordered,
        )


def _sellable(*, free: int, policy: _Policy | None) -> int:
    """The free units a checkout may take: those beyond what waiting back-orders are owed,
    and none of a pre-order before its release (nothing pre-ordered ships early, and its
    limit caps every unit pre-ordered: they all wait)."""
    if policy is None:
        return free
    if policy.preorder_open():
        return 0
    return max(free - policy.backordered, 0)


def _policies_of(
    *, levels: list[tuple], requested: dict[int, int], lock_rows: bool
) -> dict[int, _Policy]:
    """The stock policies of the requested variants, by variant.

    Unlocked, the plan's own rows carry them; only a variant with no level in an active
    warehouse costs a read. With `lock_rows` (the retry) the policies are read and locked
    after the levels, in variant order (the lock order of every stock service), so the
    shortage the plan then finds is true.
    """
    policies = {
        row[1]: _Policy(policy=row[7], limit=row[8], release_date=row[9], backordered=row[10])
        for row in levels
        if row[7] is not None
    }
    unseen = set(requested) - {row[1] for row in levels}
    if lock_rows and connection.features.has_select_for_no_key_update:
        read = set(policies) | unseen
        query = (
            StockPolicy.objects.select_for_update(no_key=True)
            .filter(variant_id__in=read)
            .order_by("variant_id")
        )
    elif unseen:
        query = StockPolicy.objects.filter(variant_id__in=unseen)
    else:
        return policies
    for variant_id, policy, limit, release_date, backordered in query.values_list(
        "variant_id", "policy", "limit", "release_date", "backordered"
    ):
        policies[variant_id] = _Policy(
            policy=policy, limit=limit, release_date=release_date, backordered=backordered
        )
    return policies


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
) -> dict[int, int]:
    """Hold the requested units for `reference` (an order number), all or nothing; return the
    units back-ordered per variant (empty when everything was available).

    What it guarantees: a unit is reserved only while the level has it free (on hand - reserved
    - unavailable - safety stock, decided by the guarded UPDATE under the level's row lock, so
    racing checkouts never oversell a `deny` variant), and a variant whose `StockPolicy` sells
    beyond availability (back-order; pre-order before its release date) has at most its limit
    of units waiting over all orders (a guarded UPDATE of the policy's `backordered`, which
    also re-checks the policy itself: staff switching it to deny, or the release date passing,
    after the plan refuses the back-order).

    Back-orders are served oldest first: free units up to the count a variant's policy has
    waiting (`backordered`) belong to those back-orders, so a checkout sells only the free
    units beyond them and back-orders the rest (or is refused, on a `deny` variant).

    `quantities` are (variant_id, quantity) pairs, summed per variant, drawn from active
    warehouses in priority order. Lock-late: an unlocked SELECT plans (the policies ride in
    it), then one conditional UPDATE (writing the allocations and ledger rows, on PostgreSQL)
    comes last; call it as the caller's last write. Only a back-ordered variant costs more:
    the policy UPDATE and the `Backorder` INSERT after the levels' UPDATE (levels, then
    policies: the lock order of every stock service).

    Raises `OutOfStock` with nothing reserved; if the UPDATE finds a level emptied (or a
    policy that no longer lets the units wait) since the plan, the caller must roll back and
    may retry once if `OutOfStock.retryable`, with `lock_rows` (the plan then locks the levels
    in primary-key order and the policies after them: its shortage is true). Sends
    `stock_changed`, and `stock_low` per variant falling through its threshold; requests no
    tasks.
    """
    if not reference:
        raise InvalidStockOperation("a reservation needs a reference")
    requested = _summed(quantities)
    levels = _reservation_candidates(list(requested), lock_rows=lock_rows)
    policies = _policies_of(levels=levels, requested=requested, lock_rows=lock_rows)
    available: dict[int, int] = dict.fromkeys(requested, 0)
    thresholds: dict[int, int] = {}
    for _, variant_id, free, threshold, *_ in levels:
        thresholds[variant_id] = threshold
        available[variant_id] += max(free, 0)
    # What this checkout may take: the free units beyond those owed to waiting back-orders.
    sellable = {
        variant_id: _sellable(free=units, policy=policies.get(variant_id))
        for variant_id, units in available.items()
    }
    plan: dict[int, int] = {}
    plan_variant: dict[int, int] = {}
    planned_free: dict[int, int] = {}
    remaining = dict(requested)
    budget = dict(sellable)
    for level_id, variant_id, free, *_ in levels:
        take = min(free, remaining[variant_id], budget[variant_id])
        if take > 0:
            plan[level_id] = take
            plan_variant[level_id] = variant_id
            planned_free[level_id] = free
            remaining[variant_id] -= take
            budget[variant_id] -= take
    product_ids = {row[4] for row in levels}
    short = {variant_id: units for variant_id, units in remaining.items() if units > 0}
    waiting = (
        _backorders_planned(short=short, requested=requested, available=sellable, policies=policies)
        if short
        else {}
    )

    with transaction.atomic(savepoint=False):
        changed = (
            move_levels(
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
            if plan
            else []
        )
        if len(changed) != len(plan):
            raise _stale_plan(
                requested=requested,
                plan=plan,
                plan_variant=plan_variant,
                changed=changed,
                policies=policies,
            )
        if waiting:
            _backorders_record(reference=reference, waiting=waiting, requested=requested)
            product_ids |= _product_ids(set(waiting) - {row[1] for row in levels})

        # Availability after this update: exact for the rows it changed (their values under
        # this transaction's lock), as planned for the rows it did not touch.
        after = dict(available)
        for level_id, variant_id, _, free in changed:
            after[variant_id] += free - planned_free[level_id]
        reserved_now = {
            variant_id: units - short.get(variant_id, 0) for variant_id, units in requested.items()
        }
        before = {
            variant_id: after[variant_id] + reserved_now[variant_id] for variant_id in requested
        }
        stock_changed_send(
            sender=stock_reserve,
            variant_ids=list(requested),
            product_ids=sorted(product_ids),
            availability_crossed_zero=availability_crossed_zero(
                (planned_free[level_id], free) for level_id, _, _, free in changed
            ),
            availability_grew=False,
            low=crossings(before=before, after=after, thresholds=thresholds),
        )
    return {variant_id: plan.units for variant_id, plan in waiting.items()}


def _product_ids(variant_ids: set[int]) -> set[int]:
    """The products of back-ordered variants the plan had no level of (one read, rare)."""
    if not variant_ids:
        return set()
    return set(Variant.objects.filter(pk__in=variant_ids).values_list("product_id", flat=True))


@dataclass(frozen=True)
class _Waiting:
    """Units of one variant a reservation back-orders."""

    units: int


def _backorders_planned(
    *,
    short: dict[int, int],
    requested: dict[int, int],
    available: dict[int, int],
    policies: dict[int, _Policy],
) -> dict[int, _Waiting]:
    """Decide which short variants wait for stock, by their policies; all or nothing.

    Raises `OutOfStock` naming every variant that may not wait for all it lacks (a `deny`
    variant, a pre-order past its release date, a limit that leaves too little room), with
    the units it could have had (available, and room left under its limit).
    """
    waiting: dict[int, _Waiting] = {}
    room_of: dict[int, int] = {}
    for variant_id, units in short.items():
        room = policies[variant_id].room() if variant_id in policies else 0
        if room is None or 0 < units <= room:
            waiting[variant_id] = _Waiting(units=units)
        elif room:
            room_of[variant_id] = room
    shortages = [
        Shortage(
            variant_id=variant_id,
            requested=requested[variant_id],
            available=available[variant_id] + room_of.get(variant_id, 0),
        )
        for variant_id in short
        if variant_id not in waiting
    ]
    if shortages:
        raise OutOfStock(shortages)
    return waiting


def _room(*, policy: str, limit: int | None, release_date, waiting: int) -> int | None:
    """Units more a variant may sell beyond its availability: None without a limit.

    The rule `_sells_beyond` and the limit's guard enforce in the policy's UPDATE.
    """
    sells_beyond = policy == InventoryPolicy.BACKORDER or (
        policy == InventoryPolicy.PREORDER
        and release_date is not None
        and timezone.localdate() < release_date
    )
    if not sells_beyond:
        return 0
    return None if limit is None else max(limit - waiting, 0)


def _sells_beyond() -> Q:
    """The policies that let units wait for stock today (the database's word, under the
    policy's row lock): back-orders, and pre-orders before their release date."""
    return Q(policy=InventoryPolicy.BACKORDER) | Q(
        policy=InventoryPolicy.PREORDER, release_date__gt=timezone.localdate()
    )


def _backorders_record(
    *, reference: str, waiting: dict[int, _Waiting], requested: dict[int, int]
) -> None:
    """Count the waiting units on each policy and record the backorders.

    Policies are updated in variant order (the order every backorder service keeps), each
    UPDATE guarded by the whole rule (the policy still sells beyond availability, and its
    limit has room): a policy that staff changed, a release date that passed or a limit a
    concurrent checkout filled since the plan changes no row and raises a retryable
    `OutOfStock`, whose retry plans under locks.
    """
    now = timezone.now()
    for variant_id, plan in sorted(waiting.items()):
        room = Q(limit__isnull=True) | Q(limit__gte=F("backordered") + plan.units)
        if not StockPolicy.objects.filter(_sells_beyond(), room, pk=variant_id).update(
            backordered=F("backordered") + plan.units, updated_at=now
        ):
            raise OutOfStock(
                [Shortage(variant_id=variant_id, requested=requested[variant_id], available=0)],
                retryable=True,
            )
    Backorder.objects.bulk_create(
        Backorder(reference=reference, variant_id=variant_id, quantity=plan.units)
        for variant_id, plan in sorted(waiting.items())
    )


def _stale_plan(
    *,
    requested: dict[int, int],
    plan: dict[int, int],
    plan_variant: dict[int, int],
    changed: list[tuple[int, int, int, int]],
    policies: dict[int, _Policy],
) -> OutOfStock:
    """Build the `OutOfStock` for a plan a concurrent buyer made stale, with fresh figures:
    the units available beyond those owed to waiting back-orders, and the room a
    back-ordering variant has left as the plan read it (one query, on this path only)."""
    changed_ids = {row[0] for row in changed}
    failed_variants = sorted(
        {plan_variant[level_id] for level_id in plan if level_id not in changed_ids}
    )
    fresh = dict(
        StockLevel.objects.filter(variant_id__in=failed_variants, warehouse__is_active=True)
        .values("variant_id")
        .annotate(available=Sum(available_units()))
        .values_list("variant_id", "available")
    )
    for variant_id in failed_variants:
        policy = policies.get(variant_id)
        if policy is None:
            continue
        # Units owed to waiting back-orders are not for sale; what the variant may still
        # back-order counts.
        room = policy.room()
        fresh[variant_id] = max((fresh.get(variant_id) or 0) - policy.backordered, 0) + (
            requested[variant_id] if room is None else room
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


@dataclass(frozen=True)
class StockUnits:
    """Units of one variant a reference ships, releases or returns.

    `warehouse_id` is where they leave from (on a return: where they come back on hand); None
    lets inventory choose among the warehouses holding them (see `_Settlement`). What a
    service moved comes back as StockUnits too, each with its warehouse.
    """

    variant_id: int
    quantity: int
    warehouse_id: int | None = None


@dataclass(frozen=True)
class _Settlement:
    """How one kind of settlement moves an allocation's counters and its level.

    `column` is the allocation counter that grows; units come out of what is held (ship,
    release) or out of what was shipped (return). Without a warehouse named, units ship and
    return in the warehouses' priority order and are released in the reverse one: what an
    order keeps stays where the reservation would have put it first.
    """

    column: str
    reason: str
    on_hand_sign: int
    reserved_sign: int
    verb: str

    @property
    def from_shipped(self) -> bool:
        return self.column == "returned"


_SHIP = _Settlement("shipped", MovementReason.SHIPMENT, -1, -1, "ship")
_RELEASE = _Settlement("released", MovementReason.RELEASE, 0, -1, "release")
_RETURN = _Settlement("returned", MovementReason.RETURN, 1, 0, "take back")


@dataclass(frozen=True)
class _Allocation:
    pk: int
    level_id: int
    variant_id: int
    product_id: int
    warehouse_id: int
    priority: int
    movable: int  # units this settlement may take from the row


# One step of a settlement's plan: the allocation, its units, and the warehouse a returned
# unit comes back into (None: the one it left).
_Step = tuple[_Allocation, int, int | None]


def _allocations_locked(*, reference: str, settlement: _Settlement) -> list[_Allocation]:
    """Lock the reference's allocations (primary-key order) and say what each can give."""
    rows = (
        StockAllocation.objects.select_for_update(no_key=True, of=("self",))
        .filter(reference=reference)
        .order_by("pk")
        .values_list(
            "pk",
            "level_id",
            "level__variant_id",
            "level__variant__product_id",
            "level__warehouse_id",
            "level__warehouse__priority",
            "quantity",
            "shipped",
            "released",
            "returned",
        )
    )
    return [
        _Allocation(
            pk=pk,
            level_id=level_id,
            variant_id=variant_id,
            product_id=product_id,
            warehouse_id=warehouse_id,
            priority=priority,
            movable=shipped - returned
            if settlement.from_shipped
            else quantity - shipped - released,
        )
        for (
            pk,
            level_id,
            variant_id,
            product_id,
            warehouse_id,
            priority,
            quantity,
            shipped,
            released,
            returned,
        ) in rows
    ]


def _requested_units(units: Sequence[StockUnits]) -> dict[tuple[int, int | None], int]:
    requested: dict[tuple[int, int | None], int] = defaultdict(int)
    for unit in units:
        for value in (unit.variant_id, unit.warehouse_id):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise InvalidStockOperation(f"ids must be integers, got {value!r}")
        requested[(unit.variant_id, unit.warehouse_id)] += positive_quantity(unit.quantity)
    if not requested:
        raise InvalidStockOperation("no units to move")
    return dict(requested)


def _plan(
    *,
    reference: str,
    allocations: list[_Allocation],
    units: Sequence[StockUnits] | None,
    settlement: _Settlement,
) -> list[_Step]:
    """Decide (allocation, units, warehouse they return into) for the request, all or nothing.

    `units` None takes everything movable. Raises UnitsNotHeld naming every short variant.
    """
    if units is None:
        return [(row, row.movable, None) for row in allocations if row.movable > 0]
    left = {row.pk: row.movable for row in allocations}
    plan: list[_Step] = []
    shortages: list[Shortage] = []
    for (variant_id, warehouse_id), quantity in sorted(
        _requested_units(units).items(), key=lambda item: (item[0][0], item[0][1] or 0)
    ):
        into = warehouse_id if settlement.from_shipped else None
        candidates = sorted(
            (
                row
                for row in allocations
                if row.variant_id == variant_id
                and (into is not None or warehouse_id in (None, row.warehouse_id))
            ),
            key=lambda row: (row.priority, row.warehouse_id),
            reverse=settlement is _RELEASE,
        )
        remaining = quantity
        for row in candidates:
            take = min(left[row.pk], remaining)
            if take > 0:
                plan.append((row, take, into))
                left[row.pk] -= take
                remaining -= take
        if remaining:
            shortages.append(
                Shortage(variant_id=variant_id, requested=quantity, available=quantity - remaining)
            )
    if shortages:
        raise UnitsNotHeld(reference=reference, shortages=shortages, action=settlement.verb)
    return plan


def _allocations_bump(*, settlement: _Settlement, moves: dict[int, int]) -> int:
    """Add each allocation's units to its `settlement.column`, guarded; return rows changed.

    The guard keeps what moves within what the row can give, and `state` is recomputed from
    the new counters in the same statement (the table's CHECK holds it to them).
    """
    column = settlement.column
    counters = {name: f"a.{name}" for name in ("shipped", "released", "returned")}
    counters[column] = f"a.{column} + v.q"
    shipped, released, returned = counters["shipped"], counters["released"], counters["returned"]
    guard = (
        "a.shipped - a.returned >= v.q"
        if settlement.from_shipped
        else "a.quantity - a.shipped - a.released >= v.q"
    )
    state = (
        f"CASE WHEN a.quantity > {shipped} + {released} THEN '{AllocationState.RESERVED}' "
        f"WHEN {shipped} = 0 THEN '{AllocationState.RELEASED}' "
        f"WHEN {returned} = {shipped} THEN '{AllocationState.RETURNED}' "
        f"ELSE '{AllocationState.SHIPPED}' END"
    )
    changed = with_rows(
        names=("allocation_id", "q"),
        types=("bigint", "integer"),
        rows=sorted(moves.items()),
        sql=(
            "WITH v(allocation_id, q) AS ({rows}) "
            f"UPDATE {StockAllocation._meta.db_table} AS a "
            f"SET {column} = a.{column} + v.q, state = {state}, updated_at = %s "
            f"FROM v WHERE a.id = v.allocation_id AND {guard} RETURNING id"
        ),
        tail=[timezone.now()],
    )
    return len(changed)


def _return_levels(*, plan: list[_Step]) -> dict[tuple[int, int], int]:
    """The level ids of (variant, warehouse) pairs units return into, creating missing ones."""
    wanted = sorted({(row.variant_id, into) for row, _, into in plan if into is not None})
    if not wanted:
        return {}
    insert_levels([(variant_id, warehouse_id, 0) for variant_id, warehouse_id in wanted])
    found = StockLevel.objects.filter(
        variant_id__in={variant_id for variant_id, _ in wanted},
        warehouse_id__in={warehouse_id for _, warehouse_id in wanted},
    ).values_list("variant_id", "warehouse_id", "pk")
    return {(variant_id, warehouse_id): pk for variant_id, warehouse_id, pk in found}


def _settle(
    *,
    sender: Callable[..., object],
    reference: str,
    units: Sequence[StockUnits] | None,
    settlement: _Settlement,
    actor,
    note: str,
) -> list[StockUnits]:
    """Move `units` (None: all it can) of what `reference` holds or shipped, write the ledger,
    send `stock_changed`; return what moved, by variant and warehouse.

    Sent as `sender`, the service settling. The allocations are locked first (primary-key
    order), then the levels (primary-key order, in `move_levels`), the order every settlement
    keeps. Returns [] and sends nothing when nothing was movable and `units` was None.
    """
    allocations = _allocations_locked(reference=reference, settlement=settlement)
    plan = _plan(reference=reference, allocations=allocations, units=units, settlement=settlement)
    if not plan:
        return []
    moves: dict[int, int] = defaultdict(int)
    for row, quantity, _ in plan:
        moves[row.pk] += quantity
    if _allocations_bump(settlement=settlement, moves=moves) != len(moves):
        raise InvalidStockOperation(
            f"the allocations of {reference!r} changed under their lock; nothing moved"
        )
    into_level = _return_levels(plan=plan)
    deltas: dict[int, int] = defaultdict(int)
    moved: dict[tuple[int, int], int] = defaultdict(int)
    warehouse_of_level: dict[int, int] = {}
    for row, quantity, into in plan:
        level_id = row.level_id if into is None else into_level[(row.variant_id, into)]
        deltas[level_id] += quantity
        warehouse_of_level[level_id] = row.warehouse_id if into is None else into
        moved[(row.variant_id, warehouse_of_level[level_id])] += quantity
    on_hand_sign, reserved_sign = settlement.on_hand_sign, settlement.reserved_sign
    changed = move_levels(
        deltas=[
            (level_id, on_hand_sign * quantity, reserved_sign * quantity)
            for level_id, quantity in deltas.items()
        ],
        require_available=False,
        writes=[
            movements_insert(
                reason=settlement.reason,
                reference=reference,
                actor_id=actor.pk if actor is not None else None,
                note=note,
            )
        ],
    )
    if len(changed) != len(deltas):
        # Only drift (a level changed behind the ledger's back) can get here; roll back.
        raise InvalidStockOperation(
            f"the stock levels no longer hold what {reference!r} has; "
            "run `manage.py inventory_verify`"
        )
    # Each level's availability moved by (Δon_hand - Δreserved) per unit: a shipment, which
    # takes both, leaves it where it was.
    freed_per_unit = on_hand_sign - reserved_sign
    stock_changed_send(
        sender=sender,
        variant_ids=sorted({row[1] for row in changed}),
        product_ids=sorted({row.product_id for row, _, _ in plan}),
        availability_crossed_zero=availability_crossed_zero(
            (free - freed_per_unit * deltas[level_id], free) for level_id, _, _, free in changed
        ),
        availability_grew=freed_per_unit > 0,
    )
    return [
        StockUnits(variant_id=variant_id, quantity=quantity, warehouse_id=warehouse_id)
        for (variant_id, warehouse_id), quantity in sorted(moved.items())
    ]


@transaction.atomic
def stock_release(
    *,
    reference: str,
    units: Sequence[StockUnits] | None = None,
    actor=None,
    note: str = "",
) -> list[StockUnits]:
    """Give back `units` that `reference` holds or waits for (a partial cancellation), or
    every unit it still holds or waits for (order cancelled or expired); return what was
    released from reservations, by warehouse.

    Units a reference waits for (back-ordered, see `Backorder`) go first, as they would have
    shipped last; they leave the policy's count of waiting units but no level (they were
    never in one). Units named with a warehouse come out of that warehouse's reservation only.
    Without `units`, a no-op when the reference holds and waits for nothing, so a repeated
    cancel changes nothing. Raises UnitsNotHeld when it has fewer of some variant than
    `units` asks. Sends `stock_changed` when reserved units were released; requests no tasks.
    """
    waiting = _backorders_locked(reference=reference)
    dropped: dict[int, int] = {}
    if units is None:
        held = None
        dropped = {variant_id: row.waiting for variant_id, row in waiting.items()}
    else:
        held = []
        for (variant_id, warehouse_id), quantity in _requested_units(units).items():
            row = waiting.get(variant_id) if warehouse_id is None else None
            drop = min(quantity, row.waiting if row else 0)
            if drop:
                dropped[variant_id] = drop
            if quantity > drop:
                held.append(
                    StockUnits(
                        variant_id=variant_id, quantity=quantity - drop, warehouse_id=warehouse_id
                    )
                )
    try:
        released = (
            _settle(
                sender=stock_release,
                reference=reference,
                units=held,
                settlement=_RELEASE,
                actor=actor,
                note=note,
            )
            if held is None or held
            else []
        )
    except UnitsNotHeld as error:
        # Name what the reference has of each short variant: held and waiting.
        raise UnitsNotHeld(
            reference=reference,
            action="release",
            shortages=[
                Shortage(
                    variant_id=short.variant_id,
                    requested=short.requested + dropped.get(short.variant_id, 0),
                    available=short.available + dropped.get(short.variant_id, 0),
                )
                for short in error.shortages
            ],
        ) from error
    _backorders_cancel(waiting=waiting, units=dropped)
    return released


def _backorders_locked(*, reference: str) -> dict[int, Backorder]:
    """Lock the reference's backorders still waiting (primary-key order), by variant.

    Locked before its allocations and levels: the order the allocation of backorders keeps.
    """
    rows = (
        Backorder.objects.select_for_update(no_key=True)
        .filter(reference=reference, quantity__gt=F("allocated") + F("cancelled"))
        .order_by("pk")
    )
    return {row.variant_id: row for row in rows}


def _backorders_cancel(*, waiting: dict[int, Backorder], units: dict[int, int]) -> None:
    """Cancel `units` (by variant) of the locked waiting backorders and take them off each
    policy's count, in variant order (the order every backorder service keeps)."""
    now = timezone.now()
    for variant_id, quantity in sorted(units.items()):
        if not quantity:
            continue
        moved = Backorder.objects.filter(
            pk=waiting[variant_id].pk, quantity__gte=F("allocated") + F("cancelled") + quantity
        ).update(cancelled=F("cancelled") + quantity, updated_at=now)
        moved += StockPolicy.objects.filter(pk=variant_id, backordered__gte=quantity).update(
            backordered=F("backordered") - quantity, updated_at=now
        )
        if moved != 2:
            raise InvalidStockOperation(
                f"the backorder of {sku_of(variant_id)} no longer adds up; "
                "run `manage.py inventory_verify`"
            )


@transaction.atomic
def stock_ship(
    *, reference: str, units: Sequence[StockUnits] | None = None, actor=None
) -> list[StockUnits]:
    """Ship `units` (one parcel) or everything `reference` holds: on_hand and reserved both
    fall by those units; return what was shipped, by warehouse.

    Never more than the reference holds, in the warehouse named. Raises UnitsNotHeld when it
    holds fewer than `units` asks, `InvalidStockOperation` when it holds nothing (never
    reserved, already shipped or released): shipping goods never held is a bug to surface.
    Sends `stock_changed`; requests no tasks.
    """
    shipped = _settle(
        sender=stock_ship, reference=reference, units=units, settlement=_SHIP, actor=actor, note=""
    )
    if not shipped:
        raise InvalidStockOperation(f"{reference!r} holds no reserved stock to ship")
    return shipped


@transaction.atomic
def stock_return(
    *,
    reference: str,
    units: Sequence[StockUnits] | None = None,
    actor=None,
    note: str = "",
) -> list[StockUnits]:
    """Put `units` shipped for `reference` back on hand, in the warehouse each names (or the
    one they left), or every unit shipped and not yet returned; return what came back.

    Raises UnitsNotHeld when fewer were shipped (and not yet returned) than `units` asks,
    `InvalidStockOperation` when nothing was. Sends `stock_changed`; requests no tasks.
    """
    returned = _settle(
        sender=stock_return,
        reference=reference,
        units=units,
        settlement=_RETURN,
        actor=actor,
        note=note,
    )
    if not returned:
        raise InvalidStockOperation(f"{reference!r} has no shipped stock to return")
    return returned
