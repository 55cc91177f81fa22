"""Provider webhooks: signature check, replay protection, and the payment events they carry.

Signature (the `demo` provider, shaped like the big providers'): header
`Stockwire-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>`,
rejected beyond WEBHOOK_TOLERANCE_SECONDS of clock skew. Body `{id, type, data: {order_number,
amount, currency, payment_reference}}`.
"""

import hashlib
import hmac
import logging
import re
import time
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from core.json_input import json_parse, unstorable_text
from orders.models import Order, OrderStatus
from orders.services import InvalidTransition, order_flag, order_lock, order_mark_paid
from payments.models import Payment, PaymentStatus, ProcessedEvent, Refund, UnmatchedKind
from payments.services.refunds import (
    OWN_REFUND_REFERENCE,
    own_refund_confirmed,
    payment_left_to_refund,
    refund_apply,
    refund_issued_send,
)
from payments.services.unmatched import unmatched_record, unmatched_refunded_by_stockwire
from payments.signals import payment_received

logger = logging.getLogger(__name__)

PROVIDERS = ("demo",)
EVENT_TYPES = ("payment.succeeded", "payment.failed", "refund.succeeded")
MAX_AMOUNT = Decimal("9999999999.99")  # what Payment.amount (12 digits, 2 places) can hold
# A Unix time in seconds, in ASCII digits: `str.isdigit` also takes "²", which int() refuses,
# and int() refuses more than 4,300 digits.
TIMESTAMP = re.compile(r"[0-9]{1,12}")
CURRENCY = re.compile(r"[A-Z]{3}")


class WebhookError(Exception):
    """A refused webhook: `code` is `bad_signature`, `stale_event` or `malformed_event`."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        super().__init__(message)


@dataclass(frozen=True)
class PaymentEvent:
    id: str
    type: str
    order_number: str
    amount: Decimal
    currency: str
    payment_reference: str
    refund_reference: str
    raw: dict


def webhook_signature(*, body: bytes, secret: str, timestamp: int) -> str:
    """Return the `Stockwire-Signature` header value for `body` signed at `timestamp`."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def webhook_verify(
    *, body: bytes, signature_header: str, secret: str, tolerance: int, now: float | None = None
) -> None:
    """Raise WebhookError unless the header signs `body` with `secret` within `tolerance` s."""
    timestamp, candidates = None, []
    for part in (signature_header or "").split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and TIMESTAMP.fullmatch(value):
            timestamp = int(value)
        elif key == "v1":
            candidates.append(value)
    if timestamp is None or not candidates:
        raise WebhookError(
            "bad_signature", "the Stockwire-Signature header is missing or malformed"
        )
    expected = webhook_signature(body=body, secret=secret, timestamp=timestamp).split("v1=", 1)[1]
    # Constant-time and over every candidate, so timing reveals nothing about the secret.
    matches = [hmac.compare_digest(expected.encode(), c.encode()) for c in candidates]
    if not any(matches):
        raise WebhookError("bad_signature", "the signature does not match the body")
    if abs((time.time() if now is None else now) - timestamp) > tolerance:
        raise WebhookError("stale_event", f"the event is signed more than {tolerance} s away")


def _text(value, *, field: str, max_length: int = 128) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > max_length:
        raise WebhookError("malformed_event", f"`{field}` must be a non-empty string")
    return value.strip()


def _storable(raw: dict) -> None:
    """Refuse text the database cannot store: the whole event is kept (`Payment.raw_event`)."""
    problem = unstorable_text(raw)
    if problem is not None:
        raise WebhookError("malformed_event", f"the event holds {problem}")


def webhook_parse(*, body: bytes) -> PaymentEvent:
    """Parse and validate an event body; raise WebhookError(`malformed_event`)."""
    try:
        raw = json_parse(body)  # the event is stored whole: NaN or deep nesting would not save
    except ValueError as error:
        raise WebhookError(
            "malformed_event", f"the body cannot be read as JSON: {error}"
        ) from error
    if not isinstance(raw, dict) or not isinstance(raw.get("data"), dict):
        raise WebhookError("malformed_event", "the body needs `id`, `type` and a `data` object")
    _storable(raw)
    event_type = _text(raw.get("type"), field="type", max_length=64)
    if event_type not in EVENT_TYPES:
        raise WebhookError("malformed_event", f"unknown event type {event_type!r}")
    data = raw["data"]
    try:
        amount = Decimal(str(data.get("amount")))
    except InvalidOperation as error:
        raise WebhookError("malformed_event", "`data.amount` must be a decimal") from error
    if (
        not amount.is_finite()
        or not 0 < amount <= MAX_AMOUNT
        or amount != amount.quantize(Decimal("0.01"))
    ):
        raise WebhookError("malformed_event", "`data.amount` must be positive with 2 places")
    # As money is written everywhere it goes (flags, e-mails, outbound webhooks): "1E+1" and
    # "10" are the same amount as "10.00", and are said as it.
    amount = amount.quantize(Decimal("0.01"))
    currency = _text(data.get("currency"), field="data.currency", max_length=3).upper()
    if not CURRENCY.fullmatch(currency):
        raise WebhookError("malformed_event", "`data.currency` must be a 3-letter ISO code")
    refund_reference = data.get("refund_reference") or ""
    return PaymentEvent(
        id=_text(raw.get("id"), field="id"),
        type=event_type,
        order_number=_text(data.get("order_number"), field="data.order_number", max_length=16),
        amount=amount,
        currency=currency,
        payment_reference=_text(data.get("payment_reference"), field="data.payment_reference"),
        refund_reference=_text(refund_reference, field="data.refund_reference")
        if refund_reference
        else "",
        raw=raw,
    )


