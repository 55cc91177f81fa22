"""Signals inventory sends. Import this module from anywhere; it imports only django.dispatch."""

from django.dispatch import Signal

# Sent by every inventory service that moves stock (receive, adjust, reserve, release, ship,
# return, import), inside its transaction, once per call. kwargs: variant_ids: list[int] and
# product_ids: list[int], the products of those variants (so no listener has to look them up);
# availability_crossed_zero: bool, whether some level's available units reached zero or left
# it. Only then may a product have sold out or come back: False promises that no product's
# in-stock state changed, True only that it may have. availability_grew: bool, whether units
# became free to sell (a receipt, a purchase order received, a release, a return, units back
# from unavailable, a lower safety stock): only then can back-ordered units be allocated.
# Senders also include the purchase-order receipt, the moves to and from unavailable, the
# safety stock and the allocation of backorders.
stock_changed = Signal()

# Sent by stock services when a variant's availability falls through its low-stock threshold
# (once per fall, not on every later sale), inside the transaction.
# kwargs: variant_id: int, available: int, threshold: int.
stock_low = Signal()
