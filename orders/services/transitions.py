"""The order state machine: every transition is one guarded UPDATE whose row count decides.

    pending_payment → paid → (partially_shipped →) shipped → delivered
    pending_payment | paid → cancelled
    paid | partially_shipped | shipped | delivered → refunded

An order is `partially_shipped` while some of its units have shipped and others are still to
ship; once every unit is shipped or cancelled it is `shipped` (shipments and partial
cancellations: `orders.services.shipments`, `orders.services.amendments`).

Two actions racing on one order (a ship and a cancel, an expiry and a payment) both issue
`UPDATE … WHERE status IN (allowed)`; the database serialises them on the row, the second finds
the status changed and updates nothing, and its caller gets `InvalidTransition`. Each transition
writes an OrderEvent (who, when, why: the order's timeline) and an audit entry (who, and the
field-level diff: the shop's one trail of every change, beside catalog and stock changes).
"""

from django.db import transaction
from django.utils import timezone

from audit.models import AuditAction
from audit.services import audit_record, audit_snapshot
from inventory.services import stock_release
from orders.models import Order, OrderEvent, OrderLine, OrderStatus
from orders.services.errors import InvalidOrder, InvalidTransition, NotFlagged
from orders.signals import order_cancelled, order_delivered, order_flagged, order_resolved

S = OrderStatus
# The statuses an order may be cancelled in whole, and marked delivered in.
CANCELLABLE = (S.PENDING_PAYMENT, S.PAID)
DELIVERABLE = (S.SHIPPED,)
# The lifecycle order of the statuses that carry a timestamp, used to tell which of several
# allowed statuses an order left (the UPDATE cannot return the old value portably).
_LIFECYCLE = ((S.DELIVERED, "delivered_at"), (S.SHIPPED, "shipped_at"), (S.PAID, "paid_at"))
# The statuses with a timestamp of their own (`paid_at`, …); partially_shipped has none: its
# shipments carry theirs.
_STAMPED = {field.name for field in Order._meta.concrete_fields}


def order_lock(*, order: Order) -> str:
    """Lock the order's row for this transaction; return its status as committed now.

    Every change made of several steps (a shipment, a partial cancellation, a return, a
    refund) takes this lock first, so two of them on one order run one after the other and
    each reads the lines, allocations and payments as the other left them. `FOR NO KEY
    UPDATE`: none changes a key, and the stronger lock would also wait on (and make wait)
    every transaction whose commit key-shares the row (a second charge, a receipt e-mail).
    """
    locked = Order.objects.select_for_update(no_key=True)
    return locked.values_list("status", flat=True).get(pk=order.pk)


def _transition(
    *,
    order: Order,
    action: str,
    allowed: tuple[str, ...],
    to: str,
    actor,
    note: str = "",
    **fields,
) -> str:
    """Move `order` to `to` if it is still in one of `allowed`; return the status it left.

    Refreshes `order` from the row so callers and receivers see the committed state. The
    audit entry's diff is the status and the `fields` the transition sets (the tracking
    number), with their values as `order` held them; the status timestamp is the entry's own
    time. `actor` None is the audit context's actor, as for every audit entry.
    """
    set_fields = [Order._meta.get_field(name) for name in fields]
    before = audit_snapshot(instance=order, fields=set_fields)
    now = timezone.now()
    stamp = {f"{to}_at": now} if f"{to}_at" in _STAMPED else {}
    updated = Order.objects.filter(pk=order.pk, status__in=allowed).update(
        status=to, updated_at=now, **stamp, **fields
    )
    if updated != 1:
        raise InvalidTransition(number=order.number, action=action, allowed=allowed)
    order.refresh_from_db()
    previous = _status_left(order=order, allowed=allowed)
    OrderEvent.objects.create(
        order=order, kind=action, from_status=previous, to_status=to, actor=actor, note=note
    )
    after = audit_snapshot(instance=order, fields=set_fields)
    audit_record(
        action=AuditAction.UPDATE,
        obj=order,
        changes={"status": [previous, to], **{name: [before[name], after[name]] for name in after}},
        actor=actor,
    )
    return previous


def _status_left(*, order: Order, allowed: tuple[str, ...]) -> str:
    if len(allowed) == 1:
        return allowed[0]
    for status, stamp in _LIFECYCLE:
        if status in allowed and getattr(order, stamp) is not None:
            return status
    return S.PENDING_PAYMENT


@transaction.atomic
def order_mark_paid(*, order: Order, actor=None) -> Order:
    """Mark a pending order paid (called by payments once a matching payment is recorded).

    Raises InvalidTransition when the order is no longer pending (cancelled or paid meanwhile).
    Sends no signal itself: payments sends `payment_received` after this call.
    """
    _transition(order=order, action="paid", allowed=(S.PENDING_PAYMENT,), to=S.PAID, actor=actor)
    return order