def webhook_handle(*, provider: str, body: bytes, signature_header: str) -> None:
    """Verify, deduplicate and apply one provider event.

    The (provider, event id) row is claimed first in the event's transaction: a replay, even
    one arriving at the same moment, waits on that unique key and then does nothing. A
    payment for an unknown order number is kept as an `UnmatchedPayment` for staff (answered
    200, so the provider stops retrying); a failed one is only logged.
    Raises WebhookError (`bad_signature`, `stale_event`, `malformed_event`); nothing is
    written then. Sends, through the services it calls, `payment_received` or `refund_issued`.
    """
    if provider not in PROVIDERS:
        raise WebhookError("malformed_event", f"unknown payment provider {provider!r}")
    webhook_verify(
        body=body,
        signature_header=signature_header,
        secret=settings.PAYMENT_WEBHOOK_SECRET,
        tolerance=settings.WEBHOOK_TOLERANCE_SECONDS,
    )
    _event_apply(provider=provider, event=webhook_parse(body=body))


@transaction.atomic
def _event_apply(*, provider: str, event: PaymentEvent) -> None:
    try:
        with transaction.atomic():
            ProcessedEvent.objects.create(
                provider=provider, event_id=event.id, event_type=event.type
            )
    except IntegrityError:
        logger.info("webhook replay ignored", extra={"provider": provider, "event_id": event.id})
        return
    if event.type == "refund.succeeded":
        refund_record(provider=provider, event=event)
        return
    order = Order.objects.filter(number=event.order_number).first()
    if order is None:
        if event.type == "payment.succeeded":
            _unmatched(provider=provider, event=event, kind=UnmatchedKind.PAYMENT)
        else:
            logger.info(
                "failed payment for an unknown order ignored",
                extra={"provider": provider, "event_id": event.id, "order": event.order_number},
            )
        return
    payment_record(provider=provider, order=order, event=event)


def _unmatched(
    *, provider: str, event: PaymentEvent, kind: str, refund_reference: str = ""
) -> None:
    """Keep the money the event reports for staff, as matching nothing Stockwire knows."""
    unmatched_record(
        kind=kind,
        provider=provider,
        event_id=event.id,
        order_number=event.order_number,
        provider_reference=event.payment_reference,
        refund_reference=refund_reference,
        amount=event.amount,
        currency=event.currency,
        raw_event=event.raw,
    )


@transaction.atomic
def payment_record(*, provider: str, order: Order, event: PaymentEvent) -> Payment:
    """Record a provider's payment event for `order` and, if it pays the order, mark it paid.

    The payment that marks the order paid is the one that settles it (`settles_order`). A
    succeeded payment whose amount or currency does not match, or that arrives for an order
    no longer pending (paid by another payment, cancelled, expired), is kept and flags the
    order for staff (`needs_attention` with the reason) instead.
    A payment reference seen before is a no-op, except that a failed payment the provider
    now reports succeeded (a retried charge keeps its reference) counts from then on.
    Sends `payment_received(payment, order)` when the order is marked paid; its receivers
    issue the invoice in this transaction and request the receipt e-mail
    (orders.email_send) and the invoice document (payments.invoice_document_render).
    """
    payment, changed = _payment_claim(provider=provider, order=order, event=event)
    if not changed or payment.status != PaymentStatus.SUCCEEDED:
        return payment
    # The total is compared under the order's lock, as it is now: a partial cancellation
    # committing meanwhile lowers what the payment must match, and marking the order paid
    # checks only its status.
    order = payment.order
    order_lock(order=order)
    order.refresh_from_db()
    if (payment.amount, payment.currency) != (order.total, order.currency):
        order_flag(
            order=order,
            reason=f"payment {payment.provider_reference} of {payment.amount} "
            f"{payment.currency} does not match the order total {order.total} {order.currency}",
        )
        return payment
    try:
        order_mark_paid(order=order)
    except InvalidTransition:
        order.refresh_from_db()
        order_flag(
            order=order,
            reason=f"payment {payment.provider_reference} arrived for an order that is "
            f"{order.get_status_display().lower()}",
        )
        return payment
    Payment.objects.filter(pk=payment.pk).update(settles_order=True)
    payment.settles_order = True
    payment_received.send(sender=payment_record, payment=payment, order=order)
    return payment


