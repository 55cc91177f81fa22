"""Request and response bodies of API v1, field for field as the API contract states them.

Money is a decimal string with two places beside a `currency`. Every free-text input refuses
NUL characters (PostgreSQL cannot store them) and has a length limit that fits its column, so
bad input is a 422, never a database error. Input is strict: a value is taken only in the JSON
type the schema names (`"1"` or `true` is no quantity, `7` no tracking number), because a
client that sends another type holds a bug that coercion would hide.
"""

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any

from ninja import Schema
from pydantic import ConfigDict, Field, StringConstraints

from inventory.models import InventoryPolicy
from orders.models import OrderStatus
from reviews.models import (
    AUTHOR_NAME_MAX_LENGTH,
    BODY_MAX_LENGTH,
    MULTI_LINE_TEXT,
    ONE_LINE_TEXT,
    TITLE_MAX_LENGTH,
)

NO_NUL = r"^[^\x00]*$"
# Money in answers: a decimal string with two places, never a float (no rounding on the way).
Money = Annotated[
    str,
    Field(
        pattern=r"^\d+\.\d{2}$",
        json_schema_extra={"format": "decimal"},
        examples=["19.99"],
        description="A decimal amount with two places, in `currency`.",
    ),
]


def text(max_length: int, min_length: int = 1) -> Any:
    """A string of `min_length`..`max_length` characters without NUL."""
    return Annotated[
        str, StringConstraints(min_length=min_length, max_length=max_length, pattern=NO_NUL)
    ]


class StrictInput(Schema):
    """A request body: pydantic's strict mode, so no value is coerced from another type."""

    model_config = ConfigDict(strict=True)


def money(amount: Decimal) -> str:
    """Render an amount as the contract's two-place decimal string."""
    return f"{amount:.2f}"


class IndexLinksOut(Schema):
    categories: str
    products: str
    auth_register: str
    auth_token: str
    orders: str


class ApiIndexOut(Schema):
    docs: str = Field(description="The interactive docs (Swagger UI).")
    openapi: str = Field(description="The OpenAPI document.")
    links: IndexLinksOut


class CredentialsIn(StrictInput):
    # Usernames are the e-mail, and Django's username column holds 150 characters.
    email: text(150)
    password: text(128)


class TokenOut(Schema):
    token: str


class CustomerOut(Schema):
    id: int
    email: str


class RegisteredOut(Schema):
    token: str
    customer: CustomerOut


class CategoryOut(Schema):
    slug: str
    name: str
    parent: str | None = Field(description="The parent category's slug; null at the top.")


class ImageOut(Schema):
    url: str
    thumbnail_url: str | None
    alt_text: str


class VariantOut(Schema):
    sku: str
    name: str
    price: Money
    currency: str
    available: int = Field(description="Units that can be ordered now, over all warehouses.")


class IncomingOut(Schema):
    expected_on: date = Field(description="The next day a supplier's delivery is expected.")
    quantity: int = Field(description="Units expected that day, over all open purchase orders.")


class VariantDetailOut(VariantOut):
    inventory_policy: InventoryPolicy = Field(
        description="What happens once `available` runs out: `deny` refuses more; "
        "`backorder` takes the order and ships the rest when stock comes in (the order's "
        "line says how many wait in `backordered_quantity`); `preorder` does so until "
        "`release_date`. Either may be limited: beyond the limit an order is refused (409)."
    )
    release_date: date | None = Field(description="A pre-order's release date; else null.")
    incoming: IncomingOut | None = Field(
        description="The next units expected from a supplier; null when none are on order."
    )


class RatingOut(Schema):
    average: float | None = Field(
        description="The average of the approved ratings (1 to 5) to two places; null without one.",
        examples=[4.33],
    )
    count: int = Field(description="Approved reviews.")


class ProductOut(Schema):
    id: int = Field(
        description="What a stock socket's subscribe names in `products`, and its messages "
        "in `product_id`."
    )
    slug: str
    name: str
    description: str
    category: str | None = Field(description="The category's slug.")
    images: list[ImageOut]
    variants: list[VariantOut]
    rating: RatingOut


class ProductDetailOut(ProductOut):
    variants: list[VariantDetailOut]


class ProductPageOut(Schema):
    count: int = Field(description="Products matching the filters, over all pages.")
    items: list[ProductOut]


class LineIn(StrictInput):
    sku: text(64)
    quantity: int = Field(ge=1, le=1000)


class AddressIn(StrictInput):
    name: text(200)
    line1: text(200)
    city: text(100)
    postal_code: text(20)
    country: Annotated[str, StringConstraints(pattern=r"^[A-Za-z]{2}$")] = Field(
        description="ISO 3166-1 alpha-2 code.", examples=["DE"]
    )


class OrderIn(StrictInput):
    lines: list[LineIn] = Field(min_length=1, max_length=100)
    shipping_address: AddressIn


