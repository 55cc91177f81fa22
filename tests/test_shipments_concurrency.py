"""Races on one order, on PostgreSQL with real threads: shipments, cancellations, returns,
and the allocation of back-ordered units as stock comes in."""

from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db.models import Sum

from inventory.models import Backorder, StockAllocation, StockLevel, StockPolicy
from inventory.selectors import backorder_drift, stock_drift
from inventory.services import stock_receive
from orders.models import FulfilmentLine, Order, OrderLine
from orders.services import LineRequest, UnitsExceeded, fulfilment_create, order_lines_cancel
from outbox.models import OutboxMessage
from payments.models import Payment, Refund
from payments.services import RefundExceedsPayment, refund_partial, refund_return, webhook_handle
from tests.orders_helpers import customer_new, order_new, variant_stocked, warehouse
from tests.payments_helpers import payment_event, signed

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path


def _paid_order_with_a_parcel_out() -> Order:
    """4 of MUG-1 at 5.00 and 2 of TEE-1 at 10.00 (44.90 with shipping), paid; one parcel
    with 1 mug and both tees has shipped, so 3 mugs are still to ship."""
    variant_stocked("MUG-1", price="5.00", on_hand=10)
    variant_stocked("TEE-1", price="10.00", on_hand=10)
    order = order_new(customer_new(), ("MUG-1", 4), ("TEE-1", 2))
    webhook_handle(**signed(payment_event(order)))
    fulfilment_create(
        order=Order.objects.get(pk=order.pk),
        lines=[LineRequest("MUG-1", 1), LineRequest("TEE-1", 2)],
        tracking_number="T-0",
    )
    return order


def test_a_shipment_a_cancellation_and_a_return_racing_leave_everything_consistent(
    run_concurrently,
):
    # given: 3 mugs left to ship, asked for by a parcel of 2 and a cancellation of 2
    order = _paid_order_with_a_parcel_out()
    returns = warehouse("returns", priority=90)

    def act(index: int) -> str:
        fresh = Order.objects.get(pk=order.pk)
        if index == 0:
            fulfilment_create(order=fresh, lines=[LineRequest("MUG-1", 2)], tracking_number="T-1")
            return "shipped"
        if index == 1:
            order_lines_cancel(order=fresh, lines=[LineRequest("MUG-1", 2)], reason="race")
            return "cancelled"
        refund_return(
            order=fresh,
            lines=[LineRequest("TEE-1", 2)],
            restock_warehouse=returns,
            refund_shipping=True,
        )
        return "returned"

    # when
    results = run_concurrently(act, 3)

    # then: the return always goes through; of the parcel and the cancellation, the second
    # finds only one mug left and changes nothing
    assert results[2] == "returned"
    winners = [r for r in results[:2] if isinstance(r, str)]
    losers = [r for r in results[:2] if not isinstance(r, str)]
    assert len(winners) == 1 and len(losers) == 1, results
    assert isinstance(losers[0], UnitsExceeded)
    assert losers[0].lines == [{"sku": "MUG-1", "requested": 2, "available": 1}]

    order.refresh_from_db()
    mug = OrderLine.objects.get(order=order, sku="MUG-1")
    tee = OrderLine.objects.get(order=order, sku="TEE-1")
    if winners == ["shipped"]:
        assert (mug.shipped_quantity, mug.cancelled_quantity) == (3, 0)
        assert (order.status, order.total) == ("partially_shipped", Decimal("44.90"))
        refunds = [Decimal("24.90")]
    else:
        assert (mug.shipped_quantity, mug.cancelled_quantity) == (1, 2)
        assert (order.status, order.total) == ("partially_shipped", Decimal("34.90"))
        refunds = [Decimal("10.00"), Decimal("24.90")]
    assert (tee.shipped_quantity, tee.returned_quantity) == (2, 2)

    # the money: refunds are what was cancelled and returned, within the payment
    payment = Payment.objects.get(order=order)
    assert sorted(Refund.objects.filter(order=order).values_list("amount", flat=True)) == refunds
    assert payment.refunded_total == sum(refunds) <= payment.amount
    assert order.total == order.subtotal + order.shipping
    assert order.subtotal == sum(line.line_total for line in (mug, tee))

    # the ledger and the allocations agree with the lines
    assert stock_drift() == []
    for line in (mug, tee):
        allocations = StockAllocation.objects.filter(
            reference=order.number, level__variant_id=line.variant_id
        ).aggregate(shipped=Sum("shipped"), released=Sum("released"), returned=Sum("returned"))
        shipped_in_parcels = FulfilmentLine.objects.filter(line=line).aggregate(
            total=Sum("quantity")
        )["total"]
        assert allocations == {
            "shipped": line.shipped_quantity,
            "released": line.cancelled_quantity,
            "returned": line.returned_quantity,
        }
        assert shipped_in_parcels == line.shipped_quantity


