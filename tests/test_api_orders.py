"""POST/GET /orders, cancel, invoice, the payment webhook and the staff ship endpoint over HTTP."""

import importlib
import json
import time
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.db import OperationalError
from django.urls import clear_url_caches
from django.utils import timezone

import config.urls
from catalog.models import Variant
from inventory.models import StockLevel
from orders.models import Order, OrderStatus
from orders.services import counters
from payments.demo_provider import demo_event
from payments.models import Payment
from storefront.models import IdempotencyKey
from storefront.tasks import idempotency_keys_purge_task
from tests.storefront_helpers import (
    ADDRESS,
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
def fast_and_fresh(settings):
    settings.PASSWORD_HASHERS = FAST_HASHERS
    cache.clear()


@pytest.fixture
def shirt():
    return product_make(name="Linen shirt", skus=("SHIRT-M", "SHIRT-L"), price="19.99", on_hand=5)


@pytest.fixture
def ada():
    return client_for(user_with_token(email="ada@example.com")[1])


@pytest.fixture
def bob():
    return client_for(user_with_token(email="bob@example.com")[1])


def paid(client, number: str, amount: str, event_id: str | None = None):
    return signed_webhook(
        client, demo_event(order_number=number, amount=amount, currency="EUR", event_id=event_id)
    )


def test_placing_an_order_answers_201_with_the_contract_order(ada, shirt):
    # when
    response = order_post(ada, lines=[{"sku": "SHIRT-M", "quantity": 2}])

    # then
    assert response.status_code == 201
    body = response.json()
    order = Order.objects.get()
    assert body["number"] == order.number
    assert body["status"] == "pending_payment"
    assert (body["currency"], body["subtotal"], body["shipping"], body["total"]) == (
        "EUR",
        "39.98",
        "4.90",
        "44.88",
    )
    assert body["lines"] == [
        {
            "sku": "SHIRT-M",
            "name": "SHIRT-M",
            "quantity": 2,
            "shipped_quantity": 0,
            "cancelled_quantity": 0,
            "returned_quantity": 0,
            "backordered_quantity": 0,
            "unit_price": "19.99",
            "line_total": "39.98",
        }
    ]
    assert (body["shipments"], body["refunded"]) == ([], "0.00")
    assert body["shipping_address"] == ADDRESS
    assert body["tracking_number"] == ""
    assert body["placed_at"] and body["paid_at"] is None
    assert (body["shipped_at"], body["cancelled_at"]) == (None, None)
    assert response["Cache-Control"] == "private, no-store"


def test_order_without_idempotency_key_answers_400_and_places_nothing(ada, shirt):
    # when
    response = order_post(ada, lines=[{"sku": "SHIRT-M", "quantity": 1}], key=None)

    # then
    assert response.status_code == 400
    assert response.json()["code"] == "idempotency_key_required"
    assert Order.objects.count() == 0


def test_same_key_and_body_answer_the_same_201_without_a_second_order(ada, shirt):
    # given
    first = order_post(ada, lines=[{"sku": "SHIRT-M", "quantity": 1}], key="k-1")

    # when
    again = order_post(ada, lines=[{"sku": "SHIRT-M", "quantity": 1}], key="k-1")

    # then
    assert again.status_code == 201
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    assert Order.objects.count() == 1
    assert StockLevel.objects.get(variant__sku="SHIRT-M").reserved == 1


def test_same_key_with_another_body_answers_422_idempotency_key_reused(ada, shirt):
    # given
    order_post(ada, lines=[{"sku": "SHIRT-M", "quantity": 1}], key="k-1")

    # when
    response = order_post(ada, lines=[{"sku": "SHIRT-M", "quantity": 2}], key="k-1")

    # then
    assert response.status_code == 422
    assert response.json()["code"] == "idempotency_key_reused"
    assert Order.objects.count() == 1


def test_a_repeat_replays_the_first_answer_even_when_the_stock_is_gone_since(ada, bob, shirt):
    # given ada's order, then bob buys what is left of the SKU
    first = order_post(ada, lines=[{"sku": "SHIRT-M", "quantity": 2}], key="k-1")
    assert order_post(bob, lines=[{"sku": "SHIRT-M", "quantity": 3}]).status_code == 201

    # when ada's client repeats its request (its first answer was lost on the way)
    again = order_post(ada, lines=[{"sku": "SHIRT-M", "quantity": 2}], key="k-1")

    # then it gets the first answer, not the 409 a new order would get
    assert again.status_code == 201
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    assert Order.objects.count() == 2
    assert StockLevel.objects.get(variant__sku="SHIRT-M").reserved == 5


def test_a_repeat_replays_the_first_answer_even_when_its_sku_was_withdrawn_since(ada, shirt):
    # given ada's order, then the SKU leaves the catalog
    first = order_post(ada, lines=[{"sku": "SHIRT-M", "quantity": 1}], key="k-1")
    Variant.objects.filter(sku="SHIRT-M").update(is_active=False)

    # when her client repeats the request
    again = order_post(ada, lines=[{"sku": "SHIRT-M", "quantity": 1}], key="k-1")

    # then it gets the first answer, not the 422 unknown_sku a new order would get
    assert again.status_code == 201
    assert again.json() == first.json()
    assert Order.objects.count() == 1


def test_a_reused_key_whose_new_body_is_refused_answers_idempotency_key_reused(ada, shirt):
    # given
    order_post(ada, lines=[{"sku": "SHIRT-M", "quantity": 1}], key="k-1")

    # when the same key comes with another body that would be refused anyway
    response = order_post(ada, lines=[{"sku": "NOPE", "quantity": 1}], key="k-1")

    # then the reuse is what the client hears about
    assert response.status_code == 422
    assert response.json()["code"] == "idempotency_key_reused"
    assert Order.objects.count() == 1


def test_keys_are_per_customer(ada, bob, shirt):
    # given
    order_post(ada, lines=[{"sku": "SHIRT-M", "quantity": 1}], key="k-1")

    # when
    response = order_post(bob, lines=[{"sku": "SHIRT-M", "quantity": 1}], key="k-1")

    # then
    assert response.status_code == 201
    assert Order.objects.count() == 2


def test_out_of_stock_answers_409_with_the_short_lines_and_keeps_no_key(ada, shirt):
    # when
    response = order_post(
        ada,
        lines=[{"sku": "SHIRT-M", "quantity": 6}, {"sku": "SHIRT-L", "quantity": 1}],
        key="k-1",
    )

    # then
    assert response.status_code == 409
    body = response.json()
    assert body["code"] == "out_of_stock"
    assert body["lines"] == [{"sku": "SHIRT-M", "requested": 6, "available": 5}]
    assert Order.objects.count() == 0
    assert IdempotencyKey.objects.count() == 0
    assert StockLevel.objects.get(variant__sku="SHIRT-L").reserved == 0


def test_a_failed_order_may_be_retried_with_the_same_key(ada, shirt):
    # given
    order_post(ada, lines=[{"sku": "SHIRT-M", "quantity": 6}], key="k-1")

    # when
    retried = order_post(ada, lines=[{"sku": "SHIRT-M", "quantity": 5}], key="k-1")

    # then
    assert retried.status_code == 201
    assert Order.objects.count() == 1


def test_unknown_sku_answers_422_naming_it(ada, shirt):
    # when
    response = order_post(ada, lines=[{"sku": "NOPE", "quantity": 1}])

    # then
    assert response.status_code == 422
    assert response.json()["code"] == "unknown_sku"
    assert response.json()["skus"] == ["NOPE"]
    assert Order.objects.count() == 0


def test_invalid_order_body_lists_every_failing_field(ada, shirt):
    # when
    response = order_post(
        ada, lines=[{"sku": "SHIRT-M", "quantity": 0}], address={**ADDRESS, "country": ""}
    )

    # then
    assert response.status_code == 422
    fields = sorted(error["field"] for error in response.json()["errors"])
    assert fields == ["lines.0.quantity", "shipping_address.country"]
    assert Order.objects.count() == 0


def test_anonymous_order_answers_401(client, shirt):
    # when
    response = order_post(client, lines=[{"sku": "SHIRT-M", "quantity": 1}])

    # then
    assert response.status_code == 401
    assert Order.objects.count() == 0


def test_customers_see_only_their_own_orders(ada, bob, shirt):
    # given
    mine = order_post(ada, lines=[{"sku": "SHIRT-M", "quantity": 1}]).json()["number"]
    theirs = order_post(bob, lines=[{"sku": "SHIRT-L", "quantity": 1}]).json()["number"]

    # when
    listed = ada.get("/api/v1/orders")
    own = ada.get(f"/api/v1/orders/{mine}")
    other = ada.get(f"/api/v1/orders/{theirs}")

    # then
    assert listed.json()["count"] == 1
    assert [order["number"] for order in listed.json()["items"]] == [mine]
    assert own.status_code == 200
    assert own.json()["number"] == mine
    assert other.status_code == 404
    assert other.json()["code"] == "not_found"


def test_my_orders_come_in_pages_newest_first_with_their_count(ada, shirt):
    # given: three orders
    numbers = [
        order_post(ada, lines=[{"sku": "SHIRT-M", "quantity": 1}], key=f"page-{index}").json()[
            "number"
        ]
        for index in range(3)
    ]

    # when
    first = ada.get("/api/v1/orders", {"limit": 2}).json()
    second = ada.get("/api/v1/orders", {"limit": 2, "offset": 2}).json()
    too_big = ada.get("/api/v1/orders", {"limit": 101})

    # then
    assert first["count"] == second["count"] == 3
    assert [order["number"] for order in first["items"] + second["items"]] == numbers[::-1]
    assert too_big.status_code == 422
    assert [error["field"] for error in too_big.json()["errors"]] == ["limit"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/api/v1/orders/SW_1"),
        ("get", "/api/v1/orders/SW.1/invoice"),
        ("post", "/api/v1/orders/SW_1/cancel"),
    ],
)
def test_order_number_no_order_could_have_answers_404_like_an_unknown_one(ada, method, path):
    # when
    response = getattr(ada, method)(path)

    # then
    assert response.status_code == 404
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == "not_found"


