"""Placing orders: prices from the catalog, shipping from settings, lock-late reservation."""

import re
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext

from inventory.models import StockAllocation, StockLevel, StockMovement
from inventory.services import reservations, stock_receive
from orders.models import Order, OrderEvent, OrderLine, OrderStatus
from orders.services import (
    InvalidOrder,
    LineRequest,
    LinesOutOfStock,
    UnknownSku,
    order_place,
    placing,
)
from orders.signals import order_placed
from outbox.models import OutboxMessage
from tests.orders_helpers import ADDRESS, customer_new, order_new, variant_stocked, warehouse

pytestmark = pytest.mark.django_db


def test_order_is_priced_from_the_catalog_with_flat_shipping_below_the_threshold(settings):
    # given
    settings.SHIPPING_FLAT_RATE = "4.90"
    settings.SHIPPING_FREE_ABOVE = "50.00"
    variant_stocked("MUG-1", price="12.50")
    variant_stocked("TEE-1", price="20.00")
    customer = customer_new()

    # when
    order = order_new(customer, ("MUG-1", 2), ("TEE-1", 1))

    # then
    assert re.fullmatch(r"SW-[0-9A-HJKMNP-TV-Z]{8}", order.number)
    assert order.status == OrderStatus.PENDING_PAYMENT
    assert (order.subtotal, order.shipping, order.total) == (
        Decimal("45.00"),
        Decimal("4.90"),
        Decimal("49.90"),
    )
    lines = list(OrderLine.objects.filter(order=order).values_list("sku", "quantity", "unit_price"))
    assert lines == [("MUG-1", 2, Decimal("12.50")), ("TEE-1", 1, Decimal("20.00"))]
    assert list(order.events.values_list("kind", "to_status")) == [("placed", "pending_payment")]


def test_shipping_is_free_at_the_threshold(settings):
    # given
    settings.SHIPPING_FREE_ABOVE = "50.00"
    variant_stocked("MUG-1", price="25.00")

    # when
    order = order_new(customer_new(), ("MUG-1", 2))

    # then
    assert (order.shipping, order.total) == (Decimal("0.00"), Decimal("50.00"))


def test_order_reserves_its_units_and_repeated_skus_are_summed():
    # given
    variant = variant_stocked("MUG-1", on_hand=10)

    # when
    order = order_new(customer_new(), ("MUG-1", 2), ("MUG-1", 3))

    # then
    level = StockLevel.objects.get(variant=variant)
    assert (level.on_hand, level.reserved) == (10, 5)
    assert list(order.lines.values_list("sku", "quantity")) == [("MUG-1", 5)]
    assert StockAllocation.objects.get(reference=order.number).quantity == 5


@pytest.mark.parametrize(
    "lines",
    [
        [],
        [LineRequest(sku="MUG-1", quantity=0)],
        [LineRequest(sku="MUG-1", quantity=-1)],
        [LineRequest(sku="MUG-1", quantity=1.5)],
        [LineRequest(sku="MUG-1", quantity=True)],
        [LineRequest(sku="MUG-1", quantity=1001)],
        [LineRequest(sku="MUG-1", quantity=600), LineRequest(sku="MUG-1", quantity=600)],
        [LineRequest(sku="", quantity=1)],
    ],
)
def test_invalid_lines_are_refused_and_nothing_is_written(lines):
    # given
    variant_stocked("MUG-1")
    customer = customer_new()

    # when / then
    with pytest.raises(InvalidOrder):
        order_place(customer=customer, lines=lines, shipping_address=ADDRESS)
    assert Order.objects.count() == 0
    assert OutboxMessage.objects.count() == 0


def test_missing_address_fields_are_refused():
    variant_stocked("MUG-1")
    with pytest.raises(InvalidOrder):
        order_place(
            customer=customer_new(),
            lines=[LineRequest(sku="MUG-1", quantity=1)],
            shipping_address={**ADDRESS, "city": " "},
        )
    assert Order.objects.count() == 0


