"""What the API says of stock beyond the units available: policies, incoming, back-orders."""

import datetime

import pytest
from django.core.cache import cache
from django.test import Client

from catalog.models import Variant
from inventory.models import StockPolicy
from inventory.services import PurchaseUnits, purchase_order_create
from tests.storefront_helpers import (
    FAST_HASHERS,
    client_for,
    order_post,
    product_make,
    user_with_token,
    warehouse_main,
)

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fast_and_fresh(settings):
    settings.PASSWORD_HASHERS = FAST_HASHERS
    cache.clear()


def test_a_product_page_shows_each_variants_policy_and_its_next_incoming_units():
    # given: M back-orders and has 6 on a purchase order; L is a deny variant with none
    product = product_make(name="Linen shirt", skus=("SHIRT-L", "SHIRT-M"), on_hand=1)
    medium = Variant.objects.get(sku="SHIRT-M")
    StockPolicy.objects.create(variant=medium, policy="backorder", limit=20)
    client = Client()
    assert client.get(f"/api/v1/products/{product.slug}").status_code == 200  # now cached

    # when: the purchase order is placed (the cached page is replaced)
    purchase_order_create(
        number="PO-1",
        supplier="Mill & Co",
        warehouse=warehouse_main(),
        expected_on=datetime.date(2027, 3, 4),
        lines=[PurchaseUnits(medium.pk, 6)],
    )
    body = client.get(f"/api/v1/products/{product.slug}").json()

    # then
    by_sku = {variant["sku"]: variant for variant in body["variants"]}
    assert {
        key: by_sku["SHIRT-M"][key] for key in ("available", "inventory_policy", "incoming")
    } == {
        "available": 1,
        "inventory_policy": "backorder",
        "incoming": {"expected_on": "2027-03-04", "quantity": 6},
    }
    assert (by_sku["SHIRT-L"]["inventory_policy"], by_sku["SHIRT-L"]["incoming"]) == ("deny", None)


def test_an_order_beyond_stock_of_a_backorder_variant_says_how_many_units_wait():
    # given: 1 on hand, up to 2 more may wait
    product_make(skus=("SHIRT-M",), on_hand=1)
    StockPolicy.objects.create(
        variant=Variant.objects.get(sku="SHIRT-M"), policy="backorder", limit=2
    )
    client = client_for(user_with_token()[1])

    # when
    placed = order_post(client, lines=[{"sku": "SHIRT-M", "quantity": 3}], key="a")
    refused = order_post(client, lines=[{"sku": "SHIRT-M", "quantity": 1}], key="b")
    replayed = order_post(client, lines=[{"sku": "SHIRT-M", "quantity": 3}], key="a")

    # then: the order waits for 2, and its replay says so too; the next is refused with no
    # unit it could have
    assert placed.status_code == 201
    assert placed.json()["lines"][0]["backordered_quantity"] == 2
    assert replayed.json() == placed.json()
    assert refused.status_code == 409
    assert refused.json()["lines"] == [{"sku": "SHIRT-M", "requested": 1, "available": 0}]