class OrderLineOut(Schema):
    sku: str
    name: str
    quantity: int = Field(description="Units ordered.")
    shipped_quantity: int = Field(description="Units shipped so far.")
    cancelled_quantity: int = Field(description="Units cancelled before shipping.")
    returned_quantity: int = Field(description="Shipped units that came back.")
    backordered_quantity: int = Field(
        description="Units still to ship that wait for stock (back-ordered or pre-ordered); "
        "they ship once it comes in, and the customer is e-mailed when none waits any more."
    )
    unit_price: Money
    line_total: Money = Field(description="The price of the units not cancelled.")


class ShipmentLineOut(Schema):
    sku: str
    quantity: int
    warehouse: str = Field(description="The code of the warehouse the units left.")


class ShipmentOut(Schema):
    tracking_number: str
    carrier: str
    shipped_at: datetime
    lines: list[ShipmentLineOut]


class AddressOut(Schema):
    name: str
    line1: str
    city: str
    postal_code: str
    country: str


class OrderOut(Schema):
    number: str
    status: OrderStatus = Field(
        description="pending_payment → paid → (partially_shipped →) shipped → delivered; "
        "pending_payment or paid → cancelled; paid, partially_shipped, shipped or delivered → "
        "refunded."
    )
    currency: str
    subtotal: Money
    shipping: Money
    total: Money
    lines: list[OrderLineOut]
    shipments: list[ShipmentOut]
    refunded: Money = Field(description="What was refunded of the order so far.")
    shipping_address: AddressOut
    tracking_number: str = Field(description="The latest shipment's tracking number.")
    placed_at: datetime
    paid_at: datetime | None
    shipped_at: datetime | None
    cancelled_at: datetime | None


class OrderPageOut(Schema):
    count: int = Field(description="The caller's orders, over all pages.")
    items: list[OrderOut]


class InvoiceOut(Schema):
    number: str
    issued_at: datetime
    total: Money
    currency: str
    document_url: str | None = Field(description="Null until the document is rendered.")


class ShipIn(StrictInput):
    tracking_number: text(64)
    carrier: text(64, min_length=0) = ""


class ShipmentIn(StrictInput):
    lines: list[LineIn] = Field(min_length=1, max_length=100)
    warehouse: text(32) | None = Field(
        default=None,
        description="The code of the warehouse the units leave; by default wherever the "
        "order holds them, by warehouse priority.",
    )
    tracking_number: text(64)
    carrier: text(64, min_length=0) = ""


class LinesCancelIn(StrictInput):
    lines: list[LineIn] = Field(min_length=1, max_length=100)
    reason: text(200, min_length=0) = ""


class ReturnIn(StrictInput):
    lines: list[LineIn] = Field(min_length=1, max_length=100)
    restock_warehouse: text(32) | None = Field(
        default=None,
        description="The code of the warehouse the units go back on hand in; none: not "
        "restocked (kept by the customer, damaged).",
    )
    refund_shipping: bool = Field(
        default=False, description="Refund the order's shipping charge too (once per order)."
    )
    reason: text(200, min_length=0) = ""


class WebhookAckOut(Schema):
    received: bool


def plain_text(pattern: str, max_length: int, min_length: int = 1) -> Any:
    """Plain text matching `pattern`, trimmed, then `min_length`..`max_length` characters."""
    return Annotated[
        str,
        StringConstraints(
            strip_whitespace=True, min_length=min_length, max_length=max_length, pattern=pattern
        ),
    ]


ReviewTitle = plain_text(ONE_LINE_TEXT, TITLE_MAX_LENGTH)
ReviewBody = plain_text(MULTI_LINE_TEXT, BODY_MAX_LENGTH, min_length=0)


class ReviewIn(StrictInput):
    """A new review: a rating is a JSON integer (`"5"`, `4.0`, `true` are refused)."""

    rating: int = Field(ge=1, le=5)
    title: ReviewTitle
    body: ReviewBody = ""
    author_name: plain_text(ONE_LINE_TEXT, AUTHOR_NAME_MAX_LENGTH) | None = Field(
        None, description="The name the review is shown under; the account's name by default."
    )


class ReviewEditIn(StrictInput):
    """What the author changes: any of the three; null is no value for any of them."""

    rating: int = Field(None, ge=1, le=5)
    title: ReviewTitle = None
    body: ReviewBody = None


class ReviewOut(Schema):
    id: int
    product: str = Field(description="The product's slug.")
    rating: int
    title: str = Field(description="Plain text, as written: escape it where it is shown.")
    body: str = Field(description="Plain text, as written: escape it where it is shown.")
    author: str
    verified_purchase: bool
    status: str = Field(description="pending, approved or rejected; pages list approved only.")
    helpful_count: int
    created_at: datetime
    updated_at: datetime


class RatingDetailOut(RatingOut):
    histogram: dict[str, int] = Field(
        description='Approved reviews per rating, keys "1" to "5".',
        examples=[{"1": 0, "2": 1, "3": 0, "4": 2, "5": 6}],
    )


class ReviewPageOut(Schema):
    count: int = Field(description="Approved reviews of the product, over all pages.")
    items: list[ReviewOut]
    rating: RatingDetailOut
