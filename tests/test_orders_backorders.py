"""Selling beyond stock: back-orders and pre-orders, and their units allocated as stock comes."""

import datetime
import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from inventory.models import Backorder, StockAllocation, StockLevel, StockMovement, StockPolicy
from inventory.selectors import backorder_drift, stock_drift
from inventory.services import (
    PurchaseUnits,
    purchase_order_create,
    purchase_order_receive,
    stock_policy_set,
    stock_receive,
    warehouse_active_set,
)
from orders.models import Order, OrderLine
from orders.services import (
    InvalidOrder,
    LineRequest,
    LinesOutOfStock,
    UnitsExceeded,
    fulfilment_create,
    order_backorders_allocate,
    order_cancel,
    order_email_render,
    order_lines_cancel,
)
from orders.services.lines import lines_count
from outbox.models import OutboxMessage
from payments.services import webhook_handle
from tests.orders_helpers import customer_new, order_new, variant_stocked, warehouse
from tests.payments_helpers import payment_event, signed

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path


def backordering(sku: str, *, on_hand: int, limit: int | None = None, **policy):
    variant = variant_stocked(sku, on_hand=on_hand)
    StockPolicy.objects.create(
        variant=variant, policy=policy.pop("policy", "backorder"), limit=limit, **policy
    )
    return variant


def line_of(order: Order, sku: str) -> OrderLine:
    return OrderLine.objects.get(order=order, sku=sku)


def waiting_for(variant) -> int:
    return StockPolicy.objects.get(variant=variant).backordered


def test_a_backordered_line_reserves_what_exists_and_waits_for_the_rest():
    # given: 2 mugs on hand, back-orders up to 5
    mug = backordering("MUG-1", on_hand=2, limit=5)

    # when
    order = order_new(customer_new(), ("MUG-1", 6))

    # then
    assert line_of(order, "MUG-1").backordered_quantity == 4
    assert StockLevel.objects.values_list("on_hand", "reserved").get() == (2, 2)
    assert Backorder.objects.values_list("reference", "quantity").get() == (order.number, 4)
    assert waiting_for(mug) == 4
    assert stock_drift() == [] and backorder_drift() == []


def test_beyond_the_backorder_limit_the_order_is_refused_with_what_could_be_had():
    # given: 2 on hand, 3 more may wait, 1 waits already
    mug = backordering("MUG-1", on_hand=2, limit=4)
    order_new(customer_new(), ("MUG-1", 3))  # 2 reserved, 1 waiting

    # when
    with pytest.raises(LinesOutOfStock) as refused:
        order_new(customer_new(), ("MUG-1", 4))

    # then: none available, 3 more may wait; nothing changed
    assert refused.value.lines == [{"sku": "MUG-1", "requested": 4, "available": 3}]
    assert waiting_for(mug) == 1
    assert Order.objects.count() == 1


def test_a_deny_variant_is_still_refused_beside_a_backordered_one():
    # given
    backordering("MUG-1", on_hand=0)
    variant_stocked("TEE-1", on_hand=1)

    # when / then: all or nothing
    with pytest.raises(LinesOutOfStock) as refused:
        order_new(customer_new(), ("MUG-1", 2), ("TEE-1", 2))
    assert refused.value.lines == [{"sku": "TEE-1", "requested": 2, "available": 1}]
    assert not Backorder.objects.exists()


def test_a_preorder_sells_before_its_release_date_only():
    # given
    today = timezone.localdate()
    backordering(
        "GAME-1", on_hand=0, policy="preorder", limit=10, release_date=today + datetime.timedelta(1)
    )
    backordering("GAME-2", on_hand=0, policy="preorder", limit=10, release_date=today)

    # when
    order = order_new(customer_new(), ("GAME-1", 2))

    # then
    assert line_of(order, "GAME-1").backordered_quantity == 2
    with pytest.raises(LinesOutOfStock):
        order_new(customer_new(), ("GAME-2", 1))
    # and staff are told the same: the release day itself takes no pre-order
    assert StockPolicy._meta.get_field("release_date").help_text.startswith(
        "Pre-orders are taken before this day"
    )


