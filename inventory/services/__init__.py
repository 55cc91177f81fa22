"""Stock writes: receive, adjust, reserve, release, ship, return, and the import's bulk set.

Every service is one transaction, writes a ledger row for every change of a level, and sends
`stock_changed(variant_ids=[...], product_ids=[...], availability_crossed_zero=...)` once,
inside that transaction. Stock moves only through guarded conditional UPDATEs whose row counts
decide; rows are touched in primary-key order so concurrent callers cannot
deadlock. Split by entity: `levels` (warehouses, receipts, adjustments), `reservations`
(reserve, release, ship, return), `imports` (bulk on-hand for the catalog import); `sql` holds
the set-based statements, `events` the signals' one sender.
"""

from inventory.services.errors import (
    MAX_UNITS,
    InvalidStockOperation,
    OutOfStock,
    Shortage,
    UnitsNotHeld,
)
from inventory.services.imports import OnHandProblem, OnHandResult, stock_set_on_hand
from inventory.services.levels import stock_adjust, stock_receive, warehouse_ensure
from inventory.services.reservations import (
    StockUnits,
    stock_release,
    stock_reserve,
    stock_return,
    stock_ship,
)

__all__ = [
    "MAX_UNITS",
    "InvalidStockOperation",
    "OnHandProblem",
    "OnHandResult",
    "OutOfStock",
    "Shortage",
    "StockUnits",
    "UnitsNotHeld",
    "stock_adjust",
    "stock_receive",
    "stock_release",
    "stock_reserve",
    "stock_return",
    "stock_set_on_hand",
    "stock_ship",
    "warehouse_ensure",
]
