"""Domain errors of the reviews app; each has a stable `code` the API turns into a problem."""


class ReviewError(Exception):
    code = "review_error"


class InvalidReview(ReviewError):
    """A rating, title, body or name the review cannot hold (the API's schema refuses them
    first; this guards every other caller)."""

    code = "invalid_review"


class NotABuyer(ReviewError):
    """Only a customer who received the product (a shipped or delivered order) reviews it."""

    code = "not_a_buyer"

    def __init__(self) -> None:
        super().__init__(
            "only customers with a shipped or delivered order of this product may review it"
        )


class ReviewExists(ReviewError):
    """The customer reviewed this product already; `review_id` is that review (edit it)."""

    code = "review_exists"

    def __init__(self, *, review_id: int) -> None:
        self.review_id = review_id
        super().__init__(f"you have reviewed this product already (review {review_id})")


class OwnReview(ReviewError):
    """An author cannot vote for their own review."""

    code = "own_review"

    def __init__(self) -> None:
        super().__init__("you cannot vote for your own review")


class InvalidModeration(ReviewError):
    """The review is not in a status this decision may start from (or a concurrent decision
    won), or a rejection came without its reason."""

    code = "invalid_transition"
