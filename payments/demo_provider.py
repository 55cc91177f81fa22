"""Build and sign provider events as the built-in `demo` provider sends them.

One place for the event's shape and its signature, so the `pay_order` command, the bench and
the tests send what a provider would, and change together if the scheme does.
"""

import json
import time
import uuid
from decimal import Decimal

from django.conf import settings

from payments.services import webhook_signature


def demo_event(
    *,
    order_number: str,
    amount: str | Decimal,
    currency: str,
    event_type: str = "payment.succeeded",
    event_id: str | None = None,
    payment_reference: str | None = None,
) -> dict:
    """Return a provider event for an order; a fresh event id and reference unless given."""
    return {
        "id": event_id or f"evt_{uuid.uuid4().hex}",
        "type": event_type,
        "data": {
            "order_number": order_number,
            "amount": str(amount),
            "currency": currency,
            "payment_reference": payment_reference or f"pay_{uuid.uuid4().hex}",
        },
    }


def demo_event_signed(
    event: dict, *, secret: str | None = None, timestamp: int | None = None
) -> tuple[bytes, str]:
    """Return the body of `event` and its `Stockwire-Signature` header.

    Signed now (or at `timestamp`) with `PAYMENT_WEBHOOK_SECRET` (or `secret`).
    """
    body = json.dumps(event).encode()
    return body, demo_signature(body, secret=secret, timestamp=timestamp)


def demo_signature(body: bytes, *, secret: str | None = None, timestamp: int | None = None) -> str:
    """Return the `Stockwire-Signature` header of any body, even one that is not an event.

    Signed now (or at `timestamp`) with `PAYMENT_WEBHOOK_SECRET` (or `secret`), so a test can
    send a malformed body that passes the signature check and meets the parser.
    """
    return webhook_signature(
        body=body,
        secret=secret or settings.PAYMENT_WEBHOOK_SECRET,
        timestamp=int(time.time()) if timestamp is None else timestamp,
    )
