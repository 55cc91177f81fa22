"""Reviews in the staff admin: the moderation queue and its actions by role, the product page's
rating panel, the dashboard's count; customer text escaped on every page."""

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse

from outbox.models import OutboxMessage
from reviews.models import ProductRating, Review, ReviewStatus
from tests.admin.client import action_choices, messages_of, run_action
from tests.admin_shop import staff_user
from tests.reviews_helpers import buyer_of, product_with_stock, review_by

pytestmark = pytest.mark.django_db

APPROVED, REJECTED, PENDING = ReviewStatus.APPROVED, ReviewStatus.REJECTED, ReviewStatus.PENDING
REVIEWS_URL = "/admin/reviews/review/"
# Actions apply to the rows the list shows, and the list shows the pending ones by default.
ALL_REVIEWS_URL = f"{REVIEWS_URL}?status__exact=all"
XSS = '<script>alert("x")</script>'


@pytest.fixture
def mug():
    return product_with_stock("MUG-1")


def rating_count(product) -> int:
    return ProductRating.objects.filter(pk=product.pk).values_list("approved_count", flat=True)[0]


def test_support_and_manager_moderate_and_only_the_manager_deletes():
    # when
    roles = {
        group.name: {f"{p.content_type.app_label}.{p.codename}" for p in group.permissions.all()}
        for group in Group.objects.prefetch_related("permissions__content_type")
    }

    # then
    reviews = {permission for permission in set().union(*roles.values()) if "review" in permission}
    assert roles["support"] & reviews == {
        "reviews.view_review",
        "reviews.moderate_review",
        "reviews.view_productrating",
        "reviews.view_helpfulvote",
        "reviews.view_sentreviewemail",
    }
    assert {"reviews.moderate_review", "reviews.delete_review"} <= roles["manager"]
    assert roles["warehouse"] & reviews == set()


def test_the_review_list_opens_as_the_queue_of_pending_reviews_oldest_first(client, mug):
    # given
    older = review_by(buyer_of(mug), mug, title="Older")
    review_by(buyer_of(mug), mug, status=APPROVED, title="Shown")
    newer = review_by(buyer_of(mug), mug, title="Newer")
    client.force_login(staff_user("support"))

    # when
    queue = client.get(REVIEWS_URL)
    everything = client.get(REVIEWS_URL, {"status__exact": "all"})

    # then
    assert [review.pk for review in queue.context["cl"].result_list] == [older.pk, newer.pk]
    assert len(everything.context["cl"].result_list) == 3


def test_support_approves_reviews_the_rating_moves_and_each_author_is_emailed(client, mug):
    # given
    first, second = review_by(buyer_of(mug), mug, rating=5), review_by(buyer_of(mug), mug)
    support = staff_user("support")
    client.force_login(support)

    # when
    response = run_action(client, REVIEWS_URL, "approve_reviews", [first, second])

    # then
    assert messages_of(response) == [f"{first} approved.", f"{second} approved."]
    first.refresh_from_db()
    assert (first.status, first.moderator) == (APPROVED, support)
    assert rating_count(mug) == 2
    assert OutboxMessage.objects.filter(task_name="reviews.decision_email_send").count() == 2


def test_reject_asks_for_the_reason_and_rejects_nothing_without_one(client, mug):
    # given
    review = review_by(buyer_of(mug), mug, status=APPROVED)
    client.force_login(staff_user("support"))

    # when
    page = run_action(client, ALL_REVIEWS_URL, "reject_reviews", [review])
    without = run_action(
        client, ALL_REVIEWS_URL, "reject_reviews", [review], apply="Reject", reason=""
    )
    review.refresh_from_db()
    status_after_empty = review.status
    done = run_action(
        client, ALL_REVIEWS_URL, "reject_reviews", [review], apply="Reject", reason="Not about it"
    )

    # then
    assert page.status_code == without.status_code == 200
    assert "reason" in page.context["form"].fields
    assert status_after_empty == APPROVED
    assert messages_of(done) == [f"{review} rejected."]
    review.refresh_from_db()
    assert (review.status, review.moderation_reason) == (REJECTED, "Not about it")
    assert rating_count(mug) == 0


