"""Split shipments, partial cancellation and returns: exact units, stock, money and e-mails."""

from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.core import mail

from inventory.models import StockAllocation, StockLevel, StockMovement
from inventory.selectors import stock_drift
from inventory.services import stock_receive
from orders.models import (
    Customer,
    DailySales,
    Fulfilment,
    Order,
    OrderLine,
    VariantSales,
)
from orders.services import (
    InvalidOrder,
    InvalidTransition,
    LineRequest,
    ShippingRefundedAlready,
    UnitsExceeded,
    UnknownSku,
    counters_recomputed,
    fulfilment_create,
    order_lines_cancel,
    order_ship,
)
from outbox.models import OutboxMessage
from payments.models import CreditNote, Payment, Refund
from payments.services import RefundExceedsPayment, refund_partial, refund_return, webhook_handle
from tests.orders_helpers import customer_new, order_new, variant_stocked, warehouse
from tests.payments_helpers import payment_event, signed

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path


@pytest.fixture
def staff():
    return get_user_model().objects.create_user(username="stan", email="stan@x.io", is_staff=True)


@pytest.fixture
def paid_order(django_capture_on_commit_callbacks):
    """3 of MUG-1 at 5.00 (2 held in `main`, 1 in `north`) and 2 of TEE-1 at 10.00, paid:
    subtotal 35.00 + shipping 4.90 = 39.90."""
    mug = variant_stocked("MUG-1", price="5.00", on_hand=2)
    stock_receive(variant=mug, warehouse=warehouse("north", priority=20), quantity=5)
    variant_stocked("TEE-1", price="10.00", on_hand=10)
    with django_capture_on_commit_callbacks(execute=True):
        order = order_new(customer_new("ada@example.com"), ("MUG-1", 3), ("TEE-1", 2))
    with django_capture_on_commit_callbacks(execute=True):
        webhook_handle(**signed(payment_event(order)))
    order.refresh_from_db()
    mail.outbox.clear()
    return order


def _lines(order: Order) -> dict[str, tuple[int, int, int, int, str]]:
    return {
        line.sku: (
            line.quantity,
            line.shipped_quantity,
            line.cancelled_quantity,
            line.returned_quantity,
            str(line.line_total),
        )
        for line in OrderLine.objects.filter(order=order)
    }


def _levels(sku: str) -> dict[str, tuple[int, int]]:
    return {
        level.warehouse.code: (level.on_hand, level.reserved)
        for level in StockLevel.objects.filter(variant__sku=sku).select_related("warehouse")
    }


def _emails(kind: str) -> list[dict]:
    return [
        message.kwargs
        for message in OutboxMessage.objects.filter(task_name="orders.email_send").order_by(
            "created_at"
        )
        if message.kwargs["kind"] == kind
    ]


def test_a_first_shipment_ships_its_units_and_leaves_the_order_partially_shipped(
    paid_order, staff, django_capture_on_commit_callbacks
):
    # given
    assert (paid_order.total, paid_order.shipping) == (Decimal("39.90"), Decimal("4.90"))
    north = warehouse("north")

    # when
    with django_capture_on_commit_callbacks(execute=True):
        shipment = fulfilment_create(
            order=paid_order,
            lines=[LineRequest(sku="MUG-1", quantity=1), LineRequest(sku="TEE-1", quantity=2)],
            warehouse=None,
            tracking_number="TRACK-1",
            carrier="DHL",
            actor=staff,
        )

    # then
    paid_order.refresh_from_db()
    assert (paid_order.status, paid_order.tracking_number) == ("partially_shipped", "TRACK-1")
    assert paid_order.shipped_at is None
    assert _lines(paid_order) == {
        "MUG-1": (3, 1, 0, 0, "15.00"),
        "TEE-1": (2, 2, 0, 0, "20.00"),
    }
    assert (shipment.tracking_number, shipment.carrier, shipment.shipped_by) == (
        "TRACK-1",
        "DHL",
        staff,
    )
    assert sorted(shipment.lines.values_list("line__sku", "warehouse__code", "quantity")) == [
        ("MUG-1", "main", 1),
        ("TEE-1", "main", 2),
    ]
    assert _levels("MUG-1") == {"main": (1, 1), "north": (5, 1)}
    assert (
        StockAllocation.objects.get(
            reference=paid_order.number, level__variant__sku="MUG-1", level__warehouse=north
        ).shipped
        == 0
    )
    assert _emails("shipped") == [
        {
            "order_id": paid_order.pk,
            "kind": "shipped",
            "reference": f"shipment-{shipment.pk}",
            "context": {"shipment_id": str(shipment.pk)},
        }
    ]
    assert dict(VariantSales.objects.values_list("variant__sku", "units_shipped")) == {
        "MUG-1": 1,
        "TEE-1": 2,
    }
    assert list(paid_order.events.values_list("kind", "to_status"))[-1] == (
        "partially_shipped",
        "partially_shipped",
    )
    assert stock_drift() == []


