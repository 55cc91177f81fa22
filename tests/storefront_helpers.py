"""Helpers for the storefront's HTTP tests: a shop with stock, customers with tokens, signing.

Plain functions, not fixtures, so each test module states which ones it uses.
"""

import json
from decimal import Decimal
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.test import Client
from model_bakery import baker

from catalog.models import Category, Product, Variant
from inventory.models import Warehouse
from inventory.services import stock_receive
from payments.demo_provider import demo_event_signed
from storefront.services import token_issue

ADDRESS = {
    "name": "Ada Lovelace",
    "line1": "12 St James's Square",
    "city": "London",
    "postal_code": "SW1Y 4JH",
    "country": "GB",
}


def warehouse_main() -> Warehouse:
    warehouse, _ = Warehouse.objects.get_or_create(
        code="main", defaults={"name": "Main", "priority": 1}
    )
    return warehouse


def product_make(
    *,
    name: str = "Linen shirt",
    category: Category | None = None,
    skus: tuple[str, ...] = ("SHIRT-M",),
    price: str = "19.99",
    on_hand: int = 10,
) -> Product:
    """An active product with one active variant per SKU, each with `on_hand` units in stock."""
    product = baker.make(Product, name=name, slug="", category=category, is_active=True)
    for sku in skus:
        variant = baker.make(
            Variant, product=product, sku=sku, name=sku, price=Decimal(price), is_active=True
        )
        if on_hand:
            stock_receive(variant=variant, warehouse=warehouse_main(), quantity=on_hand)
    product.refresh_from_db()
    return product


def user_with_token(
    *, email: str = "ada@example.com", is_staff: bool = False, is_superuser: bool = False
) -> tuple[Any, str]:
    user = get_user_model().objects.create_user(
        username=email,
        email=email,
        password="correct horse battery",
        is_staff=is_staff,
        is_superuser=is_superuser,
    )
    return user, token_issue(user=user)


def staff_with_token(*, email: str = "ops@example.com", role: str = "manager"):
    """A staff user holding `role` (backoffice/roles.py: the manager may do everything), and a
    token of theirs."""
    user, token = user_with_token(email=email, is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    return user, token


def client_for(token: str) -> Client:
    return Client(headers={"Authorization": f"Bearer {token}"})


def order_post(
    client: Client, *, lines: list[dict], key: str | None = "key-1", address: dict | None = None
):
    headers = {"Idempotency-Key": key} if key is not None else {}
    return client.post(
        "/api/v1/orders",
        data=json.dumps({"lines": lines, "shipping_address": address or ADDRESS}),
        content_type="application/json",
        headers=headers,
    )


def signed_webhook(client: Client, event: dict, *, timestamp: int | None = None):
    """POST `event` to the webhook, signed as the demo provider signs it."""
    body, signature = demo_event_signed(event, timestamp=timestamp)
    return client.post(
        "/api/v1/payments/webhook",
        data=body,
        content_type="application/json",
        headers={"Stockwire-Signature": signature},
    )


# A port nothing listens on: connecting is refused at once, as when Redis is down.
CACHE_DOWN = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": "redis://127.0.0.1:1/0",
        "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
    }
}
# Tests create many users; the production hasher's deliberate slowness only costs time here.
FAST_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
