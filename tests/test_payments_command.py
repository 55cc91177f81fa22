"""`manage.py pay_order` pays a demo order through a running server's signed webhook."""

import socket
import urllib.request
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from orders.models import OrderStatus
from orders.services import order_cancel
from payments.models import Invoice, Payment
from tests.orders_helpers import customer_new, order_new, variant_stocked


@pytest.mark.django_db(transaction=True)
def test_pay_order_sends_a_signed_event_the_server_accepts(live_server, settings, tmp_path):
    # given
    settings.MEDIA_ROOT = tmp_path
    variant_stocked("MUG-1", price="12.50", on_hand=5)
    order = order_new(customer_new(), ("MUG-1", 1))
    out = StringIO()

    # when
    call_command("pay_order", order.number, url=live_server.url, stdout=out)

    # then
    order.refresh_from_db()
    assert order.status == OrderStatus.PAID
    assert Payment.objects.get().amount == order.total
    assert Invoice.objects.filter(order=order).count() == 1
    assert out.getvalue().rstrip().endswith(": 200")


@pytest.mark.django_db(transaction=True)
def test_pay_order_on_a_cancelled_order_says_the_payment_was_flagged_and_fails(
    live_server, settings, tmp_path
):
    # given
    settings.MEDIA_ROOT = tmp_path
    variant_stocked("MUG-1", price="12.50", on_hand=5)
    order = order_cancel(order=order_new(customer_new(), ("MUG-1", 1)), reason="changed mind")
    out = StringIO()

    # when
    with pytest.raises(CommandError) as error:
        call_command("pay_order", order.number, url=live_server.url, stdout=out)

    # then: the server kept the payment and flagged the order instead of paying it
    assert str(error.value) == (
        f"the payment of {order.number} was recorded but flagged for staff, not paid: "
        f"payment {Payment.objects.get().provider_reference} arrived for an order that is "
        "cancelled"
    )
    assert out.getvalue() == ""
    order.refresh_from_db()
    assert (order.status, order.needs_attention) == (OrderStatus.CANCELLED, True)


@pytest.mark.django_db
def test_pay_order_names_an_unknown_order():
    with pytest.raises(CommandError, match="no order SW-NOTHERE"):
        call_command("pay_order", "SW-NOTHERE", url="http://127.0.0.1:9")


@pytest.mark.django_db
def test_pay_order_tells_of_a_server_that_never_answers(monkeypatch):
    # given: a server that takes the connection and never answers (the command waits 1 s)
    variant_stocked("MUG-1", on_hand=5)
    order = order_new(customer_new(), ("MUG-1", 1))
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)
    opened = urllib.request.urlopen
    monkeypatch.setattr(
        urllib.request, "urlopen", lambda request, timeout: opened(request, timeout=1)
    )

    # when / then: a one-line refusal, not a traceback
    try:
        with pytest.raises(CommandError, match="gave no answer"):
            call_command(
                "pay_order", order.number, "--url", f"http://127.0.0.1:{silent.getsockname()[1]}"
            )
    finally:
        silent.close()
