"""Builders for payments tests: provider events and their signed webhook calls."""

import json
import time
import uuid

from django.conf import settings

from orders.models import Order
from payments.services import webhook_signature


def payment_event(
    order: Order,
    *,
    event_type: str = "payment.succeeded",
    amount: str | None = None,
    currency: str | None = None,
    event_id: str | None = None,
    payment_reference: str | None = None,
) -> dict:
    return {
        "id": event_id or f"evt_{uuid.uuid4().hex}",
        "type": event_type,
        "data": {
            "order_number": order.number,
            "amount": amount or str(order.total),
            "currency": currency or order.currency,
            "payment_reference": payment_reference or f"pay_{uuid.uuid4().hex}",
        },
    }


def signed(event: dict, *, timestamp: int | None = None, secret: str | None = None) -> dict:
    """The keyword arguments of `webhook_handle` for `event`, correctly signed."""
    body = json.dumps(event).encode()
    return {
        "provider": "demo",
        "body": body,
        "signature_header": webhook_signature(
            body=body,
            secret=secret or settings.PAYMENT_WEBHOOK_SECRET,
            timestamp=int(time.time()) if timestamp is None else timestamp,
        ),
    }
