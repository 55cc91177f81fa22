"""The reviews API: who may write, what is refused (and writes nothing), what pages show and
what they cost, and the ratings on product lists and details."""

import json

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext

from orders.services import customer_for_user
from outbox.models import OutboxMessage
from reviews.models import HelpfulVote, Review, ReviewStatus
from reviews.services import review_moderate
from tests.reviews_helpers import buyer_of, product_with_stock, review_by
from tests.storefront_helpers import FAST_HASHERS, client_for, user_with_token

pytestmark = pytest.mark.django_db

APPROVED, REJECTED, PENDING = ReviewStatus.APPROVED, ReviewStatus.REJECTED, ReviewStatus.PENDING


@pytest.fixture(autouse=True)
def fast_and_fresh(settings):
    settings.PASSWORD_HASHERS = FAST_HASHERS
    cache.clear()


@pytest.fixture
def mug():
    return product_with_stock("MUG-1")


class Shopper:
    """A customer with an API token."""

    def __init__(self, email: str) -> None:
        self.user, token = user_with_token(email=email)
        self.customer = customer_for_user(user=self.user)
        self.client = client_for(token)

    def post(self, path: str, body) -> object:
        data = body if isinstance(body, str) else json.dumps(body)
        return self.client.post(path, data=data, content_type="application/json")

    def patch(self, path: str, body) -> object:
        return self.client.patch(path, data=json.dumps(body), content_type="application/json")


@pytest.fixture
def ada(mug) -> Shopper:
    """A customer who received the mug."""
    shopper = Shopper("ada@example.com")
    buyer_of(mug, shopper.customer)
    return shopper


@pytest.fixture
def bob() -> Shopper:
    return Shopper("bob@example.com")


REVIEWS = "/api/v1/products/product-mug-1/reviews"
GOOD = {"rating": 5, "title": "Keeps coffee hot", "body": "<b>Really</b> good & sturdy."}


def problem(response) -> tuple[int, str]:
    assert response["Content-Type"] == "application/problem+json"
    return response.status_code, response.json()["code"]


# --- writing --------------------------------------------------------------------------------


def test_a_buyer_posts_a_review_and_it_waits_for_moderation_unlisted(client, ada, mug):
    # when
    response = ada.post(REVIEWS, GOOD)

    # then
    assert response.status_code == 201
    body = response.json()
    review = Review.objects.get()
    assert body == {
        "id": review.pk,
        "product": "product-mug-1",
        "rating": 5,
        "title": "Keeps coffee hot",
        "body": "<b>Really</b> good & sturdy.",
        "author": "Customer",
        "verified_purchase": True,
        "status": "pending",
        "helpful_count": 0,
        "created_at": review.created_at.isoformat(),
        "updated_at": review.updated_at.isoformat(),
    }
    assert response["Cache-Control"] == "private, no-store"
    assert client.get(REVIEWS).json()["items"] == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**GOOD, "rating": 0}, "rating"),
        ({**GOOD, "rating": 6}, "rating"),
        ({**GOOD, "rating": 3.5}, "rating"),
        ({**GOOD, "rating": 5.0}, "rating"),
        ({**GOOD, "rating": "5"}, "rating"),
        ({**GOOD, "rating": None}, "rating"),
        ({**GOOD, "rating": True}, "rating"),
        ({"title": "No rating"}, "rating"),
        ({**GOOD, "title": ""}, "title"),
        ({**GOOD, "title": "   "}, "title"),
        ({**GOOD, "title": "t" * 121}, "title"),
        ({**GOOD, "title": "two\nlines"}, "title"),
        ({**GOOD, "title": 5}, "title"),
        ({**GOOD, "body": "x" * 100_000}, "body"),
        ({**GOOD, "body": "nul \x00 byte"}, "body"),
        ({**GOOD, "body": None}, "body"),
        ({**GOOD, "author_name": "n" * 61}, "author_name"),
    ],
)
def test_bad_input_is_a_422_naming_the_field_and_writes_nothing(ada, body, field):
    # given
    outbox = OutboxMessage.objects.count()

    # when
    response = ada.post(REVIEWS, body)

    # then
    assert problem(response) == (422, "validation_error")
    assert [error["field"] for error in response.json()["errors"]] == [field]
    assert Review.objects.count() == 0
    assert OutboxMessage.objects.count() == outbox


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("not_json", (400, "bad_request")),
        ("no_token", (401, "not_authenticated")),
        ("unknown_product", (404, "not_found")),
        ("inactive_product", (404, "not_found")),
        ("never_bought", (403, "not_a_buyer")),
        ("paid_not_shipped", (403, "not_a_buyer")),
    ],
)
def test_requests_refused_with_a_clear_problem_write_nothing(client, ada, bob, mug, case, expected):
    # given
    path = REVIEWS
    if case == "unknown_product":
        path = "/api/v1/products/no-such-thing/reviews"
    if case == "inactive_product":
        mug.is_active = False
        mug.save()
    if case == "paid_not_shipped":
        buyer_of(mug, bob.customer, ship=False)

    # when
    if case == "not_json":
        response = ada.post(REVIEWS, "{rating: 5")
    elif case == "no_token":
        response = client.post(path, data=json.dumps(GOOD), content_type="application/json")
    elif case in ("never_bought", "paid_not_shipped"):
        response = bob.post(path, GOOD)
    else:
        response = ada.post(path, GOOD)

    # then
    assert problem(response) == expected
    assert Review.objects.count() == 0


