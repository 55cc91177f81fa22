"""Query budgets of the hot endpoints, measured through HTTP."""

import pytest
from django.core.cache import cache
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from model_bakery import baker

from catalog.models import Category, ProductImage, Variant
from inventory.models import StockPolicy
from inventory.services import stock_hold, stock_safety_set
from tests.storefront_helpers import (
    FAST_HASHERS,
    client_for,
    order_post,
    product_make,
    user_with_token,
    warehouse_main,
)

pytestmark = pytest.mark.django_db

# Measured with the test's own SAVEPOINT and RELEASE: token with user and customer, SKUs in
# one query; then the order with its lines and event in one statement and the idempotency key
# (no look-up before: a used key shows as the INSERT's conflict); then inventory's plan and
# one guarded UPDATE for all levels, with the allocations and the ledger written in it; last
# the outbox row `order_placed` requests (sent once the stock is reserved: the same count).
# The same for 1 line or 10. SQLite has no data-modifying CTEs and runs the order's three
# INSERTs and the reservation's three statements one by one.
ORDER_BASE_BUDGET = 9 if connection.vendor == "postgresql" else 13
BACKORDER_EXTRA = 3
# A refusal: the same reads and writes up to the plan, which finds the shortage (its SELECT
# brings the policies: no read of its own), then the rollback; no outbox row.
REFUSED_BUDGET = 9 if connection.vendor == "postgresql" else 11


@pytest.fixture(autouse=True)
def fast_and_fresh(settings):
    settings.PASSWORD_HASHERS = FAST_HASHERS
    cache.clear()


def queries_for_order(lines: int, key: str) -> int:
    client = client_for(user_with_token(email=f"{key}@example.com")[1])
    with CaptureQueriesContext(connection) as captured:
        response = order_post(
            client, lines=[{"sku": f"SKU-{i}", "quantity": 1} for i in range(lines)], key=key
        )
    assert response.status_code == 201
    return len(captured)


def test_placing_an_order_has_a_fixed_query_budget_not_growing_with_lines():
    # given
    product_make(name="Bulk", skus=tuple(f"SKU-{i}" for i in range(10)), on_hand=5)

    # when
    one_line = queries_for_order(1, "one")
    ten_lines = queries_for_order(10, "ten")

    # then
    assert one_line == ORDER_BASE_BUDGET
    assert ten_lines == one_line
    print(f"POST /orders: {one_line} queries with 1 line, {ten_lines} with 10")


def test_stock_held_back_and_policies_add_no_query_to_a_checkout_of_units_available():
    # given: units on hold and safety stock on one SKU, a back-order policy on the other,
    # both with units enough
    product_make(name="Bulk", skus=("SKU-0", "SKU-1"), on_hand=10)
    held, backordering = Variant.objects.get(sku="SKU-0"), Variant.objects.get(sku="SKU-1")
    stock_hold(
        variant=held, warehouse=warehouse_main(), quantity=2, reason="damaged", note="crushed"
    )
    stock_safety_set(variant=held, warehouse=warehouse_main(), quantity=3)
    StockPolicy.objects.create(variant=backordering, policy="backorder")

    # when
    queries = queries_for_order(2, "held")

    # then: the checkout's statements are those of any deny checkout
    assert queries == ORDER_BASE_BUDGET


def catalog_with_images(products: int) -> None:
    """`products` products in one category, each with 3 variants in stock and 2 images."""
    category = baker.make(Category, name="Kitchen", slug="")
    for n in range(products):
        product = product_make(
            name=f"Bowl {n:02d}", category=category, skus=(f"B{n}-S", f"B{n}-M", f"B{n}-L")
        )
        for position in range(2):
            baker.make(
                ProductImage,
                product=product,
                image=f"products/bowl-{n}-{position}.jpg",
                thumbnail=f"products/thumbnails/bowl-{n}-{position}.jpg",
                alt_text=f"Bowl {n} view {position}",
                position=position,
            )


def queries_for_uncached(path: str) -> tuple[int, dict]:
    cache.clear()
    with CaptureQueriesContext(connection) as captured:
        response = Client().get(path)
    assert response.status_code == 200
    return len(captured), response.json()


def test_an_uncached_product_page_has_a_fixed_query_budget_not_growing_with_products():
    # given
    catalog_with_images(30)

    # when
    small, small_page = queries_for_uncached("/api/v1/products?limit=2")
    full, full_page = queries_for_uncached("/api/v1/products?limit=25")
    last, last_page = queries_for_uncached("/api/v1/products?limit=25&offset=25")

    # then products, their total, variants, images, availability; every field rendered
    assert small == full == 5
    assert len(full_page["items"]) == 25
    assert full_page["items"][0]["images"][1]["thumbnail_url"].endswith("bowl-0-1.jpg")
    assert full_page["items"][24]["variants"][2]["available"] == 10
    # and a page cut short by the end of the listing knows the total without counting
    assert last == 4
    assert [small_page["count"], full_page["count"], last_page["count"]] == [30, 30, 30]
    assert len(last_page["items"]) == 5


def test_an_uncached_product_detail_has_a_fixed_query_budget():
    # given
    catalog_with_images(1)

    # when
    queries, detail = queries_for_uncached("/api/v1/products/bowl-00")

    # then product with its category, variants, images, availability, and the variants'
    # policies with their next incoming units (one query for all of them)
    assert queries == 5
    assert detail["category"] == "kitchen"
    assert [image["alt_text"] for image in detail["images"]] == ["Bowl 0 view 0", "Bowl 0 view 1"]
    assert [variant["name"] for variant in detail["variants"]] == ["B0-L", "B0-M", "B0-S"]


@pytest.mark.parametrize("lines", [1, 5])
def test_a_back_ordered_checkout_has_a_fixed_budget_not_growing_with_lines(lines):
    # given: SKUs with 1 unit each that back-order without a limit
    product_make(name="Bulk", skus=tuple(f"SKU-{i}" for i in range(lines)), on_hand=1)
    for variant in Variant.objects.all():
        StockPolicy.objects.create(variant=variant, policy="backorder")
    client = client_for(user_with_token(email="wait@example.com")[1])

    # when: every line asks for 3 (1 reserved, 2 waiting)
    with CaptureQueriesContext(connection) as captured:
        response = order_post(
            client, lines=[{"sku": f"SKU-{i}", "quantity": 3} for i in range(lines)], key="wait"
        )

    # then: the deny checkout's statements, plus per variant the policy's guarded UPDATE, and
    # once the backorders' INSERT, the lines' UPDATE and the idempotency record's amendment
    assert response.status_code == 201
    print(f"POST /orders back-ordered, {lines} line(s): {len(captured)} queries")
    assert len(captured) == ORDER_BASE_BUDGET + lines + BACKORDER_EXTRA


def test_a_refused_deny_checkout_costs_no_more_than_a_successful_one():
    # given: 1 unit of a deny SKU; the buyer asks for 2
    product_make(name="Scarce", skus=("SKU-0",), on_hand=1)
    client = client_for(user_with_token(email="late@example.com")[1])

    # when
    with CaptureQueriesContext(connection) as captured:
        response = order_post(client, lines=[{"sku": "SKU-0", "quantity": 2}], key="late")

    # then: refused with what is left, with no policy read of its own (the plan's SELECT
    # brings the policy)
    assert response.status_code == 409
    print(f"POST /orders refused: {len(captured)} queries")
    assert len(captured) == REFUSED_BUDGET
