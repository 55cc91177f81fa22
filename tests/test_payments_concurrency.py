"""Races on PostgreSQL with real threads: replayed webhooks, invoice numbers, ship vs cancel."""

import threading
import time
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core import mail
from django.db import connection, connections
from django.utils import timezone

from inventory.models import StockAllocation, StockLevel, StockMovement
from inventory.services import stock_receive
from orders.models import Customer, DailySales, Order, OrderStatus, SentEmail, VariantSales
from orders.services import (
    InvalidTransition,
    LineRequest,
    LinesOutOfStock,
    counters,
    counters_recomputed,
    counters_reconcile,
    order_cancel,
    order_email_send,
    order_lines_cancel,
    order_ship,
    orders_expire_unpaid,
)
from payments.models import CreditNote, Invoice, Payment, PaymentStatus, Refund
from payments.services import refund_issue, webhook_handle, webhooks
from tests.locks import committed_while_waited_on, held_by_another_transaction
from tests.orders_helpers import customer_new, order_new, variant_stocked, warehouse
from tests.payments_helpers import payment_event, signed

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path


def test_the_same_webhook_five_times_at_once_pays_once(run_concurrently):
    # given
    variant_stocked("MUG-1", price="12.50", on_hand=10)
    order = order_new(customer_new(), ("MUG-1", 2))
    call = signed(payment_event(order))

    # when
    results = run_concurrently(lambda _: webhook_handle(**call), 5)

    # then
    assert results == [None] * 5
    assert Payment.objects.count() == 1
    assert Invoice.objects.filter(order=order).count() == 1
    assert list(
        SentEmail.objects.filter(order=order).values_list("kind", flat=True).order_by("kind")
    ) == [
        "confirmation",
        "receipt",
    ]
    assert [m.subject for m in mail.outbox].count(f"Payment received for order {order.number}") == 1
    assert Customer.objects.get(pk=order.customer_id).lifetime_value == Decimal("29.90")


def test_twenty_orders_paid_at_once_get_twenty_consecutive_invoice_numbers(run_concurrently):
    # given
    variant_stocked("MUG-1", price="5.00", on_hand=100)
    customer = customer_new()
    orders = [order_new(customer, ("MUG-1", 1)) for _ in range(20)]
    calls = [signed(payment_event(order)) for order in orders]

    # when
    results = run_concurrently(lambda i: webhook_handle(**calls[i]), 20)

    # then
    assert results == [None] * 20
    numbers = sorted(Invoice.objects.values_list("number", flat=True))
    year = numbers[0].split("-")[1]
    assert numbers == [f"INV-{year}-{n:06d}" for n in range(1, 21)]
    assert Order.objects.filter(status=OrderStatus.PAID).count() == 20


def test_ship_and_cancel_racing_on_a_paid_order_exactly_one_wins(run_concurrently):
    # given
    variant = variant_stocked("MUG-1", price="12.50", on_hand=10)
    order = order_new(customer_new(), ("MUG-1", 3))
    webhook_handle(**signed(payment_event(order)))

    def act(index: int) -> str:
        fresh = Order.objects.get(pk=order.pk)
        if index == 0:
            order_ship(order=fresh, tracking_number="TRACK-1")
            return "shipped"
        order_cancel(order=fresh, reason="race")
        return "cancelled"

    # when
    results = run_concurrently(act, 2)

    # then
    winners = [r for r in results if isinstance(r, str)]
    losers = [r for r in results if isinstance(r, Exception)]
    assert len(winners) == 1 and len(losers) == 1
    assert isinstance(losers[0], InvalidTransition)
    order.refresh_from_db()
    assert order.status == winners[0]
    level = StockLevel.objects.get(variant=variant)
    allocation = StockAllocation.objects.get(reference=order.number)
    ledger = list(
        StockMovement.objects.filter(reference=order.number)
        .order_by("id")
        .values_list("reason", "on_hand_delta", "reserved_delta")
    )
    if winners[0] == "shipped":
        assert (level.on_hand, level.reserved, allocation.state) == (7, 0, "shipped")
        assert ledger == [("reservation", 0, 3), ("shipment", -3, -3)]
        assert Refund.objects.count() == 0
    else:
        assert (level.on_hand, level.reserved, allocation.state) == (10, 0, "released")
        assert ledger == [("reservation", 0, 3), ("release", 0, -3)]
        assert Refund.objects.count() == 1 and CreditNote.objects.count() == 1


