import urllib.error
import urllib.request
import uuid

from django.core.management.base import CommandError

from core.commands import DatabaseCommand
from orders.models import Order
from payments.demo_provider import demo_event, demo_event_signed
from payments.models import Payment

WEBHOOK_PATH = "/api/v1/payments/webhook"


class Command(DatabaseCommand):
    help = (
        "Pay a demo order by hand: send a correctly signed `payment.succeeded` event for the "
        "order's total to a running server, as the payment provider would. Exits non-zero "
        "unless the payment paid the order (one for a cancelled or paid order is only flagged)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("number", help="the order number, e.g. SW-7K2Q9XHD")
        parser.add_argument("--url", default="http://127.0.0.1:8000", help="the server's base URL")

    def handle(self, *args, number: str, url: str, **options) -> None:
        try:
            order = Order.objects.get(number=number)
        except Order.DoesNotExist as error:
            raise CommandError(f"no order {number}") from error
        event = demo_event(
            order_number=order.number,
            amount=order.total,
            currency=order.currency,
            payment_reference=f"demo_{uuid.uuid4().hex}",
        )
        body, signature = demo_event_signed(event)
        request = urllib.request.Request(
            url.rstrip("/") + WEBHOOK_PATH,
            data=body,
            method="POST",
            headers={"Content-Type": "application/json", "Stockwire-Signature": signature},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                status = response.status
        except urllib.error.HTTPError as error:
            raise CommandError(
                f"the server answered {error.code}: {error.read()[:500]!r}"
            ) from error
        except urllib.error.URLError as error:
            raise CommandError(f"cannot reach {url}: {error.reason}") from error
        except (OSError, ValueError) as error:  # no answer in time; a malformed --url
            raise CommandError(
                f"{url} gave no answer ({error}); check the order before sending again"
            ) from error
        self._check_paid(order=order, reference=event["data"]["payment_reference"])
        self.stdout.write(
            f"sent {event['id']} for {order.number} ({order.total} {order.currency}): {status}"
        )

    def _check_paid(self, *, order: Order, reference: str) -> None:
        """Raise CommandError unless the payment the server recorded is the one that paid the
        order: the webhook answers 200 to every event it accepts, a flagged payment too."""
        payment = Payment.objects.filter(provider="demo", provider_reference=reference).first()
        if payment is None:
            raise CommandError(f"the server accepted the event but recorded no payment {reference}")
        if not payment.settles_order:
            order.refresh_from_db()
            raise CommandError(
                f"the payment of {order.number} was recorded but flagged for staff, not paid: "
                f"{order.attention_reason}"
            )
