"""Derived counters hold a customer's whole life, and the reconcile repairs row by row."""

import logging
from decimal import Decimal

import pytest
from django.db import connection

from orders.models import Customer, DailySales
from orders.services import counters_reconcile
from payments.services import webhook_handle
from tests.orders_helpers import customer_new, order_new, variant_stocked
from tests.payments_helpers import payment_event, signed

pytestmark = pytest.mark.django_db

# The dearest order the catalog allows: 100 units at the largest price (free shipping).
LARGEST_PRICE = "99999999.99"
LARGEST_ORDER_TOTAL = Decimal("9999999999.00")


def test_two_of_the_largest_orders_fit_their_customers_lifetime_value_and_daily_sales(
    django_capture_on_commit_callbacks, settings, tmp_path
):
    # given
    settings.MEDIA_ROOT = tmp_path
    variant_stocked("GOLD-1", price=LARGEST_PRICE, on_hand=200)
    customer = customer_new()

    # when: two of the largest orders are placed and paid, their counters bumped on commit
    with django_capture_on_commit_callbacks(execute=True):
        orders = [order_new(customer, ("GOLD-1", 100)) for _ in range(2)]
    for order in orders:
        with django_capture_on_commit_callbacks(execute=True):
            webhook_handle(**signed(payment_event(order)))

    # then: the bumps held, and the nightly reconcile finds nothing to repair
    assert [order.total for order in orders] == [LARGEST_ORDER_TOTAL] * 2
    customer.refresh_from_db()
    assert (customer.order_count, customer.lifetime_value) == (2, 2 * LARGEST_ORDER_TOTAL)
    day = DailySales.objects.get()
    assert (day.orders, day.units, day.revenue) == (2, 200, 2 * LARGEST_ORDER_TOTAL)
    assert counters_reconcile() == 0


def refuse_updates_of_customer(pk: int) -> None:
    """Make the database refuse any UPDATE of customer `pk` (dropped with the test's
    transaction), as it refuses a value its column cannot hold."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "CREATE FUNCTION test_refuse() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN RAISE EXCEPTION 'refused' USING ERRCODE = 'check_violation'; END $$"
            )
            cursor.execute(
                "CREATE TRIGGER test_refuse BEFORE UPDATE ON orders_customer FOR EACH ROW "
                f"WHEN (NEW.id = {int(pk)}) EXECUTE FUNCTION test_refuse()"
            )
        else:
            cursor.execute(
                "CREATE TRIGGER test_refuse BEFORE UPDATE ON orders_customer "
                f"WHEN NEW.id = {int(pk)} BEGIN SELECT RAISE(ABORT, 'refused'); END"
            )


def test_a_counter_row_the_database_refuses_is_logged_and_the_others_are_repaired(caplog):
    # given: three customers whose order counts drifted; the first one's row is refused
    variant_stocked("MUG-1", on_hand=10)
    customers = [customer_new() for _ in range(3)]
    for customer in customers:
        order_new(customer, ("MUG-1", 1))
    counters_reconcile()
    Customer.objects.update(order_count=99)
    refuse_updates_of_customer(customers[0].pk)

    # when
    with caplog.at_level(logging.ERROR, logger="orders.services.counters"):
        repaired = counters_reconcile()

    # then: the two others are repaired and the refused one is named in the log
    assert repaired == 2
    counts = dict(Customer.objects.values_list("pk", "order_count"))
    assert [counts[customer.pk] for customer in customers] == [99, 1, 1]
    [record] = caplog.records
    assert record.getMessage() == "counter row not repaired; the others were"
    assert (record.counter, record.row) == ("orders.Customer", f"{{'pk': {customers[0].pk}}}")
