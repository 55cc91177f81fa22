"""Product reviews: a product's approved reviews (cached), and a customer's own to write, edit,
delete, and others' to vote helpful.

Review text is plain text and is returned as written: JSON is data, not markup, so escaping
here would show `&lt;` to every client that renders text; whoever puts it into a page escapes
it there (as the admin and the e-mails do). A customer's own reviews are looked up through
their customer only, so another customer's review answers 404 like one that does not exist.
"""

import json
from typing import Annotated, Any, Literal

from django.http import HttpRequest, HttpResponse, JsonResponse
from ninja import Path, Query, Router

from catalog import selectors as catalog_selectors
from core.replicas import replica_reads
from orders.services import customer_for_user
from reviews import selectors as review_selectors
from reviews import services as review_services
from reviews.models import RATINGS, STAR_FIELDS, ProductRating, Review
from storefront import cache
from storefront.api.catalog import CACHE_CONTROL, SlugPath, rating_body
from storefront.api.errors import ApiError, Problem, ReviewExistsProblem, ValidationProblem
from storefront.api.schemas import ReviewEditIn, ReviewIn, ReviewOut, ReviewPageOut
from storefront.api.security import token_auth

router = Router(tags=["reviews"])

# A page is at most this many reviews: what a product page shows at once.
MAX_REVIEWS_PAGE = 50
DEFAULT_REVIEWS_PAGE = 10

ReviewId = Annotated[int, Path(ge=1, le=2**63 - 1)]


def review_body(review: Review, *, product_slug: str) -> dict[str, Any]:
    """The API's review object as JSON-ready data."""
    return {
        "id": review.pk,
        "product": product_slug,
        "rating": review.rating,
        "title": review.title,
        "body": review.body,
        "author": review.author_name,
        "verified_purchase": review.verified_purchase,
        "status": review.status,
        "helpful_count": review.helpful_count,
        "created_at": review.created_at.isoformat(),
        "updated_at": review.updated_at.isoformat(),
    }


def _rating_detail(rating: ProductRating) -> dict[str, Any]:
    return {
        **rating_body(count=rating.approved_count, total=rating.rating_sum),
        "histogram": {
            str(stars): getattr(rating, field)
            for stars, field in zip(RATINGS, STAR_FIELDS, strict=True)
        },
    }


def _private_json(status: int, body: dict[str, Any]) -> HttpResponse:
    response = JsonResponse(body, status=status)
    response["Cache-Control"] = "private, no-store"
    return response


def _own_review_missing(review_id: int) -> ApiError:
    return ApiError(404, "not_found", f"You have no review {review_id}.")


@router.get(
    "/products/{slug}/reviews",
    response={200: ReviewPageOut, 404: Problem, 422: ValidationProblem},
    summary="List a product's reviews",
)
def product_reviews(
    request: HttpRequest,
    slug: SlugPath,
    sort: Literal["newest", "helpful"] = "newest",
    limit: Annotated[int, Query(ge=1, le=MAX_REVIEWS_PAGE)] = DEFAULT_REVIEWS_PAGE,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
):
    """A page of the active product's approved reviews, newest or most helpful (most helpful
    votes) first, with its rating and the count of each star; `limit` is at most 50 (a larger
    one is 422, as on the other lists: the document's maximum is the rule)."""

    @replica_reads
    def build() -> dict | None:
        product_id = catalog_selectors.product_id_active(slug=slug)
        if product_id is None:
            return None
        rating = review_selectors.product_rating(product_id=product_id)
        page = review_selectors.reviews_approved(product_id=product_id, order=sort)[
            offset : offset + limit
        ]
        body = {
            # The rating counts exactly the approved reviews (it moves in their transactions).
            "count": rating.approved_count,
            "items": [review_body(review, product_slug=slug) for review in page],
            "rating": _rating_detail(rating),
        }
        return {"id": product_id, "slug": slug, "body": json.dumps(body)}

    entry = cache.reviews_page(
        slug=slug, params={"sort": sort, "limit": limit, "offset": offset}, build=build
    )
    if entry is None:
        raise ApiError(404, "not_found", f"No product {slug!r}.")
    response = HttpResponse(entry["body"], content_type="application/json")
    response["Cache-Control"] = CACHE_CONTROL
    return response


@router.post(
    "/products/{slug}/reviews",
    auth=token_auth,
    response={
        201: ReviewOut,
        401: Problem,
        403: Problem,
        404: Problem,
        409: ReviewExistsProblem,
        422: ValidationProblem,
    },
    summary="Review a product",
)
def review_create(request: HttpRequest, slug: SlugPath, payload: ReviewIn):
    """Review a product you received (units of it were shipped to you); it is shown once a
    moderator approves it.

    403 `not_a_buyer` without such an order; 409 `review_exists` (with `review_id`) when you
    reviewed it already: edit that one instead.
    """
    product_id = catalog_selectors.product_id_active(slug=slug)
    if product_id is None:
        raise ApiError(404, "not_found", f"No product {slug!r}.")
    user = request.auth
    review = review_services.review_submit(
        customer=customer_for_user(user=user),
        product_id=product_id,
        rating=payload.rating,
        title=payload.title,
        body=payload.body,
        author_name=payload.author_name or review_services.review_author_name(user=user),
    )
    return _private_json(201, review_body(review, product_slug=slug))


@router.patch(
    "/reviews/{review_id}",
    auth=token_auth,
    response={200: ReviewOut, 401: Problem, 404: Problem, 422: ValidationProblem},
    summary="Edit your review",
)
def review_update(request: HttpRequest, review_id: ReviewId, payload: ReviewEditIn):
    """Change the rating, title or text of your review; a changed review is checked by a
    moderator again (and leaves the product's rating until then)."""
    changes = payload.dict(exclude_unset=True)
    if not changes:
        message = "Send at least one of rating, title and body."
        raise ApiError(
            422,
            "validation_error",
            message,
            extra={"errors": [{"field": "body", "message": message}]},
        )
    try:
        review = review_services.review_edit(
            review_id=review_id, customer=customer_for_user(user=request.auth), **changes
        )
    except Review.DoesNotExist:
        raise _own_review_missing(review_id) from None
    return _private_json(200, review_body(review, product_slug=review.product.slug))


@router.delete(
    "/reviews/{review_id}",
    auth=token_auth,
    response={204: None, 401: Problem, 404: Problem},
    summary="Delete your review",
)
def review_remove(request: HttpRequest, review_id: ReviewId):
    """Delete your review (an approved one leaves the product's rating)."""
    try:
        review_services.review_delete(
            review_id=review_id, customer=customer_for_user(user=request.auth)
        )
    except Review.DoesNotExist:
        raise _own_review_missing(review_id) from None
    return HttpResponse(status=204)


@router.post(
    "/reviews/{review_id}/helpful",
    auth=token_auth,
    response={200: ReviewOut, 401: Problem, 403: Problem, 404: Problem},
    summary="Vote a review helpful",
)
def review_helpful(request: HttpRequest, review_id: ReviewId):
    """Say a published review helped you: one vote per customer (voting again changes
    nothing); 403 `own_review` for your own."""
    try:
        review = review_services.review_vote_helpful(
            review_id=review_id, customer=customer_for_user(user=request.auth)
        )
    except Review.DoesNotExist:
        raise ApiError(404, "not_found", f"No published review {review_id}.") from None
    return _private_json(200, review_body(review, product_slug=review.product.slug))
