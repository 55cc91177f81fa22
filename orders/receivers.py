"""Receivers of the orders app: connected when the app is ready; nothing imports from here."""

from functools import partial

from django.conf import settings
from django.db import transaction
from django.db.models.signals import post_save, pre_save
from django.dispatch import receiver

from core.commit import on_commit_robust
from inventory.signals import stock_changed
from orders import services
from orders.models import Customer, EmailKind, OrderStatus
from orders.services.lines import units_summary
from orders.signals import (
    order_cancelled,
    order_lines_allocated,
    order_lines_cancelled,
    order_placed,
    order_shipped,
)
from payments.signals import payment_received, refund_issued


@receiver(pre_save, sender=settings.AUTH_USER_MODEL, dispatch_uid="orders.normalise_user_identity")
def normalise_user_identity(sender, instance, raw=False, **kwargs) -> None:
    """Trim and lower-case the e-mail; a customer's username is that e-mail.

    A receiver rather than form cleaning so every path (API, admin, shell, createsuperuser)
    stores one spelling, and a customer logs in with the address however it was typed.
    """
    if raw:
        return
    instance.email = services.user_email_normalise(instance.email)
    if instance.email and not (instance.is_staff or instance.is_superuser):
        instance.username = instance.email
    else:
        instance.username = instance.username.strip().lower()


@receiver(post_save, sender=settings.AUTH_USER_MODEL, dispatch_uid="orders.create_customer_profile")
def create_customer_profile(sender, instance, created=False, raw=False, **kwargs) -> None:
    """Give every new user a Customer profile (the counters live there), in the same transaction.

    So no user exists without one.
    """
    if raw or not created:
        return
    Customer.objects.get_or_create(user=instance)


@receiver(order_placed, dispatch_uid="orders.email_order_confirmation")
def email_order_confirmation(sender, order, **kwargs) -> None:
    """Request the confirmation e-mail through the outbox: sent only if the order commits."""
    services.order_email_request(order=order, kind=EmailKind.CONFIRMATION)


@receiver(order_placed, dispatch_uid="orders.count_placed_order")
def count_placed_order(sender, order, **kwargs) -> None:
    """Bump the customer's order count after the commit, outside the checkout's lock window."""
    transaction.on_commit(partial(services.counters_count_placed, customer_id=order.customer_id))


@receiver(order_shipped, dispatch_uid="orders.email_shipping_notice")
def email_shipping_notice(sender, order, shipment, **kwargs) -> None:
    """Request the shipment's own notice (its units and tracking number) through the outbox.

    One per shipment: an order shipped in three parcels tells the customer three times.
    """
    services.order_email_request(
        order=order,
        kind=EmailKind.SHIPPED,
        reference=f"shipment-{shipment.pk}",
        context={"shipment_id": str(shipment.pk)},
    )


@receiver(order_shipped, dispatch_uid="orders.count_shipped_units")
def count_shipped_units(sender, shipment, **kwargs) -> None:
    """Add the shipment's units to the shipped-units counters after the commit."""
    transaction.on_commit(partial(services.counters_count_shipped, fulfilment_id=shipment.pk))


@receiver(order_lines_cancelled, dispatch_uid="orders.email_lines_cancelled_notice")
def email_lines_cancelled_notice(
    sender, order, previous_status, lines, amount, cancellation_id, **kwargs
) -> None:
    """Request the notice of a partial cancellation (its units and amount) through the outbox.

    Once per cancellation; a paid order's refund of that amount has its own notice.
    """
    services.order_email_request(
        order=order,
        kind=EmailKind.LINES_CANCELLED,
        reference=f"cancellation-{cancellation_id}",
        context={
            "amount": str(amount),
            "units": units_summary(lines),
            "paid": "yes" if previous_status != OrderStatus.PENDING_PAYMENT else "",
        },
    )


@receiver(order_lines_cancelled, dispatch_uid="orders.count_cancelled_units")
def count_cancelled_units(sender, order, lines, amount, **kwargs) -> None:
    """Take the cancelled units and their amount off a paid order's counters after the commit."""
    units: dict[int, int] = {}
    for line, quantity in lines:
        units[line.variant_id] = units.get(line.variant_id, 0) + quantity
    transaction.on_commit(
        partial(services.counters_count_cancelled, order_id=order.pk, amount=amount, units=units)
    )


@receiver(stock_changed, dispatch_uid="orders.allocate_backorders")
def allocate_backorders(sender, variant_ids, availability_grew, **kwargs) -> None:
    """Once units became free to sell, let the orders waiting for these variants have them.

    After the commit, in a transaction of its own (`order_backorders_allocate`): the stock
    change never waits on the waiting orders' locks, and a failure there (logged: `robust`)
    leaves the receipt as it committed; the minute's sweep (`orders.backorders_sweep`) serves
    them. A checkout, which frees nothing, costs nothing here.
    """
    if availability_grew:
        on_commit_robust(services.order_backorders_allocate, variant_ids=list(variant_ids))


@receiver(order_lines_allocated, dispatch_uid="orders.email_lines_ready")
def email_lines_ready(sender, order, completed, **kwargs) -> None:
    """Request an e-mail per line that waited for stock and now has all of it (outbox)."""
    for line in completed:
        services.order_email_request(
            order=order,
            kind=EmailKind.LINE_READY,
            reference=f"line-{line.pk}",
            context={"sku": line.sku, "name": line.name},
        )


@receiver(order_cancelled, dispatch_uid="orders.email_cancellation_notice")
def email_cancellation_notice(sender, order, **kwargs) -> None:
    """Request the cancellation e-mail through the outbox: sent only if the cancel commits."""
    services.order_email_request(order=order, kind=EmailKind.CANCELLED)


@receiver(payment_received, dispatch_uid="orders.email_payment_receipt")
def email_payment_receipt(sender, payment, order, **kwargs) -> None:
    """Request the receipt e-mail through the outbox: sent only if the payment commits.

    It states the amount paid, carried with the request: units cancelled before it is sent
    change the order's total, not what the customer paid."""
    services.order_email_request(
        order=order,
        kind=EmailKind.RECEIPT,
        context={"amount": str(payment.amount), "currency": payment.currency},
    )


@receiver(payment_received, dispatch_uid="orders.count_paid_order")
def count_paid_order(sender, order, **kwargs) -> None:
    """Add the paid order to the customer's lifetime value, daily sales and units sold.

    After the commit, outside the payment's lock window.
    """
    transaction.on_commit(partial(services.counters_count_paid, order_id=order.pk))


@receiver(refund_issued, dispatch_uid="orders.email_refund_notice")
def email_refund_notice(sender, order, refund_id, amount, currency, **kwargs) -> None:
    """Request the refund's own notice, with its amount, through the outbox.

    Sent only if the refund commits, and once per refund (an order refunded in parts gets a notice
    per part).
    """
    services.order_email_request(
        order=order,
        kind=EmailKind.REFUND,
        reference=f"refund-{refund_id}",
        context={"amount": str(amount), "currency": currency},
    )


@receiver(refund_issued, dispatch_uid="orders.count_refund")
def count_refund(sender, order, refunds_the_order, **kwargs) -> None:
    """Take the order off the customer's lifetime value once its paying payment is refunded in full.

    After the commit; a partial refund, or one of a stray payment, leaves it.
    """
    if refunds_the_order:
        transaction.on_commit(partial(services.counters_count_refund, order_id=order.pk))
