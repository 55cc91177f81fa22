"""Celery tasks of the payments app: idempotent, take ids, call services."""

from celery import shared_task

from payments import services


@shared_task(name="payments.invoice_document_render", ignore_result=True)
def invoice_document_render(order_id: int) -> str:
    """Render and store the order's invoice document once; return its storage name."""
    return services.invoice_document_render(order_id=order_id).document.name
