"""Refunds: issued by us (the demo provider refunds at once) or reported by the provider."""

from django.db import transaction

from orders.models import Order, OrderStatus
from orders.services import order_mark_refunded
from payments.models import Payment, PaymentStatus, Refund
from payments.signals import refund_issued

# A refund of an order in one of these moves it to `refunded`; a cancelled order stays cancelled.
REFUNDABLE = (OrderStatus.PAID, OrderStatus.SHIPPED, OrderStatus.DELIVERED)


class RefundError(Exception):
    code = "refund_impossible"


@transaction.atomic
def refund_issue(*, order: Order, actor=None, reason: str = "") -> Refund:
    """Refund the order's succeeded payment in full (once: a second call returns the refund).

    A paid, shipped or delivered order becomes `refunded` (guarded; a paid order's
    reservation is released); a cancelled one (the cancellation calls this) stays cancelled.
    The built-in `demo` provider refunds synchronously, so the Refund is recorded at once;
    a real provider would be asked by a task and confirm with a `refund.succeeded` event.
    Sends `refund_issued(refund, order)`; its receivers issue the credit note in this
    transaction and request the refund e-mail (orders.email_send).
    """
    payment = (
        Payment.objects.filter(order=order, status__in=[PaymentStatus.SUCCEEDED])
        .order_by("-created_at")
        .first()
    )
    if payment is None:
        existing = Refund.objects.filter(order=order).first()
        if existing is not None:
            return existing
        raise RefundError(f"order {order.number} has no payment to refund")
    refund = Refund.objects.create(
        order=order,
        payment=payment,
        amount=payment.amount,
        currency=payment.currency,
        provider_reference=f"{payment.provider_reference}-refund",
        reason=reason[:255],
    )
    Payment.objects.filter(pk=payment.pk).update(status=PaymentStatus.REFUNDED)
    if order.status in REFUNDABLE:
        order_mark_refunded(order=order, actor=actor, reason=reason)
    refund_issued.send(sender=refund_issue, refund=refund, order=order)
    return refund
