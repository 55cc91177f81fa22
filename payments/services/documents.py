"""Invoices and credit notes: gap-free numbers per calendar year, snapshots, rendered documents."""

from datetime import datetime

from django.core.files.base import ContentFile
from django.db import connections, router, transaction
from django.db.models import prefetch_related_objects
from django.db.transaction import TransactionManagementError
from django.template.loader import render_to_string
from django.utils import timezone

from core.sql import upsert_adding
from orders.models import Order
from payments.models import CreditNote, DocumentSequence, Invoice, Refund

INVOICE = "INV"
CREDIT_NOTE = "CN"


def document_number_next(*, kind: str, issued_at: datetime | None = None) -> str:
    """Take the next number of `kind` for the year of `issued_at` (now by default), e.g.
    `INV-2026-000001`. The document is then stored with that `issued_at`: a number taken
    just before midnight that waited for the counter's lock into the new year still carries
    the year of the date the document shows.

    Must run inside the transaction that stores the document: the counter row stays locked
    until that commit, so concurrent payments queue here and a rollback gives the number
    back — numbers are never shared and never skipped. Call it as late as possible.

    One statement creates the year's row or adds one to it and returns the number
    (`upsert_adding`: the database adds under the row lock, no read-modify-write in Python),
    where the ORM needed an insert-if-missing, a SELECT … FOR UPDATE and an UPDATE.
    """
    year = (issued_at or timezone.now()).year
    if not connections[router.db_for_write(DocumentSequence)].in_atomic_block:
        # In autocommit the number would be committed at once and lost if the document fails.
        raise TransactionManagementError("document_number_next needs the document's transaction")
    [(number,)] = upsert_adding(
        DocumentSequence, key=("kind", "year"), fields=("last_number",), rows=[(kind, year, 1)]
    )
    return f"{kind}-{year}-{number:06d}"


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
                # Units cancelled before the payment are not billed (nor in `line_total`).
                "quantity": line.sold,
                "unit_price": str(line.unit_price),
                "line_total": str(line.line_total),
            }
            for line in order.lines.all()
            if line.sold
        ],
        "subtotal": str(order.subtotal),
        "shipping": str(order.shipping),
        "total": str(order.total),
    }


@transaction.atomic(savepoint=False)
def invoice_issue(*, order: Order) -> Invoice:
    """Issue the order's invoice with the next gap-free number (once: a second call returns it).

    The snapshot is read before the number is taken, so the counter row is locked only for
    the number's upsert, the invoice INSERT and the commit. The order read also answers
    whether the order has its invoice already (the reverse one-to-one joined in). No
    savepoint of its own (two round trips fewer on every payment): it runs inside the
    payment's transaction, which a failure here rolls back whole; a caller that caught the
    error could not go on using that transaction.
    Sends no signals, requests no tasks.
    """
    order = Order.objects.select_related("customer__user", "invoice").get(pk=order.pk)
    try:
        return order.invoice
    except Invoice.DoesNotExist:
        pass
    prefetch_related_objects([order], "lines")
    snapshot = _snapshot(order)
    issued_at = timezone.now()
    return Invoice.objects.create(
        order=order,
        number=document_number_next(kind=INVOICE, issued_at=issued_at),
        issued_at=issued_at,
        total=order.total,
        currency=order.currency,
        snapshot=snapshot,
    )


@transaction.atomic
def credit_note_issue(*, refund: Refund) -> CreditNote | None:
    """Issue the credit note that cancels (part of) the order's invoice for `refund`.

    Returns None when there is nothing to credit: the order was never invoiced, or the refunded
    payment is not the one invoiced (a duplicate charge, a late payment).
    Sends no signals, requests no tasks.
    """
    if not refund.payment.settles_order:
        return None
    invoice = Invoice.objects.filter(order_id=refund.order_id).first()
    if invoice is None:
        return None
    existing = CreditNote.objects.filter(refund=refund).first()
    if existing is not None:
        return existing
    issued_at = timezone.now()
    return CreditNote.objects.create(
        invoice=invoice,
        refund=refund,
        number=document_number_next(kind=CREDIT_NOTE, issued_at=issued_at),
        issued_at=issued_at,
        amount=refund.amount,
        currency=refund.currency,
    )


def _document_store(*, document, model, context: dict, template: str):
    """Render `document` (an Invoice or CreditNote) to HTML and store it, once.

    Safe to run twice or at once: the file name is claimed with a guarded UPDATE
    (`WHERE document = ''`), and a loser deletes the file it wrote.
    """
    if document.document:
        return document
    html = render_to_string(template, context)
    storage = document.document.storage
    name = storage.save(
        document.document.field.generate_filename(document, f"{document.number}.html"),
        ContentFile(html.encode()),
    )
    if not model.objects.filter(pk=document.pk, document="").update(document=name):
        storage.delete(name)
    document.refresh_from_db()
    return document


def invoice_document_render(*, order_id: int) -> Invoice:
    """Render the order's invoice as an HTML document and store it, once.

    Sends no signals, requests no tasks.
    """
    invoice = Invoice.objects.get(order_id=order_id)
    return _document_store(
        document=invoice,
        model=Invoice,
        context={"invoice": invoice, **invoice.snapshot},
        template="payments/invoice.html",
    )


def credit_note_document_render(*, refund_id: int) -> CreditNote | None:
    """Render the refund's credit note as an HTML document and store it, once; None when the
    refund has no credit note (the order was never invoiced).

    Sends no signals, requests no tasks.
    """
    credit_note = CreditNote.objects.select_related("invoice").filter(refund_id=refund_id).first()
    if credit_note is None:
        return None
    return _document_store(
        document=credit_note,
        model=CreditNote,
        context={"credit_note": credit_note, **credit_note.invoice.snapshot},
        template="payments/credit_note.html",
    )