def test_customer_cancels_their_order_and_the_stock_comes_back(ada, shirt):
    # given
    number = order_post(ada, lines=[{"sku": "SHIRT-M", "quantity": 2}]).json()["number"]

    # when
    response = ada.post(f"/api/v1/orders/{number}/cancel")

    # then
    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    assert response.json()["cancelled_at"] is not None
    assert StockLevel.objects.get(variant__sku="SHIRT-M").reserved == 0


def test_cancelling_twice_answers_409_invalid_transition(ada, shirt):
    # given
    number = order_post(ada, lines=[{"sku": "SHIRT-M", "quantity": 1}]).json()["number"]
    ada.post(f"/api/v1/orders/{number}/cancel")

    # when
    response = ada.post(f"/api/v1/orders/{number}/cancel")

    # then
    assert response.status_code == 409
    assert response.json()["code"] == "invalid_transition"


def test_another_customers_order_cannot_be_cancelled_and_answers_404(ada, bob, shirt):
    # given
    number = order_post(bob, lines=[{"sku": "SHIRT-M", "quantity": 1}]).json()["number"]

    # when
    response = ada.post(f"/api/v1/orders/{number}/cancel")

    # then
    assert response.status_code == 404
    assert Order.objects.get(number=number).status == OrderStatus.PENDING_PAYMENT


