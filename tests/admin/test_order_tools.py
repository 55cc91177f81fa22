"""The order's own pages, a button each on the order page while they apply: ship everything,
create a shipment, mark delivered, cancel the order or some units, resolve a flag, and (from
payments) refund, return and refund."""

from decimal import Decimal

import pytest
from django.urls import reverse

from inventory.models import StockLevel, Warehouse
from inventory.services import stock_receive
from orders.models import Fulfilment, OrderStatus
from orders.services import order_flag, order_mark_delivered, order_ship
from payments.models import Refund
from tests.admin.client import messages_of
from tests.admin_shop import order_paid, order_placed, staff_user, variant_stocked

pytestmark = pytest.mark.django_db


def tool_url(order, slug: str) -> str:
    return reverse("admin:orders_order_tool", args=[order.pk, slug])


@pytest.fixture
def order():
    """3 mugs at 12.50 held in `main`, paid (37.50 + 4.90)."""
    return order_paid(variant=variant_stocked(on_hand=10), quantity=3)


@pytest.mark.parametrize(
    ("role", "links"),
    [
        ("warehouse", ["Ship everything", "Create shipment"]),
        ("support", ["Cancel order", "Cancel units", "Refund"]),
    ],
)
def test_the_order_page_links_the_pages_the_role_may_use(client, order, role, links):
    client.force_login(staff_user(role))
    response = client.get(reverse("admin:orders_order_change", args=[order.pk]))
    assert [label for label, _ in response.context["page_tools"]] == links


def test_the_shipment_page_proposes_the_rest_from_the_warehouse_holding_it(client, order):
    # given
    client.force_login(staff_user("warehouse"))
    line = order.lines.get()

    # when
    response = client.get(tool_url(order, "shipment"))

    # then
    assert response.status_code == 200
    form = response.context["form"]
    assert form.fields[f"units_{line.pk}"].initial == 3
    assert form.fields["warehouse"].initial == Warehouse.objects.get(code="main").pk


def test_a_shipment_made_on_its_page_ships_those_units(client, order):
    # given
    client.force_login(staff_user("warehouse"))
    line = order.lines.get()
    main = Warehouse.objects.get(code="main")

    # when
    response = client.post(
        tool_url(order, "shipment"),
        {
            f"units_{line.pk}": "2",
            "warehouse": str(main.pk),
            "tracking_number": "TRK-1",
            "carrier": "Royal Mail",
        },
    )

    # then
    assert response.status_code == 302
    order.refresh_from_db()
    assert order.status == OrderStatus.PARTIALLY_SHIPPED
    shipment = Fulfilment.objects.get(order=order)
    assert (shipment.tracking_number, shipment.carrier) == ("TRK-1", "Royal Mail")
    assert list(shipment.lines.values_list("quantity", "warehouse__code")) == [(2, "main")]
    assert messages_of(response) == [f"{order.number} shipped in part or whole."]

    # and the order page lists it
    page = client.get(reverse("admin:orders_order_change", args=[order.pk])).content.decode()
    assert "2 × MUG-BLUE from main" in page


@pytest.mark.parametrize(
    ("units", "warehouse_code", "tracking", "field"),
    [
        ("4", "main", "TRK-1", "units"),
        ("1", "north", "TRK-1", "warehouse"),
        ("0", "main", "TRK-1", None),
        ("1", "main", "", "tracking_number"),
    ],
)
def test_a_bad_shipment_form_keeps_the_input_and_ships_nothing(
    client, order, units, warehouse_code, tracking, field
):
    # given: `north` holds nothing of the order, so it is no choice
    Warehouse.objects.create(code="north", name="North", priority=50)
    client.force_login(staff_user("warehouse"))
    line = order.lines.get()
    data = {
        f"units_{line.pk}": units,
        "warehouse": str(Warehouse.objects.get(code=warehouse_code).pk),
        "tracking_number": tracking,
    }

    # when
    response = client.post(tool_url(order, "shipment"), data)

    # then
    assert response.status_code == 200
    form = response.context["form"]
    errors = form.errors.as_data()
    key = {"units": f"units_{line.pk}", None: "__all__"}.get(field, field)
    assert key in errors
    assert form.data[f"units_{line.pk}"] == units
    assert not Fulfilment.objects.exists()
    order.refresh_from_db()
    assert order.status == OrderStatus.PAID


def test_units_cancelled_on_their_page_are_refunded(client, order):
    # given
    client.force_login(staff_user("support"))
    line = order.lines.get()

    # when
    response = client.post(
        tool_url(order, "cancel-units"), {f"units_{line.pk}": "1", "reason": "chipped"}
    )

    # then
    assert response.status_code == 302
    order.refresh_from_db()
    assert (order.status, order.total) == (OrderStatus.PAID, Decimal("29.90"))
    assert Refund.objects.get(order=order).amount == Decimal("12.50")