def test_a_decision_already_taken_is_reported_not_repeated(client, mug):
    review = review_by(buyer_of(mug), mug, status=APPROVED)
    client.force_login(staff_user("manager"))

    response = run_action(client, ALL_REVIEWS_URL, "approve_reviews", [review])

    assert messages_of(response) == [
        f"{review} not approved: review {review.pk} cannot be approved: it is approved, not "
        "pending or rejected (invalid_transition)"
    ]
    assert rating_count(mug) == 1


def test_warehouse_staff_neither_see_nor_moderate_reviews(client, mug):
    # given
    review = review_by(buyer_of(mug), mug)
    client.force_login(staff_user("warehouse"))

    # when
    listed = client.get(REVIEWS_URL)
    forced = run_action(client, REVIEWS_URL, "approve_reviews", [review])

    # then
    assert listed.status_code == forced.status_code == 403
    review.refresh_from_db()
    assert review.status == PENDING


def test_a_review_page_shows_the_text_escaped_and_edits_nothing(client, mug):
    # given
    review = review_by(buyer_of(mug), mug, title=XSS)
    Review.objects.filter(pk=review.pk).update(body=XSS)
    client.force_login(staff_user("manager"))

    # when
    page = client.get(reverse("admin:reviews_review_change", args=[review.pk]))
    listed = client.get(REVIEWS_URL)
    choices = action_choices(client, REVIEWS_URL)

    # then
    for response in (page, listed):
        html = response.content.decode()
        assert XSS not in html
        assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html
    assert 'name="_save"' not in page.content.decode()
    assert {"approve_reviews", "reject_reviews", "delete_selected"} <= choices


def test_a_manager_deleting_approved_reviews_takes_them_out_of_the_rating(client, mug):
    # given
    reviews = [review_by(buyer_of(mug), mug, status=APPROVED) for _ in range(2)]
    client.force_login(staff_user("manager"))

    # when
    response = run_action(client, ALL_REVIEWS_URL, "delete_selected", reviews, post="yes")

    # then
    assert response.status_code == 302
    assert Review.objects.count() == 0
    assert rating_count(mug) == 0


@pytest.mark.parametrize(("role", "shown"), [("support", True), ("warehouse", False)])
def test_the_product_page_shows_rating_and_latest_reviews_to_who_may_read_reviews(
    client, mug, role, shown
):
    # given
    review_by(buyer_of(mug), mug, rating=5, status=APPROVED, title=XSS)
    review_by(buyer_of(mug), mug, rating=2, status=APPROVED, title="Cracked")
    review_by(buyer_of(mug), mug, rating=1, title="Waiting")
    client.force_login(staff_user(role))

    # when
    page = client.get(reverse("admin:catalog_product_change", args=[mug.pk]))

    # then
    html = page.content.decode()
    assert page.status_code == 200
    assert ("3.50 / 5 from 2 approved reviews" in html) is shown
    assert ("5★ 1 · 4★ 0 · 3★ 0 · 2★ 1 · 1★ 0" in html) is shown
    assert ("Waiting" in html) is shown
    assert ("&lt;script&gt;" in html) is shown
    assert XSS not in html


def test_the_dashboard_counts_the_reviews_waiting_for_who_moderates(client, mug):
    # given
    review_by(buyer_of(mug), mug)
    review_by(buyer_of(mug), mug, status=APPROVED)

    # when
    client.force_login(staff_user("support"))
    support = client.get("/admin/")
    client.force_login(staff_user("warehouse"))
    warehouse = client.get("/admin/")

    # then
    assert support.context["pending_reviews_count"] == 1
    assert "Reviews to moderate (1)" in support.content.decode()
    assert "pending_reviews_count" not in warehouse.context
