"""The staff API's shipments, partial cancellations and returns, and the order they show."""

import json
import time
from decimal import Decimal

import pytest
from django.core.cache import cache

from inventory.models import StockLevel, StockMovement
from orders.models import Fulfilment, Order
from payments.demo_provider import demo_event
from payments.models import Refund
from tests.orders_helpers import warehouse
from tests.storefront_helpers import (
    FAST_HASHERS,
    client_for,
    order_post,
    product_make,
    signed_webhook,
    staff_with_token,
    user_with_token,
)

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fast_and_fresh(settings, tmp_path):
    settings.PASSWORD_HASHERS = FAST_HASHERS
    settings.MEDIA_ROOT = tmp_path
    cache.clear()


@pytest.fixture
def ada():
    return client_for(user_with_token(email="ada@example.com")[1])


@pytest.fixture
def staff():
    return client_for(staff_with_token()[1])


@pytest.fixture
def paid_order(client, ada):
    """3 of SHIRT-M and 1 of SHIRT-L at 10.00, paid: 40.00 + 4.90 shipping = 44.90."""
    product_make(name="Linen shirt", skus=("SHIRT-M", "SHIRT-L"), price="10.00", on_hand=5)
    order = order_post(
        ada, lines=[{"sku": "SHIRT-M", "quantity": 3}, {"sku": "SHIRT-L", "quantity": 1}]
    ).json()
    event = demo_event(
        order_number=order["number"], amount=order["total"], currency="EUR", event_id="evt_1"
    )
    assert signed_webhook(client, event, timestamp=int(time.time())).status_code == 200
    return order["number"]


LINE = {"sku": "SHIRT-M", "quantity": 1}


def post(client, path: str, body: dict):
    return client.post(path, data=json.dumps(body), content_type="application/json")


def test_staff_create_a_shipment_and_the_order_shows_it(ada, staff, paid_order):
    # when
    response = post(
        staff,
        f"/api/v1/staff/orders/{paid_order}/shipments",
        {
            "lines": [{"sku": "SHIRT-M", "quantity": 2}],
            "warehouse": "main",
            "tracking_number": "TRACK-1",
            "carrier": "UPS",
        },
    )

    # then
    assert response.status_code == 201
    body = response.json()
    assert body["status"] == "partially_shipped"
    assert body["tracking_number"] == "TRACK-1"
    [shipment] = body["shipments"]
    assert (shipment["tracking_number"], shipment["carrier"]) == ("TRACK-1", "UPS")
    assert shipment["shipped_at"]
    assert shipment["lines"] == [{"sku": "SHIRT-M", "quantity": 2, "warehouse": "main"}]
    assert [
        (line["sku"], line["quantity"], line["shipped_quantity"], line["cancelled_quantity"])
        for line in body["lines"]
    ] == [("SHIRT-M", 3, 2, 0), ("SHIRT-L", 1, 0, 0)]

    # and the customer reads the same shipment
    mine = ada.get(f"/api/v1/orders/{paid_order}").json()
    assert mine["shipments"] == body["shipments"]


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"lines": [{"sku": "SHIRT-M", "quantity": 4}]}, 409, "over_shipment"),
        ({"lines": [{"sku": "SHIRT-XL", "quantity": 1}]}, 422, "unknown_sku"),
        (
            {"lines": [{"sku": "SHIRT-M", "quantity": 1}], "warehouse": "moon"},
            422,
            "unknown_warehouse",
        ),
        ({"lines": [{"sku": "SHIRT-M", "quantity": 0}]}, 422, "validation_error"),
        ({"lines": []}, 422, "validation_error"),
        ({"lines": [{"sku": "SHIRT-M", "quantity": "1"}]}, 422, "validation_error"),
    ],
)
def test_a_bad_shipment_answers_a_problem_and_ships_nothing(staff, paid_order, body, status, code):
    # when
    response = post(
        staff, f"/api/v1/staff/orders/{paid_order}/shipments", {"tracking_number": "T-1", **body}
    )

    # then
    assert response.status_code == status
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == code
    assert not Fulfilment.objects.exists()
    assert not StockMovement.objects.filter(reason="shipment").exists()
    assert Order.objects.get(number=paid_order).status == "paid"


def test_over_shipping_names_the_line_and_what_it_has_left(staff, paid_order):
    warehouse("north", priority=50)
    response = post(
        staff,
        f"/api/v1/staff/orders/{paid_order}/shipments",
        {
            "lines": [{"sku": "SHIRT-L", "quantity": 1}],
            "warehouse": "north",
            "tracking_number": "T",
        },
    )
    assert response.status_code == 409
    assert response.json()["lines"] == [{"sku": "SHIRT-L", "requested": 1, "available": 0}]


def test_customers_may_not_create_shipments(ada, paid_order):
    response = post(
        ada,
        f"/api/v1/staff/orders/{paid_order}/shipments",
        {"lines": [{"sku": "SHIRT-M", "quantity": 1}], "tracking_number": "T-1"},
    )
    assert response.status_code == 403
    assert not Fulfilment.objects.exists()


