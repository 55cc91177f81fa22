"""Stock actions and pages: receive and adjust through the services, with the ledger to show."""

import pytest

from audit.models import AuditEntry
from inventory.models import MovementReason, StockLevel, StockMovement
from inventory.services import MAX_UNITS
from tests.admin.client import LEVELS_URL, messages_of, run_action
from tests.admin_shop import (
    order_placed,
    staff_user,
    variant_stocked,
    warehouse_main,
)

pytestmark = pytest.mark.django_db


def test_receive_action_adds_units_and_writes_the_ledger_row(client):
    # given
    variant = variant_stocked(on_hand=2)
    level = StockLevel.objects.get(variant=variant)
    user = staff_user("warehouse")
    client.force_login(user)

    # when
    page = run_action(client, LEVELS_URL, "receive_stock", [level])
    response = run_action(
        client,
        LEVELS_URL,
        "receive_stock",
        [level],
        apply="Receive",
        quantity=7,
        reason="Supplier delivery",
        reference="PO-42",
        note="pallet 3",
    )

    # then
    assert page.status_code == 200
    assert messages_of(response) == [
        "MUG-BLUE — Product MUG-BLUE — Main warehouse received: 9 on hand, 9 available."
    ]
    level.refresh_from_db()
    assert level.on_hand == 9
    receipt = StockMovement.objects.filter(level=level).first()
    assert (receipt.reason, receipt.on_hand_delta, receipt.reference) == (
        MovementReason.RECEIPT,
        7,
        "PO-42",
    )
    assert receipt.note == "Supplier delivery: pallet 3"
    assert receipt.actor == user


@pytest.mark.parametrize(
    ("action", "apply", "quantity", "reason"),
    [
        ("receive_stock", "Receive", 0, "Other"),
        # beyond what the stock columns hold
        ("receive_stock", "Receive", 10**12, "Supplier delivery"),
        ("adjust_stock", "Adjust", -(10**12), "Lost or stolen"),
    ],
)
def test_stock_forms_refuse_a_quantity_out_of_range_and_change_nothing(
    client, action, apply, quantity, reason
):
    # given
    variant = variant_stocked(on_hand=2)
    level = StockLevel.objects.get(variant=variant)
    client.force_login(staff_user("warehouse"))

    # when
    response = run_action(
        client, LEVELS_URL, action, [level], apply=apply, quantity=quantity, reason=reason, note=""
    )

    # then
    assert response.status_code == 200
    assert "quantity" in response.context["form"].errors
    level.refresh_from_db()
    assert level.on_hand == 2


def test_receive_action_that_would_overflow_the_level_says_so_and_changes_nothing(client):
    # given
    variant = variant_stocked(on_hand=2)
    level = StockLevel.objects.get(variant=variant)
    movements = StockMovement.objects.count()
    client.force_login(staff_user("warehouse"))

    # when: the largest quantity the form takes, onto units already there
    response = run_action(
        client,
        LEVELS_URL,
        "receive_stock",
        [level],
        apply="Receive",
        quantity=MAX_UNITS,
        reason="Supplier delivery",
        note="",
    )

    # then
    assert messages_of(response) == [
        "MUG-BLUE — Product MUG-BLUE — Main warehouse not received: "
        f"receiving {MAX_UNITS} would put more than {MAX_UNITS} units on hand"
    ]
    level.refresh_from_db()
    assert level.on_hand == 2
    assert StockMovement.objects.count() == movements


def test_adjust_action_refuses_to_go_below_reserved_and_says_so(client):
    # given
    variant = variant_stocked(on_hand=5)
    order_placed(variant=variant, quantity=4)
    level = StockLevel.objects.get(variant=variant)
    client.force_login(staff_user("warehouse"))

    # when
    response = run_action(
        client,
        LEVELS_URL,
        "adjust_stock",
        [level],
        apply="Adjust",
        quantity=-3,
        reason="Damaged",
        note="",
    )

    # then
    assert messages_of(response) == [
        "MUG-BLUE — Product MUG-BLUE — Main warehouse not adjusted: "
        "adjusting by -3 would leave fewer units on hand than are reserved and unavailable"
    ]
    level.refresh_from_db()
    assert (level.on_hand, level.reserved) == (5, 4)
    assert not StockMovement.objects.filter(level=level, reason=MovementReason.ADJUSTMENT).exists()