def test_unknown_and_inactive_skus_are_named():
    # given
    variant_stocked("MUG-1")
    retired = variant_stocked("OLD-1")
    retired.is_active = False
    retired.save()

    # when
    with pytest.raises(UnknownSku) as error:
        order_new(customer_new(), ("MUG-1", 1), ("NOPE-9", 1), ("OLD-1", 1))

    # then
    assert error.value.code == "unknown_sku"
    assert error.value.skus == ["NOPE-9", "OLD-1"]
    assert Order.objects.count() == 0


def test_order_failing_on_its_third_line_leaves_no_trace():
    # given
    variant_stocked("A-1", on_hand=5)
    variant_stocked("B-1", on_hand=5)
    short = variant_stocked("C-1", on_hand=1)
    customer = customer_new()
    movements_before = StockMovement.objects.count()

    # when
    with pytest.raises(LinesOutOfStock) as error:
        order_new(customer, ("A-1", 1), ("B-1", 2), ("C-1", 3))

    # then
    assert error.value.code == "out_of_stock"
    assert error.value.lines == [{"sku": "C-1", "requested": 3, "available": 1}]
    assert Order.objects.count() == 0
    assert OrderLine.objects.count() == 0
    assert OrderEvent.objects.count() == 0
    assert StockAllocation.objects.count() == 0
    assert StockMovement.objects.count() == movements_before
    assert list(StockLevel.objects.values_list("reserved", flat=True)) == [0, 0, 0]
    assert StockLevel.objects.get(variant=short).on_hand == 1
    assert OutboxMessage.objects.count() == 0
    customer.refresh_from_db()
    assert customer.order_count == 0


@pytest.fixture
def placed_receiver_sees():
    """What every `order_placed` receiver found when it ran: the order's reserved units."""
    seen: list[tuple[str, list[int]]] = []

    def note_the_reservation(sender, order, **kwargs) -> None:
        held = StockAllocation.objects.filter(reference=order.number).values_list(
            "quantity", flat=True
        )
        seen.append((order.number, sorted(held)))

    order_placed.connect(note_the_reservation, dispatch_uid="test.note_the_reservation")
    yield seen
    order_placed.disconnect(dispatch_uid="test.note_the_reservation")


def test_order_placed_is_sent_once_the_stock_is_reserved(placed_receiver_sees):
    # given
    variant_stocked("MUG-1", on_hand=5)
    warehouse("backup", priority=20)
    stock_receive(
        variant=variant_stocked("CUP-1", on_hand=1),
        warehouse=warehouse("backup"),
        quantity=3,
    )

    # when
    order = order_new(customer_new(), ("MUG-1", 2), ("CUP-1", 3))

    # then: its receivers see the order holding its units
    assert placed_receiver_sees == [(order.number, [1, 2, 2])]


def test_an_order_refused_for_stock_sends_no_order_placed(placed_receiver_sees):
    # given
    variant_stocked("MUG-1", on_hand=1)

    # when
    with pytest.raises(LinesOutOfStock):
        order_new(customer_new(), ("MUG-1", 2))

    # then
    assert placed_receiver_sees == []


def test_an_order_placed_by_staff_names_them_on_its_event_and_its_ledger_rows():
    # given
    variant_stocked("MUG-1")
    staff = get_user_model().objects.create_user(username="staff", is_staff=True)

    # when
    order = order_place(
        customer=customer_new(),
        lines=[LineRequest(sku="MUG-1", quantity=2)],
        shipping_address=ADDRESS,
        actor=staff,
    )

    # then
    assert list(order.events.values_list("kind", "actor")) == [("placed", staff.pk)]
    assert list(
        StockMovement.objects.filter(reference=order.number).values_list(
            "reason", "reserved_delta", "actor"
        )
    ) == [("reservation", 2, staff.pk)]


