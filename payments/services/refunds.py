"""Refunds: issued by us (the demo provider refunds at once) or reported by the provider.

Only the payment that paid the order (`Payment.settles_order`) stands for the order: its
refunds are credited against the invoice, and refunding the last of it refunds the order (a
paid, shipped or delivered one becomes `refunded`, a cancelled one stays cancelled) and takes
the order's total off the customer's lifetime value. Any other payment of the order (a
duplicate charge, a wrong amount, one that came after a cancellation) is refunded on its own:
the money goes back and the order is left as it is.

Staff also refund part of an order (`refund_partial`): the price of units cancelled before
shipping, or of goods returned (`refund_return`). A partial refund that gives back the last of
the payment refunds the order like a full one.

A refund locks the order's row, then the payment's: the order in which a cancellation takes
them. So a cancellation, a staff refund and the provider's confirmation of the same payment are
decided one after the other. Both locks are `FOR NO KEY UPDATE`, the lock an UPDATE that
changes no key takes: a refund changes no key, and the stronger `FOR UPDATE` would also wait on
(and make wait) every transaction whose commit checks a foreign key to the row (a second charge
of the order, its receipt e-mail). Whatever the locks, no payment is refunded beyond its
amount: each refund adds itself to `Payment.refunded_total` with an UPDATE guarded by what is
left, and a CHECK keeps that total within the amount.
"""

from collections.abc import Callable
from decimal import Decimal

from django.db import transaction
from django.db.models import F, Q
from django.db.models.functions import Round
from django.utils import timezone

from orders.models import Order, OrderStatus
from orders.services import order_lock, order_mark_refunded
from payments.models import Payment, PaymentStatus, Refund
from payments.signals import refund_issued

# A full refund of an order in one of these moves it to `refunded`; a cancelled order stays
# cancelled.
REFUNDABLE = (
    OrderStatus.PAID,
    OrderStatus.PARTIALLY_SHIPPED,
    OrderStatus.SHIPPED,
    OrderStatus.DELIVERED,
)
# The reference of the refund of what is left that Stockwire issues itself: at most one per
# payment (the payment is refunded in full by it), and short whatever the provider's payment
# reference is. Partial refunds are numbered after it.
OWN_REFUND_REFERENCE = "stockwire-refund-{payment_id}"
OWN_PARTIAL_REFUND_REFERENCE = "stockwire-refund-{payment_id}-{number}"


def own_refund_confirmed(*, payment: Payment, reference: str, amount: Decimal) -> bool:
    """Whether a provider's `refund.succeeded` confirms a refund Stockwire issued of `payment`
    (locked by the caller), marking it confirmed if so.

    It does when it names that refund's reference, or, naming none of Stockwire's (a provider
    that confirms under its own id, or with none: the event's id then), when it is of the
    amount of one that no event has confirmed yet, the oldest first. Without this a partial
    refund Stockwire gave back would be counted a second time when confirmed.
    """
    partial_prefix = OWN_PARTIAL_REFUND_REFERENCE.format(payment_id=payment.pk, number="")
    own = payment.refunds.filter(
        Q(provider_reference=OWN_REFUND_REFERENCE.format(payment_id=payment.pk))
        | Q(provider_reference__startswith=partial_prefix)
    )
    named = own.filter(provider_reference=reference).first()
    confirmed = named or own.filter(confirmed_by="", amount=amount).order_by("pk").first()
    if confirmed is None:
        return False
    if not confirmed.confirmed_by:
        Refund.objects.filter(pk=confirmed.pk).update(confirmed_by=reference)
    return True


class RefundError(Exception):
    code = "refund_impossible"


class RefundExceedsPayment(RefundError):
    """More asked back than is left of the payment; nothing was refunded."""

    code = "refund_exceeds_payment"


def payment_left_to_refund(*, payment: Payment) -> Decimal:
    """What of `payment` has not been refunded yet (lock the payment's row first)."""
    return payment.amount - payment.refunded_total


def refund_apply(
    *,
    order: Order,
    order_status: str,
    payment: Payment,
    amount: Decimal,
    provider_reference: str,
    reason: str,
    actor=None,
) -> Refund:
    """Record a refund of `amount` of `payment` and what follows from it; the caller has
    locked the order's row (its status then: `order_status`) and the payment's, and sends
    `refund_issued`.

    The amount is added to the payment's `refunded_total` only if it fits in what is left
    (guarded UPDATE; the CHECK is the last word): raises RefundExceedsPayment otherwise.
    Refunding the last of the payment marks it refunded; when that payment paid the order, an
    order in REFUNDABLE is marked refunded (what it still holds of its reservation released).
    """
    if not Payment.objects.filter(
        pk=payment.pk, refunded_total__lte=Round(F("amount") - amount, 2)
    ).update(refunded_total=Round(F("refunded_total") + amount, 2), updated_at=timezone.now()):
        raise RefundExceedsPayment(
            f"refunding {amount} {payment.currency} of payment {payment.provider_reference} "
            f"would give back more than it paid"
        )
    payment.refresh_from_db(fields=["refunded_total", "updated_at"])
    refund = Refund.objects.create(
        order=order,
        payment=payment,
        amount=amount,
        currency=payment.currency,
        provider_reference=provider_reference,
        reason=reason[: Refund._meta.get_field("reason").max_length],
    )
    if payment.refunded_total == payment.amount:
        Payment.objects.filter(pk=payment.pk).update(status=PaymentStatus.REFUNDED)
        payment.status = PaymentStatus.REFUNDED
        if payment.settles_order and order_status in REFUNDABLE:
            order_mark_refunded(order=order, actor=actor, reason=reason)
    return refund


