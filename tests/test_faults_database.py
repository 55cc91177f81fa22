"""The database connection cut while an order is placed: a 503 problem and no partial order.

Here the connection is killed from outside (as a failover or an operator would) while the order
waits for a stock row's lock; `tests/test_api_concurrency.py` cuts it from inside, later.
"""

import json
import threading
import uuid
from functools import partial

import pytest
from django.db import connections, transaction
from django.test import Client

from inventory.models import StockLevel
from orders.models import Order, OrderLine
from outbox.models import OutboxMessage
from storefront.services import token_issue
from tests.faults import backend_terminate, backend_waiting_for_a_lock, wait_until
from tests.orders_helpers import ADDRESS, customer_new, variant_stocked

pytestmark = [pytest.mark.postgres]


def test_an_order_whose_connection_is_killed_while_it_waits_for_stock_gets_503_and_leaves_nothing(
    transactional_db,
):
    # given: the stock row the order must reserve is locked by another transaction
    variant = variant_stocked("CUT-1", on_hand=5)
    customer = customer_new()
    token = token_issue(user=customer.user)
    level = StockLevel.objects.get(variant=variant)
    answer = {}

    def place() -> None:
        try:
            answer["response"] = Client().post(
                "/api/v1/orders",
                data=json.dumps(
                    {"lines": [{"sku": "CUT-1", "quantity": 2}], "shipping_address": ADDRESS}
                ),
                content_type="application/json",
                HTTP_AUTHORIZATION=f"Bearer {token}",
                HTTP_IDEMPOTENCY_KEY=str(uuid.uuid4()),
            )
        finally:
            connections.close_all()

    with transaction.atomic():
        StockLevel.objects.select_for_update().get(pk=level.pk)
        thread = threading.Thread(target=place)
        thread.start()
        try:
            waiting = partial(backend_waiting_for_a_lock, on_table="inventory_stocklevel")
            assert wait_until(lambda: waiting() is not None, timeout=10)

            # when: the order's connection is cut while it waits
            backend_terminate(waiting())
        finally:
            thread.join(timeout=20)

    # then: a problem answer the client may retry, and no trace of the order
    response = answer["response"]
    assert response.status_code == 503, response.content
    assert response["Content-Type"].startswith("application/problem+json")
    assert response.json()["code"] == "database_unavailable"
    assert int(response["Retry-After"]) > 0
    assert Order.objects.count() == 0
    assert OrderLine.objects.count() == 0
    assert OutboxMessage.objects.filter(task_name="orders.email_send").count() == 0
    level.refresh_from_db()
    assert (level.on_hand, level.reserved) == (5, 0)