def test_backordered_units_never_ship_until_stock_is_allocated():
    # given: a paid order of 5 mugs, 2 reserved, 3 waiting
    backordering("MUG-1", on_hand=2)
    order = order_new(customer_new(), ("MUG-1", 5))
    webhook_handle(**signed(payment_event(order)))

    # when: asking for 3 refuses; "everything" ships the 2 reserved
    with pytest.raises(UnitsExceeded) as refused:
        fulfilment_create(
            order=Order.objects.get(pk=order.pk),
            lines=[LineRequest("MUG-1", 3)],
            tracking_number="T-1",
        )
    assert refused.value.lines == [{"sku": "MUG-1", "requested": 3, "available": 2}]
    fulfilment_create(order=Order.objects.get(pk=order.pk), tracking_number="T-1")

    # then: partially shipped, the 3 still waiting, nothing left to ship now
    order.refresh_from_db()
    line = line_of(order, "MUG-1")
    assert (order.status, line.shipped_quantity, line.backordered_quantity) == (
        "partially_shipped",
        2,
        3,
    )
    with pytest.raises(InvalidOrder, match="nothing left to ship"):
        fulfilment_create(order=Order.objects.get(pk=order.pk), tracking_number="T-2")


def test_received_stock_goes_to_the_oldest_backorder_first_after_the_commit(
    django_capture_on_commit_callbacks,
):
    # given: three orders waiting for 2, 3 and 1 mugs, in that order
    mug = backordering("MUG-1", on_hand=0)
    first, second, third = (order_new(customer_new(), ("MUG-1", units)) for units in (2, 3, 1))

    # when: 4 mugs arrive
    with django_capture_on_commit_callbacks(execute=True):
        stock_receive(variant=mug, warehouse=warehouse(), quantity=4)

    # then: the first order is complete, the second has 2 of 3, the third waits
    assert [line_of(order, "MUG-1").backordered_quantity for order in (first, second, third)] == [
        0,
        1,
        1,
    ]
    assert StockLevel.objects.values_list("on_hand", "reserved").get() == (4, 4)
    assert sorted(StockAllocation.objects.values_list("reference", "quantity")) == sorted(
        [(first.number, 2), (second.number, 2)]
    )
    assert list(
        StockMovement.objects.filter(reason="backorder")
        .order_by("pk")
        .values_list("reference", "reserved_delta")
    ) == [(first.number, 2), (second.number, 2)]
    assert waiting_for(mug) == 2
    # and only the completed line's customer is told, through the outbox
    ready = OutboxMessage.objects.filter(kwargs__kind="line_ready")
    assert [message.kwargs["order_id"] for message in ready] == [first.pk]
    email = order_email_render(order=first, kind="line_ready", context=ready[0].kwargs["context"])
    assert email.subject == f"MUG-1 of order {first.number} is ready to ship"
    assert "Item MUG-1 (MUG-1) you ordered" in email.body
    assert first.events.filter(kind="backorder_allocated").exists()
    assert stock_drift() == [] and backorder_drift() == []
    call_command("inventory_verify")