def test_adjust_action_removes_damaged_units_with_the_reason(client):
    # given
    variant = variant_stocked(on_hand=5)
    level = StockLevel.objects.get(variant=variant)
    client.force_login(staff_user("manager"))

    # when
    run_action(
        client,
        LEVELS_URL,
        "adjust_stock",
        [level],
        apply="Adjust",
        quantity=-2,
        reason="Damaged",
        note="dropped",
    )

    # then
    level.refresh_from_db()
    assert level.on_hand == 3
    adjustment = StockMovement.objects.get(level=level, reason=MovementReason.ADJUSTMENT)
    assert (adjustment.on_hand_delta, adjustment.note) == (-2, "Damaged: dropped")


def test_receive_page_creates_the_level_of_a_new_warehouse(client):
    # given
    variant = variant_stocked(on_hand=0)
    warehouse = warehouse_main()
    client.force_login(staff_user("warehouse"))

    # when
    response = client.post(
        f"{LEVELS_URL}receive/",
        {
            "variant": variant.pk,
            "warehouse": warehouse.pk,
            "quantity": 12,
            "reason": "Supplier delivery",
            "reference": "",
            "note": "",
        },
    )

    # then
    assert response.status_code == 302
    assert StockLevel.objects.get(variant=variant, warehouse=warehouse).on_hand == 12


def test_receive_page_finds_skus_as_the_user_types(client):
    # given
    variant_stocked(sku="MUG-BLUE", on_hand=0)
    variant_stocked(sku="CAP-RED", on_hand=0)
    client.force_login(staff_user("warehouse"))

    # when
    page = client.get(f"{LEVELS_URL}receive/")
    found = client.get(
        "/admin/autocomplete/",
        {
            "term": "MUG",
            "app_label": "inventory",
            "model_name": "stocklevel",
            "field_name": "variant",
        },
    )

    # then
    assert page.status_code == 200
    assert "admin-autocomplete" in page.content.decode()
    assert [row["text"] for row in found.json()["results"]] == ["MUG-BLUE (MUG-BLUE)"]


def test_low_stock_filter_lists_levels_at_or_below_the_threshold(client):
    # given
    low = variant_stocked(sku="LOW", on_hand=3, threshold=3)
    variant_stocked(sku="PLENTY", on_hand=30, threshold=3)
    client.force_login(staff_user("support"))

    # when
    response = client.get(LEVELS_URL, {"stock": "low"})

    # then
    assert [level.variant_id for level in response.context["cl"].result_list] == [low.pk]
    html = response.content.decode()
    assert "Receive stock" not in html


def test_ledger_is_read_only_and_filterable_by_reason(client):
    # given
    variant = variant_stocked(on_hand=5)
    order_placed(variant=variant, quantity=1)
    client.force_login(staff_user("manager"))

    # when
    receipts = client.get("/admin/inventory/stockmovement/", {"reason__exact": "receipt"})
    by_sku = client.get("/admin/inventory/stockmovement/", {"q": "MUG-BLUE"})
    add = client.get("/admin/inventory/stockmovement/add/")

    # then
    assert receipts.context["cl"].result_count == 1
    assert by_sku.context["cl"].result_count == 2
    assert add.status_code == 403


@pytest.mark.parametrize("count", [1, 12])
def test_stock_confirmation_pages_name_levels_by_sku_product_and_warehouse(
    client, django_assert_max_num_queries, count
):
    # given
    levels = [
        StockLevel.objects.get(variant=variant_stocked(sku=f"NAMED-{index}", on_hand=4))
        for index in range(count)
    ]
    client.force_login(staff_user("warehouse"))

    # when / then: the levels are read with their variant, product and warehouse at once
    for action in ("receive_stock", "adjust_stock"):
        with django_assert_max_num_queries(9):
            page = run_action(client, LEVELS_URL, action, levels)
        listed = [str(level) for level in page.context["objects"]]
        assert listed[-1] == f"NAMED-{count - 1} — Product NAMED-{count - 1} — Main warehouse"
        assert "<li>NAMED-0 — Product NAMED-0 — Main warehouse</li>" in page.content.decode()


def test_a_stock_change_is_named_in_the_audit_trail_by_sku_product_and_warehouse(client):
    # given
    level = StockLevel.objects.get(variant=variant_stocked(sku="MUG-RED", on_hand=4))
    client.force_login(staff_user("manager"))

    # when
    run_action(
        client,
        LEVELS_URL,
        "adjust_stock",
        [level],
        apply="Adjust",
        quantity=-1,
        reason="Damaged",
        note="",
    )

    # then
    entry = AuditEntry.objects.get(
        object_type="inventory.StockLevel", action="stock", changes__on_hand=[4, 3]
    )
    assert entry.object_repr == "MUG-RED — Product MUG-RED — Main warehouse"
    listed = client.get("/admin/audit/auditentry/", {"q": "MUG-RED"})
    assert "MUG-RED — Product MUG-RED — Main warehouse" in listed.content.decode()
