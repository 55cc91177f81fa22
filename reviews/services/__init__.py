"""Write operations of the reviews app, split by subject; import them from here."""

from reviews.services.demo import demo_reviews_seed
from reviews.services.emails import (
    review_decision_email_render,
    review_decision_email_request,
    review_decision_email_send,
    reviews_pending_digest_send,
)
from reviews.services.errors import (
    InvalidModeration,
    InvalidReview,
    NotABuyer,
    OwnReview,
    ReviewError,
    ReviewExists,
)
from reviews.services.moderation import DECISIONS, review_moderate
from reviews.services.ratings import (
    ReviewState,
    product_rating_follow,
    ratings_recomputed,
    ratings_reconcile,
    review_state_saved,
    review_stored_state,
)
from reviews.services.reviews import (
    review_author_name,
    review_delete,
    review_edit,
    review_submit,
    review_vote_helpful,
)

__all__ = [
    "DECISIONS",
    "InvalidModeration",
    "InvalidReview",
    "NotABuyer",
    "OwnReview",
    "ReviewError",
    "ReviewExists",
    "ReviewState",
    "demo_reviews_seed",
    "product_rating_follow",
    "ratings_recomputed",
    "ratings_reconcile",
    "review_author_name",
    "review_decision_email_render",
    "review_decision_email_request",
    "review_decision_email_send",
    "review_delete",
    "review_edit",
    "review_moderate",
    "review_state_saved",
    "review_stored_state",
    "review_submit",
    "review_vote_helpful",
    "reviews_pending_digest_send",
]