@transaction.atomic
def order_cancel(*, order: Order, actor=None, reason: str = "") -> Order:
    """Cancel an order not yet shipped and release the stock it holds.

    Sends `order_cancelled(order, previous_status, actor, reason)`; for a paid order payments
    refunds in the same transaction; the cancellation e-mail is requested (orders.email_send).
    """
    previous = _transition(
        order=order,
        action="cancelled",
        allowed=CANCELLABLE,
        to=S.CANCELLED,
        actor=actor,
        note=reason,
    )
    stock_release(reference=order.number, actor=actor, note=f"order cancelled {reason}".strip())
    _backorders_dropped(order=order)
    order_cancelled.send(
        sender=order_cancel, order=order, previous_status=previous, actor=actor, reason=reason
    )
    return order


@transaction.atomic
def order_mark_delivered(*, order: Order, actor=None) -> Order:
    """Record that the carrier delivered a shipped order. Sends `order_delivered(order, actor)`."""
    _transition(order=order, action="delivered", allowed=DELIVERABLE, to=S.DELIVERED, actor=actor)
    order_delivered.send(sender=order_mark_delivered, order=order, actor=actor)
    return order


@transaction.atomic
def order_mark_refunded(*, order: Order, actor=None, reason: str = "") -> Order:
    """Mark an order refunded (called by payments when the last of its payment is refunded).

    A paid or partially shipped order still holds a reservation, which is released here;
    shipped goods come back only through a return. Sends no signal itself: payments sends
    `refund_issued`.
    """
    # Read under the lock: partially_shipped has no timestamp to tell it from paid.
    status = order_lock(order=order)
    allowed = (S.PAID, S.PARTIALLY_SHIPPED, S.SHIPPED, S.DELIVERED)
    _transition(
        order=order,
        action="refunded",
        allowed=(status,) if status in allowed else allowed,
        to=S.REFUNDED,
        actor=actor,
        note=reason,
    )
    stock_release(reference=order.number, actor=actor, note="order refunded")
    _backorders_dropped(order=order)
    return order


def _backorders_dropped(*, order: Order) -> None:
    """The order's lines wait for no stock any more: `stock_release` cancelled its backorders."""
    OrderLine.objects.filter(order=order, backordered_quantity__gt=0).update(backordered_quantity=0)


@transaction.atomic
def order_flag(*, order: Order, reason: str, actor=None) -> Order:
    """Flag an order for staff (`needs_attention`) with the reason, keeping its status.

    Used when a payment does not match or arrives for a cancelled order. Sends
    `order_flagged(order, reason, actor)`.
    """
    reason = reason[: Order._meta.get_field("attention_reason").max_length]
    _attention_set(order=order, reason=reason, event="flagged", note=reason, actor=actor)
    order_flagged.send(sender=order_flag, order=order, reason=reason, actor=actor)
    return order


@transaction.atomic
def order_resolve(*, order: Order, note: str, actor=None) -> Order:
    """Clear an order's `needs_attention` flag, with a note saying what staff did about it.

    The note is required: the timeline (an OrderEvent `resolved`) and the audit entry then
    tell why the flag went. The row is locked first, so two staff resolving at once, or a
    flag raised meanwhile, are decided one after the other: the second resolve finds
    nothing to clear. Raises InvalidOrder (blank note), NotFlagged. Sends `order_resolved`.
    """
    note = (note or "").strip()
    if not note:
        raise InvalidOrder("a note saying how the flag was resolved is required")
    flagged, reason = (
        Order.objects.select_for_update(no_key=True)
        .values_list("needs_attention", "attention_reason")
        .get(pk=order.pk)
    )
    if not flagged:
        raise NotFlagged(number=order.number)
    _attention_set(order=order, reason="", event="resolved", note=note, actor=actor)
    audit_record(
        action=AuditAction.UPDATE,
        obj=order,
        changes={"needs_attention": [True, False], "attention_reason": [reason, ""]},
        actor=actor,
    )
    order_resolved.send(sender=order_resolve, order=order, note=note, actor=actor)
    return order


def _attention_set(*, order: Order, reason: str, event: str, note: str, actor) -> None:
    """Flag the order with `reason`, or clear its flag (`reason` blank), and write the
    timeline `event` with `note`; the order's status stays as it is."""
    Order.objects.filter(pk=order.pk).update(
        needs_attention=bool(reason), attention_reason=reason, updated_at=timezone.now()
    )
    order.refresh_from_db()
    OrderEvent.objects.create(
        order=order,
        kind=event,
        from_status=order.status,
        to_status=order.status,
        actor=actor,
        note=note,
    )