def test_the_last_shipment_ships_the_order_and_each_gets_its_own_email(
    paid_order, staff, django_capture_on_commit_callbacks
):
    # given
    with django_capture_on_commit_callbacks(execute=True):
        first = fulfilment_create(
            order=paid_order,
            lines=[LineRequest(sku="MUG-1", quantity=2)],
            tracking_number="TRACK-1",
            actor=staff,
        )

    # when: the rest, from the warehouse the last mug is held in
    with django_capture_on_commit_callbacks(execute=True):
        second = fulfilment_create(
            order=paid_order,
            lines=[LineRequest(sku="MUG-1", quantity=1), LineRequest(sku="TEE-1", quantity=2)],
            tracking_number="TRACK-2",
            actor=staff,
        )

    # then
    paid_order.refresh_from_db()
    assert paid_order.status == "shipped" and paid_order.shipped_at is not None
    assert paid_order.tracking_number == "TRACK-2"
    assert sorted(second.lines.values_list("line__sku", "warehouse__code", "quantity")) == [
        ("MUG-1", "north", 1),
        ("TEE-1", "main", 2),
    ]
    assert sorted(first.lines.values_list("line__sku", "warehouse__code", "quantity")) == [
        ("MUG-1", "main", 2),
    ]
    assert _levels("MUG-1") == {"main": (0, 0), "north": (4, 0)}
    assert dict(VariantSales.objects.values_list("variant__sku", "units_shipped")) == {
        "MUG-1": 3,
        "TEE-1": 2,
    }
    assert [kwargs["reference"] for kwargs in _emails("shipped")] == [
        f"shipment-{first.pk}",
        f"shipment-{second.pk}",
    ]
    assert stock_drift() == []

    # and each e-mail (sent on commit) names its own parcel
    first_mail, second_mail = mail.outbox
    assert "Tracking number: TRACK-1" in first_mail.body
    assert "2 × Item MUG-1 (MUG-1)" in first_mail.body and "TEE-1" not in first_mail.body
    assert "Tracking number: TRACK-2" in second_mail.body
    assert "1 × Item MUG-1 (MUG-1)" in second_mail.body
    assert "2 × Item TEE-1 (TEE-1)" in second_mail.body


def test_ship_sends_everything_left_in_one_shipment(paid_order, staff):
    # given
    fulfilment_create(
        order=paid_order, lines=[LineRequest("TEE-1", 1)], tracking_number="T-1", actor=staff
    )

    # when
    order_ship(order=paid_order, tracking_number="T-2", actor=staff)

    # then
    assert paid_order.status == "shipped"
    last = Fulfilment.objects.filter(order=paid_order).order_by("id").last()
    assert sorted(last.lines.values_list("line__sku", "warehouse__code", "quantity")) == [
        ("MUG-1", "main", 2),
        ("MUG-1", "north", 1),
        ("TEE-1", "main", 1),
    ]
    assert {sku: line[1] for sku, line in _lines(paid_order).items()} == {"MUG-1": 3, "TEE-1": 2}


