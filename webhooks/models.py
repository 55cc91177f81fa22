import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from outbox.models import SendClaim


class EventType(models.TextChoices):
    ORDER_PLACED = "order.placed", "order.placed: an order was placed"
    ORDER_PAID = "order.paid", "order.paid: a payment settled an order"
    ORDER_SHIPPED = "order.shipped", "order.shipped: an order was shipped"
    ORDER_CANCELLED = "order.cancelled", "order.cancelled: an order was cancelled"
    ORDER_REFUNDED = "order.refunded", "order.refunded: money was refunded on an order"
    STOCK_LOW = "stock.low", "stock.low: a variant fell to its low-stock threshold"
    STOCK_CHANGED = "stock.changed", "stock.changed: a variant's availability (coalesced)"
    PRODUCT_UPDATED = "product.updated", "product.updated: a product or its variants (coalesced)"


# Subscribed to only when asked for by name: a busy shop moves stock on every sale.
OPT_IN_EVENTS = frozenset({EventType.STOCK_CHANGED})


class WebhookEndpoint(models.Model):
    """A URL that receives the shop's events, signed with its own secret.

    The secret is stored as it is, not hashed: the shop signs every delivery with it (an
    HMAC needs the key itself), while a hash only lets a holder of the secret prove it.
    During a rotation's grace period the previous secret signs too, so a receiver can switch
    at its own pace. Endpoints are deactivated, not deleted: their delivery log stays.
    """

    url = models.URLField(max_length=500)
    description = models.CharField(max_length=200, blank=True)
    events = models.JSONField(default=list, help_text="The event types this endpoint receives.")
    active = models.BooleanField(default=True)
    secret = models.CharField(max_length=100, editable=False)
    previous_secret = models.CharField(max_length=100, blank=True, editable=False)
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True, editable=False)
    secret_rotated_at = models.DateTimeField(null=True, blank=True, editable=False)
    failing_since = models.DateTimeField(
        null=True,
        blank=True,
        editable=False,
        help_text="The first failed attempt since the last acknowledged one.",
    )
    disabled_at = models.DateTimeField(null=True, blank=True, editable=False)
    disabled_reason = models.CharField(max_length=255, blank=True, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        editable=False,
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["url", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(previous_secret="") | Q(previous_secret_expires_at__isnull=False),
                name="webhooks_previous_secret_expires",
            ),
        ]

    def __str__(self) -> str:
        return self.description or self.url


class WebhookEvent(models.Model):
    """One event as every subscriber receives it: `payload` is the body, `id` its dedupe key.

    `sequence` grows per resource (an order, a variant, a product) in the order the events
    were committed, so a receiver that gets them out of order can put them back.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    type = models.CharField(max_length=32, choices=EventType.choices)
    resource_type = models.CharField(max_length=16)
    resource_id = models.BigIntegerField()
    sequence = models.PositiveBigIntegerField()
    payload = models.JSONField()
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["resource_type", "resource_id", "sequence"],
                name="webhooks_event_sequence_once",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.resource_type} {self.resource_id} #{self.sequence}"


class ResourceSequence(models.Model):
    """The last event sequence number given to a resource; bumped by an upsert whose row lock
    orders concurrent events of one resource."""

    resource_type = models.CharField(max_length=16)
    resource_id = models.BigIntegerField()
    last_sequence = models.PositiveBigIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["resource_type", "resource_id"], name="webhooks_sequence_per_resource"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.resource_type} {self.resource_id}: {self.last_sequence}"


class DeliveryState(models.TextChoices):
    PENDING = "pending", "Pending"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


class WebhookDelivery(models.Model):
    """One event on its way to one endpoint, until a 2xx or the retry window ends.

    `attempts` counts the attempts claimed so far; a task asking for attempt n + 1 is the only
    one that may claim it, so a duplicated or late task does nothing. `next_attempt_at` is
    when the dispatcher asks for the next attempt (a lease while one is requested or in
    flight, so a lost task or a dead worker is asked again once it runs out).
    """

    event = models.ForeignKey(WebhookEvent, on_delete=models.CASCADE, related_name="deliveries")
    endpoint = models.ForeignKey(
        WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries"
    )
    state = models.CharField(
        max_length=16, choices=DeliveryState.choices, default=DeliveryState.PENDING
    )
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=255, blank=True)
    resend_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="resends"
    )
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "webhook deliveries"
        permissions = [("resend_webhookdelivery", "Can resend webhook deliveries")]
        indexes = [
            models.Index(
                fields=["next_attempt_at"],
                condition=Q(state="pending"),
                name="webhooks_delivery_due_idx",
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=~Q(state="pending") | Q(next_attempt_at__isnull=False),
                name="webhooks_pending_delivery_is_scheduled",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event.type} to {self.endpoint}"


class DeliveryAttempt(models.Model):
    """One POST of a delivery: what came back (status, time, the start of the body) or why
    nothing did."""

    delivery = models.ForeignKey(
        WebhookDelivery, on_delete=models.CASCADE, related_name="attempt_log"
    )
    number = models.PositiveSmallIntegerField()
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    latency_ms = models.PositiveIntegerField()
    response_excerpt = models.TextField(blank=True)
    error = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["delivery_id", "number"]
        constraints = [
            models.UniqueConstraint(fields=["delivery", "number"], name="webhooks_attempt_once"),
        ]

    def __str__(self) -> str:
        return f"attempt {self.number} of delivery {self.delivery_id}"


class DisabledNotice(SendClaim):
    """The managers' e-mail about one disabling of an endpoint: claimed before it is sent and
    marked after (`outbox.claims.send_once`), so a notice task that runs twice e-mails once."""

    endpoint = models.ForeignKey(
        WebhookEndpoint, on_delete=models.CASCADE, related_name="disabled_notices"
    )
    disabled_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["endpoint", "disabled_at"], name="webhooks_one_notice_per_disabling"
            ),
        ]

    def __str__(self) -> str:
        return (
            f"notice of endpoint {self.endpoint_id} disabled at {self.disabled_at:%Y-%m-%d %H:%M}"
        )


class ChangeKind(models.TextChoices):
    STOCK = "stock", "Stock of a variant"
    PRODUCT = "product", "A product or its variants"


class PendingChange(models.Model):
    """A resource changed since its coalesced event was last emitted.

    Written in the changing transaction (an upsert: one row however often it changes) and
    consumed by `webhooks.changes_emit`, which emits one event per row with the state as
    committed at that moment.
    """

    kind = models.CharField(max_length=16, choices=ChangeKind.choices)
    object_id = models.BigIntegerField()
    marked_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["kind", "object_id"], name="webhooks_change_once"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.object_id} changed at {self.marked_at:%H:%M:%S}"
