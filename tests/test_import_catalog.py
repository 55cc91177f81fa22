"""`manage.py import_catalog`: bulk, idempotent, honest about bad rows and about its signals."""

import datetime
import io
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from model_bakery import baker

from audit.models import AuditAction, AuditEntry
from catalog.models import Category, Product, Variant
from catalog.services import product_search_refresh
from catalog.signals import catalog_changed
from inventory.catalog_csv import catalog_csv_read
from inventory.catalog_import import catalog_import_rows
from inventory.models import StockLevel, StockMovement, StockPolicy, Warehouse
from inventory.selectors import stock_drift
from inventory.services import (
    InvalidStockOperation,
    PolicyValues,
    stock_policies_set,
    stock_reserve,
)
from inventory.signals import stock_changed
from tests.inventory_helpers import Recorder

pytestmark = pytest.mark.django_db

HEADER = "sku,product,variant,category,price,warehouse,on_hand,low_stock_threshold,description\n"
GOOD = (
    HEADER
    + "MUG-1,Stone mug,Blue,Kitchen > Mugs,12.50,main,10,2,Glazed stoneware\n"
    + "MUG-1,Stone mug,Blue,Kitchen > Mugs,12.50,east,4,2,\n"
    + "MUG-2,Stone mug,Green,Kitchen > Mugs,12.50,main,0,2,\n"
    + "TEE-1,Organic tee,M,Clothing,24.00,main,7,,\n"
)


