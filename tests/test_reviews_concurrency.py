"""Ratings under real concurrency on PostgreSQL: many moderators, authors and staff at once on
one product's reviews, and the rating still equals a recount of its approved reviews."""

from collections import Counter

import pytest

from reviews.models import ProductRating, Review, ReviewStatus
from reviews.services import (
    InvalidModeration,
    ratings_recomputed,
    ratings_reconcile,
    review_delete,
    review_edit,
    review_moderate,
)
from reviews.services.ratings import NO_RATING, RATING_FIELDS
from tests.orders_helpers import customer_new
from tests.reviews_helpers import product_with_stock

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

APPROVED, REJECTED, PENDING = ReviewStatus.APPROVED, ReviewStatus.REJECTED, ReviewStatus.PENDING
THREADS = 50


def reviews_written(product, statuses: list[str]) -> list[Review]:
    """One review per status, by new customers, rated 1 to 5 in turn, then moderated into it.

    Written with the ORM rather than `review_submit`: who may review is not what these tests
    race, and 50 shipped orders would only slow them down.
    """
    reviews = []
    for index, status in enumerate(statuses):
        review = Review.objects.create(
            customer=customer_new(),
            product=product,
            rating=index % 5 + 1,
            title=f"Review {index}",
            author_name="Buyer",
        )
        if status != PENDING:
            reason = "" if status == APPROVED else "off topic"
            review = review_moderate(review=review, decision=status, actor=None, reason=reason)
        reviews.append(review)
    return reviews


def stored_rating(product) -> tuple[int, ...]:
    row = ProductRating.objects.filter(pk=product.pk).values_list(*RATING_FIELDS).first()
    return row or NO_RATING


def test_fifty_moderators_approving_one_products_reviews_at_once_count_each_once(
    run_concurrently,
):
    # given
    product = product_with_stock("MUG-1")
    reviews = reviews_written(product, [PENDING] * THREADS)

    # when
    results = run_concurrently(
        lambda i: review_moderate(review=reviews[i], decision=APPROVED, actor=None), THREADS
    )

    # then
    assert [type(result) for result in results] == [Review] * THREADS
    # ratings 1..5 ten times each
    assert stored_rating(product) == (50, 150, 10, 10, 10, 10, 10)


def test_approvals_rejections_edits_and_deletes_racing_on_the_same_reviews_keep_the_rating_exact(
    run_concurrently,
):
    # given: 25 reviews approved, rejected or pending; two threads act on each, each thread
    # doing something else than its partner
    product = product_with_stock("MUG-1")
    reviews = reviews_written(product, [(APPROVED, REJECTED, PENDING)[n % 3] for n in range(25)])

    def approve(review: Review) -> None:
        review_moderate(review=review, decision=APPROVED, actor=None)

    def reject(review: Review) -> None:
        review_moderate(review=review, decision=REJECTED, actor=None, reason="spam")

    def author_deletes(review: Review) -> None:
        review_delete(review_id=review.pk, customer=review.customer)

    def author_edits(review: Review) -> None:
        review_edit(review_id=review.pk, customer=review.customer, rating=6 - review.rating)

    def staff_delete(review: Review) -> None:
        Review.objects.filter(pk=review.pk).delete()

    actions = (approve, reject, author_deletes, author_edits, staff_delete)

    def act(i: int) -> str:
        action = actions[(i + i // len(reviews)) % len(actions)]
        action(reviews[i % len(reviews)])
        return action.__name__

    # when
    results = run_concurrently(act, THREADS)

    # then: the only refusals are a decision the partner made moot or a review it deleted
    refusals = Counter(type(result).__name__ for result in results if not isinstance(result, str))
    assert set(refusals) <= {InvalidModeration.__name__, Review.DoesNotExist.__name__}, results
    done = Counter(result for result in results if isinstance(result, str))
    assert set(done) == {action.__name__ for action in actions}
    assert stored_rating(product) == ratings_recomputed().get(product.pk, NO_RATING)
    assert ratings_reconcile() == 0
    print(f"done {dict(done)}, refused {dict(refusals)}, rating {stored_rating(product)}")
