"""The read cache: the next read after any committed change shows it, a rollback changes
nothing, cached pages cost no query, and a dead Redis only costs speed."""

import logging
from decimal import Decimal

import pytest
from django.core.cache import cache, caches
from django.core.files.storage import FileSystemStorage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction
from django.test import override_settings
from model_bakery import baker

from catalog.models import Category, Collection, Product, ProductImage, Variant
from catalog.signals import catalog_changed
from inventory import selectors as inventory_selectors
from inventory.services import stock_receive
from orders.services import LineRequest, customer_for_user, order_cancel, order_place
from storefront import cache as read_cache
from tests.storefront_helpers import (
    ADDRESS,
    CACHE_DOWN,
    FAST_HASHERS,
    product_make,
    user_with_token,
    warehouse_main,
)

pytestmark = pytest.mark.django_db

# A one-pixel GIF: the smallest valid image file.
GIF = (
    b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00"
    b",\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
)


@pytest.fixture(autouse=True)
def empty_cache(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    settings.PASSWORD_HASHERS = FAST_HASHERS
    cache.clear()


@pytest.fixture
def shirt():
    return product_make(name="Linen shirt", skus=("SHIRT-M",), price="19.99", on_hand=5)


def warm(client, slug="linen-shirt"):
    """Fill both entries: the first detail visit only learns the slug, the second stores."""
    client.get("/api/v1/products")
    client.get("/api/v1/categories")
    client.get(f"/api/v1/products/{slug}")
    client.get(f"/api/v1/products/{slug}")


def detail(client, slug="linen-shirt"):
    return client.get(f"/api/v1/products/{slug}").json()


def listed(client):
    return client.get("/api/v1/products").json()["items"]


def test_cached_detail_and_page_are_served_without_a_query(
    client, shirt, django_assert_num_queries
):
    # given
    warm(client)

    # when / then
    with django_assert_num_queries(0):
        assert client.get("/api/v1/products/linen-shirt").status_code == 200
        assert client.get("/api/v1/products").status_code == 200
        assert client.get("/api/v1/categories").status_code == 200


def test_a_cached_product_page_of_20_costs_no_query(client, django_assert_num_queries):
    # given a page of 20 built once (its uncached budget: tests/test_api_budgets.py)
    category = baker.make(Category, name="Shirts", slug="shirts")
    for index in range(20):
        product = product_make(
            name=f"Shirt {index:02}", category=category, skus=(f"S{index}-M", f"S{index}-L")
        )
        baker.make(ProductImage, product=product, image="products/x.gif", _quantity=2)
    first = client.get("/api/v1/products", {"limit": 20})

    # when / then
    with django_assert_num_queries(0):
        second = client.get("/api/v1/products", {"limit": 20})
    assert len(first.json()["items"]) == 20
    assert second.content == first.content


@pytest.fixture
def cache_calls(monkeypatch):
    """Record every call the read cache makes to the cache backend (which still answers).

    Only outermost calls count: the local-memory backend's get_many calls its own get."""
    backend = caches["default"]
    calls: list[str] = []
    depth = [0]
    for name in ("get", "get_many", "set", "set_many", "add"):
        real = getattr(backend, name)

        def spy(*args, _name=name, _real=real, **kwargs):
            if not depth[0]:
                calls.append(_name)
            depth[0] += 1
            try:
                return _real(*args, **kwargs)
            finally:
                depth[0] -= 1

        monkeypatch.setattr(backend, name, spy)
    return calls


def test_a_cached_page_costs_one_cache_round_trip_and_a_cached_detail_two(
    client, shirt, cache_calls
):
    # given
    warm(client)
    cache_calls.clear()

    # when
    client.get("/api/v1/products")
    page = list(cache_calls)
    cache_calls.clear()
    client.get("/api/v1/products/linen-shirt")

    # then: the versions and the entry come in one MGET; a detail first maps its slug
    assert page == ["get_many"]
    assert cache_calls == ["get", "get_many"]


def test_renamed_product_shows_on_the_next_read(client, shirt, django_capture_on_commit_callbacks):
    # given
    warm(client)

    # when
    with django_capture_on_commit_callbacks(execute=True):
        shirt.name = "Hemp shirt"
        shirt.save()

    # then
    assert detail(client)["name"] == "Hemp shirt"
    assert listed(client)[0]["name"] == "Hemp shirt"


def test_new_price_shows_on_the_next_read(client, shirt, django_capture_on_commit_callbacks):
    # given
    warm(client)
    variant = shirt.variants.get()

    # when
    with django_capture_on_commit_callbacks(execute=True):
        variant.price = Decimal("24.50")
        variant.save()

    # then
    assert detail(client)["variants"][0]["price"] == "24.50"
    assert listed(client)[0]["variants"][0]["price"] == "24.50"


def test_bulk_price_change_shows_once_catalog_changed_is_sent(
    client, shirt, django_capture_on_commit_callbacks
):
    # given
    warm(client)

    # when
    with django_capture_on_commit_callbacks(execute=True):
        Variant.objects.filter(product=shirt).update(price=Decimal("9.00"))
        catalog_changed.send(sender=None, product_ids=[shirt.pk])

    # then
    assert detail(client)["variants"][0]["price"] == "9.00"
    assert listed(client)[0]["variants"][0]["price"] == "9.00"


def test_new_variant_shows_on_the_next_read(client, shirt, django_capture_on_commit_callbacks):
    # given
    warm(client)

    # when
    with django_capture_on_commit_callbacks(execute=True):
        baker.make(Variant, product=shirt, sku="SHIRT-XL", price=Decimal("21.00"))

    # then
    assert [v["sku"] for v in detail(client)["variants"]] == ["SHIRT-M", "SHIRT-XL"]


def test_new_image_shows_on_the_next_read(client, shirt, django_capture_on_commit_callbacks):
    # given
    warm(client)

    # when
    with django_capture_on_commit_callbacks(execute=True):
        ProductImage.objects.create(
            product=shirt, image=SimpleUploadedFile("front.gif", GIF), alt_text="front"
        )

    # then
    assert [image["alt_text"] for image in detail(client)["images"]] == ["front"]
    assert len(listed(client)[0]["images"]) == 1


def test_a_variant_moved_to_another_product_leaves_the_old_products_detail(
    client, django_capture_on_commit_callbacks
):
    # given: both details cached
    product_make(name="Blue mug", skus=("MUG-1", "MUG-2"))
    product_make(name="Tea cup", skus=("CUP-1",))
    warm(client, slug="blue-mug")
    warm(client, slug="tea-cup")
    variant = Variant.objects.get(sku="MUG-2")

    # when: staff file the SKU under the right product
    with django_capture_on_commit_callbacks(execute=True):
        variant.product = Product.objects.get(slug="tea-cup")
        variant.save()

    # then
    assert [v["sku"] for v in detail(client, slug="blue-mug")["variants"]] == ["MUG-1"]
    assert [v["sku"] for v in detail(client, slug="tea-cup")["variants"]] == ["CUP-1", "MUG-2"]


def test_an_image_moved_to_another_product_leaves_the_old_products_detail(
    client, shirt, django_capture_on_commit_callbacks
):
    # given
    image = ProductImage.objects.create(
        product=shirt, image=SimpleUploadedFile("front.gif", GIF), alt_text="front"
    )
    product_make(name="Tea cup", skus=("CUP-1",))
    warm(client)
    warm(client, slug="tea-cup")

    # when
    with django_capture_on_commit_callbacks(execute=True):
        image.product = Product.objects.get(slug="tea-cup")
        image.save()

    # then
    assert detail(client)["images"] == []
    assert [i["alt_text"] for i in detail(client, slug="tea-cup")["images"]] == ["front"]


@pytest.mark.django_db(transaction=True)
def test_an_image_deleted_while_its_storage_fails_is_gone_from_the_next_read(
    client, shirt, monkeypatch
):
    # given: a cached product with an image, and a storage that stops answering
    image = ProductImage.objects.create(
        product=shirt, image=SimpleUploadedFile("front.gif", GIF), alt_text="front"
    )
    warm(client)

    def unreachable(self, name):
        raise OSError("storage unreachable")

    monkeypatch.setattr(FileSystemStorage, "delete", unreachable)

    # when: staff delete the image; the file's delete after the commit fails
    ProductImage.objects.get(pk=image.pk).delete()

    # then: the failure is the storage's alone: the pages drop the image at once
    assert detail(client)["images"] == []
    assert client.get("/api/v1/products").json()["items"][0]["images"] == []


def test_received_stock_shows_on_the_next_read(client, shirt, django_capture_on_commit_callbacks):
    # given
    warm(client)

    # when
    with django_capture_on_commit_callbacks(execute=True):
        stock_receive(variant=shirt.variants.get(), warehouse=warehouse_main(), quantity=3)

    # then
    assert detail(client)["variants"][0]["available"] == 8
    assert listed(client)[0]["variants"][0]["available"] == 8


def test_deactivated_product_leaves_detail_and_pages(
    client, shirt, django_capture_on_commit_callbacks
):
    # given
    warm(client)

    # when
    with django_capture_on_commit_callbacks(execute=True):
        shirt.is_active = False
        shirt.save()

    # then
    assert client.get("/api/v1/products/linen-shirt").status_code == 404
    assert listed(client) == []


def test_renamed_category_shows_in_its_products(client, django_capture_on_commit_callbacks):
    # given
    category = baker.make(Category, name="Shirts", slug="shirts")
    product_make(name="Linen shirt", category=category, skus=("S-1",))
    warm(client)

    # when
    with django_capture_on_commit_callbacks(execute=True):
        category.slug = "tops"
        category.save()

    # then
    assert detail(client)["category"] == "tops"
    assert client.get("/api/v1/categories").json()[0]["slug"] == "tops"


def test_collection_membership_invalidates_its_products(
    client, shirt, django_capture_on_commit_callbacks
):
    # given
    warm(client)
    collection = baker.make(Collection, name="Summer", slug="summer")
    version_key = f"sf:product:version:{shirt.pk}"
    before = cache.get(version_key)

    # when
    with django_capture_on_commit_callbacks(execute=True):
        collection.products.add(shirt)

    # then
    assert cache.get(version_key) != before


def test_rolled_back_change_schedules_and_invalidates_nothing(
    client, shirt, django_capture_on_commit_callbacks
):
    # given
    warm(client)
    version_key = f"sf:product:version:{shirt.pk}"
    before = (cache.get(version_key), cache.get(read_cache.LIST_GENERATION_KEY))

    # when
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        try:
            with transaction.atomic():
                shirt.name = "Never"
                shirt.save()
                stock_receive(variant=shirt.variants.get(), warehouse=warehouse_main(), quantity=1)
                raise RuntimeError("abandon")
        except RuntimeError:
            pass

    # then
    assert callbacks == []
    assert (cache.get(version_key), cache.get(read_cache.LIST_GENERATION_KEY)) == before
    assert detail(client)["name"] == "Linen shirt"
    assert detail(client)["variants"][0]["available"] == 5


def test_fixture_loading_leaves_the_cache_alone(shirt, django_capture_on_commit_callbacks):
    # given
    from django.db.models.signals import post_save

    # when
    with django_capture_on_commit_callbacks() as callbacks:
        post_save.send(sender=Product, instance=shirt, created=False, raw=True)

    # then
    assert callbacks == []


def test_product_endpoints_answer_from_the_database_with_redis_down(
    client, shirt, caplog, monkeypatch
):
    # given
    caplog.set_level(logging.WARNING, logger="stockwire.cache")
    monkeypatch.setattr(read_cache, "_outage", False)

    # when
    with override_settings(CACHES=CACHE_DOWN):
        responses = [
            client.get("/api/v1/products"),
            client.get("/api/v1/products/linen-shirt"),
            client.get("/api/v1/categories"),
            client.get("/api/v1/products/linen-shirt"),
        ]

    # then
    assert [response.status_code for response in responses] == [200, 200, 200, 200]
    assert responses[1].json()["variants"][0]["available"] == 5
    outage_lines = [r for r in caplog.records if r.name == "stockwire.cache"]
    assert len(outage_lines) == 1  # once per outage, not once per request
    assert "read cache unavailable" in outage_lines[0].getMessage()


@pytest.mark.parametrize("first_read", ["detail", "page"])
def test_change_committed_while_redis_was_down_shows_once_it_is_back(
    client, shirt, monkeypatch, django_capture_on_commit_callbacks, first_read
):
    # given
    monkeypatch.setattr(read_cache, "_outage", False)
    warm(client)
    with override_settings(CACHES=CACHE_DOWN), django_capture_on_commit_callbacks(execute=True):
        shirt.name = "Hemp shirt"
        shirt.save()  # its invalidation cannot reach the cache
    assert read_cache._outage is True

    # when (Redis, with its old entries, answers again): the first read after the outage
    # fetches the old epoch and the old entry in one MGET
    if first_read == "detail":
        product, page = detail(client), listed(client)
    else:
        page, product = listed(client), detail(client)

    # then
    assert product["name"] == "Hemp shirt"
    assert page[0]["name"] == "Hemp shirt"
    assert read_cache._outage is False


def test_placed_and_cancelled_orders_show_in_availability_on_the_next_read(
    client, shirt, django_capture_on_commit_callbacks
):
    # given
    warm(client)
    customer = customer_for_user(user=user_with_token()[0])

    # when
    with django_capture_on_commit_callbacks(execute=True):
        order = order_place(
            customer=customer,
            lines=[LineRequest(sku="SHIRT-M", quantity=2)],
            shipping_address=ADDRESS,
        )
    after_order = (detail(client), listed(client))
    with django_capture_on_commit_callbacks(execute=True):
        order_cancel(order=order)

    # then
    assert after_order[0]["variants"][0]["available"] == 3
    assert after_order[1][0]["variants"][0]["available"] == 3
    assert detail(client)["variants"][0]["available"] == 5
    assert listed(client)[0]["variants"][0]["available"] == 5


# --- Pages while orders come in: a stock movement rebuilds only the pages showing it ---------


def category_page(client, slug, **params):
    return client.get("/api/v1/products", {"category": slug, **params})


def hats(quantity: int) -> LineRequest:
    return LineRequest(sku="HAT-1", quantity=quantity)


@pytest.fixture
def two_categories():
    """A shirt under `shirts` and a hat under `hats`: each category's page shows one product."""
    shirts = baker.make(Category, name="Shirts", slug="shirts")
    hats = baker.make(Category, name="Hats", slug="hats")
    shirt = product_make(name="Linen shirt", category=shirts, skus=("SHIRT-M",), on_hand=5)
    hat = product_make(name="Straw hat", category=hats, skus=("HAT-1",), on_hand=5)
    return shirt, hat


def page_cached_with_its_products(client, **params) -> None:
    """Store a page with its products' versions. They are read before the database, from the
    products of the page's previous entry: the first build has none, so it is stored without
    them and rebuilt at the next stock movement (here one that moves nothing), which stores
    them."""
    client.get("/api/v1/products", params)
    read_cache.stock_invalidate(product_ids=[], in_stock_may_have_changed=False)
    client.get("/api/v1/products", params)


def test_a_sale_leaves_pages_without_the_sold_product_cached(
    client, two_categories, django_capture_on_commit_callbacks, django_assert_num_queries
):
    # given
    page_cached_with_its_products(client, category="shirts")
    page_cached_with_its_products(client, category="hats")
    customer = customer_for_user(user=user_with_token()[0])

    # when
    with django_capture_on_commit_callbacks(execute=True):
        order_place(customer=customer, lines=[hats(2)], shipping_address=ADDRESS)

    # then: the shirts' page is still served from the cache, the hats' page shows the sale
    with django_assert_num_queries(0):
        shirts = category_page(client, "shirts").json()["items"]
    assert shirts[0]["variants"][0]["available"] == 5
    assert category_page(client, "hats").json()["items"][0]["variants"][0]["available"] == 3


def test_a_page_revalidated_after_an_unrelated_sale_costs_one_round_trip_again(
    client, two_categories, cache_calls, django_assert_num_queries
):
    # given
    _, hat = two_categories
    page_cached_with_its_products(client, category="shirts")

    # when: stock moves for the hat only
    read_cache.stock_invalidate(product_ids=[hat.pk], in_stock_may_have_changed=False)
    cache_calls.clear()
    with django_assert_num_queries(0):
        category_page(client, "shirts")
    revalidated = list(cache_calls)
    cache_calls.clear()
    category_page(client, "shirts")

    # then: versions and entry, the shirt's version, the entry marked current; then one MGET
    assert revalidated == ["get_many", "get_many", "set"]
    assert cache_calls == ["get_many"]


def test_a_page_rebuilt_after_a_catalog_change_stays_cached_through_other_sales(
    client, two_categories, django_assert_num_queries, django_capture_on_commit_callbacks
):
    # given: a page stored with its products' versions, then any product renamed (every list
    # is rebuilt: which products a page holds, and their order, may have changed)
    _, hat = two_categories
    page_cached_with_its_products(client, category="shirts")
    with django_capture_on_commit_callbacks(execute=True):
        hat.name = "Panama hat"
        hat.save()
    category_page(client, "shirts")

    # when
    read_cache.stock_invalidate(product_ids=[hat.pk], in_stock_may_have_changed=False)

    # then: the rebuild read the shirt's version before the database, so the page stays
    with django_assert_num_queries(0):
        shirts = category_page(client, "shirts").json()["items"]
    assert [product["name"] for product in shirts] == ["Linen shirt"]


# The first in-stock product by name: the shirt, while the hat (after it) may sell out.
FIRST_IN_STOCK = {"in_stock": "true", "limit": 1}


def first_in_stock(client) -> tuple[list[str], int]:
    page = client.get("/api/v1/products", FIRST_IN_STOCK).json()
    return [product["name"] for product in page["items"]], page["count"]


def test_a_page_filtered_by_availability_stays_cached_until_a_product_sells_out(
    client, two_categories, django_capture_on_commit_callbacks, django_assert_num_queries
):
    # given a page that shows the shirt only, stored with its products' versions
    page_cached_with_its_products(client, **FIRST_IN_STOCK)
    customer = customer_for_user(user=user_with_token()[0])

    # when hats sell and some are left
    with django_capture_on_commit_callbacks(execute=True):
        order_place(customer=customer, lines=[hats(2)], shipping_address=ADDRESS)

    # then the page is served from the cache
    with django_assert_num_queries(0):
        assert first_in_stock(client) == (["Linen shirt"], 2)

    # when the last hats sell, then the page counts one product in stock
    with django_capture_on_commit_callbacks(execute=True):
        order_place(customer=customer, lines=[hats(3)], shipping_address=ADDRESS)
    assert first_in_stock(client) == (["Linen shirt"], 1)


def test_a_page_filtered_by_availability_follows_a_product_coming_back(
    client, two_categories, django_capture_on_commit_callbacks
):
    # given the hats sold out, and a page that shows the shirt only, stored with its versions
    customer = customer_for_user(user=user_with_token()[0])
    with django_capture_on_commit_callbacks(execute=True):
        order = order_place(customer=customer, lines=[hats(5)], shipping_address=ADDRESS)
    page_cached_with_its_products(client, **FIRST_IN_STOCK)
    sold_out = first_in_stock(client)
    everything_in_stock = client.get("/api/v1/products", {"in_stock": "true"}).json()["items"]

    # when the order is cancelled
    with django_capture_on_commit_callbacks(execute=True):
        order_cancel(order=order)

    # then
    assert sold_out == (["Linen shirt"], 1)
    assert [product["name"] for product in everything_in_stock] == ["Linen shirt"]
    assert first_in_stock(client) == (["Linen shirt"], 2)


@pytest.mark.parametrize("cached_before", [True, False], ids=["rebuild", "first-fill"])
def test_stock_committed_while_a_page_is_built_from_older_data_shows_on_the_next_read(
    client, two_categories, monkeypatch, django_capture_on_commit_callbacks, cached_before
):
    # given: a page that must be built (again), and a receipt of 3 shirts that commits while
    # the build holds the availability it read just before
    shirt, _ = two_categories
    if cached_before:
        page_cached_with_its_products(client, category="shirts")
        read_cache.stock_invalidate(product_ids=[shirt.pk], in_stock_may_have_changed=False)
    real_availability = inventory_selectors.availability_by_variant

    def availability_then_a_concurrent_receipt(**kwargs):
        monkeypatch.setattr(inventory_selectors, "availability_by_variant", real_availability)
        read = real_availability(**kwargs)
        with django_capture_on_commit_callbacks(execute=True):
            stock_receive(variant=shirt.variants.get(), warehouse=warehouse_main(), quantity=3)
        return read

    monkeypatch.setattr(
        inventory_selectors, "availability_by_variant", availability_then_a_concurrent_receipt
    )

    # when
    built_before_the_receipt = category_page(client, "shirts").json()["items"]
    next_read = category_page(client, "shirts").json()["items"]

    # then: the page built from the older data is never served again
    assert built_before_the_receipt[0]["variants"][0]["available"] == 5
    assert next_read[0]["variants"][0]["available"] == 8


def test_a_warehouse_closed_or_reopened_shows_in_availability_on_the_next_read(
    client, shirt, django_capture_on_commit_callbacks
):
    # given detail, page and in-stock page cached
    warm(client)
    page_cached_with_its_products(client, in_stock="true")
    warehouse = warehouse_main()

    def in_stock():
        return client.get("/api/v1/products", {"in_stock": "true"}).json()["items"]

    # when staff close the only warehouse holding the shirt
    with django_capture_on_commit_callbacks(execute=True):
        warehouse.is_active = False
        warehouse.save()
    closed = detail(client), listed(client), in_stock()
    with django_capture_on_commit_callbacks(execute=True):
        warehouse.is_active = True
        warehouse.save()

    # then
    assert closed[0]["variants"][0]["available"] == 0
    assert closed[1][0]["variants"][0]["available"] == 0
    assert closed[2] == []
    assert detail(client)["variants"][0]["available"] == 5
    assert listed(client)[0]["variants"][0]["available"] == 5
    assert in_stock()[0]["variants"][0]["available"] == 5


def test_a_sell_out_whose_invalidation_was_lost_shows_once_the_in_stock_generation_expires(
    client, two_categories
):
    # given a page that shows the shirt only, stored with its versions, and the hats sold out
    # by a process whose invalidation said nothing of it (a release before the in-stock
    # generation, during a rolling deploy)
    _, hat = two_categories
    page_cached_with_its_products(client, **FIRST_IN_STOCK)
    customer = customer_for_user(user=user_with_token()[0])
    order_place(customer=customer, lines=[hats(5)], shipping_address=ADDRESS)
    read_cache.stock_invalidate(product_ids=[hat.pk], in_stock_may_have_changed=False)
    until_it_expires = first_in_stock(client)

    # when the in-stock generation expires
    cache.delete(read_cache.IN_STOCK_GENERATION_KEY)

    # then
    assert until_it_expires == (["Linen shirt"], 2)
    assert first_in_stock(client) == (["Linen shirt"], 1)
