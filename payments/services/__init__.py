"""Write operations of the payments app, split by entity; import them from here."""

from payments.services.documents import (
    credit_note_document_render,
    credit_note_issue,
    document_number_next,
    invoice_document_render,
    invoice_issue,
)
from payments.services.refunds import (
    RefundError,
    RefundExceedsPayment,
    refund_issue,
    refund_partial,
)
from payments.services.returns import refund_return
from payments.services.unmatched import (
    UnmatchedPaymentError,
    unmatched_payment_refund,
    unmatched_payment_resolve,
    unmatched_record,
)
from payments.services.webhooks import (
    PaymentEvent,
    WebhookError,
    payment_record,
    refund_record,
    webhook_handle,
    webhook_parse,
    webhook_signature,
    webhook_verify,
)

__all__ = [
    "PaymentEvent",
    "RefundError",
    "RefundExceedsPayment",
    "UnmatchedPaymentError",
    "WebhookError",
    "credit_note_document_render",
    "credit_note_issue",
    "document_number_next",
    "invoice_document_render",
    "invoice_issue",
    "payment_record",
    "refund_issue",
    "refund_partial",
    "refund_record",
    "refund_return",
    "unmatched_payment_refund",
    "unmatched_payment_resolve",
    "unmatched_record",
    "webhook_handle",
    "webhook_parse",
    "webhook_signature",
    "webhook_verify",
]
