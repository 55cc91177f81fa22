from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils import timezone


class PaymentStatus(models.TextChoices):
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    REFUNDED = "refunded", "Refunded"


class Payment(models.Model):
    order = models.ForeignKey("orders.Order", on_delete=models.PROTECT, related_name="payments")
    provider = models.CharField(max_length=32)
    provider_reference = models.CharField(max_length=128)
    amount = models.DecimalField(max_digits=12, decimal_places=2)
    refunded_total = models.DecimalField(
        max_digits=12,
        decimal_places=2,
        default=Decimal("0.00"),
        help_text="What its refunds gave back so far: never more than the amount (a CHECK).",
    )
    currency = models.CharField(max_length=3)
    status = models.CharField(max_length=16, choices=PaymentStatus.choices)
    settles_order = models.BooleanField(
        default=False,
        help_text="This payment paid the order: it is the one invoiced, and refunding it in "
        "full refunds the order. Other payments of the order (a duplicate charge, a wrong "
        "amount, one that came after a cancellation) only flag it.",
    )
    raw_event = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["provider", "provider_reference"], name="payments_reference_per_provider"
            ),
            models.UniqueConstraint(
                fields=["order"],
                condition=Q(settles_order=True),
                name="payments_one_settling_payment_per_order",
            ),
            models.CheckConstraint(condition=Q(amount__gt=0), name="payments_payment_positive"),
            models.CheckConstraint(
                condition=Q(refunded_total__gte=0, refunded_total__lte=F("amount")),
                name="payments_refunds_within_payment",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.provider}:{self.provider_reference} {self.amount} {self.currency}"


class ProcessedEvent(models.Model):
    """A provider event already handled: the unique key makes a replayed webhook a no-op,
    even when the copies arrive at the same moment."""

    provider = models.CharField(max_length=32)
    event_id = models.CharField(max_length=128)
    event_type = models.CharField(max_length=64)
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["provider", "event_id"], name="payments_event_once"),
        ]

    def __str__(self) -> str:
        return f"{self.provider}:{self.event_id} ({self.event_type})"


class Refund(models.Model):
    order = models.ForeignKey("orders.Order", on_delete=models.PROTECT, related_name="refunds")
    payment = models.ForeignKey(Payment, on_delete=models.PROTECT, related_name="refunds")
    amount = models.DecimalField(max_digits=12, decimal_places=2)
    currency = models.CharField(max_length=3)
    provider_reference = models.CharField(max_length=128)
    reason = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    confirmed_by = models.CharField(
        max_length=128,
        blank=True,
        default="",
        db_default="",
        help_text="For a refund Stockwire issued: the provider's reference (or event id) of "
        "the refund.succeeded that confirmed it; empty until then.",
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["payment", "provider_reference"], name="payments_refund_once"
            ),
            models.CheckConstraint(condition=Q(amount__gt=0), name="payments_refund_positive"),
        ]

    def __str__(self) -> str:
        return f"refund {self.amount} {self.currency} of order {self.order_id}"

    @property
    def refunds_the_order(self) -> bool:
        """Whether this refund gave back the last of the payment that paid the order, which
        takes the order's total off the customer's lifetime value. A partial refund, or one of
        another payment (a duplicate charge, a late payment), does not."""
        return self.payment.settles_order and self.payment.status == PaymentStatus.REFUNDED


class UnmatchedKind(models.TextChoices):
    PAYMENT = "payment", "Payment for an unknown order"
    REFUND = "refund", "Refund Stockwire did not ask for"


class UnmatchedStatus(models.TextChoices):
    OPEN = "open", "Needs attention"
    REFUNDED = "refunded", "Refunded"
    RESOLVED = "resolved", "Resolved"