def test_a_preorder_waits_for_its_release_date_even_with_stock_in_and_its_limit_holds(
    django_capture_on_commit_callbacks,
):
    # given: a pre-order of 3 games (limit 4), the 3 on a purchase order
    today = timezone.localdate()
    game = backordering(
        "GAME-1", on_hand=0, policy="preorder", limit=4, release_date=today + datetime.timedelta(7)
    )
    order = order_new(customer_new(), ("GAME-1", 3))
    purchase_order = purchase_order_create(
        number="PO-1",
        supplier="Games Inc",
        warehouse=warehouse(),
        expected_on=today + datetime.timedelta(6),
        lines=[PurchaseUnits(game.pk, 3)],
    )

    # when: the games arrive before the release date
    with django_capture_on_commit_callbacks(execute=True):
        purchase_order_receive(purchase_order=purchase_order)

    # then: nothing pre-ordered is reserved (so nothing ships) before the release, and early
    # stock frees no room under the limit: 3 pre-ordered, 2 more would be 5 > 4
    assert line_of(order, "GAME-1").backordered_quantity == 3
    assert StockLevel.objects.values_list("on_hand", "reserved", "incoming").get() == (3, 0, 0)
    with pytest.raises(LinesOutOfStock) as refused:
        order_new(customer_new(), ("GAME-1", 2))
    assert refused.value.lines == [{"sku": "GAME-1", "requested": 2, "available": 1}]

    # when: the release date comes (moved to today), and the minute's sweep runs
    StockPolicy.objects.filter(pk=game.pk).update(release_date=today)
    with django_capture_on_commit_callbacks(execute=True):
        call_command("run_periodic", "--once")

    # then: the pre-order has its games
    assert line_of(order, "GAME-1").backordered_quantity == 0
    assert StockLevel.objects.values_list("on_hand", "reserved", "incoming").get() == (3, 3, 0)
    assert waiting_for(game) == 0
    call_command("inventory_verify")


def test_released_preorder_units_go_to_the_oldest_preorder_not_to_a_newer_order_served_else(
    django_capture_on_commit_callbacks,
):
    # given: two pre-orders of 2 games, the second in an order that also waits for a mug; the
    # games are in before their release date
    today = timezone.localdate()
    game = backordering(
        "GAME-1", on_hand=0, policy="preorder", limit=10, release_date=today + datetime.timedelta(7)
    )
    mug = backordering("MUG-1", on_hand=0)
    older = order_new(customer_new(), ("GAME-1", 2))
    newer = order_new(customer_new(), ("MUG-1", 1), ("GAME-1", 2))
    with django_capture_on_commit_callbacks(execute=True):
        stock_receive(variant=game, warehouse=warehouse(), quantity=2)

    # when: the release day comes and, before the minute's sweep, a mug arrives for the newer
    # order
    StockPolicy.objects.filter(pk=game.pk).update(release_date=today)
    with django_capture_on_commit_callbacks(execute=True):
        stock_receive(variant=mug, warehouse=warehouse(), quantity=1)

    # then: the newer order got its mug only; the games wait for the sweep, which gives them
    # to the older pre-order, first in line
    assert line_of(newer, "MUG-1").backordered_quantity == 0
    assert line_of(newer, "GAME-1").backordered_quantity == 2
    with django_capture_on_commit_callbacks(execute=True):
        call_command("run_periodic", "--once")
    assert line_of(older, "GAME-1").backordered_quantity == 0
    assert line_of(newer, "GAME-1").backordered_quantity == 2
    call_command("inventory_verify")


def test_cancelling_units_cancels_the_waiting_ones_first():
    # given: 5 mugs ordered, 2 reserved, 3 waiting
    mug = backordering("MUG-1", on_hand=2)
    variant_stocked("TEE-1", on_hand=5)
    order = order_new(customer_new(), ("MUG-1", 5), ("TEE-1", 1))

    # when: 4 mugs cancelled
    order_lines_cancel(order=order, lines=[LineRequest("MUG-1", 4)])

    # then: the 3 waiting and 1 reserved
    line = line_of(order, "MUG-1")
    assert (line.cancelled_quantity, line.backordered_quantity) == (4, 0)
    assert StockLevel.objects.filter(variant=mug).values_list("on_hand", "reserved").get() == (2, 1)
    assert Backorder.objects.values_list("quantity", "cancelled").get() == (3, 3)
    assert waiting_for(mug) == 0
    assert stock_drift() == [] and backorder_drift() == []


