"""Staff decide which reviews the storefront shows."""

from django.db import transaction
from django.utils import timezone

from reviews.models import REASON_MAX_LENGTH, Review, ReviewStatus
from reviews.services.errors import InvalidModeration
from reviews.signals import review_moderated

# A decision and the statuses it may be taken from: a pending review is approved or rejected;
# an approved one may be taken down later, a rejected one reconsidered.
DECISIONS = {
    ReviewStatus.APPROVED: (ReviewStatus.PENDING, ReviewStatus.REJECTED),
    ReviewStatus.REJECTED: (ReviewStatus.PENDING, ReviewStatus.APPROVED),
}


@transaction.atomic
def review_moderate(*, review: Review, decision: str, actor, reason: str = "") -> Review:
    """Approve or reject a review as `actor`, with the reason the author is told.

    The review's row is locked and its status read again, so of two moderators deciding at
    once the second decides on what the first left. Raises InvalidModeration when the review
    is in no status the decision may start from (or was deleted), or a rejection has no
    reason. The save's receivers move the product's rating.
    Sends `review_moderated(review, previous_status, moderator, reason)` (its receiver requests
    the author's e-mail); requests no tasks itself.
    """
    if decision not in DECISIONS:
        raise ValueError(f"unknown decision {decision!r}")
    reason = (reason or "").strip()
    if len(reason) > REASON_MAX_LENGTH:
        raise InvalidModeration(f"a reason has at most {REASON_MAX_LENGTH} characters")
    if decision == ReviewStatus.REJECTED and not reason:
        raise InvalidModeration("a rejection needs a reason: the author is told it")
    locked = Review.objects.select_for_update().filter(pk=review.pk).first()
    if locked is None:
        raise InvalidModeration(f"review {review.pk} was deleted")
    previous = locked.status
    if previous not in DECISIONS[decision]:
        raise InvalidModeration(
            f"review {locked.pk} cannot be {decision}: it is {previous}, not "
            + " or ".join(DECISIONS[decision])
        )
    locked.status = decision
    locked.moderator = actor
    locked.moderation_reason = reason
    locked.moderated_at = timezone.now()
    # Under the row lock, so no decision is counted twice or lost.
    locked.decision_count += 1
    locked.save(
        update_fields=[
            "status",
            "moderator",
            "moderation_reason",
            "moderated_at",
            "decision_count",
            "updated_at",
        ]
    )
    review_moderated.send(
        sender=review_moderate,
        review=locked,
        previous_status=previous,
        moderator=actor,
        reason=reason,
    )
    return locked