def test_a_second_review_of_the_same_product_is_409_naming_the_first(ada):
    # given
    first = ada.post(REVIEWS, GOOD).json()

    # when
    response = ada.post(REVIEWS, {**GOOD, "rating": 1})

    # then
    assert problem(response) == (409, "review_exists")
    assert response.json()["review_id"] == first["id"]
    assert list(Review.objects.values_list("rating", flat=True)) == [5]


def test_the_author_edits_a_published_review_and_it_is_checked_again(client, ada, mug):
    # given
    review = review_by(ada.customer, mug, rating=5, status=APPROVED)

    # when
    response = ada.patch(f"/api/v1/reviews/{review.pk}", {"rating": 2, "title": "Chipped"})

    # then
    assert response.status_code == 200
    assert {k: response.json()[k] for k in ("rating", "title", "status")} == {
        "rating": 2,
        "title": "Chipped",
        "status": "pending",
    }
    assert client.get(REVIEWS).json()["rating"]["count"] == 0


@pytest.mark.parametrize(
    ("body", "status"),
    [({}, 422), ({"rating": None}, 422), ({"rating": "2"}, 422), ({"title": ""}, 422)],
)
def test_an_edit_with_nothing_valid_to_change_is_422_and_changes_nothing(ada, mug, body, status):
    review = review_by(ada.customer, mug, rating=5, status=APPROVED)

    response = ada.patch(f"/api/v1/reviews/{review.pk}", body)

    assert problem(response) == (status, "validation_error")
    review.refresh_from_db()
    assert (review.rating, review.status) == (5, APPROVED)


def test_another_customers_review_is_404_to_edit_or_delete(ada, bob, mug):
    # given
    review = review_by(ada.customer, mug, status=APPROVED)

    # when
    edited = bob.patch(f"/api/v1/reviews/{review.pk}", {"rating": 1})
    deleted = bob.client.delete(f"/api/v1/reviews/{review.pk}")

    # then
    assert problem(edited) == (404, "not_found")
    assert problem(deleted) == (404, "not_found")
    review.refresh_from_db()
    assert (review.rating, review.status) == (4, APPROVED)


def test_the_author_deletes_their_review_once(client, ada, mug):
    # given
    review = review_by(ada.customer, mug, status=APPROVED)

    # when
    first = ada.client.delete(f"/api/v1/reviews/{review.pk}")
    second = ada.client.delete(f"/api/v1/reviews/{review.pk}")

    # then
    assert first.status_code == 204
    assert problem(second) == (404, "not_found")
    assert client.get(REVIEWS).json()["rating"] == {
        "average": None,
        "count": 0,
        "histogram": {"1": 0, "2": 0, "3": 0, "4": 0, "5": 0},
    }


