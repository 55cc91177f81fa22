"""Receivers of the payments app: connected when the app is ready; nothing imports from here."""

from django.dispatch import receiver

from orders.models import OrderStatus
from orders.signals import order_cancelled, order_lines_cancelled
from outbox.services import outbox_enqueue
from payments import services
from payments.signals import payment_received, refund_issued

# payment_received and refund_issued: receivers run in connection order, and apps connect
# theirs in INSTALLED_APPS order, so orders' e-mails and counters come before these. The invoice
# and the credit note come last because their numbers are taken under the sequence row's lock,
# which every payment and refund queues on.


@receiver(payment_received, dispatch_uid="payments.render_invoice_document")
def render_invoice_document(sender, order, **kwargs) -> None:
    """Request the invoice document (rendering takes a while; a task does it after commit)."""
    outbox_enqueue(
        task_name="payments.invoice_document_render",
        kwargs={"order_id": order.pk},
        dedupe_key=f"invoice-document:{order.pk}",
    )


@receiver(payment_received, dispatch_uid="payments.issue_invoice_for_payment")
def issue_invoice_for_payment(sender, order, **kwargs) -> None:
    """Issue the invoice in the payment's transaction.

    A paid order always has its invoice, and a rolled-back payment gives its number back (numbers
    stay gap-free).
    """
    services.invoice_issue(order=order)


@receiver(order_cancelled, dispatch_uid="payments.refund_paid_order")
def refund_paid_order(sender, order, previous_status, actor=None, reason="", **kwargs) -> None:
    """Refund a cancelled order that was paid, in the cancellation's transaction.

    So a cancelled paid order is never left holding the customer's money. The cancellation's
    UPDATE already holds the order's row, so the refund does not lock it again.
    """
    if previous_status == OrderStatus.PAID:
        services.refund_issue(
            order=order, actor=actor, reason=reason or "order cancelled", order_locked=True
        )


@receiver(order_lines_cancelled, dispatch_uid="payments.refund_cancelled_units")
def refund_cancelled_units(
    sender, order, previous_status, amount, actor=None, reason="", **kwargs
) -> None:
    """Refund the price of units cancelled from a paid order, in the cancellation's transaction.

    So the customer never pays for units that will not ship, and a refund that cannot be made
    (the payment is gone) undoes the cancellation.
    """
    if previous_status in (OrderStatus.PAID, OrderStatus.PARTIALLY_SHIPPED) and amount > 0:
        services.refund_partial(
            order=order, amount=amount, actor=actor, reason=reason or "units cancelled"
        )


@receiver(refund_issued, dispatch_uid="payments.render_credit_note_document")
def render_credit_note_document(sender, refund, **kwargs) -> None:
    """Request the credit note document (rendered by a task after the commit)."""
    outbox_enqueue(
        task_name="payments.credit_note_document_render",
        kwargs={"refund_id": refund.pk},
        dedupe_key=f"credit-note-document:{refund.pk}",
    )


@receiver(refund_issued, dispatch_uid="payments.issue_credit_note_for_refund")
def issue_credit_note_for_refund(sender, refund, **kwargs) -> None:
    """Issue the credit note in the refund's transaction, with a gap-free number."""
    services.credit_note_issue(refund=refund)
