from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.db.models.functions import Round

from outbox.models import SendClaim

# A customer's lifetime value, and a day's revenue, add up order totals (12 digits, 2 places)
# over at most as many orders as `order_count` holds (PostgreSQL `integer`, about 2.1e9): up
# to about 2.1e19, 20 digits before the point.
LIFETIME_MONEY_DIGITS = 22


class Customer(models.Model):
    """The shop-side profile of a user, created by a post_save receiver for every new user.

    `order_count` and `lifetime_value` are derived counters: bumped with F() after commits and
    repaired by the reconcile task, never read-modify-written.
    """

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="customer"
    )
    order_count = models.PositiveIntegerField(default=0)
    lifetime_value = models.DecimalField(
        max_digits=LIFETIME_MONEY_DIGITS, decimal_places=2, default=Decimal("0")
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return self.user.email or self.user.username


class OrderStatus(models.TextChoices):
    PENDING_PAYMENT = "pending_payment", "Pending payment"
    PAID = "paid", "Paid"
    PARTIALLY_SHIPPED = "partially_shipped", "Partially shipped"
    SHIPPED = "shipped", "Shipped"
    DELIVERED = "delivered", "Delivered"
    CANCELLED = "cancelled", "Cancelled"
    REFUNDED = "refunded", "Refunded"


class Order(models.Model):
    number = models.CharField(max_length=16, unique=True)
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="orders")
    status = models.CharField(
        max_length=20, choices=OrderStatus.choices, default=OrderStatus.PENDING_PAYMENT
    )
    currency = models.CharField(max_length=3)
    subtotal = models.DecimalField(max_digits=12, decimal_places=2)
    shipping = models.DecimalField(max_digits=12, decimal_places=2)
    total = models.DecimalField(max_digits=12, decimal_places=2)
    shipping_address = models.JSONField()
    tracking_number = models.CharField(
        max_length=64, blank=True, help_text="The latest shipment's tracking number."
    )
    shipping_refunded = models.BooleanField(
        default=False, help_text="The shipping charge was refunded with a return (at most once)."
    )
    needs_attention = models.BooleanField(default=False, db_index=True)
    attention_reason = models.CharField(max_length=255, blank=True)
    placed_at = models.DateTimeField(auto_now_add=True, db_index=True)
    paid_at = models.DateTimeField(null=True, blank=True)
    shipped_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    refunded_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-placed_at", "-id"]
        indexes = [models.Index(fields=["status", "placed_at"], name="orders_status_placed_idx")]
        constraints = [
            models.CheckConstraint(condition=Q(subtotal__gte=0), name="orders_subtotal_nonneg"),
            models.CheckConstraint(condition=Q(shipping__gte=0), name="orders_shipping_nonneg"),
            models.CheckConstraint(condition=Q(total__gte=0), name="orders_total_nonneg"),
            # Rounded: SQLite keeps decimals as floating point, where 0.10 + 0.20 is not 0.30.
            models.CheckConstraint(
                condition=Q(total=Round(F("subtotal") + F("shipping"), 2)),
                name="orders_total_is_subtotal_plus_shipping",
            ),
            models.CheckConstraint(
                condition=Q(status__in=OrderStatus.values), name="orders_status_known"
            ),
        ]

    def __str__(self) -> str:
        return self.number


class OrderLine(models.Model):
    """A line as it was bought: SKU, name and unit price are snapshots, not live catalog data.

    `quantity` is what was ordered; of it, `shipped_quantity` left in shipments and
    `cancelled_quantity` was cancelled before shipping, and `returned_quantity` of the shipped
    came back. `backordered_quantity` of the units still to ship wait for stock (the variant
    back-orders or pre-orders): they are not reserved yet, so they cannot ship.
    `line_total` is the price of the units not cancelled, so the lines add up to the order's
    subtotal.
    """

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="lines")
    variant = models.ForeignKey(
        "catalog.Variant", on_delete=models.PROTECT, related_name="order_lines"
    )
    sku = models.CharField(max_length=64)
    name = models.CharField(max_length=255)
    quantity = models.PositiveIntegerField()
    shipped_quantity = models.PositiveIntegerField(default=0)
    cancelled_quantity = models.PositiveIntegerField(default=0)
    returned_quantity = models.PositiveIntegerField(default=0)
    # db_default: the checkout's INSERT names it only when a line is back-ordered.
    backordered_quantity = models.PositiveIntegerField(default=0, db_default=0)
    unit_price = models.DecimalField(max_digits=10, decimal_places=2)
    line_total = models.DecimalField(max_digits=12, decimal_places=2)

    class Meta:
        ordering = ["order_id", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(quantity__gt=0), name="orders_line_quantity_positive"
            ),
            models.CheckConstraint(
                condition=Q(unit_price__gte=0), name="orders_line_unit_price_nonneg"
            ),
            models.CheckConstraint(
                condition=Q(quantity__gte=F("shipped_quantity") + F("cancelled_quantity")),
                name="orders_line_shipped_and_cancelled_le_quantity",
            ),
            models.CheckConstraint(
                condition=Q(returned_quantity__lte=F("shipped_quantity")),
                name="orders_line_returned_le_shipped",
            ),
            models.CheckConstraint(
                condition=Q(
                    quantity__gte=F("shipped_quantity")
                    + F("cancelled_quantity")
                    + F("backordered_quantity")
                ),
                name="orders_line_backordered_le_unshipped",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.quantity} × {self.sku}"

    @property
    def sold(self) -> int:
        """Units the line bills: ordered and not cancelled (`line_total` is their price)."""
        return self.quantity - self.cancelled_quantity

    @property
    def unshipped(self) -> int:
        """Units still to ship: neither shipped nor cancelled."""
        return self.quantity - self.shipped_quantity - self.cancelled_quantity

    @property
    def shippable(self) -> int:
        """Units still to ship that are reserved: not waiting for stock."""
        return self.unshipped - self.backordered_quantity

    @property
    def returnable(self) -> int:
        """Units shipped and not returned yet."""
        return self.shipped_quantity - self.returned_quantity


