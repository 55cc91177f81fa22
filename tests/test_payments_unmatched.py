"""Money no order or refund of Stockwire's matches: kept for staff, refunded or resolved by them."""

import uuid
from decimal import Decimal

import pytest
from django.contrib.messages import get_messages

from audit.models import AuditEntry
from orders.models import Order
from orders.services import order_cancel
from payments.models import Payment, ProcessedEvent, Refund, UnmatchedPayment
from payments.services import (
    UnmatchedPaymentError,
    unmatched_payment_refund,
    unmatched_payment_resolve,
    webhook_handle,
)
from tests.admin.client import run_action
from tests.admin_shop import staff_user
from tests.orders_helpers import customer_new, order_new, variant_stocked
from tests.payments_helpers import payment_event, signed

pytestmark = pytest.mark.django_db

UNMATCHED_URL = "/admin/payments/unmatchedpayment/"


@pytest.fixture(autouse=True)
def media_and_fast_passwords(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def order():
    variant_stocked("MUG-1", price="12.50", on_hand=10)
    return order_new(customer_new("ada@example.com"), ("MUG-1", 2))


def stray_event(*, event_type="payment.succeeded", reference="pay_stray", **data) -> dict:
    """An event of the demo provider for order number SW-NOTOURS, which Stockwire never gave."""
    return {
        "id": f"evt_{uuid.uuid4().hex}",
        "type": event_type,
        "data": {
            "order_number": "SW-NOTOURS",
            "amount": "42.00",
            "currency": "EUR",
            "payment_reference": reference,
            **data,
        },
    }


def open_rows() -> list[tuple]:
    return list(
        UnmatchedPayment.objects.filter(status="open")
        .order_by("id")
        .values_list("kind", "provider_reference", "refund_reference", "amount", "currency")
    )


def test_a_payment_for_an_unknown_order_is_kept_for_staff_once():
    # given
    event = stray_event()

    # when: delivered, replayed, and reported again under another event id
    webhook_handle(**signed(event))
    webhook_handle(**signed(event))
    webhook_handle(**signed({**event, "id": "evt_again"}))

    # then
    row = UnmatchedPayment.objects.get()
    assert (row.kind, row.status, row.provider, row.event_id, row.order_number) == (
        "payment",
        "open",
        "demo",
        event["id"],
        "SW-NOTOURS",
    )
    assert (row.provider_reference, row.amount, row.currency) == (
        "pay_stray",
        Decimal("42.00"),
        "EUR",
    )
    assert row.raw_event == event
    assert row.received_at is not None
    assert ProcessedEvent.objects.count() == 2
    assert Payment.objects.count() == 0


def test_a_failed_payment_for_an_unknown_order_is_not_kept():
    webhook_handle(**signed(stray_event(event_type="payment.failed")))
    assert UnmatchedPayment.objects.count() == 0
    assert ProcessedEvent.objects.count() == 1


def test_a_refund_of_a_payment_stockwire_never_saw_is_kept_for_staff():
    # when
    webhook_handle(**signed(stray_event(event_type="refund.succeeded", refund_reference="re_1")))

    # then
    assert open_rows() == [("refund", "pay_stray", "re_1", Decimal("42.00"), "EUR")]
    assert Refund.objects.count() == 0


def test_a_second_refund_of_a_payment_refunded_in_full_is_kept_and_flags_the_order(order):
    # given: the order paid, and refunded in full by the provider
    webhook_handle(**signed(payment_event(order, payment_reference="pay_A")))
    refund = payment_event(order, event_type="refund.succeeded", payment_reference="pay_A")
    refund["data"]["refund_reference"] = "re_1"
    webhook_handle(**signed(refund))

    # when: another refund of the same payment is reported
    again = payment_event(order, event_type="refund.succeeded", payment_reference="pay_A")
    again["data"]["refund_reference"] = "re_2"
    webhook_handle(**signed(again))

    # then
    assert open_rows() == [("refund", "pay_A", "re_2", Decimal("29.90"), "EUR")]
    assert list(Refund.objects.values_list("provider_reference", flat=True)) == ["re_1"]
    order.refresh_from_db()
    assert order.needs_attention
    assert order.attention_reason.startswith("refund re_2 of 29.90 EUR confirmed for payment pay_A")


def test_the_confirmation_of_a_refund_stockwire_issued_is_no_unmatched_refund(order):
    # given: a paid order cancelled, which refunds its payment at once (demo provider)
    webhook_handle(**signed(payment_event(order, payment_reference="pay_A")))
    order_cancel(order=Order.objects.get(pk=order.pk), reason="customer asked")

    # when: the provider confirms that refund
    confirmation = payment_event(order, event_type="refund.succeeded", payment_reference="pay_A")
    confirmation["data"]["refund_reference"] = "re_provider"
    webhook_handle(**signed(confirmation))

    # then
    assert UnmatchedPayment.objects.count() == 0
    assert Order.objects.get(pk=order.pk).needs_attention is False


def test_support_refunds_an_unmatched_payment_from_the_admin_and_it_leaves_the_dashboard(client):
    # given
    webhook_handle(**signed(stray_event()))
    row = UnmatchedPayment.objects.get()
    support = staff_user("support")
    client.force_login(support)
    dashboard = client.get("/admin/")
    assert dashboard.context["unmatched_count"] == 1
    assert "pay_stray" in dashboard.content.decode()

    # when
    response = run_action(
        client, UNMATCHED_URL, "refund_unmatched", [row], apply="Refund", reason="not our shop"
    )

    # then
    messages = [str(message) for message in get_messages(response.wsgi_request)]
    assert messages == [f"{row} refunded."]
    row.refresh_from_db()
    assert (row.status, row.refund_reference, row.note, row.settled_by) == (
        "refunded",
        f"stockwire-refund-unmatched-{row.pk}",
        "not our shop",
        support,
    )
    assert row.settled_at is not None
    entry = AuditEntry.objects.get(object_type="payments.UnmatchedPayment")
    assert (entry.actor, entry.changes) == (
        support,
        {"status": ["open", "refunded"], "note": ["", "not our shop"]},
    )
    assert client.get("/admin/").context["unmatched_count"] == 0
    # and the provider's confirmation of that refund is no new unmatched refund
    webhook_handle(**signed(stray_event(event_type="refund.succeeded", refund_reference="re_9")))
    assert UnmatchedPayment.objects.count() == 1


def test_warehouse_staff_see_no_unmatched_payments(client):
    # given
    webhook_handle(**signed(stray_event()))
    client.force_login(staff_user("warehouse"))

    # when
    dashboard = client.get("/admin/")
    listing = client.get(UNMATCHED_URL)

    # then
    assert "unmatched" not in dashboard.context
    assert "pay_stray" not in dashboard.content.decode()
    assert listing.status_code == 403


def test_an_unmatched_row_is_settled_once_and_a_refund_is_never_refunded():
    # given: an unmatched payment and an unmatched refund
    webhook_handle(**signed(stray_event()))
    webhook_handle(**signed(stray_event(event_type="refund.succeeded", reference="pay_other")))
    payment, refund = UnmatchedPayment.objects.order_by("id")

    # when / then
    with pytest.raises(UnmatchedPaymentError) as not_a_payment:
        unmatched_payment_refund(unmatched=refund)
    with pytest.raises(UnmatchedPaymentError) as no_note:
        unmatched_payment_resolve(unmatched=refund, note=" ")
    unmatched_payment_resolve(unmatched=refund, note="our bank reversed it")
    unmatched_payment_refund(unmatched=payment)
    with pytest.raises(UnmatchedPaymentError) as settled:
        unmatched_payment_resolve(unmatched=payment, note="again")

    # then
    assert (not_a_payment.value.code, no_note.value.code, settled.value.code) == (
        "not_a_payment",
        "note_required",
        "already_settled",
    )
    assert list(UnmatchedPayment.objects.order_by("id").values_list("status", "note")) == [
        ("refunded", "refunded"),
        ("resolved", "our bank reversed it"),
    ]
    assert open_rows() == []


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_staff_refunding_one_unmatched_payment_at_once_refund_it_once(run_concurrently):
    # given
    webhook_handle(**signed(stray_event()))
    row = UnmatchedPayment.objects.get()

    # when
    results = run_concurrently(
        lambda _: unmatched_payment_refund(unmatched=UnmatchedPayment.objects.get(pk=row.pk)), 2
    )

    # then
    errors = [result for result in results if isinstance(result, Exception)]
    assert [error.code for error in errors] == ["already_settled"], results
    assert AuditEntry.objects.filter(object_type="payments.UnmatchedPayment").count() == 1
