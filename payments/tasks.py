"""Celery tasks of the payments app: idempotent, take ids, call services."""

from celery import shared_task

from core.retries import STORAGE_RETRY
from payments import services


@shared_task(name="payments.invoice_document_render", ignore_result=True, **STORAGE_RETRY)
def invoice_document_render(order_id: int) -> str:
    """Render and store the order's invoice document once; return its storage name."""
    return services.invoice_document_render(order_id=order_id).document.name


@shared_task(name="payments.credit_note_document_render", ignore_result=True, **STORAGE_RETRY)
def credit_note_document_render(refund_id: int) -> str:
    """Render and store the refund's credit note document once; return its storage name."""
    credit_note = services.credit_note_document_render(refund_id=refund_id)
    return credit_note.document.name if credit_note else ""
