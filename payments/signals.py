"""Signals the payments app sends; importable from anywhere (it imports only django.dispatch).

All are sent inside the service's transaction, with that service function as `sender`.
"""

from django.dispatch import Signal

# Sent by payments.services.payment_record once the order is marked paid.
# kwargs: payment: Payment, order: Order (an orders model: apps below payments need no more).
payment_received = Signal()

# Sent by payments.services.refund_issue (staff or a cancelled paid order) and
# payments.services.refund_record (a provider's `refund.succeeded` event), both through
# refund_issued_send. kwargs: refund: Refund, order: Order, and for apps below payments, which
# may not import its models: refund_id: int, amount: Decimal, currency: str,
# refunds_the_order: bool (the refund gave back the last of the payment that paid the order).
refund_issued = Signal()
