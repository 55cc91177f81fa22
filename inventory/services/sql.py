"""Set-based statements on stock levels and the ledger, shared by the stock services.

Each moves or inserts many rows in one statement; the guards in the WHERE clauses and the
row counts returned are what decide.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from django.db import connection
from django.utils import timezone

from core.sql import with_rows

# A ledger row's own values, then the stamp every row of one statement shares.
_MOVEMENT_VALUES = (
    "level_id",
    "on_hand_delta",
    "reserved_delta",
    "reason",
    "reference",
    "actor_id",
    "note",
)
_MOVEMENT_COLUMNS = (*_MOVEMENT_VALUES, "created_at")

# A level's units that may be sold, in SQL over the level `l`: what `StockLevel.available`
# says before its floor at zero (safety stock may exceed what is left, making it negative).
FREE_SQL = "(l.on_hand - l.reserved - l.unavailable - l.safety_stock)"


@dataclass(frozen=True)
class RowsWrite:
    """An INSERT that goes with a level update and reads the update's rows.

    `sql` is `INSERT … SELECT … FROM v`, where `v(level_id, *columns)` are the update's rows;
    `params` fill its `%s` in order. It becomes part of a larger statement that is formatted
    (`{rows}`) and bound (`%s`), so it holds no other braces and no literal percent sign.
    """

    sql: str
    params: tuple


def update_levels(
    *,
    columns: tuple[str, ...],
    rows: list[tuple],
    assignments: str,
    guard: str,
    writes: Sequence[RowsWrite] = (),
) -> list[tuple[int, int, int, int]]:
    """Run one guarded UPDATE of many levels from rows `v(level_id, *columns)` of integers.

    `assignments` and `guard` are SQL over `l` (the level) and `v`; returns (level_id, variant_id,
    on_hand, free) of the rows changed, `free` being `FREE_SQL` after the update, whose count the
    caller compares with its request. On
    PostgreSQL the rows are locked in level-id order inside the statement (a join's order is the
    planner's and could deadlock two transactions), and `writes` over the same `v` ride in it as
    data-modifying CTEs: one round trip, the locks held no longer than their own inserts. They are
    written for every row of `v`, changed or not, so a caller whose count falls short must roll
    back. SQLite runs them as statements of their own before the UPDATE.
    """
    names = ("level_id", *columns)
    rows = sorted(rows)
    values = f"v({', '.join(names)}) AS ({{rows}})"
    if connection.vendor == "postgresql":
        written = "".join(f"w{index} AS ({write.sql}), " for index, write in enumerate(writes))
        sql = (
            f"WITH {values}, {written}"
            "locked AS (SELECT s.id FROM inventory_stocklevel s "
            "WHERE s.id IN (SELECT level_id FROM v) ORDER BY s.id FOR NO KEY UPDATE) "
            f"UPDATE inventory_stocklevel AS l SET {assignments}, updated_at = %s "
            f"FROM v, locked WHERE l.id = v.level_id AND locked.id = l.id AND ({guard}) "
            f"RETURNING l.id, l.variant_id, l.on_hand, {FREE_SQL}"
        )
        params = [param for write in writes for param in write.params]
    else:
        for write in writes:
            _with_integer_rows(
                names=names, rows=rows, sql=f"WITH {values} {write.sql}", tail=list(write.params)
            )
        # SQLite has one writer at a time, so there is no lock order to keep.
        sql = (
            f"WITH {values} "
            f"UPDATE inventory_stocklevel AS l SET {assignments}, updated_at = %s "
            f"FROM v WHERE l.id = v.level_id AND ({guard}) "
            # SQLite's RETURNING names the columns of the updated table without its alias.
            "RETURNING id, variant_id, on_hand, " + FREE_SQL.replace("l.", "")
        )
        params = []
    return _with_integer_rows(names=names, rows=rows, sql=sql, tail=[*params, timezone.now()])


def _with_integer_rows(*, names: tuple[str, ...], rows: list[tuple], sql: str, tail: list) -> list:
    return with_rows(names=names, types=("bigint",) * len(names), rows=rows, sql=sql, tail=tail)


def move_levels(
    *,
    deltas: list[tuple[int, int, int]],
    require_available: bool,
    writes: Sequence[RowsWrite] = (),
) -> list[tuple[int, int, int, int]]:
    """Apply (level_id, Δon_hand, Δreserved) to many levels in one guarded statement.

    A row changes only if afterwards `0 <= reserved` and `reserved + unavailable <= on_hand`
    hold and, with `require_available`, only if it had Δreserved units free before: on hand
    less reserved, unavailable and safety stock (`FREE_SQL`), so neither a unit on hold nor
    the safety stock is ever reserved. `writes` read the rows as `v(level_id, dh, dr)` (see
    `update_levels`).
    """
    guard = "l.reserved + v.dr >= 0 AND l.on_hand + v.dh >= l.reserved + v.dr + l.unavailable"
    if require_available:
        guard = f"{FREE_SQL} >= v.dr AND " + guard
    return update_levels(
        columns=("dh", "dr"),
        rows=deltas,
        assignments="on_hand = l.on_hand + v.dh, reserved = l.reserved + v.dr",
        guard=guard,
        writes=writes,
    )


def movements_insert(
    *, reason: str, reference: str, actor_id: int | None, note: str = ""
) -> RowsWrite:
    """Return the INSERT of a `move_levels` call's ledger rows, one per level with its deltas.

    Pass it in `writes`, so the ledger is written in the statement that moves the stock.
    """
    return RowsWrite(
        sql=(
            f"INSERT INTO inventory_stockmovement ({', '.join(_MOVEMENT_COLUMNS)}) "
            "SELECT level_id, dh, dr, %s, %s, %s, %s, %s FROM v"
        ),
        params=(reason, reference, actor_id, note[:255], timezone.now()),
    )


def insert_movements(rows: list[tuple[int, int, int, str, str, int | None, str]]) -> None:
    """Append ledger rows (level_id, Δon_hand, Δreserved, reason, reference, actor_id, note).

    One INSERT without a model instance per row: the import writes 100,000s.
    """
    with_rows(
        names=_MOVEMENT_VALUES,
        types=("bigint", "integer", "integer", "text", "text", "bigint", "text"),
        rows=rows,
        sql=(
            f"WITH v({', '.join(_MOVEMENT_VALUES)}) AS ({{rows}}) "
            f"INSERT INTO inventory_stockmovement ({', '.join(_MOVEMENT_COLUMNS)}) "
            f"SELECT {', '.join(_MOVEMENT_VALUES)}, %s FROM v"
        ),
        tail=[timezone.now()],
    )


def insert_levels(rows: list[tuple[int, int, int]]) -> list[tuple[int, int, int, int]]:
    """Create the levels (variant_id, warehouse_id, on_hand) that do not exist yet.

    Returns (id, variant_id, warehouse_id, on_hand) of those created. A level created meanwhile by
    another transaction is skipped (the unique constraint decides), not overwritten.
    """
    return with_rows(
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
