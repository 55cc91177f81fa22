"""Write operations of the orders app, split by entity; import them from here."""

from orders.services.amendments import (
    CANCELLABLE_IN_PART,
    RETURNABLE,
    order_lines_cancel,
    order_lines_return,
)
from orders.services.backorders import order_backorders_allocate, order_backorders_sweep
from orders.services.counters import (
    counters_count_cancelled,
    counters_count_paid,
    counters_count_placed,
    counters_count_refund,
    counters_count_shipped,
    counters_recomputed,
    counters_reconcile,
)
from orders.services.customers import customer_for_user, user_email_normalise
from orders.services.emails import order_email_render, order_email_request, order_email_send
from orders.services.errors import (
    InvalidOrder,
    InvalidTransition,
    LinesOutOfStock,
    NotFlagged,
    OrderError,
    ShippingRefundedAlready,
    UnitsExceeded,
    UnknownSku,
)
from orders.services.expiry import orders_expire_unpaid
from orders.services.placing import LineRequest, order_number_new, order_place, shipping_for
from orders.services.shipments import SHIPPABLE, fulfilment_create, order_ship
from orders.services.transitions import (
    CANCELLABLE,
    DELIVERABLE,
    order_cancel,
    order_flag,
    order_lock,
    order_mark_delivered,
    order_mark_paid,
    order_mark_refunded,
    order_resolve,
)

__all__ = [
    "CANCELLABLE",
    "CANCELLABLE_IN_PART",
    "DELIVERABLE",
    "RETURNABLE",
    "SHIPPABLE",
    "InvalidOrder",
    "InvalidTransition",
    "LineRequest",
    "LinesOutOfStock",
    "NotFlagged",
    "OrderError",
    "ShippingRefundedAlready",
    "UnitsExceeded",
    "UnknownSku",
    "counters_count_cancelled",
    "counters_count_paid",
    "counters_count_placed",
    "counters_count_refund",
    "counters_count_shipped",
    "counters_recomputed",
    "counters_reconcile",
    "customer_for_user",
    "fulfilment_create",
    "order_backorders_allocate",
    "order_backorders_sweep",
    "order_cancel",
    "order_email_render",
    "order_email_request",
    "order_email_send",
    "order_flag",
    "order_lines_cancel",
    "order_lines_return",
    "order_lock",
    "order_mark_delivered",
    "order_mark_paid",
    "order_mark_refunded",
    "order_number_new",
    "order_place",
    "order_resolve",
    "order_ship",
    "orders_expire_unpaid",
    "shipping_for",
    "user_email_normalise",
]
