"""Stock writes: receive, adjust, reserve, release, ship, return, the import's bulk set,
holds and safety stock, purchase orders, stock policies and the allocation of backorders.

Every service is one transaction, writes a ledger row for every change of a level, and sends
`stock_changed(variant_ids=[...], product_ids=[...], availability_crossed_zero=...)` once,
inside that transaction. Stock moves only through guarded conditional UPDATEs whose row counts
decide; rows are touched in primary-key order so concurrent callers cannot
deadlock. Split by entity: `levels` (warehouses, receipts, adjustments, holds, safety stock),
`reservations` (reserve, release, ship, return), `backorders` (allocating waiting units),
`purchasing` (purchase orders: incoming units), `policies` (stock policies, one or many),
`imports` (bulk on-hand for the catalog import); `sql` holds the set-based statements, `events`
the signals' one sender.

The lock order every service keeps: an order (orders' services), the reference's backorders,
its allocations, the levels (primary-key order), the stock policies (variant order). The
allocation of backorders writes allocations after the levels, but only of the orders whose
rows (and backorders) it locked first, so no one else holds them.
"""

from inventory.services.backorders import BackorderAllocated, backorders_allocate
from inventory.services.errors import (
    MAX_UNITS,
    InvalidStockOperation,
    OutOfStock,
    Shortage,
    UnitsNotHeld,
)
from inventory.services.imports import OnHandProblem, OnHandResult, stock_set_on_hand
from inventory.services.levels import (
    stock_adjust,
    stock_hold,
    stock_receive,
    stock_safety_set,
    stock_unhold,
    warehouse_active_set,
    warehouse_ensure,
)
from inventory.services.policies import (
    PoliciesResult,
    PolicyProblem,
    PolicyValues,
    stock_policies_set,
    stock_policy_check,
    stock_policy_set,
)
from inventory.services.purchasing import (
    PurchaseUnits,
    purchase_order_close,
    purchase_order_create,
    purchase_order_receive,
)
from inventory.services.reservations import (
    StockUnits,
    stock_release,
    stock_reserve,
    stock_return,
    stock_ship,
)

__all__ = [
    "MAX_UNITS",
    "BackorderAllocated",
    "InvalidStockOperation",
    "OnHandProblem",
    "OnHandResult",
    "OutOfStock",
    "PoliciesResult",
    "PolicyProblem",
    "PolicyValues",
    "PurchaseUnits",
    "Shortage",
    "StockUnits",
    "UnitsNotHeld",
    "backorders_allocate",
    "purchase_order_close",
    "purchase_order_create",
    "purchase_order_receive",
    "stock_adjust",
    "stock_hold",
    "stock_policies_set",
    "stock_policy_check",
    "stock_policy_set",
    "stock_receive",
    "stock_release",
    "stock_reserve",
    "stock_return",
    "stock_safety_set",
    "stock_set_on_hand",
    "stock_ship",
    "stock_unhold",
    "warehouse_active_set",
    "warehouse_ensure",
]
