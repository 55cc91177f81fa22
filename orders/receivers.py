"""Receivers of the orders app: connected when the app is ready; nothing imports from here."""

from functools import partial

from django.conf import settings
from django.db import transaction
from django.db.models.signals import post_save, pre_save
from django.dispatch import receiver

from orders import services
from orders.models import Customer, EmailKind
from orders.signals import order_cancelled, order_placed, order_shipped


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
    """Give every new user a Customer profile (the counters live there), in the same
    transaction, so no user exists without one."""
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
def email_shipping_notice(sender, order, **kwargs) -> None:
    """Request the shipping e-mail (with the tracking number) through the outbox."""
    services.order_email_request(order=order, kind=EmailKind.SHIPPED)


@receiver(order_shipped, dispatch_uid="orders.count_shipped_units")
def count_shipped_units(sender, order, **kwargs) -> None:
    """Add the order's units to the shipped-units counters after the commit."""
    transaction.on_commit(partial(services.counters_count_shipped, order_id=order.pk))


@receiver(order_cancelled, dispatch_uid="orders.email_cancellation_notice")
def email_cancellation_notice(sender, order, **kwargs) -> None:
    """Request the cancellation e-mail through the outbox: sent only if the cancel commits."""
    services.order_email_request(order=order, kind=EmailKind.CANCELLED)
