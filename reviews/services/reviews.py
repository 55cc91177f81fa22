"""What a customer does with reviews: write one of a product they received, edit or delete
their own, vote another's helpful."""

import re

from django.db import IntegrityError, transaction
from django.db.models import F

from orders import selectors as order_selectors
from orders.models import Customer
from reviews.models import (
    AUTHOR_NAME_MAX_LENGTH,
    BODY_MAX_LENGTH,
    MULTI_LINE_TEXT,
    ONE_LINE_TEXT,
    RATINGS,
    TITLE_MAX_LENGTH,
    HelpfulVote,
    Review,
    ReviewStatus,
)
from reviews.services.errors import InvalidReview, NotABuyer, OwnReview, ReviewExists
from reviews.signals import product_reviews_changed, review_submitted


def _text_checked(value: str, *, name: str, pattern: str, min_length: int, max_length: int) -> str:
    value = value.strip()
    if not min_length <= len(value) <= max_length or not re.match(pattern, value):
        raise InvalidReview(f"the {name} is {min_length} to {max_length} characters of plain text")
    return value


def _rating_checked(rating: int) -> int:
    # bool is an int to Python, never a rating.
    if type(rating) is not int or rating not in RATINGS:
        raise InvalidReview("the rating is a whole number from 1 to 5")
    return rating


def _title_checked(title: str) -> str:
    return _text_checked(
        title, name="title", pattern=ONE_LINE_TEXT, min_length=1, max_length=TITLE_MAX_LENGTH
    )


def _body_checked(body: str) -> str:
    return _text_checked(
        body, name="text", pattern=MULTI_LINE_TEXT, min_length=0, max_length=BODY_MAX_LENGTH
    )


# What a review is shown under when its author's account has no name: never the e-mail address.
ANONYMOUS_AUTHOR = "Customer"


def review_author_name(*, user) -> str:
    """The name a review is shown under unless its author chooses one: their first name and the
    initial of their last, or ANONYMOUS_AUTHOR."""
    first, last = user.first_name.strip(), user.last_name.strip()
    name = f"{first} {last[:1]}.".strip() if last else first
    return name[:AUTHOR_NAME_MAX_LENGTH] or ANONYMOUS_AUTHOR


@transaction.atomic
def review_submit(
    *,
    customer: Customer,
    product_id: int,
    rating: int,
    title: str,
    body: str = "",
    author_name: str,
) -> Review:
    """Write a customer's review of a product they received; it waits for moderation.

    Raises NotABuyer unless one of the customer's shipped or delivered orders holds the
    product, ReviewExists when they reviewed it already (the unique constraint decides between
    two at once), InvalidReview for values a review cannot hold; nothing is written then.
    Sends `review_submitted(review, edited=False)`; requests no tasks.
    """
    values = {
        "rating": _rating_checked(rating),
        "title": _title_checked(title),
        "body": _body_checked(body),
        "author_name": _text_checked(
            author_name,
            name="name",
            pattern=ONE_LINE_TEXT,
            min_length=1,
            max_length=AUTHOR_NAME_MAX_LENGTH,
        ),
    }
    if not order_selectors.customer_received_product(customer=customer, product_id=product_id):
        raise NotABuyer()
    try:
        with transaction.atomic():
            review = Review.objects.create(
                customer=customer, product_id=product_id, verified_purchase=True, **values
            )
    except IntegrityError:
        existing = (
            Review.objects.filter(customer=customer, product_id=product_id)
            .values_list("pk", flat=True)
            .first()
        )
        if existing is None:
            raise
        raise ReviewExists(review_id=existing) from None
    review_submitted.send(sender=review_submit, review=review, edited=False)
    return review


@transaction.atomic
def review_edit(
    *,
    review_id: int,
    customer: Customer,
    rating: int | None = None,
    title: str | None = None,
    body: str | None = None,
) -> Review:
    """Change what the author wrote (the arguments given); a changed review waits for
    moderation again, out of its product's rating until it is approved again.

    Raises Review.DoesNotExist for another customer's review, as for none (its existence is not
    revealed), and InvalidReview for values a review cannot hold. Values equal to the stored
    ones change nothing.
    Sends `review_submitted(review, edited=True)` when the review changed (its post_save
    receivers move the rating); requests no tasks.
    """
    review = Review.objects.select_for_update().get(pk=review_id, customer=customer)
    wanted = {
        "rating": None if rating is None else _rating_checked(rating),
        "title": None if title is None else _title_checked(title),
        "body": None if body is None else _body_checked(body),
    }
    changed = [
        name
        for name, value in wanted.items()
        if value is not None and value != getattr(review, name)
    ]
    if not changed:
        return review
    for name in changed:
        setattr(review, name, wanted[name])
    review.status = ReviewStatus.PENDING
    review.moderator = None
    review.moderation_reason = ""
    review.moderated_at = None
    review.save(
        update_fields=[
            *changed,
            "status",
            "moderator",
            "moderation_reason",
            "moderated_at",
            "updated_at",
        ]
    )
    review_submitted.send(sender=review_edit, review=review, edited=True)
    return review


@transaction.atomic
def review_delete(*, review_id: int, customer: Customer) -> None:
    """Delete the author's own review; an approved one leaves its product's rating.

    Raises Review.DoesNotExist for another customer's review, as for none.
    Sends no signal itself: the post_delete receivers move the rating and send
    `product_reviews_changed`. Requests no tasks.
    """
    Review.objects.select_for_update().get(pk=review_id, customer=customer).delete()


@transaction.atomic
def review_vote_helpful(*, review_id: int, customer: Customer) -> Review:
    """Count a customer's vote that an approved review helped them; a second vote by the same
    customer changes nothing.

    The review's row is locked first, so votes on one review are counted one after another
    and the count moves (with F()) only when the vote's row was new.
    Raises Review.DoesNotExist for a review not shown (pending, rejected, none), OwnReview
    for the author's own.
    Sends `product_reviews_changed(rating_changed=False)` for a counted vote; requests no tasks.
    """
    review = Review.objects.select_for_update().get(pk=review_id, status=ReviewStatus.APPROVED)
    if review.customer_id == customer.pk:
        raise OwnReview()
    _, created = HelpfulVote.objects.get_or_create(review=review, customer=customer)
    if created:
        Review.objects.filter(pk=review.pk).update(helpful_count=F("helpful_count") + 1)
        review.refresh_from_db(fields=["helpful_count"])
        product_reviews_changed.send(
            sender=review_vote_helpful, product_ids=[review.product_id], rating_changed=False
        )
    return review
