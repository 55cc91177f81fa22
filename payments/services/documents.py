"""Invoices and credit notes: gap-free numbers per calendar year, snapshots, rendered documents."""

from django.core.files.base import ContentFile
from django.db import transaction
from django.template.loader import render_to_string
from django.utils import timezone

from orders.models import Order
from payments.models import CreditNote, DocumentSequence, Invoice, Refund

INVOICE = "INV"
CREDIT_NOTE = "CN"


def document_number_next(*, kind: str) -> str:
    """Take the next number of `kind` for the current year, e.g. `INV-2026-000001`.

    Must run inside the transaction that stores the document: the counter row stays locked
    until that commit, so concurrent payments queue here and a rollback gives the number
    back — numbers are never shared and never skipped. Call it as late as possible.
    """
    year = timezone.now().year
    # Created race-safely: ON CONFLICT DO NOTHING, then everybody locks the one row.
    DocumentSequence.objects.bulk_create(
        [DocumentSequence(kind=kind, year=year)], ignore_conflicts=True
    )
    sequence = DocumentSequence.objects.select_for_update().get(kind=kind, year=year)
    sequence.last_number += 1
    sequence.save(update_fields=["last_number"])
    return f"{kind}-{year}-{sequence.last_number:06d}"


def _snapshot(order: Order) -> dict:
    return {
        "order_number": order.number,
        "customer_email": order.customer.user.email,
        "shipping_address": order.shipping_address,
        "currency": order.currency,
        "lines": [
            {
                "sku": line.sku,
                "name": line.name,
                "quantity": line.quantity,
                "unit_price": str(line.unit_price),
                "line_total": str(line.line_total),
            }
            for line in order.lines.all()
        ],
        "subtotal": str(order.subtotal),
        "shipping": str(order.shipping),
        "total": str(order.total),
    }


@transaction.atomic
def invoice_issue(*, order: Order) -> Invoice:
    """Issue the order's invoice with the next gap-free number (once: a second call returns it).

    The snapshot is read before the number is taken, so the counter row is locked only for
    its own UPDATE, the invoice INSERT and the commit. Sends no signals, requests no tasks.
    """
    existing = Invoice.objects.filter(order=order).first()
    if existing is not None:
        return existing
    snapshot = _snapshot(Order.objects.select_related("customer__user").get(pk=order.pk))
    return Invoice.objects.create(
        order=order,
        number=document_number_next(kind=INVOICE),
        total=order.total,
        currency=order.currency,
        snapshot=snapshot,
    )


@transaction.atomic
def credit_note_issue(*, refund: Refund) -> CreditNote | None:
    """Issue the credit note that cancels (part of) the order's invoice for `refund`.

    Returns None when the order was never invoiced (nothing to credit). Sends no signals.
    """
    invoice = Invoice.objects.filter(order_id=refund.order_id).first()
    if invoice is None:
        return None
    existing = CreditNote.objects.filter(refund=refund).first()
    if existing is not None:
        return existing
    return CreditNote.objects.create(
        invoice=invoice,
        refund=refund,
        number=document_number_next(kind=CREDIT_NOTE),
        amount=refund.amount,
        currency=refund.currency,
    )


def invoice_document_render(*, order_id: int) -> Invoice:
    """Render the order's invoice as an HTML document and store it, once.

    Safe to run twice or at once: the file name is claimed with a guarded UPDATE
    (`WHERE document = ''`), and a loser deletes the file it wrote.
    Sends no signals, requests no tasks.
    """
    invoice = Invoice.objects.select_related("order").get(order_id=order_id)
    if invoice.document:
        return invoice
    html = render_to_string("payments/invoice.html", {"invoice": invoice, **invoice.snapshot})
    storage = invoice.document.storage
    name = storage.save(
        invoice.document.field.generate_filename(invoice, f"{invoice.number}.html"),
        ContentFile(html.encode()),
    )
    claimed = Invoice.objects.filter(pk=invoice.pk, document="").update(document=name)
    if not claimed:
        storage.delete(name)
    invoice.refresh_from_db()
    return invoice
