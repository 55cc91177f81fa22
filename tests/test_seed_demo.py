"""`manage.py seed_demo`: a believable shop, the same one however often it runs."""

import io

import pytest
from django.core.management import call_command

from catalog.models import Category, Product, Variant
from inventory.models import StockLevel, StockMovement, Warehouse
from inventory.selectors import stock_drift, variants_low_on_stock

pytestmark = pytest.mark.django_db


def test_seed_demo_builds_a_shop_with_stock_and_some_low_items():
    # when
    call_command("seed_demo", stdout=io.StringIO())

    # then
    assert Product.objects.count() == 50
    assert Variant.objects.count() == 89
    assert list(Warehouse.objects.values_list("code", "priority")) == [("main", 10), ("east", 20)]
    assert Category.objects.filter(parent__name="Kitchen", name="Coffee").exists()
    assert Category.objects.filter(parent__isnull=False).count() == 5
    assert len(variants_low_on_stock()) == 6
    # one import movement per level with stock: the ledger replays to the levels
    assert StockMovement.objects.filter(reason="import").count() == (
        StockLevel.objects.filter(on_hand__gt=0).count()
    )
    assert stock_drift() == []


def test_seed_demo_twice_changes_nothing_the_second_time():
    # given
    call_command("seed_demo", stdout=io.StringIO())
    movements = StockMovement.objects.count()
    out = io.StringIO()

    # when
    call_command("seed_demo", stdout=out)

    # then
    assert out.getvalue() == "demo shop already in place; nothing changed\n"
    assert StockMovement.objects.count() == movements
    assert Product.objects.count() == 50