def test_a_helpful_vote_counts_once_and_never_for_the_author_or_an_unpublished_review(
    ada, bob, mug
):
    # given
    review = review_by(ada.customer, mug, status=APPROVED)
    pending = review_by(buyer_of(mug), mug)

    # when
    first = bob.client.post(f"/api/v1/reviews/{review.pk}/helpful")
    again = bob.client.post(f"/api/v1/reviews/{review.pk}/helpful")
    own = ada.client.post(f"/api/v1/reviews/{review.pk}/helpful")
    unpublished = bob.client.post(f"/api/v1/reviews/{pending.pk}/helpful")

    # then
    assert (first.status_code, first.json()["helpful_count"]) == (200, 1)
    assert (again.status_code, again.json()["helpful_count"]) == (200, 1)
    assert problem(own) == (403, "own_review")
    assert problem(unpublished) == (404, "not_found")
    assert HelpfulVote.objects.count() == 1


# --- reading --------------------------------------------------------------------------------


def shop_with_reviews(mug) -> list[Review]:
    """Four approved reviews of the mug (ratings 5, 4, 3, 2, oldest first), one pending and one
    rejected; the rating 3 one has two helpful votes."""
    approved = [
        review_by(buyer_of(mug), mug, rating=rating, status=APPROVED, title=f"Rated {rating}")
        for rating in (5, 4, 3, 2)
    ]
    review_by(buyer_of(mug), mug, rating=1)
    review_by(buyer_of(mug), mug, rating=1, status=REJECTED)
    approved[2].helpful_count = 2
    Review.objects.filter(pk=approved[2].pk).update(helpful_count=2)
    return approved


def test_a_products_page_of_reviews_lists_approved_ones_newest_or_most_helpful_first(client, mug):
    # given
    shop_with_reviews(mug)

    # when
    newest = client.get(REVIEWS, {"limit": 2})
    helpful = client.get(REVIEWS, {"sort": "helpful", "limit": 2, "offset": 0})
    last = client.get(REVIEWS, {"limit": 2, "offset": 2})

    # then
    assert newest.status_code == 200
    assert newest["Cache-Control"] == "public, max-age=10, must-revalidate"
    assert [item["title"] for item in newest.json()["items"]] == ["Rated 2", "Rated 3"]
    assert [item["title"] for item in helpful.json()["items"]] == ["Rated 3", "Rated 2"]
    assert [item["title"] for item in last.json()["items"]] == ["Rated 4", "Rated 5"]
    assert newest.json()["count"] == 4
    assert newest.json()["rating"] == {
        "average": 3.5,
        "count": 4,
        "histogram": {"1": 0, "2": 1, "3": 1, "4": 1, "5": 1},
    }


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/products/no-such-thing/reviews",
        "/api/v1/products/bad.slug/reviews",
        "/api/v1/reviews/0",
    ],
)
def test_unknown_products_and_reviews_are_404(client, ada, path):
    response = ada.client.get(path) if "products" in path else ada.patch(path, {"rating": 1})
    assert problem(response) == (404, "not_found")


@pytest.mark.parametrize("query", [{"sort": "best"}, {"limit": 0}, {"limit": 51}, {"offset": -1}])
def test_bad_page_parameters_are_422(client, mug, query):
    assert problem(client.get(REVIEWS, query)) == (422, "validation_error")


def queries_of(client, path: str, params: dict | None = None) -> tuple[int, dict]:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(path, params or {})
    assert response.status_code == 200
    return len(captured), response.json()


def test_a_page_of_reviews_has_a_fixed_query_budget_and_a_cached_one_costs_none(
    client, mug, django_assert_max_num_queries
):
    # given
    shop_with_reviews(mug)
    client.get(f"/api/v1/products/{mug.slug}")  # the slug is known to the cache from here on

    # when
    uncached, first = queries_of(client, REVIEWS, {"limit": 10})
    with django_assert_max_num_queries(0):
        cached = client.get(REVIEWS, {"limit": 10}).json()

    # then: the product's id, its rating, the page
    assert uncached == 3
    assert cached == first
    assert len(first["items"]) == 4


