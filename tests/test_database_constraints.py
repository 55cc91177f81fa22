"""The database refuses rows that break the shop's invariants, whatever code writes them.

Each test writes one bad value behind the services' back (an UPDATE or INSERT they would never
send) and expects the database's IntegrityError, on PostgreSQL and SQLite alike.
"""

from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction
from django.db.models import F
from model_bakery import baker

from orders.models import Order, OrderLine
from orders.services import order_cancel
from payments.models import CreditNote, Payment, PaymentStatus, Refund
from payments.services import webhook_handle
from storefront.models import IdempotencyKey
from tests.orders_helpers import customer_new, order_new, variant_stocked
from tests.payments_helpers import payment_event, signed

pytestmark = pytest.mark.django_db


@pytest.fixture
def cancelled_paid_order(settings, tmp_path):
    """An order paid, then cancelled: it has a payment, a refund and a credit note."""
    settings.MEDIA_ROOT = tmp_path
    variant_stocked("MUG-1", price="12.50", on_hand=10)
    order = order_new(customer_new(), ("MUG-1", 2))
    webhook_handle(**signed(payment_event(order)))
    order.refresh_from_db()
    return order_cancel(order=order, reason="customer asked")


def refused(write) -> None:
    with pytest.raises(IntegrityError), transaction.atomic():
        write()


def test_an_order_status_outside_its_set_is_refused(cancelled_paid_order):
    refused(lambda: Order.objects.filter(pk=cancelled_paid_order.pk).update(status="lost"))
    assert Order.objects.get(pk=cancelled_paid_order.pk).status == "cancelled"


@pytest.mark.parametrize("field", ["total", "subtotal", "shipping"])
def test_an_order_total_other_than_subtotal_plus_shipping_is_refused(cancelled_paid_order, field):
    order = Order.objects.filter(pk=cancelled_paid_order.pk)
    refused(lambda: order.update(**{field: F(field) + Decimal("0.01")}))
    assert order.values_list("subtotal", "shipping", "total").get() == (
        Decimal("25.00"),
        Decimal("4.90"),
        Decimal("29.90"),
    )


@pytest.mark.parametrize(
    "subtotal, shipping", [("0.10", "0.20"), ("1234567.89", "0.01"), ("0.00", "0.00")]
)
def test_a_total_that_is_subtotal_plus_shipping_is_stored(cancelled_paid_order, subtotal, shipping):
    # SQLite adds decimals in floating point, where 0.10 + 0.20 is not 0.30
    subtotal, shipping = Decimal(subtotal), Decimal(shipping)
    Order.objects.filter(pk=cancelled_paid_order.pk).update(
        subtotal=subtotal, shipping=shipping, total=subtotal + shipping
    )
    assert Order.objects.get(pk=cancelled_paid_order.pk).total == subtotal + shipping


@pytest.mark.parametrize("amount", ["0.00", "-1.00"])
def test_money_moved_is_more_than_nothing(cancelled_paid_order, amount):
    amount = Decimal(amount)
    refused(lambda: Payment.objects.update(amount=amount))
    refused(lambda: Refund.objects.update(amount=amount))
    refused(lambda: CreditNote.objects.update(amount=amount))
    refused(
        lambda: Payment.objects.create(
            order=cancelled_paid_order,
            provider="demo",
            provider_reference="pay_nothing",
            amount=amount,
            currency="EUR",
            status=PaymentStatus.SUCCEEDED,
        )
    )
    assert list(Payment.objects.values_list("amount", flat=True)) == [Decimal("29.90")]
    assert list(CreditNote.objects.values_list("amount", flat=True)) == [Decimal("29.90")]


def test_a_negative_unit_price_is_refused(cancelled_paid_order):
    refused(lambda: OrderLine.objects.update(unit_price=Decimal("-0.01")))
    assert list(OrderLine.objects.values_list("unit_price", flat=True)) == [Decimal("12.50")]


@pytest.mark.parametrize(
    "answer",
    [{"status_code": None, "response_body": {}}, {"status_code": 201, "response_body": None}],
)
def test_an_idempotency_key_without_its_answer_is_refused(answer):
    user = baker.make("auth.User")
    refused(lambda: IdempotencyKey.objects.create(user=user, key="k", fingerprint="f", **answer))
    assert IdempotencyKey.objects.count() == 0


def test_refunds_adding_up_to_more_than_the_payment_are_refused(cancelled_paid_order):
    # the cancellation refunded the whole 29.90
    payment = Payment.objects.filter(order=cancelled_paid_order)
    refused(lambda: payment.update(refunded_total=F("amount") + Decimal("0.01")))
    refused(lambda: payment.update(refunded_total=Decimal("-0.01")))
    assert payment.values_list("amount", "refunded_total").get() == (
        Decimal("29.90"),
        Decimal("29.90"),
    )


@pytest.mark.parametrize(
    "changes",
    [
        {"shipped_quantity": 2, "cancelled_quantity": 1},
        {"shipped_quantity": 1, "returned_quantity": 2},
    ],
)
def test_a_line_shipping_cancelling_or_returning_more_than_it_holds_is_refused(
    cancelled_paid_order, changes
):
    line = OrderLine.objects.filter(order=cancelled_paid_order)
    refused(lambda: line.update(**changes))
    assert line.values_list(
        "shipped_quantity", "cancelled_quantity", "returned_quantity"
    ).get() == (
        0,
        0,
        0,
    )