def test_counters_equal_the_recomputation_after_concurrent_orders(run_concurrently):
    # given
    for sku in ("A-1", "B-1", "C-1"):
        variant_stocked(sku, price="3.00", on_hand=200)
    customers = [customer_new() for _ in range(4)]

    def buy_and_pay(index: int) -> None:
        order = order_new(customers[index % 4], ("A-1", 1 + index % 3), ("B-1", 2), ("C-1", 1))
        webhook_handle(**signed(payment_event(order)))
        if index % 4 == 0:
            order_ship(order=Order.objects.get(pk=order.pk), tracking_number=f"T-{index}")
        if index % 4 == 1:
            order_cancel(order=Order.objects.get(pk=order.pk), reason="changed mind")

    # when
    results = run_concurrently(buy_and_pay, 12)

    # then
    assert results == [None] * 12
    expected = counters_recomputed()
    assert {c.pk: (c.order_count, c.lifetime_value) for c in Customer.objects.all()} == expected[
        "customers"
    ]
    assert {d.date: (d.orders, d.units, d.revenue) for d in DailySales.objects.all()} == expected[
        "daily"
    ]
    assert {
        v.variant_id: (v.units_sold, v.units_shipped) for v in VariantSales.objects.all()
    } == expected["variants"]
    assert sum(count for count, _ in expected["customers"].values()) == 12


def test_many_buyers_of_few_units_never_oversell(run_concurrently):
    # given: 6 units split over two warehouses, 12 buyers of one unit each
    variant = variant_stocked("HOT-1", price="9.00", on_hand=0)
    for code, priority in (("north", 1), ("south", 2)):
        stock_receive(variant=variant, warehouse=warehouse(code, priority), quantity=3)
    customers = [customer_new() for _ in range(12)]

    def buy(index: int) -> str:
        try:
            return order_new(customers[index], ("HOT-1", 1)).number
        except LinesOutOfStock as error:
            return error

    # when
    results = run_concurrently(buy, 12)

    # then
    placed = [r for r in results if isinstance(r, str)]
    refused = [r for r in results if isinstance(r, LinesOutOfStock)]
    assert (len(placed), len(refused)) == (6, 6)
    assert all(r.lines[0]["sku"] == "HOT-1" and r.lines[0]["requested"] == 1 for r in refused)
    levels = StockLevel.objects.filter(variant=variant)
    assert sorted((level.on_hand, level.reserved) for level in levels) == [(3, 3), (3, 3)]
    assert Order.objects.count() == 6
    assert sorted(StockAllocation.objects.values_list("reference", flat=True)) == sorted(placed)


def test_two_expiry_runs_at_once_cancel_each_old_order_once(run_concurrently, settings):
    # given
    settings.RESERVATION_TTL_MINUTES = 30
    variant = variant_stocked("MUG-1", price="5.00", on_hand=50)
    customer = customer_new()
    orders = [order_new(customer, ("MUG-1", 2)) for _ in range(10)]
    Order.objects.update(placed_at=timezone.now() - timedelta(minutes=45))

    # when
    results = run_concurrently(lambda _: orders_expire_unpaid(batch_size=3), 2)

    # then
    assert sum(results) == 10
    assert Order.objects.filter(status=OrderStatus.CANCELLED).count() == 10
    assert all(order.events.filter(kind="cancelled").count() == 1 for order in orders)
    assert StockLevel.objects.get(variant=variant).reserved == 0


def test_a_payment_racing_the_expiry_either_pays_or_is_flagged(run_concurrently, settings):
    # given
    settings.RESERVATION_TTL_MINUTES = 30
    variant = variant_stocked("MUG-1", price="5.00", on_hand=5)
    order = order_new(customer_new(), ("MUG-1", 1))
    Order.objects.update(placed_at=timezone.now() - timedelta(minutes=45))
    call = signed(payment_event(order))

    def act(index: int):
        return orders_expire_unpaid() if index == 0 else webhook_handle(**call)

    # when
    results = run_concurrently(act, 2)

    # then: never a cancelled order silently holding a payment
    assert not any(isinstance(r, Exception) for r in results), results
    order.refresh_from_db()
    assert Payment.objects.count() == 1
    if order.status == OrderStatus.PAID:
        assert results[0] == 0 and not order.needs_attention
        assert StockLevel.objects.get(variant=variant).reserved == 1
    else:
        assert order.status == OrderStatus.CANCELLED and results[0] == 1
        assert order.needs_attention is True
        assert StockLevel.objects.get(variant=variant).reserved == 0
        assert Invoice.objects.count() == 0