def test_a_decision_shows_on_the_next_read_of_reviews_list_and_detail(
    client, mug, django_capture_on_commit_callbacks
):
    # given: pages read (and cached) before the decision
    review = review_by(buyer_of(mug), mug, rating=2)
    for _ in range(2):
        client.get(REVIEWS)
        client.get("/api/v1/products", {"sort": "-rating"})
        client.get("/api/v1/products")
        client.get(f"/api/v1/products/{mug.slug}")

    # when
    with django_capture_on_commit_callbacks(execute=True):
        review_moderate(review=review, decision=APPROVED, actor=None)

    # then
    assert client.get(REVIEWS).json()["count"] == 1
    assert client.get("/api/v1/products").json()["items"][0]["rating"] == {
        "average": 2.0,
        "count": 1,
    }
    assert client.get("/api/v1/products", {"sort": "-rating"}).json()["items"][0]["rating"] == {
        "average": 2.0,
        "count": 1,
    }
    assert client.get(f"/api/v1/products/{mug.slug}").json()["rating"] == {
        "average": 2.0,
        "count": 1,
    }


# --- ratings on product lists ---------------------------------------------------------------


@pytest.fixture
def rated_shop():
    """Products rated 4.5 (2 reviews), 4.0 (1), 2.0 (1) and one unrated, named out of order."""
    products = {}
    for name, ratings in (("A-low", [2]), ("B-none", []), ("C-top", [5, 4]), ("D-four", [4])):
        product = product_with_stock(name)
        for rating in ratings:
            review_by(buyer_of(product), product, rating=rating, status=APPROVED)
        products[name] = product
    return products


def test_products_carry_their_rating_and_sort_best_rated_first(client, rated_shop):
    # when
    by_name = client.get("/api/v1/products").json()
    by_rating = client.get("/api/v1/products", {"sort": "-rating"}).json()

    # then
    assert [(item["name"], item["rating"]) for item in by_name["items"]] == [
        ("Product A-low", {"average": 2.0, "count": 1}),
        ("Product B-none", {"average": None, "count": 0}),
        ("Product C-top", {"average": 4.5, "count": 2}),
        ("Product D-four", {"average": 4.0, "count": 1}),
    ]
    assert [item["name"] for item in by_rating["items"]] == [
        "Product C-top",
        "Product D-four",
        "Product A-low",
        "Product B-none",
    ]


@pytest.mark.parametrize(
    ("min_rating", "names"),
    [
        ("4.5", ["Product C-top"]),
        ("4", ["Product C-top", "Product D-four"]),
        ("1", ["Product A-low", "Product C-top", "Product D-four"]),
    ],
)
def test_a_minimum_rating_keeps_products_rated_at_least_that(client, rated_shop, min_rating, names):
    response = client.get("/api/v1/products", {"min_rating": min_rating})

    assert [item["name"] for item in response.json()["items"]] == names
    assert response.json()["count"] == len(names)


@pytest.mark.parametrize("query", [{"min_rating": "0"}, {"min_rating": "6"}, {"sort": "rating"}])
def test_bad_rating_parameters_are_422(client, query):
    assert problem(client.get("/api/v1/products", query)) == (422, "validation_error")


def test_a_page_sorted_and_filtered_by_rating_keeps_the_product_list_budget(client, rated_shop):
    # when
    plain, _ = queries_of(client, "/api/v1/products", {"limit": 2})
    cache.clear()
    rated, page = queries_of(client, "/api/v1/products", {"sort": "-rating", "min_rating": 2})

    # then: as any uncached page: the page (ratings joined), its total, variants, images and
    # availability; the second one reaches the end of the listing and counts nothing
    assert plain == 5
    assert rated == 4
    assert [item["rating"]["average"] for item in page["items"]] == [4.5, 4.0, 2.0]