def refund_issued_send(*, sender: Callable[..., object], refund: Refund, order: Order) -> None:
    """Send `refund_issued` for a recorded refund, with the figures its receivers need.

    Apps below payments react to the refund without importing payments' models, so the id,
    amount, currency and whether it refunds the order travel as arguments of their own.
    """
    refund_issued.send(
        sender=sender,
        refund=refund,
        order=order,
        refund_id=refund.pk,
        amount=refund.amount,
        currency=refund.currency,
        refunds_the_order=refund.refunds_the_order,
    )


@transaction.atomic
def refund_issue(
    *,
    order: Order,
    actor=None,
    reason: str = "",
    order_locked: bool = False,
    nothing_left_is_an_error: bool = False,
) -> Refund:
    """Refund in full what is left of the order's payment: the one that paid it while it
    stands, otherwise the newest other payment that succeeded (a payment that came after a
    cancellation). A call with nothing left to refund returns the order's last refund (a
    repeated request's answer), or with `nothing_left_is_an_error` raises RefundError (staff
    asking again must not be told it was refunded).

    The built-in `demo` provider refunds synchronously, so the Refund is recorded at once;
    a real provider would be asked by a task and confirm with a `refund.succeeded` event.
    `order_locked`: the caller's transaction has just changed the order's row (a
    cancellation), so it holds the row's lock and `order.status` is current; the row is not
    locked a second time.
    Sends `refund_issued(refund, order)`; its receivers issue the credit note in this
    transaction (for the payment that paid the order) and request the refund e-mail
    (orders.email_send).
    """
    order_status = order.status if order_locked else order_lock(order=order)
    payment = (
        Payment.objects.select_for_update(no_key=True)
        .filter(order=order, status=PaymentStatus.SUCCEEDED)
        .order_by("-settles_order", "-created_at", "-pk")
        .first()
    )
    if payment is None:
        existing = Refund.objects.filter(order=order).order_by("-created_at", "-pk").first()
        if existing is None:
            raise RefundError(f"order {order.number} has no payment to refund")
        if nothing_left_is_an_error:
            raise RefundError(f"order {order.number} has nothing left to refund")
        return existing
    refund = refund_apply(
        order=order,
        order_status=order_status,
        payment=payment,
        amount=payment_left_to_refund(payment=payment),
        provider_reference=OWN_REFUND_REFERENCE.format(payment_id=payment.pk),
        reason=reason,
        actor=actor,
    )
    refund_issued_send(sender=refund_issue, refund=refund, order=order)
    return refund


@transaction.atomic
def refund_partial(*, order: Order, amount: Decimal, reason: str, actor=None) -> Refund:
    """Refund `amount` of the payment that paid the order: the price of units cancelled
    before shipping, or of goods returned.

    Locks the order's row (again, when the caller's transaction holds it already), then the
    payment's. Raises RefundError when `amount` is not above zero or no standing payment paid
    the order, and
    RefundExceedsPayment when less than `amount` is left of it; nothing is refunded then.
    Giving back the last of the payment refunds the order (`refund_apply`).
    Sends `refund_issued(refund, order)`; its receivers issue the credit note for exactly
    `amount` in this transaction and request the refund e-mail (orders.email_send).
    """
    if amount <= 0:
        raise RefundError(f"a refund of {amount} gives nothing back")
    order_status = order_lock(order=order)
    payment = (
        Payment.objects.select_for_update(no_key=True)
        .filter(order=order, settles_order=True, status=PaymentStatus.SUCCEEDED)
        .first()
    )
    if payment is None:
        raise RefundError(f"order {order.number} has no payment left to refund")
    refund = refund_apply(
        order=order,
        order_status=order_status,
        payment=payment,
        amount=amount,
        provider_reference=OWN_PARTIAL_REFUND_REFERENCE.format(
            payment_id=payment.pk, number=payment.refunds.count() + 1
        ),
        reason=reason,
        actor=actor,
    )
    refund_issued_send(sender=refund_partial, refund=refund, order=order)
    return refund
