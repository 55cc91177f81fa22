"""The database connection cut while an order is placed: a 503 problem and no partial order.

Here the connection is killed from outside (as a failover or an operator would) while the order
waits for a stock row's lock; `tests/test_api_concurrency.py` cuts it from inside, later.
"""

import json
import threading
import uuid

import pytest
from django.db import connection, connections, transaction
from django.test import Client

from inventory.models import StockLevel
from orders.models import Order, OrderLine
from outbox.models import OutboxMessage
from storefront.services import token_issue
from tests.faults import wait_until
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

    def waiting_backend() -> int | None:
        with connection.cursor() as cursor:
            # Activity is a snapshot per transaction; the lock holder polls inside one.
            cursor.execute("SELECT pg_stat_clear_snapshot()")
            cursor.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                " AND wait_event_type = 'Lock' AND query LIKE '%%inventory_stocklevel%%'"
            )
            row = cursor.fetchone()
        return row[0] if row else None

    with transaction.atomic():
        StockLevel.objects.select_for_update().get(pk=level.pk)
        thread = threading.Thread(target=place)
        thread.start()
        try:
            assert wait_until(lambda: waiting_backend() is not None, timeout=10)

            # when: the order's connection is cut while it waits
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_terminate_backend(%s)", [waiting_backend()])
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
