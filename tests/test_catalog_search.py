"""Product search finds by name, description, category and SKU, and stays current."""

from decimal import Decimal

import pytest
from django.db import connection
from model_bakery import baker

from catalog.models import Category, Product, Variant
from catalog.selectors import category_list, priced_skus, product_id_active, product_list
from catalog.services import product_search_refresh
from catalog.signals import catalog_changed


@pytest.fixture
def shop():
    clothing = Category.objects.create(name="Clothing")
    shirts = Category.objects.create(name="Shirts", parent=clothing)
    kitchen = Category.objects.create(name="Kitchen")
    shirt = Product.objects.create(
        name="Linen Shirt", description="Breathable summer cotton blend", category=shirts
    )
    Variant.objects.create(product=shirt, sku="LS-BLU-M", price=Decimal("39.00"))
    mug = Product.objects.create(name="Stoneware Mug", category=kitchen)
    Variant.objects.create(product=mug, sku="MUG-001", price=Decimal("12.00"))
    return {"shirt": shirt, "mug": mug, "clothing": clothing, "shirts": shirts}


def _names(queryset) -> list[str]:
    return [product.name for product in queryset]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "query", ["Linen", "breathable", "Shirts", "LS-BLU-M", "linen summer", "ls-blu-m"]
)
def test_search_finds_a_product_by_name_description_category_or_sku(shop, query):
    assert _names(product_list(query=query)) == ["Linen Shirt"]


@pytest.mark.django_db
def test_search_matching_nothing_returns_nothing(shop):
    assert _names(product_list(query="telescope")) == []


@pytest.mark.django_db
def test_a_category_includes_its_descendants_and_an_unknown_one_nothing(shop):
    assert _names(product_list(category="clothing")) == ["Linen Shirt"]
    assert _names(product_list(category="shirts")) == ["Linen Shirt"]
    assert _names(product_list(category="kitchen")) == ["Stoneware Mug"]
    assert _names(product_list(category="no-such-category")) == []


@pytest.mark.django_db
def test_inactive_products_are_neither_listed_nor_found(shop):
    # given
    shop["mug"].is_active = False
    shop["mug"].save()

    # then
    assert _names(product_list()) == ["Linen Shirt"]
    assert product_id_active(slug="stoneware-mug") is None
    assert priced_skus(skus=["MUG-001", "LS-BLU-M", "NOPE"]).keys() == {"LS-BLU-M"}


@pytest.mark.django_db
def test_a_new_sku_and_a_renamed_category_are_searchable_at_once(shop):
    # when
    Variant.objects.create(product=shop["mug"], sku="MUG-XL", price=Decimal("14.00"))
    shop["shirts"].name = "Tops"
    shop["shirts"].save()

    # then
    assert _names(product_list(query="MUG-XL")) == ["Stoneware Mug"]
    assert _names(product_list(query="Tops")) == ["Linen Shirt"]
    assert "Shirts" not in Product.objects.get(pk=shop["shirt"].pk).search_document


@pytest.mark.django_db
def test_a_deleted_variant_leaves_the_search_document(shop):
    # when
    Variant.objects.get(sku="MUG-001").delete()

    # then
    assert "MUG-001" not in Product.objects.get(pk=shop["mug"].pk).search_document


@pytest.mark.django_db
@pytest.mark.parametrize("new_sku", ["MUG-001", "LS-MUG-1"], ids=["same SKU", "SKU renamed"])
def test_a_variant_moved_to_another_product_is_found_under_that_product_only(shop, new_sku):
    # given: a SKU filed under the wrong product
    variant = Variant.objects.get(sku="MUG-001")

    # when: staff correct its product (the admin's variant page saves it like this)
    variant.product = shop["shirt"]
    variant.sku = new_sku
    variant.save()

    # then
    assert _names(product_list(query=new_sku)) == ["Linen Shirt"]
    assert "MUG-001" not in Product.objects.get(pk=shop["mug"].pk).search_document


