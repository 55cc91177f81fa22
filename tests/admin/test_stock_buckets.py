"""Staff work the stock buckets in the admin: holds, safety stock, purchase orders, policies."""

import datetime

import pytest

from inventory import admin as inventory_admin
from inventory.models import PurchaseOrder, StockLevel, StockMovement, StockPolicy, Warehouse
from inventory.services import (
    MAX_UNITS,
    PurchaseUnits,
    purchase_order_close,
    purchase_order_create,
    stock_policy_set,
    stock_receive,
)
from orders.models import OrderLine
from tests.admin.client import LEVELS_URL, action_choices, messages_of, run_action
from tests.admin_shop import order_placed, staff_user, variant_stocked, warehouse_main
from tests.orders_helpers import customer_new, order_new

pytestmark = pytest.mark.django_db

PURCHASE_ORDERS_URL = "/admin/inventory/purchaseorder/"
POLICIES_URL = "/admin/inventory/stockpolicy/"


def test_warehouse_staff_move_damaged_units_to_unavailable_and_back(client):
    # given
    variant = variant_stocked(on_hand=10)
    level = StockLevel.objects.get(variant=variant)
    client.force_login(staff_user("warehouse"))

    # when
    held = run_action(
        client,
        LEVELS_URL,
        "hold_stock",
        [level],
        apply="Move to unavailable",
        quantity=3,
        reason="damaged",
        note="forklift",
    )
    back = run_action(
        client,
        LEVELS_URL,
        "unhold_stock",
        [level],
        apply="Take out of unavailable",
        quantity=1,
        write_off="",
        note="only scratched",
    )

    # then: named by SKU, product and warehouse
    assert messages_of(held) == [
        "MUG-BLUE — Product MUG-BLUE — Main warehouse held: 10 on hand, 3 unavailable, 7 available."
    ]
    assert messages_of(back)[-1].endswith("back for sale: 10 on hand, 2 unavailable, 8 available.")
    assert list(
        StockMovement.objects.filter(level=level)
        .exclude(unavailable_delta=0)
        .order_by("pk")
        .values_list("reason", "unavailable_delta", "note")
    ) == [("damaged", 3, "forklift"), ("hold_released", -1, "only scratched")]
    # and the list shows every bucket
    page = client.get(LEVELS_URL).content.decode()
    for heading in ("Unavailable", "Safety stock", "Incoming", "Available"):
        assert heading in page


def test_a_hold_of_reserved_units_is_refused_with_the_reason_and_changes_nothing(client):
    # given: 2 on hand, both reserved
    variant = variant_stocked(on_hand=2)
    order_placed(variant=variant, quantity=2)
    level = StockLevel.objects.get(variant=variant)
    client.force_login(staff_user("warehouse"))

    # when
    response = run_action(
        client,
        LEVELS_URL,
        "hold_stock",
        [level],
        apply="Move to unavailable",
        quantity=1,
        reason="quality_hold",
        note="batch recall",
    )

    # then
    assert messages_of(response) == [
        "MUG-BLUE — Product MUG-BLUE — Main warehouse not held: MUG-BLUE in main has fewer "
        "than 1 units neither reserved nor unavailable"
    ]
    level.refresh_from_db()
    assert level.unavailable == 0


def test_safety_stock_is_set_per_level_and_support_may_not(client):
    # given
    variant = variant_stocked(on_hand=10)
    level = StockLevel.objects.get(variant=variant)
    client.force_login(staff_user("warehouse"))

    # when
    run_action(
        client,
        LEVELS_URL,
        "set_safety_stock",
        [level],
        apply="Set safety stock",
        quantity=4,
        note="",
    )

    # then
    level.refresh_from_db()
    assert (level.safety_stock, level.available) == (4, 6)
    client.force_login(staff_user("support"))
    assert not {"hold_stock", "unhold_stock", "set_safety_stock"} & action_choices(
        client, LEVELS_URL
    )


def test_a_purchase_order_is_placed_received_in_part_and_closed_short(client):
    # given
    variant = variant_stocked(on_hand=0)
    warehouse = warehouse_main()
    client.force_login(staff_user("warehouse"))

    # when: placed with a pasted line
    placed = client.post(
        f"{PURCHASE_ORDERS_URL}place/",
        {
            "number": "PO-77",
            "supplier": "Potteries Ltd",
            "warehouse": warehouse.pk,
            "expected_on": "2027-05-01",
            "lines": "MUG-BLUE 12\n",
        },
    )

    # then
    purchase_order = PurchaseOrder.objects.get(number="PO-77")
    assert placed.status_code == 302
    level = StockLevel.objects.get(variant=variant)
    assert (level.on_hand, level.incoming) == (0, 12)
    page = client.get(f"{PURCHASE_ORDERS_URL}{purchase_order.pk}/change/").content.decode()
    assert "Receive a delivery" in page and "MUG-BLUE" in page

    # when: 5 delivered, then the rest given up on
    line_field = f"line_{purchase_order.lines.get().pk}"
    client.post(f"{PURCHASE_ORDERS_URL}{purchase_order.pk}/receive/", {line_field: 5, "note": ""})
    client.post(f"{PURCHASE_ORDERS_URL}{purchase_order.pk}/close/", {"note": "discontinued"})

    # then
    level.refresh_from_db()
    purchase_order.refresh_from_db()
    assert (level.on_hand, level.incoming, purchase_order.status) == (5, 0, "closed")
    assert (
        "Receive a delivery"
        not in client.get(f"{PURCHASE_ORDERS_URL}{purchase_order.pk}/change/").content.decode()
    )