def test_invoice_answers_404_before_payment_and_200_after(client, ada, shirt):
    # given
    order = order_post(ada, lines=[{"sku": "SHIRT-M", "quantity": 1}]).json()
    before = ada.get(f"/api/v1/orders/{order['number']}/invoice")

    # when
    webhook = paid(client, order["number"], order["total"])
    after = ada.get(f"/api/v1/orders/{order['number']}/invoice")

    # then
    assert before.status_code == 404
    assert webhook.status_code == 200
    assert webhook.json() == {"received": True}
    assert after.status_code == 200
    invoice = after.json()
    assert set(invoice) == {"number", "issued_at", "total", "currency", "document_url"}
    assert (invoice["total"], invoice["currency"]) == (order["total"], "EUR")
    assert ada.get(f"/api/v1/orders/{order['number']}").json()["status"] == "paid"


def test_invoice_document_is_downloaded_by_its_customer_only(
    client, ada, bob, shirt, settings, tmp_path, django_capture_on_commit_callbacks
):
    # given a paid order whose document task ran after the payment committed
    settings.MEDIA_ROOT = tmp_path
    order = order_post(ada, lines=[{"sku": "SHIRT-M", "quantity": 1}]).json()
    with django_capture_on_commit_callbacks(execute=True):
        paid(client, order["number"], order["total"])
    document_url = ada.get(f"/api/v1/orders/{order['number']}/invoice").json()["document_url"]

    # when
    own = ada.get(document_url)
    other = bob.get(document_url)
    anonymous = client.get(document_url)

    # then
    assert document_url.endswith(f"/api/v1/orders/{order['number']}/invoice/document")
    assert own.status_code == 200
    assert own["Content-Type"] == "text/html; charset=utf-8"
    assert b"INV-" in b"".join(own.streaming_content)
    assert other.status_code == 404
    assert anonymous.status_code == 401


