"""Builders for reviews tests: products customers received, reviews in each status.

Orders are placed, paid and shipped through the orders services, so only a real buyer can
review; reviews are written and moderated through the reviews services.
"""

import uuid

from django.contrib.auth import get_user_model

from catalog.models import Product
from orders.models import Customer
from orders.services import order_mark_paid, order_ship
from reviews.models import Review, ReviewStatus
from reviews.services import review_moderate, review_submit
from tests.orders_helpers import customer_new, order_new, variant_stocked


def staff_moderator():
    return get_user_model().objects.create_user(
        username=f"mod-{uuid.uuid4().hex[:8]}", email="mod@stockwire.example", is_staff=True
    )


def product_with_stock(sku: str = "MUG-1", *, on_hand: int = 100) -> Product:
    return variant_stocked(sku, on_hand=on_hand).product


def buyer_of(product: Product, customer: Customer | None = None, *, ship: bool = True) -> Customer:
    """A customer (new unless given) with an order of the product: shipped, or only paid."""
    customer = customer or customer_new()
    order = order_new(customer, (product.variants.first().sku, 1))
    order_mark_paid(order=order)
    if ship:
        order_ship(order=order, tracking_number=f"T-{order.number}")
    return customer


def review_by(
    customer: Customer,
    product: Product,
    *,
    rating: int = 4,
    status: str = ReviewStatus.PENDING,
    moderator=None,
    title: str = "Solid",
) -> Review:
    """The customer's review of a product they received, then moderated into `status`."""
    review = review_submit(
        customer=customer,
        product_id=product.pk,
        rating=rating,
        title=title,
        body="Does the job.",
        author_name="Ada L.",
    )
    if status == ReviewStatus.PENDING:
        return review
    reason = "" if status == ReviewStatus.APPROVED else "off topic"
    return review_moderate(review=review, decision=status, actor=moderator, reason=reason)