class UnmatchedPayment(models.Model):
    """Money a provider reports that matches nothing Stockwire knows: a payment for an order
    number it never gave out, or a refund it did not ask for. Open until staff settle it:
    support refund such a payment, or resolve either kind with a note.

    A model of its own, not a Payment without an order: every Payment belongs to an order
    (its invoice, refunds, credit notes, revenue and the customer's counters hang off that),
    and these rows are staff's worklist with a life of their own.
    """

    kind = models.CharField(max_length=16, choices=UnmatchedKind.choices)
    provider = models.CharField(max_length=32)
    event_id = models.CharField(max_length=128)
    order_number = models.CharField(max_length=16, help_text="As the provider's event named it.")
    provider_reference = models.CharField(max_length=128, help_text="The payment's reference.")
    refund_reference = models.CharField(
        max_length=128,
        blank=True,
        help_text="The provider's reference of a refund Stockwire did not ask for, or "
        "Stockwire's own of the refund that gave such a payment back.",
    )
    amount = models.DecimalField(max_digits=12, decimal_places=2)
    currency = models.CharField(max_length=3)
    raw_event = models.JSONField()
    status = models.CharField(
        max_length=16, choices=UnmatchedStatus.choices, default=UnmatchedStatus.OPEN
    )
    note = models.TextField(blank=True, help_text="What staff did about it.")
    settled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    settled_at = models.DateTimeField(null=True, blank=True)
    received_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-received_at", "-id"]
        constraints = [
            # The same money reported by two events is one row, so it is refunded once.
            models.UniqueConstraint(
                fields=["provider", "provider_reference"],
                condition=Q(kind=UnmatchedKind.PAYMENT),
                name="payments_unmatched_payment_once",
            ),
            models.UniqueConstraint(
                fields=["provider", "provider_reference", "refund_reference"],
                condition=Q(kind=UnmatchedKind.REFUND),
                name="payments_unmatched_refund_once",
            ),
            models.CheckConstraint(
                condition=Q(amount__gt=0), name="payments_unmatched_amount_positive"
            ),
            models.CheckConstraint(
                condition=Q(kind__in=UnmatchedKind.values)
                & Q(status__in=UnmatchedStatus.values)
                & (Q(kind=UnmatchedKind.PAYMENT) | ~Q(status=UnmatchedStatus.REFUNDED)),
                name="payments_unmatched_refunded_only_payments",
            ),
        ]

    def __str__(self) -> str:
        return (
            f"{self.get_kind_display().lower()} {self.provider}:{self.provider_reference} "
            f"{self.amount} {self.currency}"
        )


class DocumentSequence(models.Model):
    """The last number given per document kind and year; its row lock makes numbers gap-free."""

    kind = models.CharField(max_length=8)
    year = models.PositiveIntegerField()
    last_number = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["kind", "year"], name="payments_sequence_per_year"),
        ]

    def __str__(self) -> str:
        return f"{self.kind}-{self.year}: {self.last_number}"


class Invoice(models.Model):
    order = models.OneToOneField("orders.Order", on_delete=models.PROTECT, related_name="invoice")
    number = models.CharField(max_length=32, unique=True)
    # Given by the service: the moment whose year the number carries.
    issued_at = models.DateTimeField(default=timezone.now, editable=False)
    total = models.DecimalField(max_digits=12, decimal_places=2)
    currency = models.CharField(max_length=3)
    snapshot = models.JSONField(help_text="Lines, totals and addresses as invoiced.")
    document = models.FileField(upload_to="invoices/%Y/", blank=True)

    class Meta:
        ordering = ["-issued_at"]

    def __str__(self) -> str:
        return self.number


class CreditNote(models.Model):
    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="credit_notes")
    refund = models.OneToOneField(Refund, on_delete=models.PROTECT, related_name="credit_note")
    number = models.CharField(max_length=32, unique=True)
    # Given by the service: the moment whose year the number carries.
    issued_at = models.DateTimeField(default=timezone.now, editable=False)
    amount = models.DecimalField(max_digits=12, decimal_places=2)
    currency = models.CharField(max_length=3)
    document = models.FileField(upload_to="credit-notes/%Y/", blank=True)

    class Meta:
        ordering = ["-issued_at"]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="payments_credit_note_positive"),
        ]

    def __str__(self) -> str:
        return self.number
