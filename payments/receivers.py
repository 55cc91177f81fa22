"""Receivers of the payments app: connected when the app is ready; nothing imports from here."""

from functools import partial

from django.db import transaction
from django.dispatch import receiver

from orders.models import EmailKind, OrderStatus
from orders.services import counters_count_paid, counters_count_refund, order_email_request
from orders.signals import order_cancelled
from outbox.services import outbox_enqueue
from payments import services
from payments.signals import payment_received, refund_issued

# payment_received: the receivers run in connection order; the invoice comes last because
# its number is taken under the sequence row's lock, which every payment queues on.


@receiver(payment_received, dispatch_uid="payments.email_payment_receipt")
def email_payment_receipt(sender, order, **kwargs) -> None:
    """Request the receipt e-mail through the outbox: sent only if the payment commits."""
    order_email_request(order=order, kind=EmailKind.RECEIPT)


@receiver(payment_received, dispatch_uid="payments.render_invoice_document")
def render_invoice_document(sender, order, **kwargs) -> None:
    """Request the invoice document (rendering takes a while; a task does it after commit)."""
    outbox_enqueue(
        task_name="payments.invoice_document_render",
        kwargs={"order_id": order.pk},
        dedupe_key=f"invoice-document:{order.pk}",
    )


@receiver(payment_received, dispatch_uid="payments.count_paid_order")
def count_paid_order(sender, order, **kwargs) -> None:
    """Add the paid order to the customer's lifetime value, daily sales and units sold, after
    the commit and outside the payment's lock window."""
    transaction.on_commit(partial(counters_count_paid, order_id=order.pk))


@receiver(payment_received, dispatch_uid="payments.issue_invoice_for_payment")
def issue_invoice_for_payment(sender, order, **kwargs) -> None:
    """Issue the invoice in the payment's transaction: a paid order always has its invoice,
    and a rolled-back payment gives its number back (numbers stay gap-free)."""
    services.invoice_issue(order=order)


@receiver(order_cancelled, dispatch_uid="payments.refund_paid_order")
def refund_paid_order(sender, order, previous_status, actor=None, reason="", **kwargs) -> None:
    """Refund a cancelled order that was paid, in the cancellation's transaction, so a
    cancelled paid order is never left holding the customer's money. The cancellation's
    UPDATE already holds the order's row, so the refund does not lock it again."""
    if previous_status == OrderStatus.PAID:
        services.refund_issue(
            order=order, actor=actor, reason=reason or "order cancelled", order_locked=True
        )


@receiver(refund_issued, dispatch_uid="payments.email_refund_notice")
def email_refund_notice(sender, refund, order, **kwargs) -> None:
    """Request the refund's own notice, with its amount, through the outbox: sent only if the
    refund commits, and once per refund (an order refunded in parts gets a notice per part)."""
    order_email_request(
        order=order,
        kind=EmailKind.REFUND,
        reference=f"refund-{refund.pk}",
        context={"amount": str(refund.amount), "currency": refund.currency},
    )


@receiver(refund_issued, dispatch_uid="payments.render_credit_note_document")
def render_credit_note_document(sender, refund, **kwargs) -> None:
    """Request the credit note document (rendered by a task after the commit)."""
    outbox_enqueue(
        task_name="payments.credit_note_document_render",
        kwargs={"refund_id": refund.pk},
        dedupe_key=f"credit-note-document:{refund.pk}",
    )


@receiver(refund_issued, dispatch_uid="payments.count_refund")
def count_refund(sender, refund, order, **kwargs) -> None:
    """Take the order off the customer's lifetime value after the commit, once the payment
    that paid it is refunded in full (a partial refund or a stray payment's leaves it)."""
    if refund.refunds_the_order:
        transaction.on_commit(partial(counters_count_refund, order_id=order.pk))


@receiver(refund_issued, dispatch_uid="payments.issue_credit_note_for_refund")
def issue_credit_note_for_refund(sender, refund, **kwargs) -> None:
    """Issue the credit note in the refund's transaction, with a gap-free number."""
    services.credit_note_issue(refund=refund)