@pytest.mark.django_db
def test_catalog_changed_refreshes_documents_written_in_bulk():
    # given products written the way a bulk path writes them: no model signals
    category = Category.objects.create(name="Garden")
    Product.objects.bulk_create(
        [Product(name=f"Planter {n}", slug=f"planter-{n}", category=category) for n in range(3)]
    )
    ids = list(Product.objects.values_list("pk", flat=True))
    assert _names(product_list(query="Garden")) == []

    # when
    catalog_changed.send(sender=Product, product_ids=ids)

    # then
    assert _names(product_list(query="Garden")) == ["Planter 0", "Planter 1", "Planter 2"]


@pytest.mark.django_db
def test_search_refresh_of_a_batch_is_set_based(django_assert_num_queries):
    # given 40 products whose documents are stale
    products = baker.make(Product, _quantity=40, _fill_optional=["description"])
    Product.objects.update(search_document="")
    ids = [product.pk for product in products]

    # then one SELECT of SKUs, one of products, one UPDATE (inside a savepoint pair)
    with django_assert_num_queries(5):
        changed = product_search_refresh(product_ids=ids)
    assert changed == 40
    assert product_search_refresh(product_ids=ids) == 0


@pytest.mark.django_db
def test_listing_a_page_costs_a_fixed_number_of_queries(shop, django_assert_num_queries):
    # given many more products
    for n in range(20):
        product = baker.make(Product, name=f"Bowl {n}", category=shop["shirts"])
        baker.make(Variant, product=product, price=Decimal("5.00"), _quantity=2)

    # then category tree, products, variants, images: whatever the number of products
    with django_assert_num_queries(4):
        page = list(product_list(category="clothing", query="")[:50])
        variants = {product.name: len(product.active_variants) for product in page}
        images = [product.ordered_images for product in page]
        categories = {product.category.slug for product in page}
    assert variants == {"Linen Shirt": 1, **{f"Bowl {n}": 2 for n in range(20)}}
    assert images == [[]] * 21
    assert categories == {"shirts"}


@pytest.mark.django_db
def test_category_list_brings_parents_along(shop, django_assert_num_queries):
    with django_assert_num_queries(1):
        parents = {
            category.slug: category.parent and category.parent.slug for category in category_list()
        }
    assert parents == {"clothing": None, "kitchen": None, "shirts": "clothing"}


@pytest.mark.postgres
@pytest.mark.django_db
def test_postgres_search_uses_the_gin_index(shop):
    # given a planner that would rather not scan (the test table is tiny), and an index whose
    # pending list (GIN's fast update) holds no entries of earlier tests' rolled-back products:
    # the planner costs scanning that list, so enough earlier tests turned it to another index
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SELECT gin_clean_pending_list('catalog_product_search_gin'::regclass)")

    # when
    plan = product_list(query="linen").explain()

    # then
    assert "catalog_product_search_gin" in plan


@pytest.mark.postgres
@pytest.mark.django_db
def test_postgres_reads_a_listing_page_off_the_listing_index_without_sorting(shop):
    # given a planner that would rather neither scan nor sort (the test table is tiny)
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_sort = off")

    # when
    plan = product_list()[40:60].explain()

    # then
    assert "catalog_product_listing" in plan
    assert "Sort" not in plan


@pytest.mark.postgres
@pytest.mark.django_db
def test_postgres_search_stems_words(shop):
    assert _names(product_list(query="shirt")) == ["Linen Shirt"]
    assert _names(product_list(query="blends")) == ["Linen Shirt"]


@pytest.mark.django_db
def test_priced_skus_name_a_nameless_variant_after_its_product_at_its_exact_price():
    # given a variant with its own name and one without
    product = baker.make(Product, name="Stone mug", slug="", is_active=True)
    baker.make(Variant, product=product, sku="MUG-S", name="Small", price=Decimal("9.90"))
    baker.make(Variant, product=product, sku="MUG-L", name="", price=Decimal("12.00"))

    # when
    priced = priced_skus(skus=["MUG-S", "MUG-L", "MUG-S"])

    # then
    assert {sku: (p.name, p.price) for sku, p in priced.items()} == {
        "MUG-S": ("Small", Decimal("9.90")),
        "MUG-L": ("Stone mug", Decimal("12.00")),
    }
    assert str(priced["MUG-L"].price) == "12.00"