class Fulfilment(models.Model):
    """One shipment of an order: which units left, from which warehouses, by which carrier.

    An order ships in one or several; each moved exactly its units out of the order's
    reservation (`inventory.services.stock_ship`).
    """

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="shipments")
    tracking_number = models.CharField(max_length=64)
    carrier = models.CharField(max_length=64, blank=True)
    shipped_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["order_id", "created_at", "id"]
        verbose_name = "shipment"

    def __str__(self) -> str:
        return f"shipment {self.tracking_number} of order {self.order_id}"


class FulfilmentLine(models.Model):
    """Units of one order line in one shipment, and the warehouse they left."""

    fulfilment = models.ForeignKey(Fulfilment, on_delete=models.CASCADE, related_name="lines")
    line = models.ForeignKey(OrderLine, on_delete=models.CASCADE, related_name="shipment_lines")
    warehouse = models.ForeignKey("inventory.Warehouse", on_delete=models.PROTECT, related_name="+")
    quantity = models.PositiveIntegerField()

    class Meta:
        ordering = ["fulfilment_id", "line_id", "warehouse_id"]
        verbose_name = "shipment line"
        constraints = [
            models.UniqueConstraint(
                fields=["fulfilment", "line", "warehouse"], name="orders_shipment_line_once"
            ),
            models.CheckConstraint(
                condition=Q(quantity__gt=0), name="orders_shipment_line_quantity_positive"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.quantity} × line {self.line_id} from warehouse {self.warehouse_id}"


class OrderEvent(models.Model):
    """The order's timeline: every transition and flag, who did it and why."""

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=32)
    from_status = models.CharField(max_length=20, blank=True)
    to_status = models.CharField(max_length=20, blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    note = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["order_id", "created_at", "id"]

    def __str__(self) -> str:
        return f"{self.order_id}: {self.kind}"


class EmailKind(models.TextChoices):
    CONFIRMATION = "confirmation", "Order confirmation"
    RECEIPT = "receipt", "Payment receipt"
    SHIPPED = "shipped", "Shipping notice"
    CANCELLED = "cancelled", "Cancellation"
    LINES_CANCELLED = "lines_cancelled", "Cancellation of some units"
    REFUND = "refund", "Refund"
    LINE_READY = "line_ready", "Back-ordered line ready"


class SentEmail(SendClaim):
    """One row per order e-mail: claimed before the send, `sent_at` once the server took it,
    so a task that runs twice sends once (`outbox.claims.send_once`)."""

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="sent_emails")
    kind = models.CharField(max_length=16, choices=EmailKind.choices)
    reference = models.CharField(
        max_length=64,
        blank=True,
        help_text="What the e-mail is about, for a kind an order can have several of (each "
        "shipment, partial cancellation and refund has its own notice); blank for the kinds "
        "sent once per order.",
    )
    recipient = models.EmailField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["order", "kind", "reference"], name="orders_one_email_per_subject"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} for order {self.order_id} to {self.recipient}"


class DailySales(models.Model):
    """Derived: orders, units and revenue per day, bumped after each commit by an upsert that
    adds to the stored values (the SQL form of F())."""

    date = models.DateField(unique=True)
    orders = models.PositiveIntegerField(default=0)
    # Up to 100,000 units an order (100 lines of 1,000): beyond `integer` at 21,475 such orders.
    units = models.PositiveBigIntegerField(default=0)
    revenue = models.DecimalField(
        max_digits=LIFETIME_MONEY_DIGITS, decimal_places=2, default=Decimal("0")
    )

    class Meta:
        ordering = ["-date"]
        verbose_name_plural = "daily sales"

    def __str__(self) -> str:
        return f"{self.date}: {self.orders} orders, {self.revenue}"


class VariantSales(models.Model):
    """Derived: units sold and shipped per variant, bumped after each commit by an upsert that
    adds to the stored values (the SQL form of F())."""

    variant = models.OneToOneField(
        "catalog.Variant", on_delete=models.CASCADE, primary_key=True, related_name="sales"
    )
    # A variant's units over its whole life, up to 1,000 an order, may outgrow `integer`.
    units_sold = models.PositiveBigIntegerField(default=0)
    units_shipped = models.PositiveBigIntegerField(default=0)

    class Meta:
        verbose_name_plural = "variant sales"

    def __str__(self) -> str:
        return f"variant {self.variant_id}: {self.units_sold} sold, {self.units_shipped} shipped"
