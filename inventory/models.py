from django.conf import settings
from django.db import models
from django.db.models import F, Q, Value
from django.db.models.functions import Greatest

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


def available_units(path: str = "") -> Greatest:
    """A level's units that may be sold, as an expression: `StockLevel.available` in SQL.

    `path` reaches the level from another model (`"stock_levels__"` from a variant).
    """
    return Greatest(
        F(f"{path}on_hand")
        - F(f"{path}reserved")
        - F(f"{path}unavailable")
        - F(f"{path}safety_stock"),
        Value(0),
    )


class StockLevel(models.Model):
    """How many units of one variant are in one warehouse, and what may be sold of them.

    The buckets: `on_hand` units are in the warehouse; of them `reserved` are promised to
    orders and `unavailable` are held back (damaged, on quality hold), so those two never add
    up to more than on hand. `incoming` units are ordered from a supplier and not yet here
    (purchase orders). `safety_stock` is a floor of on-hand units never sold. Availability is
    on hand - reserved - unavailable - safety stock, never below zero (`available`).

    Only inventory services change the buckets, always with guarded F() updates, each move a
    ledger row; the CHECK constraints are the last word when a bug or a race slips past them.
    """

    variant = models.ForeignKey(
        "catalog.Variant", on_delete=models.PROTECT, related_name="stock_levels"
    )
    warehouse = models.ForeignKey(Warehouse, on_delete=models.PROTECT, related_name="levels")
    on_hand = models.IntegerField(default=0)
    reserved = models.IntegerField(default=0)
    # db_default: the set-based INSERTs of the import and the returns name only on_hand.
    incoming = models.IntegerField(default=0, db_default=0)
    unavailable = models.IntegerField(default=0, db_default=0)
    safety_stock = models.IntegerField(default=0, db_default=0)
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
            models.CheckConstraint(condition=Q(incoming__gte=0), name="inventory_incoming_nonneg"),
            models.CheckConstraint(
                condition=Q(unavailable__gte=0), name="inventory_unavailable_nonneg"
            ),
            models.CheckConstraint(
                condition=Q(safety_stock__gte=0), name="inventory_safety_stock_nonneg"
            ),
            # Reserved and unavailable units are distinct units on the shelf.
            models.CheckConstraint(
                condition=Q(on_hand__gte=F("reserved") + F("unavailable")),
                name="inventory_reserved_and_unavailable_le_on_hand",
            ),
        ]

    def __str__(self) -> str:
        return stock_level_label(variant=self.variant, warehouse=self.warehouse)

    @property
    def available(self) -> int:
        """Units that may be sold: on hand - reserved - unavailable - safety stock, at least 0."""
        return max(0, self.on_hand - self.reserved - self.unavailable - self.safety_stock)


class MovementReason(models.TextChoices):
    RECEIPT = "receipt", "Receipt"
    ADJUSTMENT = "adjustment", "Adjustment"
    RESERVATION = "reservation", "Reservation"
    RELEASE = "release", "Release"
    SHIPMENT = "shipment", "Shipment"
    RETURN = "return", "Return"
    IMPORT = "import", "Import"
    BACKORDER = "backorder", "Backorder allocated"
    PURCHASE_ORDER = "po_ordered", "Ordered from a supplier"
    PURCHASE_ORDER_CLOSED = "po_closed", "Purchase order closed short"
    DAMAGED = "damaged", "Damaged"
    QUALITY_HOLD = "quality_hold", "Quality hold"
    HOLD_RELEASED = "hold_released", "Back for sale"
    WRITE_OFF = "write_off", "Written off"
    SAFETY_STOCK = "safety_stock", "Safety stock"


# The reasons that move units into `unavailable`.
HOLD_REASONS = (MovementReason.DAMAGED, MovementReason.QUALITY_HOLD)


class StockMovement(models.Model):
    """An append-only ledger row; replaying a level's rows gives every bucket of it."""

    level = models.ForeignKey(StockLevel, on_delete=models.PROTECT, related_name="movements")
    on_hand_delta = models.IntegerField(default=0)
    reserved_delta = models.IntegerField(default=0)
    # db_default: the checkout's ledger INSERT names only the columns it moves.
    incoming_delta = models.IntegerField(default=0, db_default=0)
    unavailable_delta = models.IntegerField(default=0, db_default=0)
    safety_stock_delta = models.IntegerField(default=0, db_default=0)
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
        moved = ", ".join(
            f"{delta:+} {bucket}"
            for bucket, delta in (
                ("on hand", self.on_hand_delta),
                ("reserved", self.reserved_delta),
                ("incoming", self.incoming_delta),
                ("unavailable", self.unavailable_delta),
                ("safety stock", self.safety_stock_delta),
            )
            if delta
        )
        return f"{self.get_reason_display()} of {self.level}: {moved or 'nothing moved'}"


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


class InventoryPolicy(models.TextChoices):
    DENY = "deny", "Sell only what is available"
    BACKORDER = "backorder", "Back-order beyond what is available"
    PREORDER = "preorder", "Pre-order until the release date"