def _payment_claim(*, provider: str, order: Order, event: PaymentEvent) -> tuple[Payment, bool]:
    """The payment the event reports, recorded; and whether this event changed it.

    A reference seen before fails the INSERT on its unique key (also when two events for one
    new reference arrive at the same moment: the second INSERT waits for the first to commit),
    and the row is read instead. A failed payment the event reports succeeded is switched by a
    guarded UPDATE, so only one event makes that change.
    """
    status = PaymentStatus.SUCCEEDED if event.type == "payment.succeeded" else PaymentStatus.FAILED
    reported = {
        "amount": event.amount,
        "currency": event.currency,
        "status": status,
        "raw_event": event.raw,
    }
    try:
        with transaction.atomic():
            return Payment.objects.create(
                order=order,
                provider=provider,
                provider_reference=event.payment_reference,
                **reported,
            ), True
    except IntegrityError:
        pass
    seen = Payment.objects.filter(provider=provider, provider_reference=event.payment_reference)
    payment = seen.select_related("order").get()
    if status != PaymentStatus.SUCCEEDED or payment.status != PaymentStatus.FAILED:
        return payment, False
    # The switch locks the payment's row, and marking the order paid then locks the order's:
    # take the order's first, the order in which every refund takes them.
    order_lock(order=payment.order)
    if not seen.filter(status=PaymentStatus.FAILED).update(**reported, updated_at=timezone.now()):
        return payment, False
    payment.refresh_from_db(fields=[*reported, "updated_at"])
    return payment, True


@transaction.atomic
def refund_record(*, provider: str, event: PaymentEvent) -> Refund | None:
    """Record a refund the provider confirms, with what follows from it (`refund_apply`).

    A refund already recorded, and the confirmation of one Stockwire issued (of an order's
    payment or of an unmatched one), are no-ops. Any other refund that cannot be recorded
    against a payment Stockwire knows matches nothing Stockwire asked for: it is kept as an
    `UnmatchedPayment` (kind refund) for staff, and flags the order when there is one. That is
    a refund of a payment not recorded (its event may come later: staff see both), of a
    payment refunded in full already, or one the payment cannot hold (another currency, more
    than is left of it, a payment that failed).
    Sends `refund_issued(refund, order)`; its receivers issue the credit note in this
    transaction (for the payment that paid the order) and request the refund e-mail
    (orders.email_send).
    """
    reference = event.refund_reference or event.id
    payment = Payment.objects.filter(
        provider=provider, provider_reference=event.payment_reference
    ).first()
    if payment is None:
        if unmatched_refunded_by_stockwire(
            provider=provider, payment_reference=event.payment_reference
        ):
            return None
        _unmatched(
            provider=provider, event=event, kind=UnmatchedKind.REFUND, refund_reference=reference
        )
        order = Order.objects.filter(number=event.order_number).first()
        if order is not None:
            order_flag(
                order=order,
                reason=f"refund of {event.amount} {event.currency} confirmed for payment "
                f"{event.payment_reference}, which is not recorded",
            )
        return None
    order = payment.order
    order_status = order_lock(order=order)
    payment = Payment.objects.select_for_update(no_key=True).get(pk=payment.pk)
    if own_refund_confirmed(payment=payment, reference=reference, amount=event.amount):
        return None
    if payment.refunds.filter(provider_reference=reference).exists():
        return None
    if payment.status == PaymentStatus.REFUNDED:
        own = OWN_REFUND_REFERENCE.format(payment_id=payment.pk)
        if payment.refunds.filter(provider_reference=own).exists():
            return None
        left = Decimal("0.00")
    else:
        # A charge that failed holds no money to give back.
        failed = payment.status == PaymentStatus.FAILED
        left = Decimal("0.00") if failed else payment_left_to_refund(payment=payment)
    if event.currency != payment.currency or event.amount > left:
        _unmatched(
            provider=provider, event=event, kind=UnmatchedKind.REFUND, refund_reference=reference
        )
        order_flag(
            order=order,
            reason=f"refund {reference} of {event.amount} {event.currency} confirmed for "
            f"payment {payment.provider_reference}, which has {left} {payment.currency} left",
        )
        return None
    refund = refund_apply(
        order=order,
        order_status=order_status,
        payment=payment,
        amount=event.amount,
        provider_reference=reference,
        reason="refund confirmed by the provider",
    )
    if event.amount < left:
        order_flag(
            order=order,
            reason=f"partial refund {reference} of {event.amount} {event.currency} of payment "
            f"{payment.provider_reference}; the order stays {OrderStatus(order_status).label}",
        )
    refund_issued_send(sender=refund_record, refund=refund, order=order)
    return refund
