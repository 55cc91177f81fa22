"""Builders for payments tests: provider events and their signed webhook calls."""

from orders.models import Order
from payments.demo_provider import demo_event, demo_event_signed


def payment_event(
    order: Order,
    *,
    event_type: str = "payment.succeeded",
    amount: str | None = None,
    currency: str | None = None,
    event_id: str | None = None,
    payment_reference: str | None = None,
) -> dict:
    return demo_event(
        order_number=order.number,
        amount=amount or str(order.total),
        currency=currency or order.currency,
        event_type=event_type,
        event_id=event_id,
        payment_reference=payment_reference,
    )


def signed(event: dict, *, timestamp: int | None = None, secret: str | None = None) -> dict:
    """The keyword arguments of `webhook_handle` for `event`, correctly signed."""
    body, signature = demo_event_signed(event, secret=secret, timestamp=timestamp)
    return {"provider": "demo", "body": body, "signature_header": signature}
