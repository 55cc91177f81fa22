"""Signals the reviews app sends; importable from anywhere (it imports only django.dispatch).

All are sent inside the sending service's transaction, with that function as `sender`;
receivers that leave the database wait for the commit.
"""

from django.dispatch import Signal

# Sent by reviews.services.review_submit (a new review) and reviews.services.review_edit (its
# author changed it, so it waits for moderation again). kwargs: review: Review, edited: bool.
review_submitted = Signal()

# Sent by reviews.services.review_moderate. kwargs: review: Review (as decided),
# previous_status: str, moderator: User | None, reason: str.
review_moderated = Signal()

# Sent by reviews.services.product_rating_follow (a review shown on the storefront was
# approved, changed, taken down or deleted), reviews.services.review_vote_helpful and
# reviews.services.ratings_reconcile. kwargs: product_ids: list[int], the products whose
# approved reviews changed; rating_changed: bool, whether their ratings (count, sum) moved or
# only what the reviews show (text, helpful votes).
product_reviews_changed = Signal()
