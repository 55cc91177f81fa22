"""Blank slugs and SKUs are filled from names, uniquely, even when two saves race."""

import time
from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction
from model_bakery import baker

from catalog.models import Category, Collection, Product, Variant
from catalog.services import save_with_unique_slug


@pytest.mark.django_db
def test_blank_slugs_are_filled_from_the_name():
    # when
    category = Category.objects.create(name="Hats & Caps")
    product = Product.objects.create(name="Wool Beanie", category=category)
    collection = Collection.objects.create(name="Winter 2026")

    # then
    assert (category.slug, product.slug, collection.slug) == (
        "hats-caps",
        "wool-beanie",
        "winter-2026",
    )


@pytest.mark.django_db
def test_a_taken_slug_gets_the_next_free_number():
    # given
    Product.objects.create(name="Mug")
    Product.objects.create(name="Mug")

    # when
    third = Product.objects.create(name="Mug")

    # then
    assert sorted(Product.objects.values_list("slug", flat=True)) == ["mug", "mug-2", "mug-3"]
    assert third.slug == "mug-3"


@pytest.mark.django_db
def test_a_chosen_slug_is_kept_and_a_name_without_letters_still_gets_one():
    # when
    chosen = Product.objects.create(name="Anything", slug="my-choice")
    symbols = Product.objects.create(name="!!!")

    # then
    assert chosen.slug == "my-choice"
    assert symbols.slug == "product"


@pytest.mark.django_db
def test_a_blank_sku_is_filled_from_product_and_variant_name():
    # given
    product = Product.objects.create(name="Linen Shirt")

    # when
    first = Variant.objects.create(product=product, name="Blue / M", price=Decimal("39.00"))
    second = Variant.objects.create(product=product, name="Blue / M", price=Decimal("39.00"))
    bare = Variant.objects.create(product=product, price=Decimal("39.00"))

    # then
    assert (first.sku, second.sku, bare.sku) == (
        "LINEN-SHIRT-BLUE-M",
        "LINEN-SHIRT-BLUE-M-2",
        "LINEN-SHIRT",
    )


@pytest.mark.django_db
def test_an_overlong_name_gives_a_slug_that_fits_its_column():
    # when
    product = Product.objects.create(name="x" * 200)
    again = Product.objects.create(name="x" * 200)

    # then
    max_length = Product._meta.get_field("slug").max_length
    assert len(product.slug) <= max_length
    assert again.slug == f"{product.slug}-2"


@pytest.mark.django_db
def test_save_with_unique_slug_raises_when_a_chosen_slug_is_taken():
    # given
    baker.make(Product, name="Original", slug="taken")

    # when / then
    with pytest.raises(IntegrityError):
        save_with_unique_slug(instance=Product(name="Copy", slug="taken"))
    assert Product.objects.filter(slug="taken").count() == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_products_with_one_name_saved_concurrently_get_distinct_slugs(run_concurrently):
    # given two transactions that both see "lamp" free and then hold their insert open
    def create(index: int) -> str:
        with transaction.atomic():
            product = save_with_unique_slug(instance=Product(name="Lamp"))
            time.sleep(0.3)
        return product.slug

    # when
    results = run_concurrently(create, count=2)

    # then the second insert hit the unique constraint, was retried and took the next slug
    assert sorted(results) == ["lamp", "lamp-2"]
    assert sorted(Product.objects.values_list("slug", flat=True)) == ["lamp", "lamp-2"]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_without_the_retry_the_same_race_fails_on_the_unique_constraint(run_concurrently):
    # given the same race through a plain save (what the retry exists for)
    def create(index: int) -> str:
        with transaction.atomic():
            product = Product.objects.create(name="Lamp")
            time.sleep(0.3)
        return product.slug

    # when
    results = run_concurrently(create, count=2)

    # then exactly one insert won
    assert sum(isinstance(result, IntegrityError) for result in results) == 1
    assert list(Product.objects.values_list("slug", flat=True)) == ["lamp"]