def test_a_cancelled_order_waits_for_nothing_and_its_units_go_to_the_next(
    django_capture_on_commit_callbacks,
):
    # given: two orders waiting
    mug = backordering("MUG-1", on_hand=1)
    first = order_new(customer_new(), ("MUG-1", 3))  # 1 reserved, 2 waiting
    second = order_new(customer_new(), ("MUG-1", 1))  # 1 waiting

    # when: the first is cancelled
    with django_capture_on_commit_callbacks(execute=True):
        order_cancel(order=first, reason="changed mind")

    # then: its reserved unit went to the second order
    assert line_of(first, "MUG-1").backordered_quantity == 0
    assert line_of(second, "MUG-1").backordered_quantity == 0
    assert StockAllocation.objects.get(reference=second.number).quantity == 1
    assert waiting_for(mug) == 0
    assert stock_drift() == [] and backorder_drift() == []


def test_stock_coming_in_that_nobody_waits_for_costs_one_query(django_assert_num_queries):
    # given: a back-ordering variant with nothing waiting, a deny one
    mug = backordering("MUG-1", on_hand=3)
    tee = variant_stocked("TEE-1", on_hand=3)

    # when / then: the receiver's work after a receipt's commit reads the waiting backorders
    with django_assert_num_queries(1):
        served = order_backorders_allocate(variant_ids=[mug.pk, tee.pk])
    assert served == 0


def test_units_of_a_reopened_warehouse_go_to_the_waiting_order_not_to_a_newer_checkout(
    django_capture_on_commit_callbacks,
):
    # given: 2 mugs in a closed warehouse; order A waits for 2
    mug = backordering("MUG-1", on_hand=0)
    closed = warehouse("north")
    stock_receive(variant=mug, warehouse=closed, quantity=2)
    warehouse_active_set(warehouse=closed, is_active=False)
    first = order_new(customer_new(), ("MUG-1", 2))
    assert line_of(first, "MUG-1").backordered_quantity == 2

    # when: staff reopen the warehouse, then order B asks for 2
    with django_capture_on_commit_callbacks(execute=True):
        warehouse_active_set(warehouse=closed, is_active=True)
    second = order_new(customer_new(), ("MUG-1", 2))

    # then: A has the 2 mugs, B waits for its 2
    assert line_of(first, "MUG-1").backordered_quantity == 0
    assert line_of(second, "MUG-1").backordered_quantity == 2
    assert StockAllocation.objects.values_list("reference", "quantity").get() == (first.number, 2)
    assert waiting_for(mug) == 2
    assert stock_drift() == [] and backorder_drift() == []


def test_free_units_no_allocation_served_yet_belong_to_the_waiting_order(
    django_capture_on_commit_callbacks,
):
    # given: order A waits for 2 mugs; 3 arrive, but the allocation after that commit never
    # runs (a worker died, it failed): the units sit free while A waits
    mug = backordering("MUG-1", on_hand=0)
    first = order_new(customer_new(), ("MUG-1", 2))
    with django_capture_on_commit_callbacks(execute=False):
        stock_receive(variant=mug, warehouse=warehouse(), quantity=3)

    # when: order B asks for 2
    with django_capture_on_commit_callbacks(execute=True):
        second = order_new(customer_new(), ("MUG-1", 2))

    # then: B takes only the unit beyond A's 2 and waits for the other; its commit serves A
    assert line_of(second, "MUG-1").backordered_quantity == 1
    assert line_of(first, "MUG-1").backordered_quantity == 0
    assert sorted(StockAllocation.objects.values_list("reference", "quantity")) == sorted(
        [(first.number, 2), (second.number, 1)]
    )
    assert waiting_for(mug) == 1
    assert stock_drift() == [] and backorder_drift() == []


def test_a_deny_checkout_cannot_take_units_owed_to_waiting_backorders():
    # given: A waits for 2 mugs; staff then stop back-orders; 2 mugs sit free, not yet
    # allocated
    mug = backordering("MUG-1", on_hand=0)
    first = order_new(customer_new(), ("MUG-1", 2))
    stock_policy_set(variant=mug, policy="deny")
    stock_receive(variant=mug, warehouse=warehouse(), quantity=3)  # no commit: no allocation

    # when
    with pytest.raises(LinesOutOfStock) as refused:
        order_new(customer_new(), ("MUG-1", 2))

    # then: only the unit beyond A's is for sale
    assert refused.value.lines == [{"sku": "MUG-1", "requested": 2, "available": 1}]
    assert line_of(first, "MUG-1").backordered_quantity == 2


