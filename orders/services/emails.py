"""Order e-mails: rendered from templates, sent once per order, kind and reference.

Most kinds are sent once per order; a kind an order can have several of (a notice per
shipment, per partial cancellation, per refund) names what each is about with a `reference`,
and carries the facts it is about as `context`: a refund's amount (which lives in payments),
a cancellation's units and amount, a shipment's id (its lines are read when rendering).
"""

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string

from orders.models import EmailKind, Fulfilment, Order, SentEmail
from outbox.claims import send_once
from outbox.services import outbox_enqueue


def order_email_render(
    *, order: Order, kind: str, context: dict[str, str] | None = None
) -> EmailMultiAlternatives:
    """Build the text + HTML message of `kind` for `order` (templates in orders/email/)."""
    context = dict(context or {})
    if "shipment_id" in context:
        context["shipment"] = (
            Fulfilment.objects.filter(order=order, pk=context["shipment_id"])
            .prefetch_related("lines__line")
            .first()
        )
    context = {
        **context,
        "order": order,
        "lines": list(order.lines.all()),
        "customer_email": order.customer.user.email,
        "reservation_ttl_minutes": settings.RESERVATION_TTL_MINUTES,
    }
    base = f"orders/email/{kind}"
    subject = " ".join(render_to_string(f"{base}_subject.txt", context).split())
    message = EmailMultiAlternatives(
        subject=subject,
        body=render_to_string(f"{base}.txt", context),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[order.customer.user.email],
    )
    message.attach_alternative(render_to_string(f"{base}.html", context), "text/html")
    return message


def order_email_request(
    *, order: Order, kind: str, reference: str = "", context: dict[str, str] | None = None
) -> None:
    """Request the `kind` e-mail of an order in the caller's transaction.

    Through the outbox, so the e-mail goes only if that transaction commits; the dedupe key
    makes a second request for the same order, kind and reference the same request.
    Sends no signals; requests the `orders.email_send` task.
    """
    kwargs: dict = {"order_id": order.pk, "kind": kind}
    if reference:
        kwargs.update(reference=reference, context=context or {})
    elif context:
        kwargs["context"] = context
    outbox_enqueue(
        task_name="orders.email_send",
        kwargs=kwargs,
        dedupe_key=":".join(part for part in ("email", kind, str(order.pk), reference) if part),
    )


def order_email_send(
    *, order_id: int, kind: str, reference: str = "", context: dict[str, str] | None = None
) -> bool:
    """Send the `kind` e-mail of an order (about `reference`) unless it was sent already;
    return whether it was.

    Not atomic on purpose: `send_once` claims the SentEmail row, talks to SMTP with no
    transaction open and marks the row in a second short transaction, so a hung mail server
    never holds the claim's key-share lock on the order (a cancel would wait for it). A failed
    send releases the claim; a copy of the task that meets a fresh claim raises `ClaimHeld` and
    retries. At least once: a send whose mark failed goes out again after the claim's lease.
    Sends no signals, requests no tasks.
    """
    if kind not in EmailKind.values:
        raise ValueError(f"unknown e-mail kind {kind!r}")
    order = Order.objects.select_related("customer__user").get(pk=order_id)
    recipient = order.customer.user.email
    if not recipient:
        return False
    message = order_email_render(order=order, kind=kind, context=context)
    return send_once(
        model=SentEmail,
        lookup={"order": order, "kind": kind, "reference": reference},
        defaults={"recipient": recipient},
        send=message.send,
    )