def test_an_order_whose_stock_plan_went_stale_is_placed_once_on_the_second_attempt(
    monkeypatch,
):
    # given: another buyer takes the first warehouse's units between the first attempt's
    # plan and its update; the second warehouse could serve the order alone
    variant = variant_stocked("MUG-1", on_hand=3)
    stock_receive(variant=variant, warehouse=warehouse("backup", priority=20), quantity=10)
    first_level = StockLevel.objects.get(variant=variant, warehouse__code="main")
    plan = reservations._reservation_candidates
    attempts = []

    def plan_then_lose_the_first_warehouse_once(variant_ids, *, lock_rows):
        candidates = plan(variant_ids, lock_rows=lock_rows)
        if not attempts:
            StockLevel.objects.filter(pk=first_level.pk).update(reserved=3)
        attempts.append(lock_rows)
        return candidates

    monkeypatch.setattr(
        reservations, "_reservation_candidates", plan_then_lose_the_first_warehouse_once
    )

    # when
    order = order_new(customer_new(), ("MUG-1", 5))

    # then: one order, its lines, event, allocations and ledger rows, all of the second attempt,
    # which planned under the stock rows' locks (in a test the other buyer's update runs
    # inside the first attempt and rolls back with it)
    assert attempts == [False, True]
    assert list(Order.objects.values_list("number", flat=True)) == [order.number]
    assert OrderLine.objects.count() == OrderEvent.objects.count() == 1
    assert sorted(
        StockAllocation.objects.values_list("reference", "level__warehouse__code", "quantity")
    ) == [(order.number, "backup", 2), (order.number, "main", 3)]
    assert sorted(
        StockMovement.objects.filter(reason="reservation").values_list(
            "reference", "reserved_delta"
        )
    ) == [(order.number, 2), (order.number, 3)]


def test_an_order_number_already_taken_is_replaced_by_a_fresh_one(monkeypatch):
    # given an order holding the number the next attempt draws first
    variant_stocked("MUG-1")
    taken = order_new(customer_new(), ("MUG-1", 1))
    numbers = iter([taken.number, "SW-FRESH000"])
    monkeypatch.setattr(placing, "order_number_new", lambda: next(numbers))

    # when
    order = order_new(customer_new(), ("MUG-1", 2))

    # then
    assert order.number == "SW-FRESH000"
    assert Order.objects.get(number=order.number).lines.get().quantity == 2
    assert StockLevel.objects.get().reserved == 3
    assert OrderEvent.objects.count() == 2


def test_confirmation_email_and_order_count_wait_for_the_commit(django_capture_on_commit_callbacks):
    # given
    variant_stocked("MUG-1")
    customer = customer_new()

    # when
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        order = order_new(customer, ("MUG-1", 1))
    customer.refresh_from_db()

    # then: requested in the transaction, nothing has left or been counted yet
    message = OutboxMessage.objects.get()
    assert (message.task_name, message.kwargs) == (
        "orders.email_send",
        {"order_id": order.pk, "kind": "confirmation"},
    )
    assert message.published_at is None
    assert customer.order_count == 0
    assert order.sent_emails.count() == 0
    assert len(callbacks) >= 2

    # when the transaction commits
    for callback in callbacks:
        callback()

    # then
    customer.refresh_from_db()
    assert customer.order_count == 1
    assert list(order.sent_emails.values_list("kind", flat=True)) == ["confirmation"]


def _queries_to_place(customer, line_count: int) -> int:
    lines = [LineRequest(sku=f"Q-{i}", quantity=1) for i in range(line_count)]
    with CaptureQueriesContext(connection) as queries:
        order_place(customer=customer, lines=lines, shipping_address=ADDRESS)
    return len(queries)


def test_queries_per_order_do_not_grow_with_the_number_of_lines(django_assert_max_num_queries):
    # given
    for i in range(20):
        variant_stocked(f"Q-{i}", price="1.00", on_hand=5)
    customer = customer_new()
    one_line = _queries_to_place(customer, 1)

    # when / then
    with django_assert_max_num_queries(one_line + 2):
        order_place(
            customer=customer,
            lines=[LineRequest(sku=f"Q-{i}", quantity=1) for i in range(20)],
            shipping_address=ADDRESS,
        )
    assert one_line <= 12
