"""Cancelling orders left unpaid past the reservation TTL, so their stock returns to sale."""

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from orders.models import Order, OrderStatus
from orders.services.transitions import order_cancel

logger = logging.getLogger(__name__)

# Candidates are read this many at a time, so a long backlog never loads into memory at once.
EXPIRY_BATCH_SIZE = 100


def orders_expire_unpaid(
    *, now: datetime | None = None, batch_size: int = EXPIRY_BATCH_SIZE
) -> int:
    """Cancel `pending_payment` orders placed more than RESERVATION_TTL_MINUTES ago; return how
    many were cancelled.

    Candidates are read in batches (by primary key, so a run always ends); each is then
    claimed with `SELECT … FOR UPDATE SKIP LOCKED` and cancelled in a transaction of its own.
    One order per transaction keeps its stock rows locked only briefly and in inventory's
    order (a batch-wide transaction would lock many orders' levels in no global order and could
    deadlock with checkouts); SKIP LOCKED lets two runs at once, or a payment in flight for
    the same order, pass each other, and the status filter makes a second run a no-op.
    Each cancellation goes through `order_cancel`: it releases the stock and sends
    `order_cancelled` (the cancellation e-mail is requested). An order whose cancellation
    fails is logged and skipped, and tried again on the next run.
    """
    cutoff = (now or timezone.now()) - timedelta(minutes=settings.RESERVATION_TTL_MINUTES)
    reason = f"unpaid after {settings.RESERVATION_TTL_MINUTES} minutes"
    expired = Order.objects.filter(status=OrderStatus.PENDING_PAYMENT, placed_at__lt=cutoff)
    cancelled, last_pk = 0, 0
    while True:
        batch = list(
            expired.filter(pk__gt=last_pk).order_by("pk").values_list("pk", flat=True)[:batch_size]
        )
        for pk in batch:
            try:
                with transaction.atomic():
                    order = expired.select_for_update(skip_locked=True).filter(pk=pk).first()
                    if order is not None:
                        order_cancel(order=order, reason=reason)
                        cancelled += 1
            except Exception:
                # One order that cannot be cancelled must not hold back the stock of all the
                # orders after it: it is logged and tried again on the next run.
                logger.exception("unpaid order not expired", extra={"order_id": pk})
        if len(batch) < batch_size:
            return cancelled
        last_pk = batch[-1]
