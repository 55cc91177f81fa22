from django.conf import settings
from django.db import models, transaction
from django.db.models import F, Q
from django.db.models.functions import Length
from django.db.models.lookups import LessThanOrEqual

from outbox.models import SendClaim

# What a review may hold: a headline, a text a reader finishes, a reason staff write in a line.
TITLE_MAX_LENGTH = 120
BODY_MAX_LENGTH = 5_000
AUTHOR_NAME_MAX_LENGTH = 60
REASON_MAX_LENGTH = 500
RATINGS = (1, 2, 3, 4, 5)
# Plain text without control characters (PostgreSQL cannot store NUL; the rest are noise in a
# page or an e-mail): one line for a title or a name, lines and tabs allowed in a body.
ONE_LINE_TEXT = r"^[^\x00-\x1f\x7f]*$"
MULTI_LINE_TEXT = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$"
# The histogram's columns, one per rating.
STAR_FIELDS = tuple(f"stars_{rating}" for rating in RATINGS)


class ReviewStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"


class Review(models.Model):
    """A customer's rating of a product they received, shown once a moderator approves it.

    Title, body and author name are plain text: shown escaped in the admin and the e-mails,
    returned as they are by the JSON API. The approved reviews of a product make its
    `ProductRating`, moved by receivers of this model's signals (see `save`).
    """

    customer = models.ForeignKey(
        "orders.Customer", on_delete=models.CASCADE, related_name="reviews"
    )
    product = models.ForeignKey("catalog.Product", on_delete=models.CASCADE, related_name="reviews")
    rating = models.PositiveSmallIntegerField()
    title = models.CharField(max_length=TITLE_MAX_LENGTH)
    body = models.TextField(max_length=BODY_MAX_LENGTH, blank=True)
    author_name = models.CharField(
        max_length=AUTHOR_NAME_MAX_LENGTH, help_text="The name the review is shown under."
    )
    status = models.CharField(
        max_length=10, choices=ReviewStatus.choices, default=ReviewStatus.PENDING
    )
    verified_purchase = models.BooleanField(
        default=False,
        help_text="The author had received the product (a shipped or delivered order of it) "
        "when the review was written.",
    )
    moderator = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    moderation_reason = models.CharField(max_length=REASON_MAX_LENGTH, blank=True)
    moderated_at = models.DateTimeField(null=True, blank=True)
    decision_count = models.PositiveIntegerField(
        default=0,
        help_text="Decisions moderators took on this review; the author's e-mail about each "
        "is sent once.",
    )
    helpful_count = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        permissions = [("moderate_review", "Can approve and reject reviews")]
        constraints = [
            models.UniqueConstraint(
                fields=["customer", "product"], name="reviews_one_per_customer_and_product"
            ),
            models.CheckConstraint(
                condition=Q(rating__gte=1, rating__lte=5), name="reviews_rating_1_to_5"
            ),
            models.CheckConstraint(
                condition=Q(status__in=ReviewStatus.values), name="reviews_status_known"
            ),
            models.CheckConstraint(
                condition=LessThanOrEqual(Length("body"), BODY_MAX_LENGTH),
                name="reviews_body_bounded",
            ),
        ]
        indexes = [
            # The storefront's two orders of a product's approved reviews.
            models.Index(
                F("product"),
                F("created_at").desc(),
                F("id").desc(),
                condition=Q(status=ReviewStatus.APPROVED),
                name="reviews_approved_newest",
            ),
            models.Index(
                F("product"),
                F("helpful_count").desc(),
                F("created_at").desc(),
                F("id").desc(),
                condition=Q(status=ReviewStatus.APPROVED),
                name="reviews_approved_helpful",
            ),
            # The moderation queue, oldest first.
            models.Index(
                fields=["created_at"],
                condition=Q(status=ReviewStatus.PENDING),
                name="reviews_pending_queue",
            ),
        ]

    def __str__(self) -> str:
        return f"review {self.pk}: {self.rating}/5"

    def save(self, *args, **kwargs) -> None:
        """Save in a transaction of its own (or the caller's).

        The `pre_save` receiver locks the stored row to read what it held, and the `post_save`
        receiver moves the product's rating by the difference: the lock must last until that
        move is written, or a concurrent save could move the rating from the same stored state.
        """
        with transaction.atomic(savepoint=False):
            super().save(*args, **kwargs)


class ProductRating(models.Model):
    """Derived: the count, sum and histogram of a product's approved ratings.

    Moved with guarded F() updates by the receivers of `Review`'s signals, in the review's
    transaction, so it equals a recount of the approved reviews at every commit; the nightly
    `reviews.ratings_reconcile` repairs any drift (a fixture load, a write past the ORM). The
    constraints make a move that would break it fail instead of storing it.
    """

    product = models.OneToOneField(
        "catalog.Product", on_delete=models.CASCADE, primary_key=True, related_name="rating"
    )
    approved_count = models.PositiveIntegerField(default=0)
    rating_sum = models.PositiveIntegerField(default=0)
    stars_1 = models.PositiveIntegerField(default=0)
    stars_2 = models.PositiveIntegerField(default=0)
    stars_3 = models.PositiveIntegerField(default=0)
    stars_4 = models.PositiveIntegerField(default=0)
    stars_5 = models.PositiveIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(
                    approved_count=F("stars_1")
                    + F("stars_2")
                    + F("stars_3")
                    + F("stars_4")
                    + F("stars_5")
                ),
                name="reviews_rating_histogram_adds_up",
            ),
            models.CheckConstraint(
                condition=Q(
                    rating_sum=F("stars_1")
                    + 2 * F("stars_2")
                    + 3 * F("stars_3")
                    + 4 * F("stars_4")
                    + 5 * F("stars_5")
                ),
                name="reviews_rating_sum_matches_histogram",
            ),
            models.CheckConstraint(
                condition=Q(rating_sum__gte=F("approved_count"))
                & Q(rating_sum__lte=5 * F("approved_count")),
                name="reviews_rating_sum_within_count",
            ),
        ]

    def __str__(self) -> str:
        return f"product {self.product_id}: {self.approved_count} approved ratings"


class HelpfulVote(models.Model):
    """A customer found a review helpful: one vote per customer and review."""

    review = models.ForeignKey(Review, on_delete=models.CASCADE, related_name="helpful_votes")
    customer = models.ForeignKey("orders.Customer", on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["review", "customer"], name="reviews_one_vote_per_customer"
            ),
        ]

    def __str__(self) -> str:
        return f"vote of customer {self.customer_id} for review {self.review_id}"


class SentReviewEmail(SendClaim):
    """One row per reviews e-mail: claimed before the send, `sent_at` once the server took it,
    so a task that runs twice sends once (`outbox.claims.send_once`)."""

    key = models.CharField(
        max_length=100,
        unique=True,
        help_text="The e-mail: `decision:<review id>:<decision number>` or `pending_digest:<day>`.",
    )

    def __str__(self) -> str:
        return f"{self.key} claimed at {self.claimed_at:%Y-%m-%d %H:%M:%S}"