@pytest.mark.parametrize(
    ("lines", "warehouse_code", "error", "code"),
    [
        ([LineRequest("MUG-1", 4)], None, UnitsExceeded, "over_shipment"),
        ([LineRequest("MUG-1", 2)], "north", UnitsExceeded, "over_shipment"),
        ([LineRequest("NOPE-1", 1)], None, UnknownSku, "unknown_sku"),
        ([LineRequest("MUG-1", 0)], None, InvalidOrder, "invalid_order"),
        ([], None, InvalidOrder, "invalid_order"),
    ],
)
def test_a_shipment_beyond_what_is_left_or_held_changes_nothing(
    paid_order, lines, warehouse_code, error, code
):
    # given
    ledger_before = StockMovement.objects.count()
    north = warehouse("north")

    # when
    with pytest.raises(error) as raised:
        fulfilment_create(
            order=paid_order,
            lines=lines,
            warehouse=north if warehouse_code else None,
            tracking_number="T-1",
        )

    # then
    assert raised.value.code == code
    paid_order.refresh_from_db()
    assert paid_order.status == "paid"
    assert not Fulfilment.objects.exists()
    assert StockMovement.objects.count() == ledger_before
    assert {sku: line[1] for sku, line in _lines(paid_order).items()} == {"MUG-1": 0, "TEE-1": 0}
    assert _emails("shipped") == []


def test_over_shipping_names_each_line_with_what_it_has_left(paid_order):
    with pytest.raises(UnitsExceeded) as raised:
        fulfilment_create(
            order=paid_order,
            lines=[LineRequest("MUG-1", 2)],
            warehouse=warehouse("north"),
            tracking_number="T-1",
        )
    assert raised.value.lines == [{"sku": "MUG-1", "requested": 2, "available": 1}]


def test_an_unpaid_order_cannot_ship_in_part():
    variant_stocked("MUG-1", on_hand=5)
    order = order_new(customer_new(), ("MUG-1", 2))
    with pytest.raises(InvalidTransition):
        fulfilment_create(order=order, lines=[LineRequest("MUG-1", 1)], tracking_number="T-1")
    assert not Fulfilment.objects.exists()


def test_cancelling_units_of_a_paid_order_releases_them_and_refunds_exactly_their_price(
    paid_order, staff, django_capture_on_commit_callbacks
):
    # when: 2 mugs go (10.00)
    with django_capture_on_commit_callbacks(execute=True):
        order_lines_cancel(
            order=paid_order, lines=[LineRequest("MUG-1", 2)], actor=staff, reason="out of glaze"
        )

    # then
    paid_order.refresh_from_db()
    assert paid_order.status == "paid"
    assert (paid_order.subtotal, paid_order.shipping, paid_order.total) == (
        Decimal("25.00"),
        Decimal("4.90"),
        Decimal("29.90"),
    )
    assert _lines(paid_order)["MUG-1"] == (3, 0, 2, 0, "5.00")
    # released from the last warehouse first: north's one, then one of main's two
    assert _levels("MUG-1") == {"main": (2, 1), "north": (5, 0)}
    refund = Refund.objects.get(order=paid_order)
    assert refund.amount == Decimal("10.00")
    assert CreditNote.objects.get(refund=refund).amount == Decimal("10.00")
    assert Payment.objects.get(order=paid_order).refunded_total == Decimal("10.00")
    cancellation = _emails("lines_cancelled")
    assert [message["context"] for message in cancellation] == [
        {"amount": "10.00", "units": "2 × MUG-1", "paid": "yes"}
    ]
    assert [message["context"] for message in _emails("refund")] == [
        {"amount": "10.00", "currency": "EUR"}
    ]
    assert stock_drift() == []

    # and the notice (sent on commit) states the amount and the order as it now stands
    [body] = [message.body for message in mail.outbox if "was cancelled" in message.subject]
    assert "We cancelled 2 × MUG-1 of order" in body and "10.00 EUR" in body
    assert "Total     29.90 EUR" in body