def test_a_purchase_order_naming_an_unknown_sku_is_refused_and_nothing_is_written(client):
    # given
    client.force_login(staff_user("warehouse"))

    # when
    response = client.post(
        f"{PURCHASE_ORDERS_URL}place/",
        {
            "number": "PO-78",
            "supplier": "Potteries Ltd",
            "warehouse": warehouse_main().pk,
            "expected_on": "2027-05-01",
            "lines": "NOPE-1 3",
        },
    )

    # then
    assert response.status_code == 200
    assert "Unknown SKU: NOPE-1." in response.content.decode()
    assert not PurchaseOrder.objects.exists()


def test_support_cannot_place_or_receive_purchase_orders(client):
    # given
    client.force_login(staff_user("support"))

    # when
    response = client.get(f"{PURCHASE_ORDERS_URL}place/")

    # then
    assert response.status_code == 403
    assert "inventory.add_purchaseorder" in response.content.decode()


def test_the_manager_sets_a_backorder_policy_and_cannot_limit_it_below_what_waits(client):
    # given: 2 on hand, a back-order of 3 units waiting
    variant = variant_stocked(on_hand=2)
    client.force_login(staff_user("manager"))
    client.post(
        f"{POLICIES_URL}add/",
        {"variant": variant.pk, "policy": "backorder", "limit": "5", "release_date": ""},
    )
    order_placed(variant=variant, quantity=5)
    policy = StockPolicy.objects.get(variant=variant)
    assert (policy.policy, policy.limit, policy.backordered) == ("backorder", 5, 3)

    # when
    response = client.post(
        f"{POLICIES_URL}{variant.pk}/change/",
        {"policy": "backorder", "limit": "2", "release_date": ""},
    )

    # then: the form says why; the limit stays
    assert response.status_code == 200
    policy.refresh_from_db()
    assert policy.limit == 5


def test_reopening_a_warehouse_in_the_admin_serves_the_order_waiting_for_its_units(
    admin_client, django_capture_on_commit_callbacks
):
    # given: 2 mugs in a closed warehouse; an order waits for them
    variant = variant_stocked(on_hand=0)
    north = Warehouse.objects.create(code="north", name="North", priority=5, is_active=False)
    stock_receive(variant=variant, warehouse=north, quantity=2)
    stock_policy_set(variant=variant, policy="backorder")
    order = order_new(customer_new(), (variant.sku, 2))

    # when: staff tick "active" on the warehouse's page
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            f"/admin/inventory/warehouse/{north.pk}/change/",
            {"code": "north", "name": "North", "priority": 5, "is_active": "on"},
        )

    # then: open, and the waiting order has its units
    assert response.status_code == 302
    assert Warehouse.objects.get(pk=north.pk).is_active
    assert OrderLine.objects.get(order=order).backordered_quantity == 0
    assert StockLevel.objects.get(warehouse=north).reserved == 2


@pytest.mark.parametrize("units", ["²", "١٢", "-3", "0", "3.5"])
def test_a_purchase_order_line_with_units_that_are_not_a_plain_number_is_refused(client, units):
    # given
    variant_stocked(on_hand=0)
    client.force_login(staff_user("warehouse"))

    # when
    response = client.post(
        f"{PURCHASE_ORDERS_URL}place/",
        {
            "number": "PO-79",
            "supplier": "Potteries Ltd",
            "warehouse": warehouse_main().pk,
            "expected_on": "2027-05-01",
            "lines": f"MUG-BLUE {units}",
        },
    )

    # then: the form says what is wrong; nothing is written
    assert response.status_code == 200
    assert "Line 1: write the SKU and a number of units." in response.content.decode()
    assert not PurchaseOrder.objects.exists()


def on_order(number: str, variant, units: int) -> PurchaseOrder:
    """A purchase order of `units` of `variant` from Potteries Ltd into main, due in May."""
    return purchase_order_create(
        number=number,
        supplier="Potteries Ltd",
        warehouse=warehouse_main(),
        expected_on=datetime.date(2027, 5, 1),
        lines=[PurchaseUnits(variant.pk, units)],
    )


def _purchase_order_placed(client, number: str, lines: str):
    return client.post(
        f"{PURCHASE_ORDERS_URL}place/",
        {
            "number": number,
            "supplier": "Potteries Ltd",
            "warehouse": warehouse_main().pk,
            "expected_on": "2027-05-01",
            "lines": lines,
        },
    )