def test_an_invoice_document_the_storage_cannot_read_is_a_503_problem_not_a_500(
    client, ada, shirt, settings, tmp_path, django_capture_on_commit_callbacks
):
    # given: a paid order's rendered invoice, whose file the media storage then lost
    settings.MEDIA_ROOT = tmp_path
    order = order_post(ada, lines=[{"sku": "SHIRT-M", "quantity": 1}]).json()
    with django_capture_on_commit_callbacks(execute=True):
        paid(client, order["number"], order["total"])
    for rendered in tmp_path.rglob("INV-*.html"):
        rendered.unlink()

    # when
    response = ada.get(f"/api/v1/orders/{order['number']}/invoice/document")

    # then
    assert response.status_code == 503
    assert response.json()["code"] == "document_unavailable"
    assert response["Retry-After"] == "60"


@pytest.fixture
def urls_of_a_debug_server(settings, tmp_path):
    """The URLs `runserver` serves with DEBUG on (`make run`), media in `tmp_path`."""
    settings.DEBUG = True
    settings.MEDIA_ROOT = tmp_path
    importlib.reload(config.urls)
    clear_url_caches()
    yield tmp_path
    settings.DEBUG = False
    importlib.reload(config.urls)
    clear_url_caches()


def test_a_debug_server_serves_product_images_but_no_invoice_or_credit_note(
    client, urls_of_a_debug_server
):
    # given: what the shop writes into its media folder
    for name in (
        "products/2026/12/mug.jpg",
        "invoices/2026/INV-1.html",
        "credit-notes/2026/C.html",
    ):
        (urls_of_a_debug_server / name).parent.mkdir(parents=True, exist_ok=True)
        (urls_of_a_debug_server / name).write_text("a customer's name and address")

    # then: the documents go to their customer through the API only
    assert client.get("/media/products/2026/12/mug.jpg").status_code == 200
    assert client.get("/media/invoices/2026/INV-1.html").status_code == 404
    assert client.get("/media/credit-notes/C.html").status_code == 404


def test_duplicate_webhook_answers_200_and_records_one_payment(client, ada, shirt):
    # given
    order = order_post(ada, lines=[{"sku": "SHIRT-M", "quantity": 1}]).json()
    paid(client, order["number"], order["total"], event_id="evt_1")

    # when
    response = paid(client, order["number"], order["total"], event_id="evt_1")

    # then
    assert response.status_code == 200
    assert Payment.objects.count() == 1


def test_webhook_with_a_bad_signature_answers_400_bad_signature(client):
    # when
    response = client.post(
        "/api/v1/payments/webhook",
        data=b'{"id": "evt_1"}',
        content_type="application/json",
        headers={"Stockwire-Signature": f"t={int(time.time())},v1=deadbeef"},
    )

    # then
    assert response.status_code == 400
    assert response.json()["code"] == "bad_signature"


def test_webhook_signed_long_ago_answers_400_stale_event(client):
    # when
    response = signed_webhook(client, {"id": "evt_1"}, timestamp=int(time.time()) - 3600)

    # then
    assert response.status_code == 400
    assert response.json()["code"] == "stale_event"


def test_webhook_with_a_signed_but_malformed_body_answers_400_malformed_event(client):
    # when
    response = signed_webhook(client, {"id": "evt_1", "type": "payment.succeeded"})

    # then
    assert response.status_code == 400
    assert response.json()["code"] == "malformed_event"
    assert Payment.objects.count() == 0


@pytest.fixture
def paid_order(client, ada, shirt):
    order = order_post(ada, lines=[{"sku": "SHIRT-M", "quantity": 1}]).json()
    paid(client, order["number"], order["total"])
    return order["number"]


def test_staff_ship_a_paid_order(paid_order):
    # given
    staff = client_for(staff_with_token()[1])

    # when
    response = staff.post(
        f"/api/v1/staff/orders/{paid_order}/ship",
        data=json.dumps({"tracking_number": "TRACK-1"}),
        content_type="application/json",
    )

    # then
    assert response.status_code == 200
    assert response.json()["status"] == "shipped"
    assert response.json()["tracking_number"] == "TRACK-1"
    level = StockLevel.objects.get(variant__sku="SHIRT-M")
    assert (level.on_hand, level.reserved) == (4, 0)


