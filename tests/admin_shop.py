"""Shop data for the admin tests: staff in a role, stocked variants, placed and paid orders.

Built through the services (never rows written by hand), so every order has the ledger rows,
invoice and events a real one has.
"""

from decimal import Decimal

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from model_bakery import baker

from catalog.models import Product, Variant
from inventory.models import Warehouse
from inventory.services import stock_receive
from orders.models import Order
from orders.services import LineRequest, customer_for_user, order_place
from payments.demo_provider import demo_event, demo_event_signed
from payments.services import webhook_handle

PASSWORD = "correct horse battery staple"
ADDRESS = {
    "name": "Grace Hopper",
    "line1": "1 Navy Yard",
    "city": "Arlington",
    "postal_code": "22202",
    "country": "US",
}


def staff_user(role: str, *, username: str | None = None):
    """A staff user whose only permissions are those of the `role` group."""
    user = get_user_model().objects.create_user(
        username=username or f"{role}@stockwire.example",
        email=username or f"{role}@stockwire.example",
        password=PASSWORD,
        is_staff=True,
    )
    user.groups.add(Group.objects.get(name=role))
    return user


def warehouse_main() -> Warehouse:
    warehouse, _ = Warehouse.objects.get_or_create(
        code="main", defaults={"name": "Main warehouse", "priority": 1}
    )
    return warehouse


def variant_stocked(
    *, sku: str = "MUG-BLUE", price: str = "12.50", on_hand: int = 10, threshold: int = 3
) -> Variant:
    """An active variant of an active product with `on_hand` units received in `main`."""
    product = baker.make(Product, name=f"Product {sku}", slug="", is_active=True)
    variant = baker.make(
        Variant,
        product=product,
        sku=sku,
        name=sku,
        price=Decimal(price),
        low_stock_threshold=threshold,
        is_active=True,
    )
    if on_hand:
        stock_receive(variant=variant, warehouse=warehouse_main(), quantity=on_hand)
    return variant


def order_placed(*, variant: Variant, quantity: int = 2, email: str = "grace@example.com") -> Order:
    User = get_user_model()
    user = User.objects.filter(username=email).first() or User.objects.create_user(
        username=email, email=email
    )
    return order_place(
        customer=customer_for_user(user=user),
        lines=[LineRequest(sku=variant.sku, quantity=quantity)],
        shipping_address=ADDRESS,
    )


def order_pay(order: Order) -> Order:
    """Pay `order` in full through a signed provider event, as the demo provider would."""
    event = demo_event(
        order_number=order.number,
        amount=order.total,
        currency=order.currency,
        event_id=f"evt-{order.number}",
        payment_reference=f"pay-{order.number}",
    )
    body, signature = demo_event_signed(event)
    webhook_handle(provider="demo", body=body, signature_header=signature)
    order.refresh_from_db()
    return order


def order_paid(*, variant: Variant, quantity: int = 2, email: str = "grace@example.com") -> Order:
    return order_pay(order_placed(variant=variant, quantity=quantity, email=email))
