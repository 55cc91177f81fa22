"""Signals the payments app sends; importable from anywhere (it imports only django.dispatch).

All are sent inside the service's transaction, with that service function as `sender`.
"""

from django.dispatch import Signal

# Sent by payments.services.payment_record once the order is marked paid.
# kwargs: payment: Payment, order: Order.
payment_received = Signal()

# Sent by payments.services.refund_issue (staff or a cancelled paid order) and
# payments.services.refund_record (a provider's `refund.succeeded` event).
# kwargs: refund: Refund, order: Order.
refund_issued = Signal()