def test_warehouse_staff_may_not_cancel_units(client, order):
    client.force_login(staff_user("warehouse"))
    line = order.lines.get()
    response = client.post(tool_url(order, "cancel-units"), {f"units_{line.pk}": "1"})
    assert response.status_code == 403
    order.refresh_from_db()
    assert order.total == Decimal("42.40")


def test_goods_returned_on_their_page_are_restocked_and_refunded(client, order):
    # given
    client.force_login(staff_user("warehouse"))
    line = order.lines.get()
    client.post(
        tool_url(order, "shipment"),
        {f"units_{line.pk}": "3", "warehouse": "", "tracking_number": "TRK-1"},
    )
    client.force_login(staff_user("support"))
    main = Warehouse.objects.get(code="main")

    # when
    response = client.post(
        tool_url(order, "return"),
        {f"units_{line.pk}": "1", "restock_warehouse": str(main.pk), "refund_shipping": "on"},
    )

    # then
    assert response.status_code == 302
    assert Refund.objects.get(order=order).amount == Decimal("17.40")
    level = StockLevel.objects.get(variant=line.variant, warehouse=main)
    assert (level.on_hand, level.reserved) == (8, 0)
    page = client.get(reverse("admin:orders_order_change", args=[order.pk])).content.decode()
    assert "17.40 EUR" in page


def test_a_return_beyond_what_shipped_is_refused_on_the_form(client, order):
    # given: nothing of the order shipped
    client.force_login(staff_user("support"))

    # when
    opened = client.get(tool_url(order, "return"))
    posted = client.post(tool_url(order, "return"), {"reason": "nothing shipped"})

    # then: the page is not offered; a form posted anyway is refused, keeping its input
    assert opened.status_code == 302
    assert opened.url == reverse("admin:orders_order_change", args=[order.pk])
    assert messages_of(opened) == [f"Return and refund does not apply to {order.number} now."]
    assert posted.status_code == 200
    assert posted.context["form"].errors["__all__"]
    assert posted.context["form"]["reason"].value() == "nothing shipped"
    assert not Refund.objects.exists()


def test_the_shipment_form_refuses_more_than_the_chosen_warehouse_holds(client):
    # given: 2 of the order's mugs are held in `main`, 1 in `north`
    variant = variant_stocked(on_hand=2)
    north = Warehouse.objects.create(code="north", name="North", priority=50)
    stock_receive(variant=variant, warehouse=north, quantity=5)
    order = order_paid(variant=variant, quantity=3)
    client.force_login(staff_user("warehouse"))
    line = order.lines.get()
    main = Warehouse.objects.get(code="main")

    # when
    response = client.post(
        tool_url(order, "shipment"),
        {f"units_{line.pk}": "3", "warehouse": str(main.pk), "tracking_number": "TRK-1"},
    )

    # then
    assert response.status_code == 200
    assert response.context["form"].errors[f"units_{line.pk}"] == [
        "main holds 2 of these for the order."
    ]
    assert not Fulfilment.objects.exists()


def buttons(client, order) -> list[str]:
    response = client.get(reverse("admin:orders_order_change", args=[order.pk]))
    return [label for label, _url in response.context["page_tools"]]


@pytest.mark.parametrize(
    ("status", "warehouse", "support"),
    [
        ("pending_payment", [], ["Cancel order", "Cancel units"]),
        (
            "paid",
            ["Ship everything", "Create shipment"],
            ["Cancel order", "Cancel units", "Refund"],
        ),
        ("shipped", ["Mark delivered"], ["Refund", "Return and refund"]),
        ("delivered", [], ["Refund", "Return and refund"]),
    ],
)
def test_the_order_page_offers_each_role_the_buttons_its_status_permits(
    client, status, warehouse, support
):
    # given
    variant = variant_stocked()
    order = (
        order_placed(variant=variant)
        if status == "pending_payment"
        else order_paid(variant=variant)
    )
    if status in ("shipped", "delivered"):
        order_ship(order=order, tracking_number="TRK-1")
    if status == "delivered":
        order_mark_delivered(order=order)

    # when / then
    client.force_login(staff_user("warehouse"))
    assert buttons(client, order) == warehouse
    client.force_login(staff_user("support"))
    assert buttons(client, order) == support
    client.force_login(staff_user("manager"))
    assert sorted(buttons(client, order)) == sorted(warehouse + support)


def test_a_flagged_order_offers_support_to_resolve_it_from_its_page(client, order):
    # given
    order_flag(order=order, reason="paid twice")
    client.force_login(staff_user("support"))

    # when
    offered = buttons(client, order)
    empty = client.post(tool_url(order, "resolve"), {"note": ""})
    resolved = client.post(tool_url(order, "resolve"), {"note": "refunded the second charge"})

    # then
    assert "Resolve attention" in offered
    assert empty.status_code == 200
    assert empty.context["form"].errors == {"note": ["This field is required."]}
    assert resolved.status_code == 302
    order.refresh_from_db()
    assert order.needs_attention is False
    assert order.events.get(kind="resolved").note == "refunded the second charge"


