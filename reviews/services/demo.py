"""Reviews for the demo shop, so its products show stars (a step of `manage.py seed_demo`)."""

from django.db import transaction

from catalog.models import Product
from orders import selectors as order_selectors
from orders.models import Customer
from reviews.models import Review, ReviewStatus
from reviews.services.moderation import review_moderate
from reviews.services.reviews import review_author_name, review_submit

# The demo catalog's SKUs (backoffice/demo/catalog.py): only its products get demo reviews, so the
# command never writes a review into a real shop's catalog.
DEMO_SKU_PREFIX = "DEMO-"
# (rating, title, body), dealt out in turn; every fifth review is left for the moderation queue.
DEMO_REVIEWS = (
    (5, "Does exactly what it should", "Well made, arrived quickly, and I use it every day."),
    (4, "Good, with one small gripe", "Solid and good looking; the packaging could be smaller."),
    (5, "Bought a second one", "The first went to a friend who would not give it back."),
    (3, "Fine for the price", "Nothing wrong with it, nothing special either."),
    (4, "Happy with it", "Feels sturdier than I expected from the photos."),
    (2, "Not for me", "Smaller than I thought; check the measurements before you order."),
    (5, "Lovely", "A small pleasure every morning."),
)
LEFT_PENDING_EVERY = 5


@transaction.atomic
def demo_reviews_seed() -> int:
    """Write a review from each customer of each demo product they received, approving most;
    return how many were written. A pair reviewed already is left alone, so running it again
    writes nothing, and without shipped or delivered demo orders nothing is written at all.

    Sends what `review_submit` and `review_moderate` send.
    """
    demo_products = Product.objects.filter(variants__sku__startswith=DEMO_SKU_PREFIX)
    pairs = order_selectors.products_received(
        product_ids=list(demo_products.values_list("pk", flat=True).distinct())
    )
    reviewed = set(Review.objects.values_list("customer_id", "product_id"))
    customers = Customer.objects.select_related("user").in_bulk({pair[0] for pair in pairs})
    written = 0
    for customer_id, product_id in pairs:
        if (customer_id, product_id) in reviewed:
            continue
        rating, title, body = DEMO_REVIEWS[(customer_id + product_id) % len(DEMO_REVIEWS)]
        customer = customers[customer_id]
        review = review_submit(
            customer=customer,
            product_id=product_id,
            rating=rating,
            title=title,
            body=body,
            author_name=review_author_name(user=customer.user),
        )
        written += 1
        if written % LEFT_PENDING_EVERY:
            review_moderate(review=review, decision=ReviewStatus.APPROVED, actor=None)
    return written
