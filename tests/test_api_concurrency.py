"""Races through the HTTP layer on PostgreSQL: real threads, each with its own connection."""

import pytest
from django.core.cache import cache
from django.db import connection

from inventory.models import StockLevel
from orders.models import Order
from orders.signals import order_placed
from outbox.models import OutboxMessage
from storefront.models import IdempotencyKey
from tests.locks import held_by_another_transaction
from tests.storefront_helpers import (
    FAST_HASHERS,
    client_for,
    order_post,
    product_make,
    user_with_token,
)

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def fast_and_fresh(settings):
    settings.PASSWORD_HASHERS = FAST_HASHERS
    cache.clear()


def test_eight_concurrent_requests_with_one_key_place_one_order(run_concurrently):
    # given
    product_make(name="Linen shirt", skus=("SHIRT-M",), on_hand=20)
    _, token = user_with_token()

    def place(index: int):
        response = order_post(
            client_for(token), lines=[{"sku": "SHIRT-M", "quantity": 2}], key="same-key"
        )
        return response.status_code, response.json()

    # when
    results = run_concurrently(place, 8)

    # then
    assert not [r for r in results if isinstance(r, BaseException)], results
    statuses = sorted(status for status, _ in results)
    assert set(statuses) <= {201, 409}
    answered = [body for status, body in results if status == 201]
    assert len({body["number"] for body in answered}) == 1
    assert statuses.count(201) == 8  # the losers waited on the key and replayed the answer
    assert Order.objects.count() == 1
    assert IdempotencyKey.objects.count() == 1
    assert StockLevel.objects.get().reserved == 2


def test_forty_buyers_racing_for_ten_units_get_exactly_ten_orders(run_concurrently):
    # given
    product_make(name="Last shirts", skus=("LAST-1",), on_hand=10)
    tokens = [user_with_token(email=f"buyer{i}@example.com")[1] for i in range(40)]

    def buy(index: int):
        response = order_post(
            client_for(tokens[index]), lines=[{"sku": "LAST-1", "quantity": 1}], key=f"k{index}"
        )
        return response.status_code, response.json()

    # when
    results = run_concurrently(buy, 40)

    # then
    assert not [r for r in results if isinstance(r, BaseException)], results
    statuses = [status for status, _ in results]
    assert statuses.count(201) == 10
    assert statuses.count(409) == 30
    refusals = [body for status, body in results if status == 409]
    assert {body["code"] for body in refusals} == {"out_of_stock"}
    assert all(body["lines"][0]["sku"] == "LAST-1" for body in refusals)
    level = StockLevel.objects.get()
    assert (level.on_hand, level.reserved) == (10, 10)
    assert Order.objects.count() == 10


def test_duplicate_waiting_beyond_the_lock_timeout_answers_409_request_in_progress():
    # given: another request holds the key, uncommitted, for longer than this one may wait
    product_make(name="Linen shirt", skus=("SHIRT-M",), on_hand=5)
    user, token = user_with_token()

    def first_request_still_running() -> None:
        IdempotencyKey.objects.create(
            user=user, key="slow-key", fingerprint="x" * 64, status_code=201, response_body={}
        )

    # when
    with held_by_another_transaction(first_request_still_running):
        response = order_post(
            client_for(token), lines=[{"sku": "SHIRT-M", "quantity": 1}], key="slow-key"
        )

    # then
    assert response.status_code == 409
    assert response.json()["code"] == "request_in_progress"
    assert Order.objects.count() == 0
    assert StockLevel.objects.get().reserved == 0


def test_database_connection_cut_while_placing_answers_503_and_leaves_nothing():
    # given
    product_make(name="Linen shirt", skus=("SHIRT-M",), on_hand=5)
    _, token = user_with_token()

    def cut_the_connection(sender, **kwargs):
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(pg_backend_pid())")

    order_placed.connect(cut_the_connection, dispatch_uid="test.cut_the_connection")

    # when
    try:
        response = order_post(
            client_for(token), lines=[{"sku": "SHIRT-M", "quantity": 1}], key="cut"
        )
    finally:
        order_placed.disconnect(dispatch_uid="test.cut_the_connection")
        connection.close()

    # then
    assert response.status_code == 503
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == "database_unavailable"
    assert int(response["Retry-After"]) > 0
    assert Order.objects.count() == 0
    assert IdempotencyKey.objects.count() == 0
    assert StockLevel.objects.get().reserved == 0
    assert OutboxMessage.objects.count() == 0


def test_a_stock_row_locked_beyond_the_lock_timeout_answers_503_not_request_in_progress():
    # given: a long transaction (an import batch, a stocktake) holds the SKU's stock row
    product_make(name="Linen shirt", skus=("SHIRT-M",), on_hand=5)
    _, token = user_with_token()

    def stocktake_still_running() -> None:
        list(StockLevel.objects.select_for_update())

    # when
    with held_by_another_transaction(stocktake_still_running):
        response = order_post(client_for(token), lines=[{"sku": "SHIRT-M", "quantity": 1}])

    # then: retry later, nothing was written (no other request holds this key)
    assert response.status_code == 503
    assert response.json()["code"] == "database_unavailable"
    assert (Order.objects.count(), IdempotencyKey.objects.count()) == (0, 0)