def test_warehouse_ships_everything_from_the_order_page_and_an_empty_tracking_number_keeps_the_form(
    client, order
):
    # given
    client.force_login(staff_user("warehouse"))

    # when
    empty = client.post(tool_url(order, "ship"), {"tracking_number": "", "carrier": "DHL"})
    shipped = client.post(tool_url(order, "ship"), {"tracking_number": "TRK-9", "carrier": "DHL"})

    # then: the empty number is refused on the form with the carrier kept; then it ships
    assert empty.status_code == 200
    assert empty.context["form"].errors == {"tracking_number": ["This field is required."]}
    assert empty.context["form"]["carrier"].value() == "DHL"
    assert shipped.status_code == 302
    assert shipped.url == reverse("admin:orders_order_change", args=[order.pk])
    assert messages_of(shipped) == [f"{order.number} shipped."]
    order.refresh_from_db()
    assert (order.status, order.tracking_number) == (OrderStatus.SHIPPED, "TRK-9")


def test_warehouse_marks_a_shipped_order_delivered_from_its_page(client, order):
    # given
    order_ship(order=order, tracking_number="TRK-1")
    client.force_login(staff_user("warehouse"))

    # when
    page = client.get(tool_url(order, "deliver"))
    response = client.post(tool_url(order, "deliver"), {"apply": "Mark delivered"})

    # then
    assert page.status_code == 200
    assert response.status_code == 302
    order.refresh_from_db()
    assert order.status == OrderStatus.DELIVERED


def test_support_cancels_and_refunds_from_the_order_page(client, order):
    # given
    other = order_paid(variant=variant_stocked(sku="MUG-RED"), email="other@example.com")
    client.force_login(staff_user("support"))

    # when
    cancelled = client.post(tool_url(order, "cancel"), {"reason": "customer called"})
    refunded = client.post(tool_url(other, "refund"), {"reason": "arrived broken"})

    # then
    assert (cancelled.status_code, refunded.status_code) == (302, 302)
    order.refresh_from_db()
    other.refresh_from_db()
    assert (order.status, other.status) == (OrderStatus.CANCELLED, OrderStatus.REFUNDED)
    assert order.events.get(kind="cancelled").note == "customer called"
    assert Refund.objects.get(order=other).reason == "arrived broken"


def test_a_tool_form_sent_twice_acts_once_and_says_the_order_changed(client):
    # given: 4 mugs paid, of which the warehouse ships 2 from the shipment page
    order = order_paid(variant=variant_stocked(on_hand=10), quantity=4)
    line = order.lines.get()
    client.force_login(staff_user("warehouse"))
    form = {
        f"units_{line.pk}": "2",
        "warehouse": str(Warehouse.objects.get(code="main").pk),
        "tracking_number": "TRK-1",
        "carrier": "Royal Mail",
        "shown": f"{line.pk}:0:0:0:0",
    }
    assert client.post(tool_url(order, "shipment"), form).status_code == 302

    # when: the same form is sent again (a double click, the back button)
    again = client.post(tool_url(order, "shipment"), form)

    # then: one parcel; the page says why and shows the figures as they are now
    line.refresh_from_db()
    assert Fulfilment.objects.filter(order=order).count() == 1
    assert line.shipped_quantity == 2
    assert again.status_code == 200
    assert "This changed since the page was shown" in again.content.decode()
    assert f'value="{line.pk}:2:0:0:0"' in again.content.decode()


def test_cancel_units_sent_twice_cancels_and_refunds_once(client):
    # given
    order = order_paid(variant=variant_stocked(on_hand=10), quantity=3)
    line = order.lines.get()
    client.force_login(staff_user("support"))
    form = {f"units_{line.pk}": "1", "reason": "one too many", "shown": f"{line.pk}:0:0:0:0"}

    # when
    client.post(tool_url(order, "cancel-units"), form)
    client.post(tool_url(order, "cancel-units"), form)

    # then
    line.refresh_from_db()
    assert line.cancelled_quantity == 1
    assert list(Refund.objects.filter(order=order).values_list("amount", flat=True)) == [
        Decimal("12.50")
    ]


def test_refunding_an_order_with_nothing_left_says_so_instead_of_refunded(client):
    # given: an order refunded once from its page
    order = order_paid(variant=variant_stocked(on_hand=10), quantity=3)
    client.force_login(staff_user("support"))
    first = client.post(tool_url(order, "refund"), {"reason": "customer asked"}, follow=True)
    assert f"{order.number} refunded." in messages_of(first)

    # when: the page's form is sent again
    second = client.post(tool_url(order, "refund"), {"reason": "customer asked"})

    # then: nothing more was refunded, and staff are told so
    assert Refund.objects.filter(order=order).count() == 1
    assert "has nothing left to refund" in second.content.decode()


@pytest.mark.parametrize("object_id", ["abc", "1.5", "SW-ABC123"])
def test_a_tool_page_of_an_id_that_is_no_key_is_not_found(client, object_id):
    client.force_login(staff_user("warehouse"))

    assert client.get(f"/admin/orders/order/{object_id}/tools/ship/").status_code == 404