def test_a_purchase_order_line_of_thousands_of_digits_is_told_the_limit(client):
    # given
    variant_stocked(on_hand=0)
    client.force_login(staff_user("warehouse"))

    # when: more digits than int() reads
    response = _purchase_order_placed(client, "PO-80", "MUG-BLUE " + "9" * 5000)

    # then
    assert response.status_code == 200
    assert f"Line 1: at most {MAX_UNITS} units." in response.content.decode()
    assert not PurchaseOrder.objects.exists()


def test_units_beyond_what_a_level_holds_are_refused_when_ordered_and_when_received(client):
    # given: a level with the most units incoming it can hold, and one with nearly the most on
    # hand for which 10 units are on order
    full = variant_stocked(sku="MUG-FULL", on_hand=0)
    nearly = variant_stocked(sku="MUG-NEAR", on_hand=MAX_UNITS - 5)
    on_order("PO-81", full, MAX_UNITS)
    due = on_order("PO-82", nearly, 10)
    client.force_login(staff_user("warehouse"))

    # when
    ordered = _purchase_order_placed(client, "PO-83", "MUG-FULL 1")
    received = client.post(
        f"{PURCHASE_ORDERS_URL}{due.pk}/receive/", {f"line_{due.lines.get().pk}": 10, "note": ""}
    )

    # then: each form says why; nothing moved
    assert ordered.status_code == received.status_code == 200
    assert "would have more than" in ordered.content.decode()
    assert "would have more than" in received.content.decode()
    assert not PurchaseOrder.objects.filter(number="PO-83").exists()
    assert StockLevel.objects.get(variant=full).incoming == MAX_UNITS
    near = StockLevel.objects.get(variant=nearly)
    assert (near.on_hand, near.incoming) == (MAX_UNITS - 5, 10)


def test_a_clerk_closing_a_purchase_order_another_clerk_just_closed_is_told_so(client, monkeypatch):
    # given: an open purchase order; a second clerk's page read it open
    variant = variant_stocked(on_hand=0)
    purchase_order = on_order("PO-80", variant, 4)
    client.force_login(staff_user("warehouse"))

    def first_clerk_closes_it_then(**kwargs):
        purchase_order_close(purchase_order=PurchaseOrder.objects.get(pk=purchase_order.pk))
        return purchase_order_close(**kwargs)

    monkeypatch.setattr(inventory_admin, "purchase_order_close", first_clerk_closes_it_then)

    # when
    response = client.post(
        f"{PURCHASE_ORDERS_URL}{purchase_order.pk}/close/", {"note": "never coming"}
    )

    # then: back to the purchase order with the reason, never a 500
    assert response.status_code == 302
    assert messages_of(response) == ["purchase order PO-80 is closed short"]
    assert PurchaseOrder.objects.get(pk=purchase_order.pk).status == "closed"
    assert StockLevel.objects.get(variant=variant).incoming == 0


def test_a_policy_save_refused_after_the_form_allowed_it_says_so_and_changes_nothing(
    client, monkeypatch
):
    # given: back-orders up to 5; 3 wait; the manager lowers the limit to 4 (allowed), but
    # a checkout back-orders 2 more between the form's check and the save
    variant = variant_stocked(on_hand=2)
    stock_policy_set(variant=variant, policy="backorder", limit=5)
    order_placed(variant=variant, quantity=5)
    client.force_login(staff_user("manager"))

    def a_checkout_back_orders_first(**kwargs):
        order_placed(variant=variant, quantity=2)
        return stock_policy_set(**kwargs)

    monkeypatch.setattr(inventory_admin, "stock_policy_set", a_checkout_back_orders_first)

    # when
    response = client.post(
        f"{POLICIES_URL}{variant.pk}/change/",
        {"policy": "backorder", "limit": "4", "release_date": ""},
    )

    # then: back to the form with the reason, never "changed successfully"; the limit stays
    assert response.status_code == 302
    assert response["Location"] == f"{POLICIES_URL}{variant.pk}/change/"
    assert messages_of(response) == [
        "Not saved: 5 units of MUG-BLUE wait for stock: the limit cannot be lower"
    ]
    policy = StockPolicy.objects.get(variant=variant)
    assert (policy.policy, policy.limit, policy.backordered) == ("backorder", 5, 5)


def test_a_delivery_received_twice_from_the_same_page_is_received_once(client):
    # given: 10 mugs on order, 4 delivered and received from the purchase order's page
    variant = variant_stocked(on_hand=0)
    purchase_order = on_order("PO-90", variant, 10)
    line = purchase_order.lines.get()
    client.force_login(staff_user("warehouse"))
    url = f"{PURCHASE_ORDERS_URL}{purchase_order.pk}/receive/"
    form = {f"line_{line.pk}": "4", "note": "DN-1", "shown": f"{line.pk}:0:0"}
    assert client.post(url, form).status_code == 302

    # when: the same delivery note is submitted again
    again = client.post(url, form)

    # then
    level = StockLevel.objects.get(variant=variant)
    assert (level.on_hand, level.incoming) == (4, 6)
    assert "This changed since the page was shown" in again.content.decode()
