"""Catalog pages: a product's price history and thumbnails, and a category tree that cannot loop."""

from decimal import Decimal

import pytest
from django.urls import reverse

from catalog.models import Category, ProductImage
from tests.admin.client import png_upload
from tests.admin_shop import (
    staff_user,
    variant_stocked,
)

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("role", "shown"), [("manager", True), ("support", True), ("warehouse", False)]
)
def test_product_page_shows_its_price_history_to_who_may_read_the_audit_trail(client, role, shown):
    # given: a manager changed a price in the admin (an audit entry naming them, with the diff)
    variant = variant_stocked(sku="CAP-RED", price="15.00")
    manager = staff_user("manager")
    client.force_login(manager)
    client.post(
        reverse("admin:catalog_variant_change", args=[variant.pk]),
        {
            "product": variant.product_id,
            "sku": "CAP-RED",
            "name": "CAP-RED",
            "attributes": "{}",
            "price": "17.00",
            "low_stock_threshold": 3,
            "is_active": "on",
        },
    )
    user = manager if role == "manager" else staff_user(role)
    assert user.has_perm("audit.view_auditentry") is shown
    client.force_login(user)

    # when
    page = client.get(reverse("admin:catalog_product_change", args=[variant.product_id]))

    # then: the variants, and the same rows the audit trail's own list would show or refuse
    html = page.content.decode()
    variant.refresh_from_db()
    assert variant.price == Decimal("17.00")
    assert page.status_code == 200
    assert "CAP-RED" in html
    assert ("15.00 → 17.00" in html) is shown
    assert ("manager@stockwire.example" in html) is shown
    assert ("/admin/audit/auditentry/" in html) is shown


@pytest.mark.parametrize("new_parent", ["itself", "its grandchild"])
def test_category_cannot_be_moved_under_itself_or_its_descendants(client, new_parent):
    # given
    clothes = Category.objects.create(name="Clothes", slug="clothes")
    shirts = Category.objects.create(name="Shirts", slug="shirts", parent=clothes)
    linen = Category.objects.create(name="Linen", slug="linen", parent=shirts)
    client.force_login(staff_user("manager"))
    parent = {"itself": clothes, "its grandchild": linen}[new_parent]

    # when
    response = client.post(
        reverse("admin:catalog_category_change", args=[clothes.pk]),
        {"name": "Clothes", "slug": "clothes", "parent": parent.pk},
    )

    # then
    assert response.status_code == 200  # the form again, with the error
    assert response.context["adminform"].form.errors["parent"] == [
        "A category cannot be placed under itself or one of its own subcategories."
    ]
    clothes.refresh_from_db()
    assert clothes.parent_id is None


def test_category_can_be_moved_under_another_branch(client):
    # given
    clothes = Category.objects.create(name="Clothes", slug="clothes")
    shirts = Category.objects.create(name="Shirts", slug="shirts", parent=clothes)
    sale = Category.objects.create(name="Sale", slug="sale")
    client.force_login(staff_user("manager"))

    # when
    response = client.post(
        reverse("admin:catalog_category_change", args=[shirts.pk]),
        {"name": "Shirts", "slug": "shirts", "parent": sale.pk},
    )

    # then
    assert response.status_code == 302
    shirts.refresh_from_db()
    assert shirts.parent_id == sale.pk


def test_product_page_previews_image_thumbnails(client, settings, tmp_path):
    # given
    settings.MEDIA_ROOT = tmp_path
    variant = variant_stocked(sku="PIC-1")
    ProductImage.objects.create(
        product=variant.product,
        image=png_upload("mug.png"),
        alt_text="a teal mug",
    )
    client.force_login(staff_user("manager"))

    # when
    page = client.get(reverse("admin:catalog_product_change", args=[variant.product_id]))
    listing = client.get("/admin/catalog/product/")

    # then
    assert '<img src="/media/products/' in page.content.decode()
    assert 'alt="a teal mug"' in page.content.decode()
    assert 'alt="a teal mug"' in listing.content.decode()


@pytest.mark.parametrize("attributes", ['{"colour": "blue\\u0000"}', '{"colour\\ud800": "blue"}'])
def test_variant_attributes_the_database_cannot_store_are_a_form_error(client, attributes):
    # given
    variant = variant_stocked(on_hand=0)
    client.force_login(staff_user("manager"))

    # when
    response = client.post(
        reverse("admin:catalog_variant_change", args=[variant.pk]),
        {
            "product": variant.product_id,
            "sku": variant.sku,
            "name": variant.name,
            "attributes": attributes,
            "price": "12.50",
            "low_stock_threshold": 3,
            "is_active": "on",
        },
    )

    # then: the form says so; nothing is saved
    assert response.status_code == 200
    assert "Attributes may not hold" in response.content.decode()
    variant.refresh_from_db()
    assert variant.attributes == {}
