"""Demo reviews: the demo's buyers rate what was shipped to them, so product pages show stars."""

from reviews.services import demo_reviews_seed


def seed_reviews() -> str | None:
    """Write the demo buyers' reviews (most approved, some left for the moderation queue)."""
    written = demo_reviews_seed()
    return f"{written} reviews from demo buyers" if written else None
