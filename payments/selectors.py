"""Read queries of the payments app, shared by the API and the admin."""

from collections.abc import Iterable
from decimal import Decimal

from django.db.models import QuerySet, Sum

from orders.models import Order
from payments.models import (
    CreditNote,
    Invoice,
    Payment,
    PaymentStatus,
    Refund,
    UnmatchedPayment,
    UnmatchedStatus,
)


def invoice_get_for_order(*, order: Order) -> Invoice:
    """The order's invoice; raises Invoice.DoesNotExist before it is paid."""
    return Invoice.objects.select_related("order").get(order=order)


def invoice_get_for_user(*, user, order_number: str) -> Invoice:
    """The invoice of an order the user may see: their own, or any order for staff.

    Raises Invoice.DoesNotExist otherwise (also for another customer's order, so its
    existence is not revealed). Use it to serve `invoice.document` for download.
    """
    invoices = Invoice.objects.select_related("order")
    if not (user.is_active and user.is_staff):
        invoices = invoices.filter(order__customer__user=user)
    return invoices.get(order__number=order_number)


def credit_notes_for_order(*, order: Order) -> list[CreditNote]:
    """The order's credit notes, oldest first."""
    return list(CreditNote.objects.filter(invoice__order=order).order_by("issued_at", "pk"))


def payment_refundable_exists(*, order: Order) -> bool:
    """Whether the order has a payment not yet refunded in full: what `refund_issue` gives
    back (the payment that paid it, or another that succeeded)."""
    return Payment.objects.filter(order=order, status=PaymentStatus.SUCCEEDED).exists()


def unmatched_open() -> QuerySet[UnmatchedPayment]:
    """Unmatched payments and refunds staff have not settled yet, oldest first."""
    return UnmatchedPayment.objects.filter(status=UnmatchedStatus.OPEN).order_by(
        "received_at", "id"
    )


def refunded_by_order(*, order_ids: Iterable[int]) -> dict[int, Decimal]:
    """What was refunded of each order so far (0.00 for none), in one query."""
    wanted = list(order_ids)
    refunded = dict.fromkeys(wanted, Decimal("0.00"))
    refunded.update(
        Refund.objects.filter(order_id__in=wanted)
        .order_by()
        .values("order_id")
        .annotate(total=Sum("amount"))
        .values_list("order_id", "total")
    )
    return refunded