@pytest.mark.parametrize(
    ("role", "action", "body"),
    [
        ("support", "ship", {"tracking_number": "T-1"}),  # support ships nothing
        ("support", "shipments", {"tracking_number": "T-1", "lines": [LINE]}),
        ("warehouse", "cancel-lines", {"lines": [LINE]}),  # nor cancels or refunds the warehouse
        (None, "cancel-lines", {"lines": [LINE]}),  # a staff member holding no role
    ],
)
def test_the_staff_api_grants_what_the_admin_grants_a_role_and_no_more(
    paid_order, role, action, body
):
    # given
    _, token = (
        staff_with_token(email="clerk@example.com", role=role)
        if role
        else user_with_token(email="clerk@example.com", is_staff=True)
    )

    # when
    response = post(client_for(token), f"/api/v1/staff/orders/{paid_order}/{action}", body)

    # then: refused, and the order is as it was
    assert response.status_code == 403
    assert response.json()["code"] == "permission_denied"
    order = Order.objects.get(number=paid_order)
    assert (order.status, order.total) == ("paid", Decimal("44.90"))
    assert not Fulfilment.objects.exists() and not Refund.objects.exists()


def test_the_warehouse_ships_through_the_api_but_may_not_refund_a_return(paid_order):
    # given
    _, token = staff_with_token(email="clerk@example.com", role="warehouse")
    clerk = client_for(token)

    # when
    shipped = post(clerk, f"/api/v1/staff/orders/{paid_order}/ship", {"tracking_number": "T-1"})
    returned = post(clerk, f"/api/v1/staff/orders/{paid_order}/returns", {"lines": [LINE]})

    # then
    assert shipped.status_code == 200
    assert returned.status_code == 403
    assert not Refund.objects.exists()


def test_staff_cancel_units_and_the_order_shows_the_refund(staff, paid_order):
    # when
    response = post(
        staff,
        f"/api/v1/staff/orders/{paid_order}/cancel-lines",
        {"lines": [{"sku": "SHIRT-M", "quantity": 1}], "reason": "faded"},
    )

    # then
    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["subtotal"], body["total"], body["refunded"]) == (
        "paid",
        "30.00",
        "34.90",
        "10.00",
    )
    assert body["lines"][0]["cancelled_quantity"] == 1
    assert body["lines"][0]["line_total"] == "20.00"
    level = StockLevel.objects.get(variant__sku="SHIRT-M")
    assert (level.on_hand, level.reserved) == (5, 2)


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"lines": [{"sku": "SHIRT-M", "quantity": 4}]}, 409, "over_cancellation"),
        ({"lines": [{"sku": "NOPE", "quantity": 1}]}, 422, "unknown_sku"),
        ({"lines": [{"sku": "SHIRT-M", "quantity": -1}]}, 422, "validation_error"),
        ({"reason": "no lines"}, 422, "validation_error"),
    ],
)
def test_a_bad_cancellation_answers_a_problem_and_cancels_nothing(
    staff, paid_order, body, status, code
):
    response = post(staff, f"/api/v1/staff/orders/{paid_order}/cancel-lines", body)
    assert response.status_code == status
    assert response.json()["code"] == code
    order = Order.objects.get(number=paid_order)
    assert (order.status, str(order.total)) == ("paid", "44.90")
    assert not Refund.objects.exists()


def test_staff_take_goods_back_restocked_and_refunded(staff, paid_order):
    # given
    post(staff, f"/api/v1/staff/orders/{paid_order}/ship", {"tracking_number": "T-1"})
    warehouse("returns", priority=90)

    # when
    response = post(
        staff,
        f"/api/v1/staff/orders/{paid_order}/returns",
        {
            "lines": [{"sku": "SHIRT-L", "quantity": 1}],
            "restock_warehouse": "returns",
            "refund_shipping": True,
            "reason": "too small",
        },
    )

    # then
    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["total"], body["refunded"]) == ("shipped", "44.90", "14.90")
    assert body["lines"][1]["returned_quantity"] == 1
    level = StockLevel.objects.get(variant__sku="SHIRT-L", warehouse__code="returns")
    assert (level.on_hand, level.reserved) == (1, 0)


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"lines": [{"sku": "SHIRT-L", "quantity": 2}]}, 409, "over_return"),
        (
            {"lines": [{"sku": "SHIRT-L", "quantity": 1}], "restock_warehouse": "moon"},
            422,
            "unknown_warehouse",
        ),
        (
            {"lines": [{"sku": "SHIRT-L", "quantity": 1}], "refund_shipping": "yes"},
            422,
            "validation_error",
        ),
    ],
)
def test_a_bad_return_answers_a_problem_and_refunds_nothing(staff, paid_order, body, status, code):
    # given
    post(staff, f"/api/v1/staff/orders/{paid_order}/ship", {"tracking_number": "T-1"})

    # when
    response = post(staff, f"/api/v1/staff/orders/{paid_order}/returns", body)

    # then
    assert response.status_code == status
    assert response.json()["code"] == code
    assert not Refund.objects.exists()
    assert not StockMovement.objects.filter(reason="return").exists()


def test_returning_goods_of_an_order_not_shipped_answers_409(staff, paid_order):
    response = post(
        staff,
        f"/api/v1/staff/orders/{paid_order}/returns",
        {"lines": [{"sku": "SHIRT-M", "quantity": 1}]},
    )
    assert response.status_code == 409
    assert response.json()["code"] == "invalid_transition"
    assert not Refund.objects.exists()
