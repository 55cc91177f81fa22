"""Signals the orders app sends; importable from anywhere (it imports only django.dispatch).

All are sent inside the service's transaction, after its state change, with that service
function as `sender`; receivers that leave the database wait for the commit.
"""

from django.dispatch import Signal

# Sent by orders.services.order_place once the order's stock is reserved. kwargs: order: Order.
order_placed = Signal()

# Sent by orders.services.fulfilment_create once per shipment (order_ship, which ships what
# is left, goes through it), after the lines, the order's status and the shipment are written.
# kwargs:
#   order: Order, as it now stands: status `partially_shipped`, or `shipped` once every unit
#     is shipped or cancelled; `tracking_number` is this shipment's.
#   actor: User | None, who shipped.
#   shipment: orders.models.Fulfilment, the shipment: `pk`, `tracking_number`, `carrier` (may
#     be blank), `shipped_by` (User | None), `created_at` (when it shipped). `shipment.lines.all()`
#     is prefetched (no query): FulfilmentLine rows with `quantity` (units in this shipment),
#     `line` (the OrderLine: `sku`, `name`, `quantity` ordered, `shipped_quantity` so far) and
#     `warehouse` (inventory.Warehouse: `code`), one per line and warehouse the units left.
order_shipped = Signal()

# Sent by orders.services.order_cancel. kwargs: order: Order, previous_status: str,
# actor: User | None, reason: str.
order_cancelled = Signal()

# Sent by orders.services.order_lines_cancel when units of some lines are cancelled before
# shipping and the rest of the order goes on (cancelling everything left of an order none of
# which shipped sends `order_cancelled` instead). Sent after the stock is released and the lines
# and totals are lowered. kwargs:
#   order: Order, as it now stands (subtotal and total lowered; status unchanged, or `shipped`
#     when the units cancelled were the last still to ship).
#   previous_status: str, the status before: `paid` or `partially_shipped` means the customer
#     paid for the units, `pending_payment` that nothing was paid.
#   lines: list[tuple[OrderLine, int]], each line touched (as it now stands) with the units
#     cancelled now.
#   amount: Decimal, the price of those units: what the subtotal and total fell by, and what
#     is refunded when the order was paid.
#   cancellation_id: int, the id of the order's timeline entry (OrderEvent) recording this
#     cancellation: unique per cancellation.
#   actor: User | None; reason: str (may be blank).
order_lines_cancelled = Signal()

# Sent by orders.services.order_backorders_allocate once per order whose back-ordered units
# got stock (after a receipt's commit, in a transaction of its own), after the lines' counts
# fell. kwargs:
#   order: Order (status unchanged: the units are reserved now, not shipped).
#   lines: list[tuple[OrderLine, int]], each line (as it now stands: `backordered_quantity`
#     is what it still waits for) with the units reserved for it now.
#   completed: list[OrderLine], those of `lines` that wait for nothing more.
order_lines_allocated = Signal()

# Sent by orders.services.order_mark_delivered once the order is `delivered`.
# kwargs: order: Order, actor: User | None.
order_delivered = Signal()

# Sent by orders.services.order_flag once the order is flagged `needs_attention` (a payment
# that does not match, or one for a cancelled order); its status is unchanged.
# kwargs: order: Order, reason: str (as stored in `attention_reason`), actor: User | None.
order_flagged = Signal()

# Sent by orders.services.order_resolve once the order's `needs_attention` flag is cleared;
# its status is unchanged. kwargs: order: Order, note: str (what staff did about it),
# actor: User | None.
order_resolved = Signal()
