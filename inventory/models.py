from django.conf import settings
from django.db import models
from django.db.models import F, Q

from catalog.models import Variant
from outbox.models import SendClaim


class Warehouse(models.Model):
    """A place stock is held; reservations draw from active warehouses by ascending priority."""

    code = models.SlugField(max_length=32, unique=True)
    name = models.CharField(max_length=120)
    priority = models.PositiveIntegerField(default=100, help_text="Lower is used first.")
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["priority", "code"]

    def __str__(self) -> str:
        return self.code


def stock_level_label(*, variant: Variant, warehouse: Warehouse) -> str:
    """Name a variant's stock in a warehouse as staff know it: SKU — product — warehouse.

    `variant.product` is read: callers listing levels select it with the level.
    """
    return f"{variant.sku} — {variant.product.name} — {warehouse.name}"


class StockLevel(models.Model):
    """How many units of one variant are in one warehouse, and how many of them are promised.

    Only inventory services change `on_hand` and `reserved`, always with guarded F() updates;
    the CHECK constraints are the last word when a bug or a race slips past them.
    """

    variant = models.ForeignKey(
        "catalog.Variant", on_delete=models.PROTECT, related_name="stock_levels"
    )
    warehouse = models.ForeignKey(Warehouse, on_delete=models.PROTECT, related_name="levels")
    on_hand = models.IntegerField(default=0)
    reserved = models.IntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["variant_id", "warehouse_id"]
        constraints = [
            models.UniqueConstraint(
                fields=["variant", "warehouse"], name="inventory_level_one_per_warehouse"
            ),
            models.CheckConstraint(condition=Q(on_hand__gte=0), name="inventory_on_hand_nonneg"),
            models.CheckConstraint(condition=Q(reserved__gte=0), name="inventory_reserved_nonneg"),
            models.CheckConstraint(
                condition=Q(reserved__lte=F("on_hand")), name="inventory_reserved_le_on_hand"
            ),
        ]

    def __str__(self) -> str:
        return stock_level_label(variant=self.variant, warehouse=self.warehouse)

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved


class MovementReason(models.TextChoices):
    RECEIPT = "receipt", "Receipt"
    ADJUSTMENT = "adjustment", "Adjustment"
    RESERVATION = "reservation", "Reservation"
    RELEASE = "release", "Release"
    SHIPMENT = "shipment", "Shipment"
    RETURN = "return", "Return"
    IMPORT = "import", "Import"


class StockMovement(models.Model):
    """An append-only ledger row; replaying a level's rows gives its on_hand and reserved."""

    level = models.ForeignKey(StockLevel, on_delete=models.PROTECT, related_name="movements")
    on_hand_delta = models.IntegerField(default=0)
    reserved_delta = models.IntegerField(default=0)
    reason = models.CharField(max_length=16, choices=MovementReason.choices)
    reference = models.CharField(max_length=64, blank=True, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    note = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return (
            f"{self.get_reason_display()} of {self.level}: {self.on_hand_delta:+} on hand, "
            f"{self.reserved_delta:+} reserved"
        )


class AllocationState(models.TextChoices):
    RESERVED = "reserved", "Reserved"
    RELEASED = "released", "Released"
    SHIPPED = "shipped", "Shipped"
    RETURNED = "returned", "Returned"


class StockAllocation(models.Model):
    """Units a reference (an order number) holds in one level, and what became of them.

    So release, shipment and return move exactly what was reserved, from the warehouses it was
    reserved in, and never more: of the `quantity` reserved, `shipped` left with a parcel and
    `released` went back to sale (a cancellation); `returned` of the shipped came back on hand.
    An order ships, cancels and takes back in parts, so each counter grows by units under a
    guarded UPDATE. `state` sums the row up for a reader (reserved while units are held, then
    shipped, returned or released), and a CHECK keeps it true to the counters.
    """

    reference = models.CharField(max_length=64)
    level = models.ForeignKey(StockLevel, on_delete=models.PROTECT, related_name="allocations")
    quantity = models.PositiveIntegerField()
    # db_default: the checkout's own INSERT names only the reservation's columns.
    shipped = models.PositiveIntegerField(default=0, db_default=0)
    released = models.PositiveIntegerField(default=0, db_default=0)
    returned = models.PositiveIntegerField(default=0, db_default=0)
    state = models.CharField(
        max_length=16, choices=AllocationState.choices, default=AllocationState.RESERVED
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["reference", "level_id"]
        constraints = [
            models.UniqueConstraint(
                fields=["reference", "level"], name="inventory_allocation_one_per_level"
            ),
            models.CheckConstraint(
                condition=Q(quantity__gt=0), name="inventory_allocation_quantity_positive"
            ),
            models.CheckConstraint(
                condition=Q(quantity__gte=F("shipped") + F("released")),
                name="inventory_allocation_settled_le_quantity",
            ),
            models.CheckConstraint(
                condition=Q(returned__lte=F("shipped")),
                name="inventory_allocation_returned_le_shipped",
            ),
            models.CheckConstraint(
                condition=Q(
                    state=AllocationState.RESERVED,
                    quantity__gt=F("shipped") + F("released"),
                )
                | Q(quantity=F("shipped") + F("released"))
                & (
                    Q(state=AllocationState.RELEASED, shipped=0)
                    | Q(state=AllocationState.SHIPPED, shipped__gt=F("returned"))
                    | Q(state=AllocationState.RETURNED, shipped__gt=0, returned=F("shipped"))
                ),
                name="inventory_allocation_state_matches_units",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.reference}: {self.quantity} × {self.level} ({self.get_state_display()})"

    @property
    def held(self) -> int:
        """Units still reserved: neither shipped nor released."""
        return self.quantity - self.shipped - self.released


class SentAlert(SendClaim):
    """One row per staff alert e-mail: claimed before the send, `sent_at` once the server took
    it, so an alert task that runs twice sends once (`outbox.claims.send_once`)."""

    key = models.CharField(
        max_length=100,
        unique=True,
        help_text="The alert: `low_stock:<variant id>:<day>` or `low_stock_digest:<day>`.",
    )

    def __str__(self) -> str:
        return f"{self.key} claimed at {self.claimed_at:%Y-%m-%d %H:%M:%S}"