def test_cancelling_the_last_units_to_ship_completes_a_partially_shipped_order(paid_order, staff):
    # given
    fulfilment_create(
        order=paid_order, lines=[LineRequest("TEE-1", 2)], tracking_number="T-1", actor=staff
    )

    # when
    order_lines_cancel(order=paid_order, lines=[LineRequest("MUG-1", 3)], actor=staff)

    # then
    paid_order.refresh_from_db()
    assert paid_order.status == "shipped"
    assert paid_order.total == Decimal("24.90")
    assert Refund.objects.get(order=paid_order).amount == Decimal("15.00")
    assert (
        StockAllocation.objects.filter(reference=paid_order.number, state="reserved").count() == 0
    )
    assert stock_drift() == []


def test_cancelling_every_unit_of_an_order_nothing_of_which_shipped_cancels_it_whole(
    paid_order, staff
):
    # when
    order_lines_cancel(
        order=paid_order,
        lines=[LineRequest("MUG-1", 3), LineRequest("TEE-1", 2)],
        actor=staff,
    )

    # then: the full cancel path: status, the whole payment back, lines as placed
    paid_order.refresh_from_db()
    assert paid_order.status == "cancelled"
    assert paid_order.total == Decimal("39.90")
    assert Refund.objects.get(order=paid_order).amount == Decimal("39.90")
    assert _lines(paid_order)["MUG-1"][2] == 0
    assert _levels("MUG-1") == {"main": (2, 0), "north": (5, 0)}


def test_cancelling_units_of_an_unpaid_order_refunds_nothing_and_the_new_total_pays_it():
    # given
    variant_stocked("MUG-1", price="12.50", on_hand=5)
    order = order_new(customer_new(), ("MUG-1", 3))

    # when
    order_lines_cancel(order=order, lines=[LineRequest("MUG-1", 1)])

    # then
    order.refresh_from_db()
    assert (order.status, order.total) == ("pending_payment", Decimal("29.90"))
    assert not Refund.objects.exists()
    webhook_handle(**signed(payment_event(order)))
    order.refresh_from_db()
    assert (order.status, order.needs_attention) == ("paid", False)


def test_a_cancellation_keeps_free_shipping_when_the_subtotal_falls_below_the_threshold():
    # given: 50.00 ships free
    variant_stocked("MUG-1", price="12.50", on_hand=5)
    order = order_new(customer_new(), ("MUG-1", 4))
    webhook_handle(**signed(payment_event(order)))
    assert order.shipping == Decimal("0.00")

    # when
    order_lines_cancel(order=order, lines=[LineRequest("MUG-1", 1)])

    # then: no shipping charge appears; the refund is the mug's price
    order.refresh_from_db()
    assert (order.subtotal, order.shipping, order.total) == (
        Decimal("37.50"),
        Decimal("0.00"),
        Decimal("37.50"),
    )
    assert Refund.objects.get(order=order).amount == Decimal("12.50")


@pytest.mark.parametrize(
    ("lines", "error", "code"),
    [
        ([LineRequest("MUG-1", 4)], UnitsExceeded, "over_cancellation"),
        ([LineRequest("NOPE-1", 1)], UnknownSku, "unknown_sku"),
        ([LineRequest("MUG-1", -1)], InvalidOrder, "invalid_order"),
    ],
)
def test_a_bad_cancellation_changes_nothing(paid_order, lines, error, code):
    with pytest.raises(error) as raised:
        order_lines_cancel(order=paid_order, lines=lines)
    assert raised.value.code == code
    paid_order.refresh_from_db()
    assert (paid_order.status, paid_order.total) == ("paid", Decimal("39.90"))
    assert not Refund.objects.exists()
    assert _levels("MUG-1") == {"main": (2, 2), "north": (5, 1)}