def run_import(tmp_path, text: str, name: str = "catalog.csv") -> tuple[str, str]:
    path = tmp_path / name
    path.write_text(text)
    out, err = io.StringIO(), io.StringIO()
    call_command("import_catalog", str(path), stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def bad_rows_of(tmp_path, text: str, count: int) -> list[str]:
    """Import `text`, which holds `count` bad rows; return the lines reported about them."""
    path = tmp_path / "with-bad-rows.csv"
    path.write_text(text)
    err = io.StringIO()
    with pytest.raises(CommandError, match=f"^{count} bad row"):
        call_command("import_catalog", str(path), "--no-progress", stdout=io.StringIO(), stderr=err)
    return err.getvalue().splitlines()


def test_import_creates_the_catalog_with_categories_warehouses_and_stock(tmp_path):
    # when
    with Recorder(catalog_changed) as catalog, Recorder(stock_changed) as stock:
        out, err = run_import(tmp_path, GOOD)

    # then
    mugs = Category.objects.get(name="Mugs")
    assert mugs.parent.name == "Kitchen"
    assert set(Warehouse.objects.values_list("code", flat=True)) == {"main", "east"}
    mug = Product.objects.get(name="Stone mug")
    assert (mug.slug, mug.category, mug.description) == ("stone-mug", mugs, "Glazed stoneware")
    assert sorted(mug.variants.values_list("sku", "name", "price", "low_stock_threshold")) == [
        ("MUG-1", "Blue", Decimal("12.50"), 2),
        ("MUG-2", "Green", Decimal("12.50"), 2),
    ]
    assert Variant.objects.get(sku="TEE-1").low_stock_threshold == 5  # the default
    levels = {
        (level.variant.sku, level.warehouse.code): level.on_hand
        for level in StockLevel.objects.select_related("variant", "warehouse")
    }
    assert levels == {
        ("MUG-1", "main"): 10,
        ("MUG-1", "east"): 4,
        ("MUG-2", "main"): 0,
        ("TEE-1", "main"): 7,
    }
    assert sorted(StockMovement.objects.values_list("reason", "on_hand_delta")) == [
        ("import", 4),
        ("import", 7),
        ("import", 10),
    ]
    tee = Product.objects.get(name="Organic tee")
    assert [sorted(call["product_ids"]) for call in catalog.calls] == [sorted([mug.pk, tee.pk])]
    assert [call["product_ids"] for call in stock.calls] == [sorted([mug.pk, tee.pk])]
    assert "4 rows" in out and "products 2 created" in out
    assert "100% 4/4 rows" in err
    assert stock_drift() == []
    # written with the rows, the search documents are what the catalog would compute
    assert product_search_refresh(product_ids=[mug.pk, tee.pk]) == 0
    assert "MUG-2" in mug.search_document and "Mugs" in mug.search_document


def test_importing_the_same_file_twice_changes_nothing_the_second_time(tmp_path):
    # given
    run_import(tmp_path, GOOD)
    movements = StockMovement.objects.count()
    stamps = list(Variant.objects.order_by("pk").values_list("updated_at", flat=True))

    # when
    with Recorder(catalog_changed) as catalog, Recorder(stock_changed) as stock:
        out, _ = run_import(tmp_path, GOOD)

    # then
    assert StockMovement.objects.count() == movements
    assert list(Variant.objects.order_by("pk").values_list("updated_at", flat=True)) == stamps
    assert (Product.objects.count(), Variant.objects.count(), Category.objects.count()) == (2, 3, 3)
    assert catalog.calls == [] and stock.calls == []
    assert "products 0 created, 0 updated; SKUs 0 created, 0 updated; 0 stock levels" in out


def test_a_changed_file_writes_only_the_differences(tmp_path):
    # given
    run_import(tmp_path, GOOD)
    changed = GOOD.replace(
        "MUG-1,Stone mug,Blue,Kitchen > Mugs,12.50,main,10",
        "MUG-1,Stone mug,Blue,Kitchen > Mugs,12.50,main,6",
    )
    changed = changed.replace(
        "TEE-1,Organic tee,M,Clothing,24.00", "TEE-1,Organic tee,M,Clothing,26.00"
    )

    # when
    with Recorder(catalog_changed) as catalog:
        out, _ = run_import(tmp_path, changed)

    # then
    assert StockLevel.objects.get(variant__sku="MUG-1", warehouse__code="main").on_hand == 6
    assert StockMovement.objects.order_by("-id").values_list("reason", "on_hand_delta")[0] == (
        "import",
        -4,
    )
    assert Variant.objects.get(sku="TEE-1").price == Decimal("26.00")
    assert catalog.calls == [{"product_ids": [Product.objects.get(name="Organic tee").pk]}]
    assert "SKUs 0 created, 1 updated; 1 stock levels and 0 stock policies changed" in out
    assert stock_drift() == []


def test_an_updating_import_writes_every_changed_field_and_stamps_only_changed_rows(tmp_path):
    # given
    run_import(tmp_path, GOOD)
    before = dict(Variant.objects.values_list("sku", "updated_at"))
    changed = (
        GOOD.replace(
            "MUG-1,Stone mug,Blue,Kitchen > Mugs,12.50", "MUG-1,Stone mug,Sky,Kitchen > Mugs,13.75"
        )
        .replace("main,10,2,Glazed stoneware", "main,10,5,Fired stoneware")
        .replace("east,4,2,", "east,4,5,")
    ).replace(
        "TEE-1,Organic tee,M,Clothing,24.00,main,7,,", "TEE-1,Organic tee,M,Clothing,26.00,main,7,,"
    )

    # when
    run_import(tmp_path, changed)

    # then: every field the file changed is stored, on the rows it changed only
    mug = Variant.objects.select_related("product").get(sku="MUG-1")
    assert (mug.name, mug.price, mug.low_stock_threshold) == ("Sky", Decimal("13.75"), 5)
    assert mug.product.description == "Fired stoneware"
    assert Variant.objects.get(sku="TEE-1").price == Decimal("26.00")
    after = dict(Variant.objects.values_list("sku", "updated_at"))
    assert after["MUG-1"] > before["MUG-1"] and after["TEE-1"] > before["TEE-1"]
    assert after["MUG-2"] == before["MUG-2"]


def test_broken_rows_are_reported_by_line_and_the_good_rows_are_kept(tmp_path):
    # given
    text = (
        HEADER
        + "GOOD-1,Lamp,,Home,30.00,main,3,,\n"  # line 2
        + ",Lamp,,Home,30.00,main,3,,\n"  # line 3: no SKU
        + "BAD-2,Lamp,,Home,abc,main,3,,\n"  # line 4
        + "BAD-3,Lamp,,Home,0,main,3,,\n"  # line 5
        + "BAD-4,Lamp,,Home,30.00,main,-3,,\n"  # line 6
        + "BAD-5,Lamp,,Home,30.00,main,1.5,,\n"  # line 7
        + "BAD-6,Lamp,,Home,30.00\n"  # line 8: too few fields
        + "GOOD-1,Lamp,,Home,30.00,main,4,,\n"  # line 9: same SKU and warehouse again
        + "GOOD-1,Shade,,Home,30.00,east,4,,\n"  # line 10: the SKU belongs to Lamp
        + "BAD-7,Lamp,,Home,30.005,main,3,,\n"  # line 11
        + "BAD-8,Lamp,,Home > ,30.00,main,3,,\n"  # line 12
        + "GOOD-2,Lamp,,Home,31.00,east,0,,\n"  # line 13
    )

    # when
    with pytest.raises(CommandError, match="10 bad row"):
        run_import(tmp_path, text)

    # then
    assert sorted(Variant.objects.values_list("sku", flat=True)) == ["GOOD-1", "GOOD-2"]
    assert StockLevel.objects.get(variant__sku="GOOD-1").on_hand == 3
    assert stock_drift() == []


def test_bad_rows_are_listed_with_their_line_numbers(tmp_path):
    # given
    text = HEADER + "A-1,Lamp,,Home,30.00,main,x,,\n" + "A-2,Lamp,,Home,0,main,1,,\n"

    # when / then
    assert bad_rows_of(tmp_path, text, 2) == [
        "line 2: on_hand must be a whole number >= 0, got 'x'",
        "line 3: price must be greater than 0, got '0'",
    ]
    assert Product.objects.count() == 0


def test_a_header_without_the_required_columns_is_refused_and_nothing_changes(tmp_path):
    with pytest.raises(CommandError, match="bad header: missing on_hand; unknown stock"):
        run_import(tmp_path, "sku,product,variant,category,price,warehouse,stock\nX,Y,,,1,main,1\n")

    assert Product.objects.count() == 0
    assert Warehouse.objects.count() == 0


def test_a_header_naming_a_column_twice_is_refused_and_nothing_changes(tmp_path):
    with pytest.raises(CommandError, match="bad header: named twice on_hand"):
        run_import(
            tmp_path,
            "sku,product,variant,category,price,warehouse,on_hand,on_hand\n"
            "MUG-1,Stone mug,Blue,Kitchen,12.50,main,10,1000\n",
        )

    assert Product.objects.count() == 0


def test_any_row_of_a_product_may_give_its_description_and_a_differing_one_is_bad(tmp_path):
    # given: the description on the product's second row only, and a third that says otherwise
    text = (
        HEADER
        + "MUG-1,Stone mug,Blue,Kitchen,12.50,main,10,2,\n"
        + "MUG-2,Stone mug,Green,Kitchen,12.50,main,5,2,Glazed stoneware\n"
        + "MUG-3,Stone mug,Red,Kitchen,12.50,main,5,2,Painted stoneware\n"
    )

    # when / then
    assert bad_rows_of(tmp_path, text, 1) == [
        "line 4: product 'Stone mug': description differs from line 3"
    ]
    assert Product.objects.get(name="Stone mug").description == "Glazed stoneware"


def test_an_on_hand_below_the_reserved_units_is_reported_not_applied(tmp_path):
    # given
    run_import(tmp_path, GOOD)
    stock_reserve(reference="SW-1", quantities=[(Variant.objects.get(sku="TEE-1").pk, 5)])

    # when
    with pytest.raises(CommandError, match="1 bad row"):
        run_import(
            tmp_path,
            GOOD.replace(
                "TEE-1,Organic tee,M,Clothing,24.00,main,7",
                "TEE-1,Organic tee,M,Clothing,24.00,main,2",
            ),
        )

    # then
    assert StockLevel.objects.get(variant__sku="TEE-1").on_hand == 7
    assert stock_drift() == []


POLICY_HEADER = (
    "sku,product,variant,category,price,warehouse,on_hand,policy,policy_limit,release_date\n"
)
LAUNCH = (
    POLICY_HEADER
    + "LAMP-1,Desk lamp,Black,Home,40.00,main,0,preorder,50,2027-03-01\n"
    + "LAMP-1,Desk lamp,Black,Home,40.00,east,0,preorder,50,2027-03-01\n"
    + "MUG-9,Big mug,,Kitchen,9.00,main,3,backorder,,\n"
    + "TEE-9,Tee,,Clothing,19.00,main,5,,,\n"
)


def policies() -> dict[str, tuple]:
    return {
        policy.variant.sku: (policy.policy, policy.limit, policy.release_date)
        for policy in StockPolicy.objects.select_related("variant")
    }


def test_the_policy_cells_set_each_skus_stock_policy_and_the_same_file_twice_changes_nothing(
    tmp_path,
):
    # when
    with Recorder(stock_changed) as stock:
        out, _ = run_import(tmp_path, LAUNCH)

    # then: a pre-order with its limit and date, a back-order without a limit, a SKU with no
    # policy cells keeps selling what is available (no policy row)
    assert policies() == {
        "LAMP-1": ("preorder", 50, datetime.date(2027, 3, 1)),
        "MUG-9": ("backorder", None, None),
    }
    assert "2 stock policies changed" in out
    policy_signals = [call for call in stock.calls if not call["availability_grew"]]
    assert [call["variant_ids"] for call in policy_signals] == [
        sorted(Variant.objects.filter(sku__in=["LAMP-1", "MUG-9"]).values_list("pk", flat=True))
    ]
    entries = AuditEntry.objects.filter(object_type="inventory.StockPolicy")
    assert sorted(entry.changes["policy"] for entry in entries) == [
        ["deny", "backorder"],
        ["deny", "preorder"],
    ]

    # when: the same file again
    with Recorder(stock_changed) as again:
        out, _ = run_import(tmp_path, LAUNCH)

    # then
    assert "0 stock policies changed" in out
    assert again.calls == []
    assert AuditEntry.objects.filter(object_type="inventory.StockPolicy").count() == 2


def test_an_empty_policy_cell_keeps_the_stored_policy_and_a_new_one_replaces_it(tmp_path):
    # given
    run_import(tmp_path, LAUNCH)

    # when: the lamp is released (deny), the mug's cells are empty
    run_import(
        tmp_path,
        POLICY_HEADER
        + "LAMP-1,Desk lamp,Black,Home,40.00,main,0,deny,,\n"
        + "MUG-9,Big mug,,Kitchen,9.00,main,3,,,\n",
    )

    # then
    assert policies() == {
        "LAMP-1": ("deny", None, None),
        "MUG-9": ("backorder", None, None),
    }


def test_bad_policy_cells_are_row_errors_and_the_good_rows_are_kept(tmp_path):
    # given
    text = (
        POLICY_HEADER
        + "A-1,Lamp,,Home,30.00,main,1,sometimes,,\n"
        + "A-2,Lamp,,Home,30.00,main,1,preorder,10,\n"
        + "A-3,Lamp,,Home,30.00,main,1,,5,\n"
        + "A-4,Lamp,,Home,30.00,main,1,backorder,-1,\n"
        + "A-5,Lamp,,Home,30.00,main,1,preorder,10,31/03/2027\n"
        + "A-6,Lamp,,Home,30.00,main,1,backorder,,\n"
        + "A-6,Lamp,,Home,30.00,east,1,backorder,4,\n"
        + "A-7,Lamp,,Home,30.00,main,1,BackOrder,12,\n"
        + "A-8,Lamp,,Home,30.00,main,1,deny,5,\n"
        + "A-9,Lamp,,Home,30.00,main,1,backorder,,2027-03-31\n"
        + "B-1,Lamp,,Home,30.00,main,1,preorder,10,20270331\n"
        + "B-2,Lamp,,Home,30.00,main,1,preorder,10,2027-02-30\n"
    )

    # when / then
    assert bad_rows_of(tmp_path, text, 10) == [
        "line 2: a policy is one of deny, backorder, preorder",
        "line 3: a pre-order needs a release date and a limit",
        "line 4: policy_limit and release_date need a policy",
        "line 5: policy_limit must be a whole number >= 0, got '-1'",
        "line 6: release_date must be a date like 2027-03-31, got '31/03/2027'",
        "line 8: SKU A-6: policy_limit differs from line 7",
        "line 10: deny takes no policy_limit or release_date",
        "line 11: a release_date is for preorder only",
        "line 12: release_date must be a date like 2027-03-31, got '20270331'",
        "line 13: release_date must be a date like 2027-03-31, got '2027-02-30'",
    ]
    assert policies() == {"A-6": ("backorder", None, None), "A-7": ("backorder", 12, None)}


def test_a_policy_limit_below_the_units_waiting_is_reported_and_the_rest_applied(tmp_path):
    # given: 3 units of MUG-9 wait for stock
    run_import(tmp_path, LAUNCH)
    StockPolicy.objects.filter(variant__sku="MUG-9").update(backordered=3)

    # when
    lines = bad_rows_of(
        tmp_path,
        POLICY_HEADER
        + "MUG-9,Big mug,,Kitchen,9.00,main,3,backorder,2,\n"
        + "TEE-9,Tee,,Clothing,19.00,main,5,backorder,8,\n",
        1,
    )

    # then
    assert lines == ["line 2: 3 units of MUG-9 wait for stock: the limit cannot be lower"]
    assert policies()["MUG-9"] == ("backorder", None, None)
    assert policies()["TEE-9"] == ("backorder", 8, None)


def test_deny_for_a_sku_without_a_policy_writes_nothing_and_a_refusal_is_reported_once(tmp_path):
    # given: 3 units of MUG-9 wait for stock
    run_import(tmp_path, LAUNCH)
    StockPolicy.objects.filter(variant__sku="MUG-9").update(backordered=3)
    entries = AuditEntry.objects.count()

    # when: TEE-9 (no policy) says deny; MUG-9's two rows fall in two batches of one row
    path = tmp_path / "deny.csv"
    path.write_text(
        POLICY_HEADER
        + "TEE-9,Tee,,Clothing,19.00,main,5,deny,,\n"
        + "MUG-9,Big mug,,Kitchen,9.00,main,3,backorder,1,\n"
        + "MUG-9,Big mug,,Kitchen,9.00,east,0,backorder,1,\n"
    )
    rows, errors = catalog_csv_read(path=path)
    report = catalog_import_rows(rows=rows, errors=errors, batch_size=1)

    # then
    assert report.errors == [(3, "3 units of MUG-9 wait for stock: the limit cannot be lower")]
    assert not StockPolicy.objects.filter(variant__sku="TEE-9").exists()
    assert report.policies_changed == 0
    assert AuditEntry.objects.count() == entries


def test_setting_policies_in_bulk_refuses_values_that_make_no_policy():
    variant = baker.make(Variant)
    with pytest.raises(InvalidStockOperation, match="a pre-order needs a release date"):
        stock_policies_set(policies={variant.pk: PolicyValues("preorder", limit=5)})
    assert not StockPolicy.objects.exists()


def test_new_products_get_free_slugs_beside_existing_ones(tmp_path):
    # given
    baker.make(Product, name="Desk lamp", slug="desk-lamp")
    baker.make(Product, name="Old desk lamp", slug="desk-lamp-2")

    # when
    run_import(
        tmp_path,
        HEADER + "L-1,Desk Lamp,,Home,30.00,main,1,,\n" + "L-2,Desk lamp!,,Home,30.00,main,1,,\n",
    )

    # then
    slugs = dict(Product.objects.values_list("name", "slug"))
    assert slugs["Desk Lamp"] == "desk-lamp-3"
    assert slugs["Desk lamp!"] == "desk-lamp-4"


def test_rows_naming_an_existing_product_extend_it(tmp_path):
    # given
    lamp = baker.make(Product, name="Desk lamp", slug="desk-lamp")

    # when
    run_import(tmp_path, HEADER + "L-9,Desk lamp,Brass,,45.00,main,2,,\n")

    # then
    assert Variant.objects.get(sku="L-9").product == lamp
    assert Product.objects.count() == 1


def test_numbers_beyond_their_columns_are_row_errors_and_the_good_rows_are_kept(tmp_path):
    # given: counts above the largest integer column value, a price beyond its ten digits
    text = (
        HEADER
        + "A-1,Lamp,,Home,30.00,main,5,,\n"
        + "A-2,Lamp,,Home,30.00,main,2147483648,,\n"
        + "A-3,Lamp,,Home,30.00,main,1,99999999999,\n"
        + "A-4,Lamp,,Home,100000000.00,main,1,,\n"
        + "A-5,Lamp,,Home,30.00,main,²,,\n"
        + "A-6,Lamp,,Home,30.00,main,2147483647,,\n"
    )

    # when / then
    assert bad_rows_of(tmp_path, text, 4) == [
        "line 3: on_hand must be at most 2147483647",
        "line 4: low_stock_threshold must be at most 2147483647",
        "line 5: price '100000000.00' is too large",
        "line 6: on_hand must be a whole number >= 0, got '²'",
    ]
    levels = StockLevel.objects.values_list("variant__sku", "on_hand").order_by("variant__sku")
    assert list(levels) == [("A-1", 5), ("A-6", 2147483647)]
    assert stock_drift() == []


def test_rows_after_a_description_of_several_lines_are_reported_by_their_line_in_the_file(
    tmp_path,
):
    # given: a quoted description over lines 2-4, a bad row of two lines from line 6
    text = (
        HEADER
        + 'A-1,Lamp,,Home,30.00,main,5,,"Brass.\nWarm light.\nDimmable."\n'
        + "A-2,Lamp,,Home,-3,main,1,,\n"
        + 'A-3,Lamp,,Home,30.00,main,x,,"Spare\nshade"\n'
        + "\n"
        + "A-4,Lamp,,Home,30.00,main,y,,\n"
    )

    # when / then
    assert bad_rows_of(tmp_path, text, 3) == [
        "line 5: price must be greater than 0, got '-3'",
        "line 6: on_hand must be a whole number >= 0, got 'x'",
        "line 9: on_hand must be a whole number >= 0, got 'y'",
    ]
    assert Product.objects.get().description == "Brass.\nWarm light.\nDimmable."


def test_a_cell_beyond_the_csv_field_limit_refuses_the_file_naming_its_line(tmp_path):
    # given: a description of 200,000 characters, above csv's limit of 131,072
    text = (
        HEADER
        + "A-1,Lamp,,Home,30.00,main,5,,\n"
        + f'A-2,Lamp,,Home,30.00,main,5,,"{"x" * 200_000}"\n'
    )

    # when
    with pytest.raises(
        CommandError, match=r"^cannot read line 3: field larger than field limit \(131072\)$"
    ):
        run_import(tmp_path, text)

    # then
    assert Product.objects.count() == 0


def test_a_nul_character_in_a_cell_is_a_row_error_and_the_good_rows_are_kept(tmp_path):
    # given
    text = (
        HEADER
        + "A-1,Lamp,,Home,30.00,main,5,,\n"
        + "A-\x002,Lamp,,Home,30.00,main,5,,\n"
        + "A-3,Lamp,,Home,30.00,main,5,,Brass\x00\n"
    )

    # when / then
    assert bad_rows_of(tmp_path, text, 2) == [
        "line 3: sku holds a NUL character",
        "line 4: description holds a NUL character",
    ]
    assert list(Variant.objects.values_list("sku", flat=True)) == ["A-1"]
    assert StockLevel.objects.get().on_hand == 5


def test_the_import_records_created_and_changed_products_and_variants_in_the_audit_trail(
    tmp_path,
):
    # given
    run_import(
        tmp_path,
        HEADER + "A-1,Lamp,,Home,30.00,main,5,2,Brass\n" + "A-2,Lamp,Tall,Home,40.00,main,1,,\n",
        "one.csv",
    )
    lamp, home = Product.objects.get(), Category.objects.get()
    short, tall = Variant.objects.order_by("sku")
    created = AuditEntry.objects.filter(
        action=AuditAction.CREATE, object_type__in=["catalog.Product", "catalog.Variant"]
    )

    # when prices, a threshold and the description change
    with CaptureQueriesContext(connection) as queries:
        run_import(
            tmp_path,
            HEADER
            + "A-1,Lamp,,Home,32.50,main,5,3,Steel\n"
            + "A-2,Lamp,Tall,Home,41.00,main,1,,\n",
            "two.csv",
        )

    # then the first import recorded the creations with every audited field, as saves do
    assert sorted((e.object_type, e.object_repr, e.changes) for e in created) == [
        (
            "catalog.Product",
            "Lamp",
            {
                "name": [None, "Lamp"],
                "slug": [None, "lamp"],
                "description": [None, "Brass"],
                "category_id": [None, home.pk],
                "is_active": [None, True],
            },
        ),
        (
            "catalog.Variant",
            "A-1",
            {
                "product_id": [None, lamp.pk],
                "sku": [None, "A-1"],
                "name": [None, ""],
                "attributes": [None, {}],
                "price": [None, "30.00"],
                "currency": [None, short.currency],
                "low_stock_threshold": [None, 2],
                "is_active": [None, True],
            },
        ),
        (
            "catalog.Variant",
            "A-2 (Tall)",
            {
                "product_id": [None, lamp.pk],
                "sku": [None, "A-2"],
                "name": [None, "Tall"],
                "attributes": [None, {}],
                "price": [None, "40.00"],
                "currency": [None, tall.currency],
                "low_stock_threshold": [None, 5],
                "is_active": [None, True],
            },
        ),
    ]
    # and the second one the changed fields, before and after, by the system, in one INSERT
    updated = AuditEntry.objects.filter(action=AuditAction.UPDATE).order_by("object_repr")
    assert [(e.actor_label, e.object_id, e.object_repr, e.changes) for e in updated] == [
        (
            "system",
            str(short.pk),
            "A-1",
            {"price": ["30.00", "32.50"], "low_stock_threshold": [2, 3]},
        ),
        ("system", str(tall.pk), "A-2 (Tall)", {"price": ["40.00", "41.00"]}),
        ("system", str(lamp.pk), "Lamp", {"description": ["Brass", "Steel"]}),
    ]
    audit_inserts = [
        query["sql"]
        for query in queries.captured_queries
        if query["sql"].startswith("INSERT") and "audit_auditentry" in query["sql"]
    ]
    assert len(audit_inserts) == 1


def test_an_unchanged_file_records_no_audit_entry(tmp_path):
    # given
    run_import(tmp_path, GOOD)
    entries = AuditEntry.objects.count()

    # when
    run_import(tmp_path, GOOD)

    # then
    assert AuditEntry.objects.count() == entries
