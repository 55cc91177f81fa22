"""Money that matches nothing Stockwire knows: recorded for staff, refunded or resolved by them.

A provider may report a payment for an order number Stockwire never gave out (a mistyped
reference, another shop's integration) or a refund Stockwire did not ask for. Answered 200 so
the provider stops retrying, such money would otherwise be seen by no one; each is kept as an
`UnmatchedPayment`, open on the dashboard until support refund the payment (the demo provider
refunds at once, as `refund_issue` does) or resolve the row with a note.
"""

import logging
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.utils import timezone

from audit.models import AuditAction
from audit.services import audit_record
from payments.models import UnmatchedKind, UnmatchedPayment, UnmatchedStatus

logger = logging.getLogger(__name__)

# The reference of the refund Stockwire issues for an unmatched payment.
OWN_REFUND_REFERENCE = "stockwire-refund-unmatched-{unmatched_id}"


class UnmatchedPaymentError(Exception):
    """A settlement the row cannot take: `code` is `note_required`, `not_a_payment` (a refund
    is not refunded) or `already_settled`."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        super().__init__(message)


def unmatched_record(
    *,
    kind: str,
    provider: str,
    event_id: str,
    order_number: str,
    provider_reference: str,
    refund_reference: str,
    amount: Decimal,
    currency: str,
    raw_event: dict,
) -> UnmatchedPayment | None:
    """Record money a provider's event reports that matches nothing Stockwire knows; return
    the row, or None when the same money is recorded already (another event reporting the
    same payment, or refund, by its references).

    Call inside the event's transaction. Sends no signals, requests no tasks.
    """
    try:
        with transaction.atomic():
            unmatched = UnmatchedPayment.objects.create(
                kind=kind,
                provider=provider,
                event_id=event_id,
                order_number=order_number,
                provider_reference=provider_reference,
                refund_reference=refund_reference,
                amount=amount,
                currency=currency,
                raw_event=raw_event,
            )
    except IntegrityError:
        return None
    logger.warning(
        "unmatched money recorded for staff",
        extra={"kind": kind, "provider": provider, "event_id": event_id, "order": order_number},
    )
    return unmatched


def unmatched_refunded_by_stockwire(*, provider: str, payment_reference: str) -> bool:
    """Whether Stockwire refunded the unmatched payment with this reference: the provider's
    `refund.succeeded` for it confirms a refund Stockwire asked for."""
    return UnmatchedPayment.objects.filter(
        kind=UnmatchedKind.PAYMENT,
        provider=provider,
        provider_reference=payment_reference,
        status=UnmatchedStatus.REFUNDED,
    ).exists()


def _settle(*, unmatched: UnmatchedPayment, to: str, actor, note: str, **fields) -> None:
    """Move an open row to `to` (a guarded UPDATE: of two staff settling it at once, the
    second finds it settled) and write the audit entry; raise UnmatchedPaymentError."""
    kinds = (UnmatchedKind.PAYMENT,) if to == UnmatchedStatus.REFUNDED else UnmatchedKind.values
    now = timezone.now()
    settled = UnmatchedPayment.objects.filter(
        pk=unmatched.pk, status=UnmatchedStatus.OPEN, kind__in=kinds
    ).update(status=to, note=note, settled_by=actor, settled_at=now, updated_at=now, **fields)
    unmatched.refresh_from_db()
    if not settled:
        if unmatched.kind not in kinds:
            raise UnmatchedPaymentError("not_a_payment", f"{unmatched} is not money received")
        raise UnmatchedPaymentError(
            "already_settled", f"{unmatched} is {unmatched.get_status_display().lower()}"
        )
    audit_record(
        action=AuditAction.UPDATE,
        obj=unmatched,
        changes={"status": [UnmatchedStatus.OPEN.value, to], "note": ["", note]},
        actor=actor,
    )


@transaction.atomic
def unmatched_payment_refund(
    *, unmatched: UnmatchedPayment, actor=None, reason: str = ""
) -> UnmatchedPayment:
    """Give back a payment that matched no order, in full.

    The built-in `demo` provider refunds synchronously, so the row is marked refunded at
    once (with Stockwire's refund reference); a real provider would be asked by a task and
    confirm with a `refund.succeeded` event. Raises UnmatchedPaymentError (`not_a_payment`,
    `already_settled`). Writes an audit entry; sends no signals, requests no tasks.
    """
    _settle(
        unmatched=unmatched,
        to=UnmatchedStatus.REFUNDED,
        actor=actor,
        note=(reason or "").strip() or "refunded",
        refund_reference=OWN_REFUND_REFERENCE.format(unmatched_id=unmatched.pk),
    )
    return unmatched


@transaction.atomic
def unmatched_payment_resolve(
    *, unmatched: UnmatchedPayment, note: str, actor=None
) -> UnmatchedPayment:
    """Close an unmatched payment or refund that staff accounted for otherwise, saying how.

    Raises UnmatchedPaymentError (`note_required`, `already_settled`). Writes an audit entry;
    sends no signals, requests no tasks.
    """
    note = (note or "").strip()
    if not note:
        raise UnmatchedPaymentError(
            "note_required", "a note saying how it was resolved is required"
        )
    _settle(unmatched=unmatched, to=UnmatchedStatus.RESOLVED, actor=actor, note=note)
    return unmatched