def test_the_minute_sweep_serves_what_a_lost_allocation_left_waiting(
    django_capture_on_commit_callbacks,
):
    # given: A waits for 2 mugs; 2 arrive, but the allocation after that commit is lost
    mug = backordering("MUG-1", on_hand=0)
    first = order_new(customer_new(), ("MUG-1", 2))
    with django_capture_on_commit_callbacks(execute=False):
        stock_receive(variant=mug, warehouse=warehouse(), quantity=2)
    assert line_of(first, "MUG-1").backordered_quantity == 2

    # when: the periodic jobs run (beat's schedule, in-process)
    with django_capture_on_commit_callbacks(execute=True):
        call_command("run_periodic", "--once")

    # then
    assert line_of(first, "MUG-1").backordered_quantity == 0
    assert waiting_for(mug) == 0
    assert StockAllocation.objects.values_list("reference", "quantity").get() == (first.number, 2)


def test_a_full_refund_of_a_paid_order_cancels_the_units_it_waits_for():
    # given: a paid order holds 2 mugs and waits for 3
    mug = backordering("MUG-1", on_hand=2)
    order = order_new(customer_new(), ("MUG-1", 5))
    webhook_handle(**signed(payment_event(order, payment_reference="pi_1")))

    # when: the payment is refunded in full
    webhook_handle(
        **signed(payment_event(order, event_type="refund.succeeded", payment_reference="pi_1"))
    )

    # then: refunded, the 2 held go back on sale, nothing waits any more
    order.refresh_from_db()
    assert order.status == "refunded"
    assert StockLevel.objects.values_list("on_hand", "reserved").get() == (2, 0)
    assert Backorder.objects.values_list("quantity", "allocated", "cancelled").get() == (3, 0, 3)
    assert waiting_for(mug) == 0
    assert stock_drift() == [] and backorder_drift() == []


def test_counting_a_shipment_of_units_that_wait_for_stock_is_refused_not_a_database_error():
    # given: a line holding 2 mugs and waiting for 3 (as read by a caller without the lock)
    backordering("MUG-1", on_hand=2)
    order = order_new(customer_new(), ("MUG-1", 5))
    line = line_of(order, "MUG-1")

    # when: 3 units are counted as shipped
    with pytest.raises(UnitsExceeded) as refused:
        lines_count(units=[(line, 3)], field="shipped_quantity", code="ship", verb="ship")

    # then
    assert refused.value.lines == [{"sku": "MUG-1", "requested": 3, "available": 0}]
    assert line_of(order, "MUG-1").shipped_quantity == 0


@pytest.mark.parametrize("drift", ["line changed", "backorder changed"])
def test_orders_verify_finds_a_line_that_waits_for_other_units_than_its_backorder(drift):
    # given: a line waiting for 3 mugs, its backorder for 3
    backordering("MUG-1", on_hand=2)
    order = order_new(customer_new(), ("MUG-1", 5))
    out = io.StringIO()
    call_command("orders_verify", stdout=out)
    assert out.getvalue() == "order lines and backorders agree\n"
    if drift == "line changed":
        OrderLine.objects.update(backordered_quantity=1)
    else:
        Backorder.objects.update(allocated=1)
    out = io.StringIO()

    # when
    with pytest.raises(CommandError, match="1 order line"):
        call_command("orders_verify", stdout=out)

    # then
    line, backorder = (1, 3) if drift == "line changed" else (3, 2)
    assert out.getvalue() == (
        f"{order.number} MUG-1: the line waits for {line} units, its backorder for {backorder}\n"
    )
