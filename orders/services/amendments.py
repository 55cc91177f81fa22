"""Changing part of an order: cancelling units not yet shipped, taking shipped units back.

Both run under the order's row lock (`order_lock`), so they, a shipment and a refund on one
order are decided one after the other, each seeing what the previous left.

- A partial cancellation releases the units' stock, takes their price off the lines, the
  subtotal and the total, and sends `order_lines_cancelled` (payments refunds that amount when
  the order was paid). The shipping charge stays as placed: the rest still ships, and a
  cancellation never adds a charge the customer did not agree to, even when the subtotal falls
  below `SHIPPING_FREE_ABOVE`. Cancelling the last units still to ship completes the order
  (`shipped`) when some shipped, and cancels it whole (`order_cancel`) when none did.
- A return counts shipped units as back, restocks them into a warehouse when staff choose one,
  and answers what to refund; payments (`refund_return`) refunds it. The order's total stays
  what was sold: the refund is the payment's record.
"""

from collections.abc import Sequence
from decimal import Decimal

from django.db import transaction
from django.db.models import F
from django.db.models.functions import Round
from django.utils import timezone

from audit.models import AuditAction
from audit.services import audit_diff, audit_record, audit_snapshot
from inventory.models import Warehouse
from inventory.services import StockUnits, UnitsNotHeld, stock_release, stock_return
from orders.models import Order, OrderEvent, OrderLine, OrderStatus
from orders.services.errors import ShippingRefundedAlready, UnitsExceeded
from orders.services.lines import lines_count, order_units_locked, units_amount, units_summary
from orders.services.placing import LineRequest
from orders.services.transitions import _transition, order_cancel
from orders.signals import order_lines_cancelled

S = OrderStatus
CANCELLABLE_IN_PART = (S.PENDING_PAYMENT, S.PAID, S.PARTIALLY_SHIPPED)
RETURNABLE = (S.PARTIALLY_SHIPPED, S.SHIPPED, S.DELIVERED)


@transaction.atomic
def order_lines_cancel(
    *, order: Order, lines: Sequence[LineRequest], actor=None, reason: str = ""
) -> Order:
    """Cancel units of some lines that have not shipped; the rest of the order goes on.

    Raises InvalidOrder (a bad line), UnknownSku, InvalidTransition (the order is not pending,
    paid or partially shipped), UnitsExceeded `over_cancellation` (more than a line has left
    to ship); nothing changes. Cancelling everything left of an order none of which shipped
    is `order_cancel` (its signals and refund). Otherwise sends `order_lines_cancelled(order,
    previous_status, lines, amount, cancellation_id, actor, reason)`; for a paid order
    payments refunds `amount` in this transaction; the notice is requested
    (orders.email_send).
    """
    status, order_lines, units = order_units_locked(
        order=order,
        allowed=CANCELLABLE_IN_PART,
        action="cancelled in part",
        requested=lines,
        left=lambda line: line.unshipped,
        code="over_cancellation",
        verb="cancel",
    )
    cancelled = {line.pk: quantity for line, quantity in units}
    rest_cancelled = all(line.unshipped == cancelled.get(line.pk, 0) for line in order_lines)
    if rest_cancelled and not any(line.shipped_quantity for line in order_lines):
        return order_cancel(order=order, actor=actor, reason=reason)

    summary = units_summary(units)
    amount = units_amount(units)
    stock_release(
        reference=order.number,
        units=[StockUnits(variant_id=line.variant_id, quantity=q) for line, q in units],
        actor=actor,
        note=f"units cancelled {reason}".strip(),
    )
    lines_count(units=units, field="cancelled_quantity", code="over_cancellation", verb="cancel")
    money_fields = [Order._meta.get_field(name) for name in ("subtotal", "total")]
    before = audit_snapshot(instance=order, fields=money_fields)
    Order.objects.filter(pk=order.pk).update(
        subtotal=Round(F("subtotal") - amount, 2),
        total=Round(F("total") - amount, 2),
        updated_at=timezone.now(),
    )
    order.refresh_from_db()
    note = f"cancelled {summary} ({amount} {order.currency}) {reason}".strip()
    event = OrderEvent.objects.create(
        order=order,
        kind="lines_cancelled",
        from_status=status,
        to_status=status,
        actor=actor,
        note=note,
    )
    audit_record(
        action=AuditAction.UPDATE,
        obj=order,
        changes=audit_diff(
            before=before, after=audit_snapshot(instance=order, fields=money_fields)
        ),
        actor=actor,
    )
    if rest_cancelled:
        _transition(
            order=order, action="shipped", allowed=(status,), to=S.SHIPPED, actor=actor, note=note
        )
    fresh = {line.pk: line for line in OrderLine.objects.filter(order=order)}
    order_lines_cancelled.send(
        sender=order_lines_cancel,
        order=order,
        previous_status=status,
        lines=[(fresh[line.pk], quantity) for line, quantity in units],
        amount=amount,
        cancellation_id=event.pk,
        actor=actor,
        reason=reason,
    )
    return order


@transaction.atomic
def order_lines_return(
    *,
    order: Order,
    lines: Sequence[LineRequest],
    restock_warehouse: Warehouse | None = None,
    refund_shipping: bool = False,
    actor=None,
    reason: str = "",
) -> Decimal:
    """Take shipped units back (a return) and answer the amount to refund for them.

    The units are counted as returned and, with `restock_warehouse`, put back on hand there
    (`stock_return`, a ledger row with the reason); without one they stay off the books (kept
    by the customer, damaged). `refund_shipping` adds the order's shipping charge, once per
    order. Called by payments' `refund_return`, which refunds the amount in this transaction.
    Raises InvalidOrder (a bad line), UnknownSku, InvalidTransition (nothing shipped, or
    refunded or cancelled), UnitsExceeded `over_return` (more than a line shipped and has not
    returned), ShippingRefundedAlready. Sends no signal: payments sends `refund_issued`.
    """
    status, _, units = order_units_locked(
        order=order,
        allowed=RETURNABLE,
        action="returned",
        requested=lines,
        left=lambda line: line.returnable,
        code="over_return",
        verb="take back",
    )
    amount = units_amount(units)
    if refund_shipping:
        if not Order.objects.filter(pk=order.pk, shipping_refunded=False).update(
            shipping_refunded=True, updated_at=timezone.now()
        ):
            raise ShippingRefundedAlready(number=order.number)
        amount += order.shipping
    summary = units_summary(units)
    if restock_warehouse is not None:
        try:
            stock_return(
                reference=order.number,
                units=[
                    StockUnits(
                        variant_id=line.variant_id,
                        quantity=quantity,
                        warehouse_id=restock_warehouse.pk,
                    )
                    for line, quantity in units
                ],
                actor=actor,
                note=f"returned {reason}".strip(),
            )
        except UnitsNotHeld as error:
            # The lines say shipped, the allocations do not: the ledger drifted.
            raise UnitsExceeded(code="over_return", verb="restock", lines=[]) from error
    lines_count(units=units, field="returned_quantity", code="over_return", verb="take back")
    order.refresh_from_db()
    restocked = f", restocked in {restock_warehouse.code}" if restock_warehouse else ""
    shipping = ", shipping refunded" if refund_shipping else ""
    detail = f"{summary}{restocked}{shipping} ({amount} {order.currency})"
    OrderEvent.objects.create(
        order=order,
        kind="returned",
        from_status=status,
        to_status=status,
        actor=actor,
        note=f"returned {detail} {reason}".strip(),
    )
    return amount
