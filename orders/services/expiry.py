"""Cancelling orders left unpaid past the reservation TTL, so their stock returns to sale."""

from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from orders.models import Order, OrderStatus
from orders.services.transitions import order_cancel

# Small batches keep each transaction (and the order rows it locks) short; a long backlog is
# worked through batch after batch in one run.
EXPIRY_BATCH_SIZE = 100


def orders_expire_unpaid(
    *, now: datetime | None = None, batch_size: int = EXPIRY_BATCH_SIZE
) -> int:
    """Cancel `pending_payment` orders placed more than RESERVATION_TTL_MINUTES ago; return how
    many were cancelled.

    Each batch is one transaction whose orders are claimed with `SELECT … FOR UPDATE SKIP
    LOCKED`, so two runs at once (or a payment arriving for one of them) never fight over an
    order; a second run finds nothing left to do. Each cancellation goes through
    `order_cancel`, which releases the stock and sends `order_cancelled` (the cancellation
    e-mail is requested then).
    """
    cutoff = (now or timezone.now()) - timedelta(minutes=settings.RESERVATION_TTL_MINUTES)
    reason = f"unpaid after {settings.RESERVATION_TTL_MINUTES} minutes"
    cancelled = 0
    while True:
        with transaction.atomic():
            batch = list(
                Order.objects.select_for_update(skip_locked=True)
                .filter(status=OrderStatus.PENDING_PAYMENT, placed_at__lt=cutoff)
                .order_by("placed_at", "pk")[:batch_size]
            )
            for order in batch:
                order_cancel(order=order, reason=reason)
        cancelled += len(batch)
        if len(batch) < batch_size:
            return cancelled