def test_cancelled_and_shipped_units_leave_the_counters_as_a_recount_finds_them(
    paid_order, staff, django_capture_on_commit_callbacks
):
    # when
    with django_capture_on_commit_callbacks(execute=True):
        fulfilment_create(
            order=paid_order, lines=[LineRequest("MUG-1", 1)], tracking_number="T-1", actor=staff
        )
        order_lines_cancel(order=paid_order, lines=[LineRequest("TEE-1", 1)], actor=staff)

    # then
    stored = {
        "customers": {
            row.pk: (row.order_count, row.lifetime_value) for row in Customer.objects.all()
        },
        "daily": {
            row.date: (row.orders, row.units, row.revenue) for row in DailySales.objects.all()
        },
        "variants": {
            row.variant_id: (row.units_sold, row.units_shipped)
            for row in VariantSales.objects.all()
        },
    }
    assert stored == counters_recomputed()
    assert stored["customers"][paid_order.customer_id][1] == Decimal("29.90")
    assert list(stored["daily"].values()) == [(1, 4, Decimal("29.90"))]


def test_a_return_restocks_where_staff_say_and_refunds_the_units_and_shipping_once(
    paid_order, staff
):
    # given
    order_ship(order=paid_order, tracking_number="T-1", actor=staff)
    returns = warehouse("returns", priority=90)

    # when
    refund = refund_return(
        order=paid_order,
        lines=[LineRequest("MUG-1", 2)],
        restock_warehouse=returns,
        refund_shipping=True,
        actor=staff,
        reason="arrived broken",
    )

    # then
    assert refund.amount == Decimal("14.90")
    assert CreditNote.objects.get(refund=refund).amount == Decimal("14.90")
    paid_order.refresh_from_db()
    assert (paid_order.status, paid_order.total) == ("shipped", Decimal("39.90"))
    assert _lines(paid_order)["MUG-1"] == (3, 3, 0, 2, "15.00")
    assert _levels("MUG-1") == {"main": (0, 0), "north": (4, 0), "returns": (2, 0)}
    assert list(
        StockMovement.objects.filter(reason="return").values_list(
            "level__warehouse__code", "on_hand_delta", "note"
        )
    ) == [("returns", 2, "returned arrived broken")]
    assert stock_drift() == []

    # when: the shipping charge a second time, or more mugs than are still out
    with pytest.raises(ShippingRefundedAlready):
        refund_return(order=paid_order, lines=[LineRequest("MUG-1", 1)], refund_shipping=True)
    with pytest.raises(UnitsExceeded) as raised:
        refund_return(order=paid_order, lines=[LineRequest("MUG-1", 2)])

    # then: nothing more went back
    assert raised.value.code == "over_return"
    assert list(Refund.objects.values_list("amount", flat=True)) == [Decimal("14.90")]
    assert _lines(paid_order)["MUG-1"][3] == 2


def test_returning_everything_paid_refunds_the_order(paid_order, staff):
    # given
    order_ship(order=paid_order, tracking_number="T-1", actor=staff)

    # when
    refund_return(
        order=paid_order,
        lines=[LineRequest("MUG-1", 3), LineRequest("TEE-1", 2)],
        refund_shipping=True,
        actor=staff,
    )

    # then
    paid_order.refresh_from_db()
    assert paid_order.status == "refunded"
    payment = Payment.objects.get(order=paid_order)
    assert (payment.status, payment.refunded_total) == ("refunded", Decimal("39.90"))


def test_a_partial_refund_beyond_what_is_left_of_the_payment_is_refused(paid_order):
    # given
    refund_partial(order=paid_order, amount=Decimal("35.00"), reason="goodwill")

    # when
    with pytest.raises(RefundExceedsPayment):
        refund_partial(order=paid_order, amount=Decimal("4.91"), reason="more goodwill")

    # then
    assert Payment.objects.get(order=paid_order).refunded_total == Decimal("35.00")
    assert Refund.objects.count() == 1
