"""Product ratings: moved as approved reviews come and go, recomputed by the nightly reconcile.

Definition (the reconcile recomputes exactly this): a product's `ProductRating` holds, over its
reviews with status approved, how many there are, the sum of their ratings and how many have
each rating from 1 to 5. The average is the sum over the count.

Every write of a review moves its product's rating in the same transaction: the `pre_save` and
`pre_delete` receivers read the stored review under its row lock (`review_stored_state`), the
`post_save` and `post_delete` receivers pass that and the new state to `product_rating_follow`,
which takes the old rating out if it was approved and puts the new one in if it is, with one
guarded `UPDATE … SET f = f + delta WHERE f >= -delta` per product. Because the stored state
is read under the lock, two moderators deciding on one review at once move the rating once
each from what the other left, never twice from the same state.
"""

import logging
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from django.db import transaction
from django.db.models import Count, F, Q, Sum
from django.db.models.functions import Now

from reviews.models import (
    RATINGS,
    STAR_FIELDS,
    HelpfulVote,
    ProductRating,
    Review,
    ReviewStatus,
)
from reviews.signals import product_reviews_changed

logger = logging.getLogger(__name__)

RATING_FIELDS = ("approved_count", "rating_sum", *STAR_FIELDS)
NO_RATING = (0,) * len(RATING_FIELDS)


@dataclass(frozen=True)
class ReviewState:
    """What of a review its product's rating depends on."""

    product_id: int
    status: str
    rating: int

    @property
    def counted(self) -> bool:
        return self.status == ReviewStatus.APPROVED


def review_state_saved(
    review: Review, *, stored: ReviewState | None, update_fields: Iterable[str] | None
) -> ReviewState:
    """What a save of `review` left in its row. A save of some fields (`update_fields`)
    writes only those: the others stay as `stored`, whatever this copy of the review holds
    (one read before a moderator's decision, say)."""
    written = (
        {"product", "status", "rating"}
        if update_fields is None or stored is None
        else {Review._meta.get_field(name).name for name in update_fields}
    )
    return ReviewState(
        product_id=review.product_id if "product" in written else stored.product_id,
        status=review.status if "status" in written else stored.status,
        rating=review.rating if "rating" in written else stored.rating,
    )


def review_stored_state(*, review_id: int) -> ReviewState | None:
    """The stored product, status and rating of a review (None when there is no row), its row
    locked until the transaction ends.

    Call in the transaction that writes the review: a concurrent writer of the same review
    waits for this one to commit, so the state read is the one this write replaces.
    """
    row = (
        Review.objects.select_for_update()
        .filter(pk=review_id)
        .values_list("product_id", "status", "rating")
        .first()
    )
    return ReviewState(*row) if row else None


@transaction.atomic(savepoint=False)
def product_rating_follow(*, before: ReviewState | None, after: ReviewState | None) -> None:
    """Move the product ratings by one review's write: `before` is what was stored (None for
    a new review), `after` what is now (None once deleted).

    Call in the review's transaction, with `before` read under its row lock. A move that
    would take a counter below what it holds finds no row to update: the rating has drifted
    (a fixture load, a write past the ORM); that is logged and the reconcile repairs it.
    Sends `product_reviews_changed` when an approved review was involved.
    """
    deltas: dict[int, Counter] = defaultdict(Counter)
    for state, sign in ((before, -1), (after, 1)):
        if state is not None and state.counted:
            counter = deltas[state.product_id]
            counter["approved_count"] += sign
            counter["rating_sum"] += sign * state.rating
            counter[f"stars_{state.rating}"] += sign
    moved = False
    for product_id in sorted(deltas):
        changes = {field: delta for field, delta in deltas[product_id].items() if delta}
        if changes:
            _rating_move(product_id=product_id, changes=changes)
            moved = True
    if deltas:
        product_reviews_changed.send(
            sender=product_rating_follow, product_ids=sorted(deltas), rating_changed=moved
        )


