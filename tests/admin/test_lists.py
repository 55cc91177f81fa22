"""The admin's lists: every one renders and searches, and costs the same queries for one row
or many."""

from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.contrib.contenttypes.models import ContentType
from django.urls import reverse
from model_bakery import baker

from catalog.models import Product, ProductImage, Variant
from inventory.services import stock_receive
from tests.admin.client import LEVELS_URL, ORDERS_URL, png_upload
from tests.admin_shop import (
    order_paid,
    staff_user,
    variant_stocked,
    warehouse_main,
)

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "url",
    [
        "/admin/catalog/product/",
        "/admin/catalog/variant/",
        "/admin/catalog/category/",
        "/admin/catalog/collection/",
        "/admin/inventory/warehouse/",
        "/admin/inventory/stockallocation/",
        "/admin/orders/customer/",
        "/admin/payments/payment/",
        "/admin/payments/refund/",
        "/admin/payments/invoice/",
        "/admin/payments/creditnote/",
        "/admin/payments/processedevent/",
        "/admin/audit/auditentry/",
    ],
)
def test_every_list_renders_and_searches_for_a_manager(client, url):
    # given
    order_paid(variant=variant_stocked())
    client.force_login(staff_user("manager"))

    # when
    listed = client.get(url)
    searched = client.get(url, {"q": "MUG"})

    # then
    assert listed.status_code == 200
    assert searched.status_code == 200


def test_order_list_costs_the_same_queries_for_one_order_or_many(
    client, django_assert_max_num_queries
):
    # given
    variant = variant_stocked(on_hand=50)
    for index in range(12):
        order_paid(variant=variant, quantity=1, email=f"c{index}@example.com")
    client.force_login(staff_user("support"))

    # when / then: session, user, permissions, count, page; no query per row
    with django_assert_max_num_queries(12):
        response = client.get(ORDERS_URL)
    assert response.context["cl"].result_count == 12


def test_stock_list_costs_the_same_queries_for_one_level_or_many(
    client, django_assert_max_num_queries
):
    # given
    for index in range(12):
        variant_stocked(sku=f"SKU-{index}", on_hand=index + 1)
    client.force_login(staff_user("warehouse"))

    # when / then
    with django_assert_max_num_queries(12):
        response = client.get(LEVELS_URL)
    assert response.context["cl"].result_count == 12


@pytest.mark.parametrize("count", [1, 30])
def test_product_page_costs_the_same_queries_for_one_variant_and_image_or_many(
    client, django_assert_max_num_queries, settings, tmp_path, count
):
    # given: variants without a name of their own (the storefront shows the product's)
    settings.MEDIA_ROOT = tmp_path
    product = baker.make(Product, name="Many", slug="", is_active=True)
    for index in range(count):
        baker.make(Variant, product=product, sku=f"MANY-{index}", name="", price=Decimal("1"))
        ProductImage.objects.create(product=product, image=png_upload(f"many-{index}.png"))
    client.force_login(staff_user("manager"))
    ContentType.objects.get_for_model(Product)  # cached for good in a server that ran a while

    # when / then: session, user, permissions, the product, its variants, its images, the
    # audit panel; no query per variant or image
    with django_assert_max_num_queries(12):
        response = client.get(reverse("admin:catalog_product_change", args=[product.pk]))
    assert response.status_code == 200
    assert f"MANY-{count - 1}" in response.content.decode()


@pytest.mark.parametrize("count", [1, 20])
def test_ledger_list_costs_the_same_queries_for_one_sku_or_many(
    client, django_assert_max_num_queries, count
):
    # given: SKUs of different products, without a name of their own
    for index in range(count):
        product = baker.make(Product, name=f"Product {index}", slug="", is_active=True)
        variant = baker.make(
            Variant, product=product, sku=f"LEDGER-{index}", name="", price=Decimal("1")
        )
        stock_receive(variant=variant, warehouse=warehouse_main(), quantity=3)
    client.force_login(staff_user("warehouse"))

    # when / then: the SKU filter lists every SKU of the ledger without a query per SKU
    with django_assert_max_num_queries(12):
        response = client.get("/admin/inventory/stockmovement/")
    assert response.context["cl"].result_count == count
    assert f"LEDGER-{count - 1}" in response.content.decode()


@pytest.mark.parametrize(
    "url",
    [
        "/admin/orders/order/?status__exact=%00",  # PostgreSQL's text holds no NUL
        "/admin/orders/order/?number=%00",
        "/admin/reviews/review/?status__exact=%00",  # the reviews' own status filter
        "/admin/payments/payment/?provider=%00",
        "/admin/outbox/outboxmessage/?task_name=%00",
        "/admin/autocomplete/?term=%00&app_label=catalog&model_name=product&field_name=category",
        "/admin/orders/order/?placed_at__year=99999999999999999999",  # the date hierarchy
        "/admin/audit/auditentry/?created_at__year=99999999999999999999",
        "/admin/reviews/review/?created_at__year=99999",  # a list filter's year
        "/admin/reviews/review/?created_at__year=0",
        "/admin/orders/order/?placed_at__year=2026&placed_at__month=99999999999999999999",
        "/admin/catalog/product/add/?category=abc",  # an autocompleted relation's initial key
        "/admin/catalog/variant/add/?product=%00",
    ],
)
def test_a_query_string_no_page_can_answer_is_a_400_not_a_500(client, url):
    # given
    order_paid(variant=variant_stocked())
    client.force_login(
        get_user_model().objects.create_superuser("root", "root@stockwire.example", "x")
    )

    # when
    response = client.get(url)

    # then
    assert response.status_code == 400


def test_pages_with_sound_dates_and_keys_in_their_query_string_still_answer(client):
    # given
    variant = variant_stocked()
    order_paid(variant=variant)
    client.force_login(staff_user("manager"))

    # then
    for url in (
        "/admin/orders/order/?placed_at__year=2026&placed_at__month=12",
        f"/admin/catalog/variant/add/?product={variant.product_id}",
        "/admin/catalog/product/?q=MUG",
    ):
        assert client.get(url).status_code == 200, url
