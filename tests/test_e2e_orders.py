"""End to end with a real Celery worker: place → pay by signed webhook → ship, e-mails delivered."""

import email
import time
from email import policy
from pathlib import Path

import environ
import pytest

from conftest import PROJECT_DIR
from inventory.models import StockLevel, StockMovement
from orders.models import OrderStatus, SentEmail
from orders.services import order_ship
from payments.models import Invoice
from payments.services import webhook_handle
from tests.orders_helpers import customer_new, order_new, variant_stocked
from tests.payments_helpers import payment_event, signed

pytestmark = [pytest.mark.worker, pytest.mark.redis, pytest.mark.postgres]


def _delivered(mail_dir: Path) -> list[email.message.EmailMessage]:
    """Every message the worker's file backend wrote (one file per connection, `-` * 79 apart)."""
    messages = []
    for path in sorted(mail_dir.glob("*.log")) if mail_dir.exists() else []:
        for chunk in path.read_bytes().split(b"\n" + b"-" * 79 + b"\n"):
            if chunk.strip():
                messages.append(email.message_from_bytes(chunk, policy=policy.default))
    return messages


def _mail_dir(worker_env: dict[str, str]) -> Path:
    """Where the worker's file backend writes: its EMAIL_URL read as its settings read it."""
    path = environ.Env.email_url_config(worker_env["EMAIL_URL"])["EMAIL_FILE_PATH"]
    return PROJECT_DIR / path


def _wait_for(predicate, timeout: float = 30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("timed out waiting for the worker")


def _subjects(mail_dir: Path) -> list[str]:
    return sorted(str(message["Subject"]) for message in _delivered(mail_dir))


def _body(mail_dir: Path, subject: str) -> str:
    (message,) = [m for m in _delivered(mail_dir) if m["Subject"] == subject]
    return message.get_body(preferencelist=("plain",)).get_content()


def test_place_pay_and_ship_with_a_real_worker(celery_worker):
    # given
    mail_dir = _mail_dir(celery_worker)
    variant = variant_stocked("MUG-1", price="12.50", on_hand=10)
    customer = customer_new("ada@example.com")

    # when: placed
    order = order_new(customer, ("MUG-1", 2))

    # then: the worker delivers the confirmation
    confirmation = f"Your order {order.number} is confirmed"
    _wait_for(lambda: confirmation in _subjects(mail_dir))

    # when: paid by a signed provider webhook
    webhook_handle(**signed(payment_event(order)))

    # then: invoice issued, document rendered by the worker, receipt delivered
    invoice = Invoice.objects.get(order=order)
    receipt = f"Payment received for order {order.number}"
    _wait_for(lambda: receipt in _subjects(mail_dir))
    _wait_for(lambda: Invoice.objects.get(pk=invoice.pk).document.name)
    document = Path(celery_worker["MEDIA_ROOT"]) / Invoice.objects.get(pk=invoice.pk).document.name
    assert invoice.number in document.read_text()
    assert "29.90 EUR" in _body(mail_dir, receipt)

    # when: shipped
    order.refresh_from_db()
    order_ship(order=order, tracking_number="TRACK-42")

    # then
    shipped = f"Order {order.number} has shipped"
    _wait_for(lambda: shipped in _subjects(mail_dir))
    assert "Tracking number: TRACK-42" in _body(mail_dir, shipped)
    assert _subjects(mail_dir) == sorted([confirmation, receipt, shipped])
    assert all(m["To"] == "ada@example.com" for m in _delivered(mail_dir))
    assert set(SentEmail.objects.values_list("kind", flat=True)) == {
        "confirmation",
        "receipt",
        "shipped",
    }
    order.refresh_from_db()
    assert order.status == OrderStatus.SHIPPED
    level = StockLevel.objects.get(variant=variant)
    assert (level.on_hand, level.reserved) == (8, 0)
    assert list(
        StockMovement.objects.filter(reference=order.number)
        .order_by("id")
        .values_list("reason", "on_hand_delta", "reserved_delta")
    ) == [("reservation", 0, 2), ("shipment", -2, -2)]
