"""Setting stock levels in bulk, for the catalog import."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass

from django.db import transaction
from django.db.models import F

from catalog.models import Variant
from catalog.selectors import product_ids_of_variants
from inventory.models import MovementReason, StockLevel, Warehouse
from inventory.services.errors import MAX_UNITS, InvalidStockOperation
from inventory.services.events import stock_changed_send
from inventory.services.sql import insert_levels, insert_movements, update_levels
from inventory.services.thresholds import (
    LowStockCrossing,
    availability_crossed_zero,
    crossings,
)


@dataclass(frozen=True)
class OnHandProblem:
    """Why one (variant_id, warehouse_id) target of `stock_set_on_hand` was not applied."""

    key: tuple[int, int]
    message: str


@dataclass(frozen=True)
class OnHandResult:
    changed_level_ids: list[int]
    problems: list[OnHandProblem]


@transaction.atomic
def stock_set_on_hand(
    *, targets: Mapping[tuple[int, int], int], actor=None, note: str = "", reference: str = ""
) -> OnHandResult:
    """Set on_hand of many (variant_id, warehouse_id) levels, creating missing ones.

    For the catalog import: each difference goes to the ledger as an `import` movement, so the
    same figures twice change nothing. An existing level moves by compare-and-set on the value
    read, so a level changed by a concurrent sale is reported, not overwritten; a target below the
    units reserved is reported too. Returns the levels changed and the targets not applied. Sends
    `stock_changed` for the variants whose levels changed and `stock_low` per variant falling
    through its threshold; requests no tasks.
    """
    for quantity in targets.values():
        if (
            isinstance(quantity, bool)
            or not isinstance(quantity, int)
            or not 0 <= quantity <= MAX_UNITS
        ):
            raise InvalidStockOperation(
                f"on_hand must be a whole number from 0 to {MAX_UNITS}, got {quantity!r}"
            )
    if not targets:
        return OnHandResult(changed_level_ids=[], problems=[])
    variant_ids = sorted({variant_id for variant_id, _ in targets})

    def read() -> dict[tuple[int, int], tuple]:
        # `reserved` as the units on hand that are spoken for (reserved or unavailable), and
        # the level's free units: an import sets what is on the shelf, never below those.
        return {
            (row[1], row[2]): row
            for row in StockLevel.objects.filter(variant_id__in=variant_ids)
            .annotate(
                held=F("reserved") + F("unavailable"),
                free=F("on_hand") - F("reserved") - F("unavailable") - F("safety_stock"),
            )
            .values_list("id", "variant_id", "warehouse_id", "on_hand", "held", "free")
        }

    levels = read()
    missing = [(v, w, targets[(v, w)]) for v, w in targets if (v, w) not in levels]
    created = insert_levels(missing)
    if len(created) != len(missing):
        levels = read()
    else:
        levels.update(((row[1], row[2]), (*row, 0, row[3])) for row in created)
    created_ids = {row[0] for row in created}

    problems: list[OnHandProblem] = []
    planned: list[tuple[int, int, int]] = []
    for key, target in targets.items():
        level_id, _, _, on_hand, held, _ = levels[key]
        if level_id in created_ids or target == on_hand:
            continue
        if target < held:
            problems.append(
                OnHandProblem(
                    key=key,
                    message=f"on_hand {target} is below the {held} reserved and unavailable",
                )
            )
            continue
        planned.append((level_id, on_hand, target))
    changed = (
        update_levels(
            columns=("expected", "target"),
            rows=planned,
            assignments="on_hand = v.target",
            guard="l.on_hand = v.expected AND v.target >= l.reserved + l.unavailable",
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
    insert_movements(
        [
            (level_id, delta, 0, MovementReason.IMPORT.value, reference, actor_id, note[:255])
            for level_id, delta in applied
        ]
    )
    touched = sorted({key_of[level_id][0] for level_id, _ in applied})
    if touched:
        available = _available_before_and_after(
            levels=levels, created_ids=created_ids, changed=changed, applied=applied
        )
        stock_changed_send(
            sender=stock_set_on_hand,
            variant_ids=touched,
            product_ids=product_ids_of_variants(variant_ids=touched),
            availability_crossed_zero=availability_crossed_zero(available.values()),
            availability_grew=any(delta > 0 for _, delta in applied),
            low=_import_crossings(levels=levels, available=available, touched=touched),
        )
    return OnHandResult(changed_level_ids=[level_id for level_id, _ in applied], problems=problems)


def _available_before_and_after(
    *,
    levels: dict[tuple[int, int], tuple],
    created_ids: set[int],
    changed: list[tuple[int, int, int, int]],
    applied: list[tuple[int, int]],
) -> dict[int, tuple[int, int]]:
    """Each level's free units (before, after) the import, by level id, before the floor at
    zero (safety stock may exceed the rest).

    A level the update changed is taken from what the update returned: the compare-and-set
    guards on_hand only, so a sale may have reserved units since the level was read.
    """
    delta_of = dict(applied)
    available = {}
    for level_id, *_, free in levels.values():
        # `levels` holds a created level with its target (nothing before), an existing one
        # as read before the update.
        was = 0 if level_id in created_ids else free
        available[level_id] = (was, was + delta_of.get(level_id, 0))
    for level_id, _, _, now in changed:
        available[level_id] = (now - delta_of[level_id], now)
    return available


def _import_crossings(
    *,
    levels: dict[tuple[int, int], tuple],
    available: dict[int, tuple[int, int]],
    touched: list[int],
) -> list[LowStockCrossing]:
    """The variants the import pushed through their low-stock threshold."""
    active = set(Warehouse.objects.filter(is_active=True).values_list("pk", flat=True))
    thresholds = dict(
        Variant.objects.filter(pk__in=touched).values_list("pk", "low_stock_threshold")
    )
    before: dict[int, int] = defaultdict(int)
    after: dict[int, int] = defaultdict(int)
    for (variant_id, warehouse_id), (level_id, *_) in levels.items():
        if warehouse_id not in active:
            continue
        was, now = available[level_id]
        before[variant_id] += max(was, 0)
        after[variant_id] += max(now, 0)
    return crossings(before=before, after=after, thresholds=thresholds)
