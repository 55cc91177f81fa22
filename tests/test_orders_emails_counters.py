"""Order e-mails (once per kind, retried on failure) and the derived counters' reconcile."""

import smtplib
from decimal import Decimal
from io import StringIO

import pytest
from django.core import mail
from django.core.management import call_command
from django.db import IntegrityError, InterfaceError, OperationalError, transaction

from orders.models import Customer, DailySales, EmailKind, SentEmail, VariantSales
from orders.services import (
    counters_recomputed,
    counters_reconcile,
    order_cancel,
    order_email_render,
    order_email_send,
    order_mark_paid,
    order_ship,
)
from orders.tasks import order_email_send as order_email_send_task
from outbox.claims import ClaimHeld
from outbox.models import OutboxMessage
from tests.orders_helpers import customer_new, order_new, variant_stocked

pytestmark = pytest.mark.django_db


@pytest.fixture
def order():
    variant_stocked("MUG-1", price="12.50", on_hand=10)
    return order_new(customer_new("ada@example.com"), ("MUG-1", 2))


class FailingBackend:
    """An SMTP server that refuses every message."""

    def __init__(self, *args, **kwargs) -> None:
        pass

    def send_messages(self, messages) -> int:
        raise smtplib.SMTPServerDisconnected("connection unexpectedly closed")


@pytest.mark.parametrize("kind", EmailKind.values)
def test_every_email_has_a_text_and_an_html_part(order, kind):
    # given
    order_mark_paid(order=order)
    order.tracking_number = "TRACK-7"

    # when
    message = order_email_render(order=order, kind=kind)

    # then
    assert order.number in message.subject
    assert "Item MUG-1" in message.body or kind == "refund"
    (html, mimetype) = message.alternatives[0]
    assert mimetype == "text/html" and order.number in html
    assert message.to == ["ada@example.com"]


def test_shipping_email_carries_the_tracking_number(order):
    order_mark_paid(order=order)
    order_ship(order=order, tracking_number="TRACK-99")
    assert "Tracking number: TRACK-99" in order_email_render(order=order, kind="shipped").body


def test_an_email_task_run_twice_sends_once(order):
    # when
    first = order_email_send(order_id=order.pk, kind="confirmation")
    second = order_email_send(order_id=order.pk, kind="confirmation")

    # then
    assert (first, second) == (True, False)
    assert len(mail.outbox) == 1
    assert SentEmail.objects.get().recipient == "ada@example.com"


def test_a_failed_send_leaves_no_claim_so_a_retry_sends(order, settings):
    # given
    settings.EMAIL_BACKEND = f"{__name__}.FailingBackend"

    # when
    with pytest.raises(smtplib.SMTPException):
        order_email_send(order_id=order.pk, kind="confirmation")

    # then
    assert SentEmail.objects.count() == 0

    # when the server is back
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    assert order_email_send(order_id=order.pk, kind="confirmation") is True
    assert SentEmail.objects.count() == 1


def test_the_email_task_retries_smtp_network_and_database_failures_for_an_hour():
    options = order_email_send_task
    assert smtplib.SMTPException in options.autoretry_for
    assert OSError in options.autoretry_for
    assert OperationalError in options.autoretry_for
    assert InterfaceError in options.autoretry_for
    assert issubclass(ClaimHeld, options.autoretry_for)
    assert not issubclass(IntegrityError, options.autoretry_for)
    assert (options.max_retries, options.retry_wait_longest) == (15, 720)


def test_a_rolled_back_order_requests_no_email(order, django_capture_on_commit_callbacks):
    # when: the caller's transaction fails after the order was placed
    with (
        django_capture_on_commit_callbacks(execute=True) as callbacks,
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        order_new(order.customer, ("MUG-1", 1))
        raise RuntimeError("the request failed later")

    # then
    assert callbacks == []
    assert OutboxMessage.objects.filter(kwargs__kind="confirmation").count() == 1  # the fixture's


def test_reconcile_repairs_drifted_counters_and_the_command_reports_it(order):
    # given: a paid, a shipped and a cancelled order, counters bumped by hand with drift
    customer = order.customer
    order_mark_paid(order=order)
    shipped = order_new(customer, ("MUG-1", 1))
    order_mark_paid(order=shipped)
    order_ship(order=shipped, tracking_number="T-1")
    order_cancel(order=order_new(customer, ("MUG-1", 3)))
    Customer.objects.filter(pk=customer.pk).update(order_count=99, lifetime_value=Decimal("1"))
    VariantSales.objects.create(variant_id=shipped.lines.get().variant_id, units_sold=1)

    # when
    out = StringIO()
    call_command("reconcile_counters", stdout=out)

    # then
    customer.refresh_from_db()
    assert (customer.order_count, customer.lifetime_value) == (3, Decimal("47.30"))
    day = DailySales.objects.get()
    assert (day.orders, day.units, day.revenue) == (2, 3, Decimal("47.30"))
    sales = VariantSales.objects.get()
    assert (sales.units_sold, sales.units_shipped) == (3, 1)
    assert out.getvalue().strip() == "3 counter rows repaired"
    assert counters_reconcile() == 0
    assert counters_recomputed()["customers"][customer.pk] == (3, Decimal("47.30"))


def test_text_parts_are_not_html_escaped_and_html_parts_are():
    # given
    variant = variant_stocked("FISH-1", price="5.00")
    variant.name = "Fish & Chips <large>"
    variant.save()
    order = order_new(customer_new(), ("FISH-1", 1))

    # when
    message = order_email_render(order=order, kind="confirmation")

    # then
    assert "Fish & Chips <large>" in message.body
    assert "Fish &amp; Chips &lt;large&gt;" in message.alternatives[0][0]


def test_a_refund_notice_requested_before_notices_carried_their_amount_states_the_total(order):
    # given an outbox row written by the release before (kwargs without reference or context)
    order_mark_paid(order=order)

    # when
    order_email_send_task.apply(kwargs={"order_id": order.pk, "kind": "refund"})

    # then
    assert f"We refunded {order.total} {order.currency}" in mail.outbox[-1].body