class StockPolicy(models.Model):
    """How a variant sells when its available units run out; a variant without one denies.

    `backorder` sells beyond availability, up to `limit` units waiting (no limit when blank);
    `preorder` does so before `release_date` only, always up to a `limit`. An order line sold
    that way reserves what is available and waits for the rest (a `Backorder`); a pre-order
    before its release reserves nothing and waits for all, served from the release date on.
    `backordered` counts the units waiting over all orders, moved with every backorder under
    a guarded UPDATE, so racing checkouts never wait for more than the limit.
    """

    variant = models.OneToOneField(
        "catalog.Variant", on_delete=models.CASCADE, primary_key=True, related_name="stock_policy"
    )
    policy = models.CharField(
        max_length=16, choices=InventoryPolicy.choices, default=InventoryPolicy.DENY
    )
    limit = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Most units that may wait for stock at once; blank: no limit (back-orders).",
    )
    release_date = models.DateField(
        null=True,
        blank=True,
        help_text="Pre-orders are taken before this day; from this day on, only what is available "
        "sells.",
    )
    backordered = models.PositiveIntegerField(default=0, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "stock policies"
        constraints = [
            models.CheckConstraint(
                condition=Q(policy__in=InventoryPolicy.values), name="inventory_policy_known"
            ),
            models.CheckConstraint(
                condition=Q(backordered__gte=0), name="inventory_policy_backordered_nonneg"
            ),
            models.CheckConstraint(
                condition=Q(limit__isnull=True) | Q(backordered__lte=F("limit")),
                name="inventory_policy_backordered_le_limit",
            ),
            models.CheckConstraint(
                condition=~Q(policy=InventoryPolicy.PREORDER)
                | Q(release_date__isnull=False, limit__isnull=False),
                name="inventory_policy_preorder_has_date_and_limit",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.variant}: {self.get_policy_display()}"


class Backorder(models.Model):
    """Units of a variant a reference (an order number) bought beyond what was available.

    Of `quantity` waiting since `created_at`, `allocated` were reserved for it as stock came
    in (oldest first) and `cancelled` were cancelled before that.
    """

    reference = models.CharField(max_length=64)
    variant = models.ForeignKey(
        "catalog.Variant", on_delete=models.PROTECT, related_name="backorders"
    )
    quantity = models.PositiveIntegerField()
    allocated = models.PositiveIntegerField(default=0, db_default=0)
    cancelled = models.PositiveIntegerField(default=0, db_default=0)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["reference", "variant"], name="inventory_backorder_one_per_variant"
            ),
            models.CheckConstraint(
                condition=Q(quantity__gt=0), name="inventory_backorder_quantity_positive"
            ),
            models.CheckConstraint(
                condition=Q(quantity__gte=F("allocated") + F("cancelled")),
                name="inventory_backorder_settled_le_quantity",
            ),
        ]
        indexes = [
            models.Index(
                fields=["variant", "created_at"],
                condition=Q(quantity__gt=F("allocated") + F("cancelled")),
                name="inventory_backorder_waiting",
            )
        ]

    def __str__(self) -> str:
        return f"{self.reference}: {self.waiting} of {self.quantity} × {self.variant} waiting"

    @property
    def waiting(self) -> int:
        """Units neither allocated nor cancelled yet."""
        return self.quantity - self.allocated - self.cancelled


class PurchaseOrderStatus(models.TextChoices):
    OPEN = "open", "Open"
    RECEIVED = "received", "Received"
    CLOSED = "closed", "Closed short"


class PurchaseOrder(models.Model):
    """Stock ordered from a supplier for one warehouse, expected on a date.

    While open, each line's units not yet received are `incoming` in the warehouse's level;
    receiving moves them on hand (in parts if the delivery is partial). It ends `received`,
    or `closed` when staff give up on what did not come (the rest leaves incoming).
    """

    number = models.CharField(max_length=32, unique=True)
    supplier = models.CharField(max_length=120)
    warehouse = models.ForeignKey(
        Warehouse, on_delete=models.PROTECT, related_name="purchase_orders"
    )
    expected_on = models.DateField(help_text="The day the supplier says it arrives.")
    status = models.CharField(
        max_length=16, choices=PurchaseOrderStatus.choices, default=PurchaseOrderStatus.OPEN
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["expected_on", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=PurchaseOrderStatus.values),
                name="inventory_purchase_order_status_known",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.number} from {self.supplier}"


class PurchaseOrderLine(models.Model):
    """Units of one variant on a purchase order: ordered, received so far, given up on."""

    purchase_order = models.ForeignKey(
        PurchaseOrder, on_delete=models.CASCADE, related_name="lines"
    )
    variant = models.ForeignKey(
        "catalog.Variant", on_delete=models.PROTECT, related_name="purchase_order_lines"
    )
    quantity = models.PositiveIntegerField()
    received = models.PositiveIntegerField(default=0)
    closed = models.PositiveIntegerField(default=0, help_text="Units given up on.")

    class Meta:
        ordering = ["purchase_order_id", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["purchase_order", "variant"], name="inventory_po_line_one_per_variant"
            ),
            models.CheckConstraint(
                condition=Q(quantity__gt=0), name="inventory_po_line_quantity_positive"
            ),
            models.CheckConstraint(
                condition=Q(quantity__gte=F("received") + F("closed")),
                name="inventory_po_line_settled_le_quantity",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.quantity} × {self.variant} ({self.received} received)"

    @property
    def outstanding(self) -> int:
        """Units still incoming: neither received nor given up on."""
        return self.quantity - self.received - self.closed


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
