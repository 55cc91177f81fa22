"""Receivers of the reviews app: connected when the app is ready; nothing imports from here.

The model-signal receivers keep each product's rating equal to its approved reviews in the
review's own transaction, whatever path wrote it (the API's services, the admin's delete, the
shell): `pre_save`/`pre_delete` read the stored row under its lock, `post_save`/`post_delete`
move the rating by the difference. Fixture loading (`raw`) is left alone, as everywhere; the
nightly reconcile counts what it loaded.
"""

from django.db.models.signals import post_delete, post_save, pre_delete, pre_save
from django.dispatch import receiver

from reviews import services
from reviews.models import Review
from reviews.signals import review_moderated


@receiver(pre_save, sender=Review, dispatch_uid="reviews.stored_review_before_save")
@receiver(pre_delete, sender=Review, dispatch_uid="reviews.stored_review_before_delete")
def remember_stored_review(sender, instance, raw=False, **kwargs) -> None:
    """Note what the stored row holds as `_stored` (None for a new review), locking it until
    the write commits: the rating must move from the state this write replaces, not from one
    a concurrent write replaced already."""
    if raw:
        return
    instance._stored = (
        None if instance._state.adding else services.review_stored_state(review_id=instance.pk)
    )


@receiver(post_save, sender=Review, dispatch_uid="reviews.rating_after_save")
def move_rating_after_save(sender, instance, raw=False, update_fields=None, **kwargs) -> None:
    """Take the stored review out of its product's rating if it was approved, and put the
    saved one in if it is (an approval adds, a rejection or an edit takes out)."""
    if raw:
        return
    saved = services.review_state_saved(
        instance, stored=instance._stored, update_fields=update_fields
    )
    services.product_rating_follow(before=instance._stored, after=saved)


@receiver(post_delete, sender=Review, dispatch_uid="reviews.rating_after_delete")
def move_rating_after_delete(sender, instance, **kwargs) -> None:
    """Take a deleted review out of its product's rating if it was approved."""
    services.product_rating_follow(before=instance._stored, after=None)


@receiver(review_moderated, dispatch_uid="reviews.email_moderation_decision")
def email_moderation_decision(sender, review, **kwargs) -> None:
    """Request the author's e-mail about the decision through the outbox: sent only if the
    decision commits, and only the latest when a review is decided on again quickly."""
    services.review_decision_email_request(review=review)