def _rating_move(*, product_id: int, changes: dict[str, int]) -> None:
    """Add `changes` to the product's rating row in one guarded UPDATE (creating the row
    first when something is added)."""
    if any(delta > 0 for delta in changes.values()):
        ProductRating.objects.bulk_create(
            [ProductRating(product_id=product_id)], ignore_conflicts=True
        )
    guards = Q(*(Q(**{f"{field}__gte": -delta}) for field, delta in changes.items() if delta < 0))
    updated = ProductRating.objects.filter(guards, pk=product_id).update(
        updated_at=Now(), **{field: F(field) + delta for field, delta in changes.items()}
    )
    if not updated:
        logger.warning(
            "product rating drifted: a move found less than it takes away; the reconcile "
            "repairs it",
            extra={"product_id": product_id, "changes": changes},
        )


def ratings_recomputed(*, product_ids: list[int] | None = None) -> dict[int, tuple[int, ...]]:
    """Each product's rating as its approved reviews make it, in the order of RATING_FIELDS;
    products without an approved review are absent."""
    approved = Review.objects.filter(status=ReviewStatus.APPROVED)
    if product_ids is not None:
        approved = approved.filter(product_id__in=product_ids)
    rows = (
        approved.values("product_id")
        .order_by("product_id")
        .annotate(
            count=Count("pk"),
            total=Sum("rating"),
            **{
                field: Count("pk", filter=Q(rating=rating))
                for field, rating in zip(STAR_FIELDS, RATINGS, strict=True)
            },
        )
    )
    return {
        row["product_id"]: (row["count"], row["total"], *(row[field] for field in STAR_FIELDS))
        for row in rows
    }


def ratings_reconcile() -> int:
    """Recompute every product's rating and every review's helpful count, repair each that
    drifted; return how many rows were repaired.

    One read finds the drifted rows; each is then repaired in a short transaction of its own
    that locks it before counting again, so a moderation or a vote that moved it meanwhile has
    committed (its lock was waited for) and is counted, and one that comes later adds to the
    repaired figure: a repair never overwrites a concurrent move, and nothing is locked across
    the catalog.
    Sends `product_reviews_changed` for the products repaired (after their commits).
    """
    expected = ratings_recomputed()
    stored = {
        row[0]: row[1:] for row in ProductRating.objects.values_list("product_id", *RATING_FIELDS)
    }
    drifted = sorted(
        product_id
        for product_id in expected.keys() | stored.keys()
        if expected.get(product_id, NO_RATING) != stored.get(product_id, NO_RATING)
    )
    rated = [
        product_id
        for product_id in drifted
        if _rating_repair(product_id=product_id, create=product_id in expected)
    ]
    voted_on = [
        product_id
        for review_id, product_id in Review.objects.annotate(votes=Count("helpful_votes"))
        .exclude(helpful_count=F("votes"))
        .values_list("pk", "product_id")
        .order_by("pk")
        if _helpful_count_repair(review_id=review_id)
    ]
    if rated or voted_on:
        product_reviews_changed.send(
            sender=ratings_reconcile,
            product_ids=sorted({*rated, *voted_on}),
            rating_changed=bool(rated),
        )
    return len(rated) + len(voted_on)


@transaction.atomic
def _rating_repair(*, product_id: int, create: bool) -> bool:
    """Set one product's rating to its recount under the row's lock (after creating the row,
    if `create` and it is missing); return whether it differed."""
    if create:
        ProductRating.objects.bulk_create(
            [ProductRating(product_id=product_id)], ignore_conflicts=True
        )
    row = ProductRating.objects.select_for_update().filter(pk=product_id).first()
    if row is None:
        return False
    counted = ratings_recomputed(product_ids=[product_id]).get(product_id, NO_RATING)
    if tuple(getattr(row, field) for field in RATING_FIELDS) == counted:
        return False
    for field, value in zip(RATING_FIELDS, counted, strict=True):
        setattr(row, field, value)
    row.save(update_fields=[*RATING_FIELDS, "updated_at"])
    logger.warning("repaired a drifted product rating", extra={"product_id": product_id})
    return True


@transaction.atomic
def _helpful_count_repair(*, review_id: int) -> bool:
    """Set one review's helpful count to its votes under the review's lock; return whether it
    differed. An UPDATE, not save(): the review's rating is not touched."""
    current = (
        Review.objects.select_for_update()
        .filter(pk=review_id)
        .values_list("helpful_count", flat=True)
        .first()
    )
    votes = HelpfulVote.objects.filter(review_id=review_id).count()
    if current is None or current == votes:
        return False
    Review.objects.filter(pk=review_id).update(helpful_count=votes)
    return True