def test_a_payment_of_the_old_total_while_units_are_cancelled_flags_the_order_unpaid():
    # given: a pending order of 34.90 (3 x 10.00 and 4.90 shipping), and the provider's event
    # for a payment of that total
    variant_stocked("MUG-1", price="10.00", on_hand=10)
    order = order_new(customer_new(), ("MUG-1", 3))
    call = signed(payment_event(order))

    def staff_cancel_a_unit() -> None:
        order_lines_cancel(
            order=Order.objects.get(pk=order.pk),
            lines=[LineRequest(sku="MUG-1", quantity=1)],
            reason="customer asked",
        )

    # when: the event arrives while staff's cancellation (new total 24.90) is committing
    committed_while_waited_on(hold=staff_cancel_a_unit, waiter=lambda: webhook_handle(**call))

    # then: the payment no longer matches the order, so it flags it and does not pay it
    order.refresh_from_db()
    payment = Payment.objects.get(order=order)
    assert (order.total, payment.amount) == (Decimal("24.90"), Decimal("34.90"))
    assert order.status == OrderStatus.PENDING_PAYMENT
    assert order.needs_attention is True
    assert "does not match the order total 24.90" in order.attention_reason
    assert payment.settles_order is False
    assert Invoice.objects.count() == 0


def test_four_events_for_one_new_payment_at_once_record_it_once_without_an_error(
    run_concurrently,
):
    # given: four events (different ids) for the same payment, as a provider's retries can be
    variant_stocked("MUG-1", price="12.50", on_hand=10)
    order = order_new(customer_new(), ("MUG-1", 2))
    calls = [signed(payment_event(order, payment_reference="pay_same")) for _ in range(4)]

    # when
    results = run_concurrently(lambda index: webhook_handle(**calls[index]), 4)

    # then
    assert results == [None] * 4
    payment = Payment.objects.get()
    assert payment.settles_order
    order.refresh_from_db()
    assert (order.status, order.needs_attention) == (OrderStatus.PAID, False)


def test_a_staff_refund_and_the_providers_refund_of_one_payment_at_once_refund_it_once(
    run_concurrently,
):
    # given: five cancelled orders, each with a late payment that staff and provider refund
    variant_stocked("MUG-1", price="12.50", on_hand=100)
    customer = customer_new()
    for attempt in range(5):
        order = order_new(customer, ("MUG-1", 2))
        order_cancel(order=order, reason="expired")
        reference = f"pay_late_{attempt}"
        webhook_handle(**signed(payment_event(order, payment_reference=reference)))
        provider_refund = payment_event(
            order, event_type="refund.succeeded", payment_reference=reference
        )
        provider_refund["data"]["refund_reference"] = f"re_{attempt}"
        call = signed(provider_refund)

        def refund(index: int, order=order, call=call):
            if index == 0:
                return refund_issue(order=Order.objects.get(pk=order.pk), reason="late payment")
            return webhook_handle(**call)

        # when
        results = run_concurrently(refund, 2)

        # then
        assert not [r for r in results if isinstance(r, Exception)], results
        refunds = Refund.objects.filter(payment__provider_reference=reference)
        assert list(refunds.values_list("amount", flat=True)) == [Decimal("29.90")], attempt


def test_a_retried_charge_and_its_refund_confirmation_at_once_do_not_deadlock(
    run_concurrently, monkeypatch
):
    # given a charge that failed, which the provider then reports succeeded and refunded
    variant_stocked("MUG-1", price="12.50", on_hand=10)
    order = order_new(customer_new(), ("MUG-1", 2))
    webhook_handle(
        **signed(payment_event(order, event_type="payment.failed", payment_reference="pi_1"))
    )
    succeeded = signed(payment_event(order, payment_reference="pi_1"))
    refund = payment_event(order, event_type="refund.succeeded", payment_reference="pi_1")
    refund["data"]["refund_reference"] = "re_1"
    refunded = signed(refund)
    # and the refund confirmation arriving while the success holds the payment's row
    claimed = threading.Event()
    claim = webhooks._payment_claim

    def claim_then_pause(**kwargs):
        result = claim(**kwargs)
        claimed.set()
        time.sleep(0.5)
        return result

    monkeypatch.setattr(webhooks, "_payment_claim", claim_then_pause)

    def deliver(index: int):
        if index == 0:
            return webhook_handle(**succeeded)
        claimed.wait(5)
        return webhook_handle(**refunded)

    # when
    results = run_concurrently(deliver, 2)

    # then: both rows are taken in one order on both paths, so neither event fails
    assert results == [None, None]
    order.refresh_from_db()
    assert order.status == OrderStatus.REFUNDED


