"""core.sql: rows written without the ORM compiler read back as the ORM wrote them."""

from datetime import date
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models.signals import post_save, pre_save
from model_bakery import baker

from catalog.models import Variant
from core.sql import (
    insert_instances,
    insert_with_children,
    update_adding,
    update_rows,
    upsert_adding,
)
from orders.models import Customer, DailySales, Order, OrderEvent, OrderLine, OrderStatus
from storefront.models import IdempotencyKey


def a_customer() -> Customer:
    return baker.make(get_user_model()).customer  # its profile comes from a post_save receiver


def an_order(**fields) -> Order:
    """A new order with random values, but money that adds up, as the database requires."""
    money = {"subtotal": Decimal("10.00"), "shipping": Decimal("4.90"), "total": Decimal("14.90")}
    return baker.prepare(Order, customer=a_customer(), **money, **fields)


pytestmark = pytest.mark.django_db


def test_inserted_instances_get_their_keys_in_order_and_read_back_unchanged():
    # given two new orders, with JSON, decimals and an auto_now_add stamp to store
    customer = a_customer()
    orders = [
        Order(
            number=f"SW-TEST000{n}",
            customer=customer,
            currency="EUR",
            subtotal=Decimal("19.99") * n,
            shipping=Decimal("4.90"),
            total=Decimal("19.99") * n + Decimal("4.90"),
            shipping_address={"name": "Ada", "city": "Zürich", "n": n},
        )
        for n in (1, 2)
    ]

    # when
    insert_instances(orders)

    # then each instance holds its own row's key and the stamp it was stored with
    for order in orders:
        stored = Order.objects.get(pk=order.pk)
        assert stored.number == order.number
        assert (stored.subtotal, stored.total) == (order.subtotal, order.total)
        assert stored.shipping_address == order.shipping_address
        assert stored.status == OrderStatus.PENDING_PAYMENT
        assert stored.placed_at == order.placed_at is not None
        assert order._state.adding is False
    assert orders[0].pk < orders[1].pk


def test_an_instance_pointing_at_another_just_inserted_stores_the_reference():
    # given an order just inserted and an event of it
    order = an_order(shipping_address={})
    insert_instances([order])
    event = OrderEvent(order=order, kind="placed", to_status=OrderStatus.PENDING_PAYMENT)

    # when
    insert_instances([event])

    # then
    assert list(order.events.values_list("pk", "kind")) == [(event.pk, "placed")]


def test_a_parent_and_its_children_are_inserted_together_each_child_pointing_at_it(
    django_assert_num_queries,
):
    # given a new order, two lines and an event, none of them pointing at the order yet
    order = an_order(shipping_address={"city": "Zürich"})
    lines = [
        OrderLine(
            variant_id=baker.make("catalog.Variant").pk,
            sku=f"SKU-{n}",
            name=f"Line {n}",
            quantity=n,
            unit_price=Decimal("2.50"),
            line_total=Decimal("2.50") * n,
        )
        for n in (1, 2)
    ]
    event = OrderEvent(kind="placed", to_status=OrderStatus.PENDING_PAYMENT)

    # when: one statement on PostgreSQL, one per table on SQLite
    with django_assert_num_queries(1 if connection.vendor == "postgresql" else 3):
        insert_with_children(order, lines, [event])

    # then every instance holds its own row's key, and the rows point at the order
    stored = Order.objects.get(pk=order.pk)
    assert stored.shipping_address == {"city": "Zürich"}
    assert stored.placed_at == order.placed_at is not None
    assert list(stored.lines.order_by("pk").values_list("pk", "sku", "quantity")) == [
        (lines[0].pk, "SKU-1", 1),
        (lines[1].pk, "SKU-2", 2),
    ]
    assert list(stored.events.values_list("pk", "kind")) == [(event.pk, "placed")]
    assert all(line.order is order and line.order_id == order.pk for line in lines)
    assert event.order_id == order.pk and not event._state.adding


def test_each_of_many_children_gets_the_key_of_its_own_row():
    # given an order of 100 lines, each with its own SKU and quantity
    order = an_order(shipping_address={})
    variant = baker.make("catalog.Variant")
    lines = [
        OrderLine(
            variant=variant,
            sku=f"SKU-{n:03d}",
            name="Line",
            quantity=n,
            unit_price=Decimal("1.00"),
            line_total=Decimal(n),
        )
        for n in range(1, 101)
    ]

    # when
    insert_with_children(order, lines)

    # then
    stored = dict(OrderLine.objects.filter(order=order).values_list("pk", "sku"))
    assert {line.pk: line.sku for line in lines} == stored
    assert len(stored) == 100


