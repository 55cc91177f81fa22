"""Builders for orders and payments tests: a stocked catalog, customers, signed webhooks.

They go through the real services (stock arrives by `stock_receive`), so tests exercise the
paths production does. Payment builders are in tests.payments_helpers.
"""

import uuid
from decimal import Decimal

from django.contrib.auth import get_user_model
from model_bakery import baker

from catalog.models import Product, Variant
from inventory.models import Warehouse
from inventory.services import stock_receive
from orders.models import Customer, Order
from orders.services import LineRequest, customer_for_user, order_place

ADDRESS = {
    "name": "Ada Lovelace",
    "line1": "12 Analytical Row",
    "city": "London",
    "postal_code": "N1 7AA",
    "country": "GB",
}


def warehouse(code: str = "main", priority: int = 10) -> Warehouse:
    found = Warehouse.objects.filter(code=code).first()
    return found or baker.make(Warehouse, code=code, name=code.title(), priority=priority)


def variant_stocked(sku: str, *, price: str = "10.00", on_hand: int = 10) -> Variant:
    """An active variant of an active product with `on_hand` units in the main warehouse."""
    product = baker.make(Product, name=f"Product {sku}", slug=f"product-{sku.lower()}")
    variant = baker.make(
        Variant, product=product, sku=sku, name=f"Item {sku}", price=Decimal(price)
    )
    if on_hand:
        stock_receive(variant=variant, warehouse=warehouse(), quantity=on_hand)
    return variant


def customer_new(email: str | None = None) -> Customer:
    email = email or f"buyer-{uuid.uuid4().hex[:8]}@example.com"
    # No password: hashing one costs ~0.1 s of CPU per customer and no test logs in with it.
    user = get_user_model().objects.create_user(username=email, email=email)
    return customer_for_user(user=user)


def order_new(customer: Customer, *lines: tuple[str, int]) -> Order:
    return order_place(
        customer=customer,
        lines=[LineRequest(sku=sku, quantity=quantity) for sku, quantity in lines],
        shipping_address=ADDRESS,
    )