def test_checkouts_go_on_while_the_nightly_reconcile_holds_the_customer_rows(monkeypatch, settings):
    # given: the reconcile, having locked every customer row, meets a customer checking out
    # while it repairs that customer's drifted count
    variant_stocked("NIGHT-1", on_hand=10)
    customer = customer_new()
    order_new(customer, ("NIGHT-1", 1))
    Customer.objects.filter(pk=customer.pk).update(order_count=99)
    settings.DB_LOCK_TIMEOUT_MS = 300
    outcome: dict = {}
    repaired = counters._repaired

    def repaired_while_a_customer_checks_out(*args, **kwargs):
        result = repaired(*args, **kwargs)

        def checkout() -> None:
            try:
                outcome["order"] = order_new(customer, ("NIGHT-1", 1)).number
            except Exception as error:  # the test reports what the checkout met
                outcome["error"] = repr(error)
            finally:
                connections.close_all()

        if not outcome:
            thread = threading.Thread(target=checkout)
            thread.start()
            thread.join(10)
        return result

    monkeypatch.setattr(counters, "_repaired", repaired_while_a_customer_checks_out)

    # when
    counters_reconcile()

    # then: the order's foreign key only key-shares the customer's row, which the reconcile
    # locks FOR NO KEY UPDATE, so the checkout was not held up
    assert "order" in outcome, outcome


def test_cancelling_a_paid_order_does_not_wait_on_a_commit_that_references_it():
    # given: a paid order, and another transaction committing a second charge of it: the
    # commit's foreign-key check key-shares the order's row until the commit ends (checked at
    # once here, so the lock stays held while the cancel runs)
    variant_stocked("MUG-1", price="12.50", on_hand=10)
    order = order_new(customer_new(), ("MUG-1", 2))
    webhook_handle(**signed(payment_event(order, payment_reference="pay_first")))

    def second_charge_committing() -> None:
        Payment.objects.create(
            order_id=order.pk,
            provider="demo",
            provider_reference="pay_second",
            amount=order.total,
            currency=order.currency,
            status=PaymentStatus.SUCCEEDED,
        )
        with connection.cursor() as cursor:
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")

    # when: the cancel may wait at most 300 ms for any lock
    with held_by_another_transaction(second_charge_committing):
        order_cancel(order=Order.objects.get(pk=order.pk), reason="customer asked")

    # then: it took no lock the key-share blocks, and refunded the payment that paid the order
    order.refresh_from_db()
    assert order.status == OrderStatus.CANCELLED
    refund = Refund.objects.get()
    assert (refund.payment.provider_reference, refund.amount) == ("pay_first", Decimal("29.90"))
    assert CreditNote.objects.get().refund == refund


def test_a_commit_referencing_a_paid_order_is_not_held_up_while_it_is_cancelled():
    # given: a paid order being cancelled (and refunded) by a transaction still open
    variant_stocked("MUG-1", price="12.50", on_hand=10)
    order = order_new(customer_new("ada@example.com"), ("MUG-1", 2))
    webhook_handle(**signed(payment_event(order)))
    SentEmail.objects.filter(order=order, kind="receipt").delete()

    def cancel_in_progress() -> None:
        order_cancel(order=Order.objects.get(pk=order.pk), reason="customer asked")

    # when: the receipt e-mail task commits its SentEmail row (whose foreign-key check at
    # the commit key-shares the order's row), waiting at most 300 ms for any lock
    with held_by_another_transaction(cancel_in_progress):
        sent = order_email_send(order_id=order.pk, kind="receipt")

    # then
    assert sent is True
    assert SentEmail.objects.filter(order=order, kind="receipt").count() == 1
    assert [m.subject for m in mail.outbox].count(f"Payment received for order {order.number}") == 2