def test_children_of_a_model_without_a_foreign_key_to_the_parent_are_refused():
    order = an_order(shipping_address={})
    with pytest.raises(TypeError, match="exactly one foreign key to Order"):
        insert_with_children(order, [baker.prepare(Customer, user=None)])
    assert not Order.objects.exists()


def test_nothing_to_insert_runs_no_statement(django_assert_num_queries):
    with django_assert_num_queries(0):
        insert_instances([])


def test_no_model_signal_receiver_listens_to_the_models_the_checkout_inserts_directly():
    # insert_instances sends no pre_save/post_save: a receiver added to one of these models
    # would silently miss every order placed. Connect it to `order_placed` instead.
    for model in (Order, OrderLine, OrderEvent, IdempotencyKey):
        for signal in (pre_save, post_save):
            assert not signal.has_listeners(model), f"{signal} has a receiver for {model}"


def test_upsert_adding_creates_missing_rows_adds_to_stored_ones_and_returns_the_totals(
    django_assert_num_queries,
):
    # given
    DailySales.objects.create(date=date(2026, 5, 1), orders=2, units=5, revenue=Decimal("10.00"))

    # when
    with django_assert_num_queries(1):
        totals = upsert_adding(
            DailySales,
            key=("date",),
            fields=("orders", "units", "revenue"),
            rows=[
                (date(2026, 5, 2), 1, 3, Decimal("7.50")),
                (date(2026, 5, 1), 1, 1, Decimal("2.25")),
            ],
        )

    # then
    assert sorted(totals) == [(1, 3, Decimal("7.50")), (3, 6, Decimal("12.25"))]
    assert list(
        DailySales.objects.order_by("date").values_list("date", "orders", "units", "revenue")
    ) == [
        (date(2026, 5, 1), 3, 6, Decimal("12.25")),
        (date(2026, 5, 2), 1, 3, Decimal("7.50")),
    ]


def test_update_adding_adds_to_the_named_row_only_and_counts_it(django_assert_num_queries):
    # given
    ada, bob = a_customer(), a_customer()
    Customer.objects.filter(pk=ada.pk).update(order_count=2, lifetime_value=Decimal("10.00"))

    # when
    with django_assert_num_queries(1):
        changed = update_adding(
            Customer, pk=ada.pk, deltas={"order_count": 1, "lifetime_value": Decimal("-2.50")}
        )
    missing = update_adding(Customer, pk=bob.pk + 1000, deltas={"order_count": 1})

    # then
    assert (changed, missing) == (1, 0)
    assert Customer.objects.values_list("order_count", "lifetime_value").get(pk=ada.pk) == (
        3,
        Decimal("7.50"),
    )
    assert Customer.objects.values_list("order_count", "lifetime_value").get(pk=bob.pk) == (
        0,
        Decimal("0.00"),
    )


def test_update_rows_writes_the_named_fields_of_each_row_in_one_statement_and_stamps_it(
    django_assert_num_queries,
):
    # given three variants, two of them changed in memory
    cheap, dear, untouched = (
        baker.make(Variant, sku=sku, price=Decimal("1.00"), name="old") for sku in "ABC"
    )
    stamped = Variant.objects.get(pk=untouched.pk).updated_at
    cheap.price, cheap.name = Decimal("2.50"), "new"
    dear.price, dear.name = Decimal("99.99"), "kept in memory only"

    # when
    with django_assert_num_queries(1):
        update_rows(Variant, [cheap, dear], ["price", "updated_at"])

    # then: the named fields are stored, the others and the other rows are not
    stored = {variant.sku: variant for variant in Variant.objects.order_by("sku")}
    assert [(v.price, v.name) for v in stored.values()] == [
        (Decimal("2.50"), "old"),
        (Decimal("99.99"), "old"),
        (Decimal("1.00"), "old"),
    ]
    assert stored["A"].updated_at > stamped and stored["B"].updated_at > stamped
    assert stored["C"].updated_at == stamped
