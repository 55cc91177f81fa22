"""Signals the orders app sends; importable from anywhere (it imports only django.dispatch).

All are sent inside the service's transaction, after its state change, with that service
function as `sender`; receivers that leave the database wait for the commit.
"""

from django.dispatch import Signal

# Sent by orders.services.order_place once the order's stock is reserved. kwargs: order: Order.
order_placed = Signal()

# Sent by orders.services.order_ship. kwargs: order: Order, actor: User | None.
order_shipped = Signal()

# Sent by orders.services.order_cancel. kwargs: order: Order, previous_status: str,
# actor: User | None, reason: str.
order_cancelled = Signal()