def test_two_partial_refunds_at_once_never_give_back_more_than_was_paid(run_concurrently):
    # given: 44.90 paid
    order = _paid_order_with_a_parcel_out()

    # when: two refunds of 30.00 each, at the same moment
    results = run_concurrently(
        lambda _: refund_partial(
            order=Order.objects.get(pk=order.pk), amount=Decimal("30.00"), reason="goodwill"
        ),
        2,
    )

    # then
    refused = [r for r in results if isinstance(r, Exception)]
    assert len(refused) == 1 and isinstance(refused[0], RefundExceedsPayment)
    payment = Payment.objects.get(order=order)
    assert payment.refunded_total == Decimal("30.00")
    assert list(Refund.objects.values_list("amount", flat=True)) == [Decimal("30.00")]


def test_a_receipt_a_shipment_and_a_cancellation_racing_on_a_backordered_line_stay_consistent(
    run_concurrently,
):
    # given: a paid order of 5 mugs (2 reserved, 3 waiting: the mug back-orders) and 2 tees
    mug = variant_stocked("MUG-1", price="5.00", on_hand=2)
    StockPolicy.objects.create(variant=mug, policy="backorder")
    variant_stocked("TEE-1", price="10.00", on_hand=10)
    order = order_new(customer_new(), ("MUG-1", 5), ("TEE-1", 2))
    webhook_handle(**signed(payment_event(order)))

    def act(index: int) -> str:
        fresh = Order.objects.get(pk=order.pk)
        if index == 0:
            # The waiting mugs get these after the commit, in a transaction of their own.
            stock_receive(variant=mug, warehouse=warehouse(), quantity=3)
            return "received"
        if index == 1:
            fulfilment_create(order=fresh, lines=[LineRequest("MUG-1", 2)], tracking_number="T-1")
            return "shipped"
        order_lines_cancel(order=fresh, lines=[LineRequest("MUG-1", 2)], reason="race")
        return "cancelled"

    # when
    results = run_concurrently(act, 3)

    # then: in every order of events all three go through (2 mugs are reserved whatever
    # ran first, and a cancellation takes the waiting units first)
    assert results == ["received", "shipped", "cancelled"]
    order.refresh_from_db()
    line = OrderLine.objects.get(order=order, sku="MUG-1")
    assert (line.shipped_quantity, line.cancelled_quantity, line.backordered_quantity) == (2, 2, 0)
    assert order.status == "partially_shipped"
    assert order.total == order.subtotal + order.shipping == Decimal("39.90")

    # the ledger, the allocations, the backorder and the line tell one story: 1 mug is still
    # reserved for the order, 2 are left to sell
    allocations = StockAllocation.objects.filter(
        reference=order.number, level__variant=mug
    ).aggregate(quantity=Sum("quantity"), shipped=Sum("shipped"), released=Sum("released"))
    backorder = Backorder.objects.get(reference=order.number)
    assert backorder.waiting == 0
    assert allocations["quantity"] == 2 + backorder.allocated
    assert allocations["shipped"] == line.shipped_quantity
    assert allocations["released"] + backorder.cancelled == line.cancelled_quantity
    assert allocations["quantity"] - allocations["shipped"] - allocations["released"] == 1
    assert StockLevel.objects.filter(variant=mug).values_list("on_hand", "reserved").get() == (3, 1)
    assert StockPolicy.objects.get(variant=mug).backordered == 0
    assert stock_drift() == [] and backorder_drift() == []
    call_command("inventory_verify")

    # the money: the cancelled mugs are refunded, within the payment
    payment = Payment.objects.get(order=order)
    assert list(Refund.objects.filter(order=order).values_list("amount", flat=True)) == [
        Decimal("10.00")
    ]
    assert payment.refunded_total <= payment.amount
    # and the customer was told once that the line is complete
    assert (
        OutboxMessage.objects.filter(kwargs__kind="line_ready", kwargs__order_id=order.pk).count()
        == 1
    )
