"""Receivers of the webhooks app: every app's events, turned into outbound webhooks.

Each writes its event, deliveries and outbox requests in the sender's transaction (a
rolled-back order emits nothing) and costs no query while no endpoint subscribes to its event.
Connected when the app is ready; nothing imports from here.
"""

from functools import partial

from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from catalog.models import Product, Variant
from catalog.signals import catalog_changed
from inventory.signals import stock_changed, stock_low
from orders.signals import order_cancelled, order_placed, order_shipped
from payments.signals import payment_received, refund_issued
from webhooks import payloads, services
from webhooks.models import ChangeKind, EventType, WebhookEndpoint
from webhooks.selectors import subscriptions_forget


def _emit_for_order(event_type: str, order, data) -> None:
    services.event_emit(
        event_type=event_type, resource_type="order", resource_id=order.pk, data=data
    )


@receiver(order_placed, dispatch_uid="webhooks.emit_order_placed")
def emit_order_placed(sender, order, **kwargs) -> None:
    """Emit `order.placed` with the order's transaction."""
    _emit_for_order(EventType.ORDER_PLACED, order, partial(payloads.order_placed, order=order))


@receiver(payment_received, dispatch_uid="webhooks.emit_order_paid")
def emit_order_paid(sender, order, payment, **kwargs) -> None:
    """Emit `order.paid`, with the payment, in the payment's transaction."""
    _emit_for_order(
        EventType.ORDER_PAID, order, partial(payloads.order_paid, order=order, payment=payment)
    )


@receiver(order_shipped, dispatch_uid="webhooks.emit_order_shipped")
def emit_order_shipped(sender, order, shipment, **kwargs) -> None:
    """Emit `order.shipped`, with the shipment, in the shipping transaction."""
    data = partial(payloads.order_shipped, order=order, shipment=shipment)
    _emit_for_order(EventType.ORDER_SHIPPED, order, data)


@receiver(order_cancelled, dispatch_uid="webhooks.emit_order_cancelled")
def emit_order_cancelled(sender, order, previous_status, reason="", **kwargs) -> None:
    """Emit `order.cancelled` in the cancelling transaction."""
    data = partial(
        payloads.order_cancelled, order=order, previous_status=previous_status, reason=reason
    )
    _emit_for_order(EventType.ORDER_CANCELLED, order, data)


@receiver(refund_issued, dispatch_uid="webhooks.emit_order_refunded")
def emit_order_refunded(sender, refund, order, **kwargs) -> None:
    """Emit `order.refunded`, one per refund with its amount, in the refund's transaction."""
    _emit_for_order(
        EventType.ORDER_REFUNDED,
        order,
        partial(payloads.order_refunded, order=order, refund=refund),
    )


@receiver(stock_low, dispatch_uid="webhooks.emit_stock_low")
def emit_stock_low(sender, variant_id, available, threshold, **kwargs) -> None:
    """Emit `stock.low` in the transaction whose sale or adjustment crossed the threshold."""
    services.event_emit(
        event_type=EventType.STOCK_LOW,
        resource_type="variant",
        resource_id=variant_id,
        data=partial(
            payloads.stock_low, variant_id=variant_id, available=available, threshold=threshold
        ),
    )


@receiver(stock_changed, dispatch_uid="webhooks.note_stock_change")
def note_stock_change(sender, variant_ids, **kwargs) -> None:
    """Note the variants for the coalesced `stock.changed` (only while someone subscribes)."""
    services.changes_mark(kind=ChangeKind.STOCK, object_ids=variant_ids)


@receiver(post_save, sender=Product, dispatch_uid="webhooks.note_product_change.product")
def note_product_change(sender, instance, raw=False, **kwargs) -> None:
    """Note the product for the coalesced `product.updated`: emitted after the admin has
    saved the variants of the same form too, with the state as committed."""
    if not raw:
        services.changes_mark(kind=ChangeKind.PRODUCT, object_ids=[instance.pk])


@receiver(post_save, sender=Variant, dispatch_uid="webhooks.note_product_change_of_variant")
def note_product_change_of_variant(sender, instance, raw=False, **kwargs) -> None:
    """Note the variant's product (and the one it left, if it moved) for `product.updated`."""
    if not raw:
        previous = getattr(instance, "_previous_product_id", None)
        products = {instance.product_id} | ({previous} if previous else set())
        services.changes_mark(kind=ChangeKind.PRODUCT, object_ids=products)


@receiver(catalog_changed, dispatch_uid="webhooks.note_products_changed_in_bulk")
def note_products_changed_in_bulk(sender, product_ids, **kwargs) -> None:
    """Note a bulk change's products (import, price changes) for `product.updated`."""
    services.changes_mark(kind=ChangeKind.PRODUCT, object_ids=product_ids)


@receiver(post_save, sender=WebhookEndpoint, dispatch_uid="webhooks.forget_subscriptions.save")
@receiver(post_delete, sender=WebhookEndpoint, dispatch_uid="webhooks.forget_subscriptions.delete")
def forget_subscriptions(sender, **kwargs) -> None:
    """Drop this process's copy of the subscriptions now and again after the commit, so the
    next event reads them afresh (other processes within SUBSCRIPTIONS_REFRESH_SECONDS)."""
    subscriptions_forget()
    transaction.on_commit(subscriptions_forget)
