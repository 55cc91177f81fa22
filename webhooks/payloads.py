"""The `data` of each event type: the resource as a subscriber needs it, in plain JSON.

Money is a decimal string with its currency beside it and times are ISO 8601 in UTC, as in
the storefront API; an order here also carries what only a back-office system needs (the
customer's e-mail, every status time). Built only when some endpoint subscribes, so the
queries below never run in a checkout nobody listens to.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from catalog.models import Product, Variant
from inventory.selectors import availability_by_variant
from orders.models import Fulfilment, Order
from payments.models import Payment, Refund

ORDER_AMOUNTS = ("subtotal", "shipping", "total")
ORDER_TIMES = ("placed_at", "paid_at", "shipped_at", "delivered_at", "cancelled_at", "refunded_at")


def _time(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _money(value: Decimal) -> str:
    return f"{value:.2f}"


def order_resource(order: Order) -> dict[str, Any]:
    """The order as it stands in the transaction that sends the event."""
    lines = [
        {
            "sku": line.sku,
            "name": line.name,
            "quantity": line.quantity,
            "unit_price": _money(line.unit_price),
            "line_total": _money(line.line_total),
        }
        for line in order.lines.all()
    ]
    return {
        "number": order.number,
        "status": order.status,
        "currency": order.currency,
        **{name: _money(getattr(order, name)) for name in ORDER_AMOUNTS},
        "lines": lines,
        "customer": {"email": order.customer.user.email},
        "shipping_address": dict(order.shipping_address or {}),
        "tracking_number": order.tracking_number,
        **{name: _time(getattr(order, name)) for name in ORDER_TIMES},
    }


def order_placed(*, order: Order) -> dict[str, Any]:
    return {"order": order_resource(order)}


def order_paid(*, order: Order, payment: Payment) -> dict[str, Any]:
    return {
        "order": order_resource(order),
        "payment": {
            "provider": payment.provider,
            "reference": payment.provider_reference,
            "amount": _money(payment.amount),
            "currency": payment.currency,
        },
    }


def order_shipped(*, order: Order, shipment: Fulfilment) -> dict[str, Any]:
    """The order and the one shipment this event is about: an order shipped in parts sends
    one event per shipment, each listing its own units and the warehouse they left."""
    return {
        "order": order_resource(order),
        "shipment": {
            "id": shipment.pk,
            "tracking_number": shipment.tracking_number,
            "carrier": shipment.carrier or None,
            "shipped_at": shipment.created_at.isoformat(),
            "lines": [
                {"sku": part.line.sku, "quantity": part.quantity, "warehouse": part.warehouse.code}
                for part in shipment.lines.all()
            ],
        },
    }


def order_cancelled(*, order: Order, previous_status: str, reason: str) -> dict[str, Any]:
    return {
        "order": order_resource(order),
        "cancellation": {"previous_status": previous_status, "reason": reason},
    }


def order_refunded(*, order: Order, refund: Refund) -> dict[str, Any]:
    """The order and one refund: an order refunded in parts sends one event per part."""
    return {
        "order": order_resource(order),
        "refund": {
            "id": refund.pk,
            "amount": _money(refund.amount),
            "currency": refund.currency,
            "reason": refund.reason,
            "created_at": _time(refund.created_at),
        },
    }


def _variant(variant: Variant) -> dict[str, Any]:
    return {
        "id": variant.pk,
        "sku": variant.sku,
        "name": variant.name,
        "product": {
            "id": variant.product_id,
            "slug": variant.product.slug,
            "name": variant.product.name,
        },
    }


def stock_low(*, variant_id: int, available: int, threshold: int) -> dict[str, Any]:
    variant = Variant.objects.select_related("product").get(pk=variant_id)
    return {"variant": _variant(variant), "available": available, "threshold": threshold}


def stock_levels(*, variant_ids: list[int]) -> dict[int, dict[str, Any]]:
    """`stock.changed` data per variant: its availability as committed now (the variants
    that no longer exist are left out)."""
    variants = Variant.objects.select_related("product").filter(pk__in=variant_ids)
    available = availability_by_variant(variant_ids=variant_ids)
    return {
        variant.pk: {"variant": _variant(variant), "available": available[variant.pk]}
        for variant in variants
    }


def products(*, product_ids: list[int]) -> dict[int, dict[str, Any]]:
    """`product.updated` data per product, variants included (deleted products left out)."""
    found = (
        Product.objects.filter(pk__in=product_ids)
        .select_related("category")
        .prefetch_related("variants")
    )
    return {
        product.pk: {
            "product": {
                "id": product.pk,
                "slug": product.slug,
                "name": product.name,
                "description": product.description,
                "category": product.category.slug if product.category else None,
                "is_active": product.is_active,
                "updated_at": _time(product.updated_at),
                "variants": [
                    {
                        "id": variant.pk,
                        "sku": variant.sku,
                        "name": variant.name,
                        "price": _money(variant.price),
                        "currency": variant.currency,
                        "attributes": variant.attributes,
                        "is_active": variant.is_active,
                    }
                    for variant in product.variants.all()
                ],
            }
        }
        for product in found
    }