def test_customers_may_not_ship_and_answer_403(ada, paid_order):
    # when
    response = ada.post(
        f"/api/v1/staff/orders/{paid_order}/ship",
        data=json.dumps({"tracking_number": "TRACK-1"}),
        content_type="application/json",
    )

    # then
    assert response.status_code == 403
    assert response.json()["code"] == "permission_denied"
    assert Order.objects.get(number=paid_order).status == OrderStatus.PAID


def test_anonymous_ship_answers_401(client, paid_order):
    # when
    response = client.post(
        f"/api/v1/staff/orders/{paid_order}/ship",
        data=json.dumps({"tracking_number": "TRACK-1"}),
        content_type="application/json",
    )

    # then
    assert response.status_code == 401


def test_shipping_an_unpaid_order_answers_409_and_moves_no_stock(ada, shirt):
    # given
    number = order_post(ada, lines=[{"sku": "SHIRT-M", "quantity": 1}]).json()["number"]
    staff = client_for(staff_with_token()[1])

    # when
    response = staff.post(
        f"/api/v1/staff/orders/{number}/ship",
        data=json.dumps({"tracking_number": "TRACK-1"}),
        content_type="application/json",
    )

    # then
    assert response.status_code == 409
    assert response.json()["code"] == "invalid_transition"
    level = StockLevel.objects.get(variant__sku="SHIRT-M")
    assert (level.on_hand, level.reserved) == (5, 1)


def test_shipping_an_unknown_order_answers_404():
    # given
    staff = client_for(staff_with_token()[1])

    # when
    response = staff.post(
        "/api/v1/staff/orders/NOPE-1/ship",
        data=json.dumps({"tracking_number": "TRACK-1"}),
        content_type="application/json",
    )

    # then
    assert response.status_code == 404


def test_purge_task_removes_keys_older_than_24_hours(ada, shirt):
    # given
    order_post(ada, lines=[{"sku": "SHIRT-M", "quantity": 1}], key="old")
    order_post(ada, lines=[{"sku": "SHIRT-M", "quantity": 1}], key="new")
    IdempotencyKey.objects.filter(key="old").update(
        created_at=timezone.now() - timedelta(hours=24, seconds=1)
    )

    # when
    removed = idempotency_keys_purge_task.delay().get()

    # then
    assert removed == 1
    assert list(IdempotencyKey.objects.values_list("key", flat=True)) == ["new"]


def test_an_order_whose_total_the_order_columns_cannot_hold_is_422_and_writes_nothing(ada):
    # given: a price the catalog holds, times the most units a line may order
    product_make(name="Gold bar", skus=("GOLD-1",), price="10000000.00", on_hand=1000)

    # when
    response = order_post(ada, lines=[{"sku": "GOLD-1", "quantity": 1000}])

    # then
    assert response.status_code == 422
    assert response.json()["code"] == "invalid_order"
    assert "at most 9999999999.99" in response.json()["detail"]
    assert (Order.objects.count(), IdempotencyKey.objects.count()) == (0, 0)
    assert StockLevel.objects.get(variant__sku="GOLD-1").reserved == 0


def test_a_committed_order_is_answered_201_and_clears_the_cache_when_its_count_bump_fails(
    ada, shirt, monkeypatch, django_capture_on_commit_callbacks
):
    # given: a cached detail, and a customer row the count bump cannot update (a lock wait
    # past its timeout, a connection lost after the commit)
    assert ada.get("/api/v1/products/linen-shirt").json()["variants"][1]["available"] == 5

    def bump_fails(*args, **kwargs):
        raise OperationalError("canceling statement due to lock timeout")

    monkeypatch.setattr(counters, "update_adding", bump_fails)

    # when
    with django_capture_on_commit_callbacks(execute=True):
        response = order_post(ada, lines=[{"sku": "SHIRT-M", "quantity": 2}])

    # then: the customer learns the order was placed, and the shop shows the sale
    assert response.status_code == 201
    detail = ada.get("/api/v1/products/linen-shirt").json()
    assert {v["sku"]: v["available"] for v in detail["variants"]}["SHIRT-M"] == 3
