"""Celery tasks of the reviews app: idempotent, take ids, call services."""

from celery import shared_task

from core.retries import EMAIL_RETRY
from reviews import services


@shared_task(name="reviews.decision_email_send", ignore_result=True, **EMAIL_RETRY)
def review_decision_email_send(review_id: int, decision: int) -> bool:
    """Tell a review's author of a moderator's decision, once (requested by the
    `review_moderated` receiver)."""
    return services.review_decision_email_send(review_id=review_id, decision=decision)


@shared_task(name="reviews.pending_digest", ignore_result=True, **EMAIL_RETRY)
def reviews_pending_digest() -> int:
    """E-mail staff the reviews waiting for moderation (beat, daily)."""
    return services.reviews_pending_digest_send()


@shared_task(name="reviews.ratings_reconcile", ignore_result=True)
def ratings_reconcile() -> int:
    """Recount product ratings and helpful votes and repair drift (beat, nightly)."""
    return services.ratings_reconcile()
