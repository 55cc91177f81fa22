"""Read queries of the reviews app, shared by the storefront API and the admin."""

from decimal import Decimal

from django.db.models import F, FloatField, QuerySet, Value
from django.db.models.functions import Cast, Coalesce, NullIf

from catalog.models import Product
from reviews.models import ProductRating, Review, ReviewStatus

# How a product's approved reviews are listed: newest first, or most helpful first (helpful
# votes; the newest first among equals).
REVIEW_ORDERS = {
    "newest": ("-created_at", "-id"),
    "helpful": ("-helpful_count", "-created_at", "-id"),
}


def rating_average(*, count: int, total: int) -> Decimal | None:
    """The average rating to two places (None without a rating): what shop pages show."""
    if not count:
        return None
    return (Decimal(total) / count).quantize(Decimal("0.01"))


def products_with_rating(
    products: QuerySet[Product], *, min_rating: float | None = None, by_rating: bool = False
) -> QuerySet[Product]:
    """Annotate `rating_count` and `rating_sum` (0 without a rating) on each product, joined in
    the same query; keep products whose average is at least `min_rating`; with `by_rating`,
    order best rated first (unrated last, then by more ratings, name and id).

    The filter compares the sum with `min_rating` times the count, the exact average with no
    rounding.
    """
    products = products.annotate(
        rating_count=Coalesce(F("rating__approved_count"), 0),
        rating_sum=Coalesce(F("rating__rating_sum"), 0),
    )
    if min_rating is not None:
        products = products.filter(
            rating__approved_count__gt=0,
            rating__rating_sum__gte=Value(min_rating, output_field=FloatField())
            * Cast("rating__approved_count", FloatField()),
        )
    if by_rating:
        average = Cast("rating__rating_sum", FloatField()) / NullIf(
            Cast("rating__approved_count", FloatField()), Value(0.0)
        )
        products = products.order_by(
            average.desc(nulls_last=True), F("rating_count").desc(), "name", "id"
        )
    return products


def product_rating(*, product_id: int) -> ProductRating:
    """The product's rating; an unsaved empty one when it has none (nothing approved yet)."""
    return ProductRating.objects.filter(pk=product_id).first() or ProductRating(
        product_id=product_id
    )


def reviews_approved(*, product_id: int, order: str) -> QuerySet[Review]:
    """The product's approved reviews in `order` (a key of REVIEW_ORDERS), off their index."""
    return Review.objects.filter(product_id=product_id, status=ReviewStatus.APPROVED).order_by(
        *REVIEW_ORDERS[order]
    )


def reviews_pending() -> QuerySet[Review]:
    """Reviews waiting for a moderator, oldest first (the moderation queue)."""
    return Review.objects.filter(status=ReviewStatus.PENDING).order_by("created_at", "id")


def reviews_recent(*, product_id: int, limit: int) -> list[Review]:
    """The product's latest reviews in any status (the admin's product page)."""
    return list(Review.objects.filter(product_id=product_id).order_by("-created_at", "-id")[:limit])
