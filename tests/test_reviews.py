"""Reviews: only buyers write them, moderators decide, the product's rating follows exactly,
the author hears of each decision once and only after it commits."""

import io

import pytest
from django.core import mail
from django.core.management import call_command
from django.db import IntegrityError, transaction
from django.db.models import F

from orders.services import LineRequest, fulfilment_create, order_mark_paid
from outbox.models import OutboxMessage
from payments.services import refund_return, webhook_handle
from reviews.models import HelpfulVote, ProductRating, Review, ReviewStatus, SentReviewEmail
from reviews.services import (
    InvalidModeration,
    InvalidReview,
    NotABuyer,
    OwnReview,
    ReviewExists,
    demo_reviews_seed,
    ratings_reconcile,
    review_decision_email_send,
    review_delete,
    review_edit,
    review_moderate,
    review_submit,
    review_vote_helpful,
    reviews_pending_digest_send,
)
from reviews.services.ratings import NO_RATING, RATING_FIELDS
from reviews.signals import product_reviews_changed, review_moderated, review_submitted
from tests.orders_helpers import customer_new, order_new, variant_stocked
from tests.payments_helpers import payment_event, signed
from tests.reviews_helpers import buyer_of, product_with_stock, review_by, staff_moderator

pytestmark = pytest.mark.django_db

APPROVED, REJECTED, PENDING = ReviewStatus.APPROVED, ReviewStatus.REJECTED, ReviewStatus.PENDING


def rating_of(product) -> tuple[int, ...]:
    """(approved count, sum, stars 1..5) as stored."""
    row = ProductRating.objects.filter(pk=product.pk).values_list(*RATING_FIELDS).first()
    return row or NO_RATING


@pytest.fixture
def mug():
    return product_with_stock("MUG-1")


@pytest.fixture
def sent_signals():
    """The custom reviews signals sent during the test, as (signal name, kwargs)."""
    received = []
    signals = {
        "review_submitted": review_submitted,
        "review_moderated": review_moderated,
        "product_reviews_changed": product_reviews_changed,
    }
    receivers = {}
    for name, signal in signals.items():

        def record(sender, signal=None, name=name, **kwargs):
            received.append((name, kwargs))

        receivers[name] = record
        signal.connect(record, weak=False)
    yield received
    for name, signal in signals.items():
        signal.disconnect(receivers[name])


# --- who may review -------------------------------------------------------------------------


def test_a_buyer_reviews_a_product_and_it_waits_for_moderation(mug, sent_signals):
    # given
    ada = buyer_of(mug)

    # when
    review = review_submit(
        customer=ada, product_id=mug.pk, rating=5, title="  Great mug ", author_name="Ada L."
    )

    # then
    review.refresh_from_db()
    assert (review.status, review.rating, review.title, review.verified_purchase) == (
        PENDING,
        5,
        "Great mug",
        True,
    )
    assert rating_of(mug) == NO_RATING
    assert sent_signals == [("review_submitted", {"review": review, "edited": False})]


def test_a_customer_whose_order_was_not_shipped_cannot_review_and_nothing_is_written(mug):
    # given: paid, not shipped; and a customer who never ordered
    paid_only = buyer_of(mug, ship=False)
    stranger = customer_new()

    # then
    for customer in (paid_only, stranger):
        with pytest.raises(NotABuyer):
            review_submit(
                customer=customer, product_id=mug.pk, rating=5, title="x", author_name="A"
            )
    assert Review.objects.count() == 0


def test_a_partial_shipment_makes_a_buyer_of_what_it_shipped_only(mug):
    # given: one order of a mug and a cup, of which only the cup has shipped so far
    cup = product_with_stock("CUP-1")
    ada = customer_new()
    order = order_new(ada, ("MUG-1", 1), ("CUP-1", 1))
    order_mark_paid(order=order)
    fulfilment_create(order=order, tracking_number="T-1", lines=[LineRequest("CUP-1", 1)])

    # when / then: the cup may be reviewed, the mug not yet
    review_submit(customer=ada, product_id=cup.pk, rating=5, title="Cup", author_name="A")
    with pytest.raises(NotABuyer):
        review_submit(customer=ada, product_id=mug.pk, rating=5, title="Mug", author_name="A")
    assert list(Review.objects.values_list("product_id", flat=True)) == [cup.pk]


def test_a_buyer_who_returned_every_unit_of_a_product_reviews_it_no_more(mug):
    # given: two orders of two mugs and a cup, paid and shipped; Ada returns both mugs, Bob one
    # (each return refunds its units; the cups are kept, so each order stays shipped)
    product_with_stock("CUP-1")
    ada, bob = customer_new(), customer_new()
    for customer, returned in ((ada, 2), (bob, 1)):
        order = order_new(customer, ("MUG-1", 2), ("CUP-1", 1))
        webhook_handle(**signed(payment_event(order)))
        fulfilment_create(order=order, tracking_number=f"T-{customer.pk}")
        refund_return(order=order, lines=[LineRequest("MUG-1", returned)], reason="chipped")

    # when / then: Ada gave every mug and its money back; Bob kept one
    with pytest.raises(NotABuyer):
        review_submit(customer=ada, product_id=mug.pk, rating=1, title="Mug", author_name="A")
    review_submit(customer=bob, product_id=mug.pk, rating=3, title="Mug", author_name="B")
    assert list(Review.objects.values_list("customer_id", flat=True)) == [bob.pk]


def test_a_second_review_of_the_same_product_is_refused_naming_the_first(mug):
    # given
    ada = buyer_of(mug)
    first = review_by(ada, mug)

    # when
    with pytest.raises(ReviewExists) as refused:
        review_submit(customer=ada, product_id=mug.pk, rating=1, title="Again", author_name="A")

    # then
    assert refused.value.review_id == first.pk
    assert list(Review.objects.values_list("pk", "rating")) == [(first.pk, 4)]


@pytest.mark.parametrize(
    ("rating", "title", "body"),
    [
        (0, "t", ""),
        (6, "t", ""),
        (3.5, "t", ""),
        ("5", "t", ""),
        (True, "t", ""),
        (5, "   ", ""),
        (5, "a" * 121, ""),
        (5, "two\nlines", ""),
        (5, "t", "b" * 5001),
        (5, "t", "nul\x00byte"),
    ],
)
def test_values_a_review_cannot_hold_are_refused_by_the_service(mug, rating, title, body):
    ada = buyer_of(mug)
    with pytest.raises(InvalidReview):
        review_submit(
            customer=ada, product_id=mug.pk, rating=rating, title=title, body=body, author_name="A"
        )
    assert Review.objects.count() == 0


# --- the rating follows the approved reviews -------------------------------------------------


def test_approving_adds_to_the_rating_and_rejecting_takes_it_back(mug, sent_signals):
    # given
    four = review_by(buyer_of(mug), mug, rating=4)
    five = review_by(buyer_of(mug), mug, rating=5)
    moderator = staff_moderator()

    # when
    review_moderate(review=four, decision=APPROVED, actor=moderator)
    review_moderate(review=five, decision=APPROVED, actor=moderator)

    # then
    assert rating_of(mug) == (2, 9, 0, 0, 0, 1, 1)

    # when: the five is taken down
    taken_down = review_moderate(review=five, decision=REJECTED, actor=moderator, reason="spam")

    # then
    assert rating_of(mug) == (1, 4, 0, 0, 0, 1, 0)
    assert (taken_down.status, taken_down.moderator, taken_down.moderation_reason) == (
        REJECTED,
        moderator,
        "spam",
    )
    assert taken_down.decision_count == 2
    changed = [kwargs for name, kwargs in sent_signals if name == "product_reviews_changed"]
    assert changed == [{"product_ids": [mug.pk], "rating_changed": True}] * 3


def test_an_authors_edit_takes_an_approved_review_out_until_it_is_approved_again(mug):
    # given
    ada = buyer_of(mug)
    review = review_by(ada, mug, rating=5, status=APPROVED)
    assert rating_of(mug) == (1, 5, 0, 0, 0, 0, 1)

    # when
    edited = review_edit(review_id=review.pk, customer=ada, rating=2, body="It chipped.")

    # then
    assert (edited.status, edited.rating, edited.body, edited.moderated_at) == (
        PENDING,
        2,
        "It chipped.",
        None,
    )
    assert rating_of(mug) == (0, 0, 0, 0, 0, 0, 0)

    # when
    review_moderate(review=edited, decision=APPROVED, actor=None)

    # then
    assert rating_of(mug) == (1, 2, 0, 1, 0, 0, 0)


def test_an_edit_that_changes_nothing_keeps_the_review_approved(mug):
    ada = buyer_of(mug)
    review = review_by(ada, mug, rating=5, status=APPROVED)

    edited = review_edit(review_id=review.pk, customer=ada, rating=5, title="Solid")

    assert edited.status == APPROVED
    assert rating_of(mug) == (1, 5, 0, 0, 0, 0, 1)


def test_another_customers_review_cannot_be_edited_or_deleted(mug):
    review = review_by(buyer_of(mug), mug, status=APPROVED)
    other = buyer_of(mug)

    with pytest.raises(Review.DoesNotExist):
        review_edit(review_id=review.pk, customer=other, rating=1)
    with pytest.raises(Review.DoesNotExist):
        review_delete(review_id=review.pk, customer=other)

    review.refresh_from_db()
    assert (review.rating, review.status) == (4, APPROVED)


def test_a_rating_changed_on_an_approved_review_moves_the_difference(mug):
    # given
    review = review_by(buyer_of(mug), mug, rating=4, status=APPROVED)

    # when: staff correct it in the shell, the review staying approved
    review.rating = 1
    review.save()

    # then
    assert rating_of(mug) == (1, 1, 1, 0, 0, 0, 0)


def test_saving_other_fields_of_a_copy_read_before_a_rejection_leaves_it_out_of_the_rating(mug):
    # given: an approved review, and a copy of it read before a moderator rejects it
    review = review_by(buyer_of(mug), mug, rating=5, status=APPROVED)
    stale = Review.objects.get(pk=review.pk)
    review_moderate(review=review, decision=REJECTED, actor=staff_moderator(), reason="spam")

    # when: the copy saves its title only (a script, an admin action)
    stale.title = "Typo fixed"
    stale.save(update_fields=["title", "updated_at"])

    # then: the row stays rejected, so the rating counts it no more
    assert Review.objects.get(pk=review.pk).status == REJECTED
    assert rating_of(mug) == NO_RATING


def test_deleting_approved_reviews_takes_them_out_and_a_pending_one_changes_nothing(mug):
    # given
    ada, bob, cy = buyer_of(mug), buyer_of(mug), buyer_of(mug)
    review_by(ada, mug, rating=5, status=APPROVED)
    review_by(bob, mug, rating=3, status=APPROVED)
    pending = review_by(cy, mug, rating=1)

    # when: the author deletes theirs; staff delete the rest at once
    review_delete(review_id=pending.pk, customer=cy)
    assert rating_of(mug) == (2, 8, 0, 0, 1, 0, 1)
    Review.objects.filter(customer=ada).delete()

    # then
    assert rating_of(mug) == (1, 3, 0, 0, 1, 0, 0)


def test_a_rejection_needs_a_reason_and_a_decision_taken_already_is_refused(mug):
    review = review_by(buyer_of(mug), mug, status=APPROVED)

    with pytest.raises(InvalidModeration):
        review_moderate(review=review, decision=REJECTED, actor=None, reason="  ")
    with pytest.raises(InvalidModeration) as twice:
        review_moderate(review=review, decision=APPROVED, actor=None)

    assert twice.value.code == "invalid_transition"
    review.refresh_from_db()
    assert (review.status, review.decision_count) == (APPROVED, 1)
    assert rating_of(mug) == (1, 4, 0, 0, 0, 1, 0)


def test_the_database_refuses_a_rating_that_does_not_add_up(mug):
    review_by(buyer_of(mug), mug, rating=4, status=APPROVED)

    with pytest.raises(IntegrityError), transaction.atomic():
        ProductRating.objects.filter(pk=mug.pk).update(rating_sum=F("rating_sum") + 1)
    with pytest.raises(IntegrityError), transaction.atomic():
        ProductRating.objects.filter(pk=mug.pk).update(approved_count=F("approved_count") - 1)

    assert rating_of(mug) == (1, 4, 0, 0, 0, 1, 0)


def test_the_reconcile_repairs_drifted_ratings_and_helpful_counts_and_says_how_many(mug):
    # given: drift as a fixture load or a raw write leaves it
    cup = product_with_stock("CUP-1")
    review = review_by(buyer_of(mug), mug, rating=5, status=APPROVED)
    review_by(buyer_of(cup), cup, rating=2, status=APPROVED)
    ProductRating.objects.filter(pk=mug.pk).delete()
    ProductRating.objects.filter(pk=cup.pk).update(
        approved_count=2, rating_sum=4, stars_2=2, stars_5=0
    )
    Review.objects.filter(pk=review.pk).update(helpful_count=7)

    # when
    out = io.StringIO()
    call_command("reconcile_ratings", stdout=out)

    # then
    assert rating_of(mug) == (1, 5, 0, 0, 0, 0, 1)
    assert rating_of(cup) == (1, 2, 0, 1, 0, 0, 0)
    review.refresh_from_db()
    assert review.helpful_count == 0
    assert out.getvalue() == "3 rating rows repaired\n"
    assert ratings_reconcile() == 0


# --- helpful votes --------------------------------------------------------------------------


def test_a_helpful_vote_counts_once_per_customer_and_never_for_the_author(mug):
    # given
    ada = buyer_of(mug)
    review = review_by(ada, mug, status=APPROVED)
    bob, cy = customer_new(), customer_new()

    # when
    review_vote_helpful(review_id=review.pk, customer=bob)
    again = review_vote_helpful(review_id=review.pk, customer=bob)
    third = review_vote_helpful(review_id=review.pk, customer=cy)
    with pytest.raises(OwnReview):
        review_vote_helpful(review_id=review.pk, customer=ada)

    # then
    assert (again.helpful_count, third.helpful_count) == (1, 2)
    assert HelpfulVote.objects.filter(review=review).count() == 2


def test_a_review_not_published_takes_no_vote(mug):
    review = review_by(buyer_of(mug), mug)

    with pytest.raises(Review.DoesNotExist):
        review_vote_helpful(review_id=review.pk, customer=customer_new())

    assert HelpfulVote.objects.count() == 0


# --- e-mails --------------------------------------------------------------------------------


def test_the_author_is_emailed_each_decision_after_it_commits_with_markup_escaped(
    mug, django_capture_on_commit_callbacks
):
    # given
    ada = buyer_of(mug)
    review = review_by(ada, mug, title="<b>Bold</b> & loud")
    mail.outbox.clear()

    # when
    with django_capture_on_commit_callbacks(execute=True):
        review_moderate(review=review, decision=REJECTED, actor=None, reason="Links <a> only")

    # then
    (message,) = mail.outbox
    assert message.to == [ada.user.email]
    assert message.subject == "Your review of Product MUG-1 was not published"
    assert "Why: Links <a> only" in message.body
    html = message.alternatives[0][0]
    assert "&lt;b&gt;Bold&lt;/b&gt; &amp; loud" in html
    assert "Links &lt;a&gt; only" in html
    assert "<b>Bold</b>" not in html


def test_a_rolled_back_decision_sends_nothing(mug, django_capture_on_commit_callbacks):
    # given
    review = review_by(buyer_of(mug), mug)
    mail.outbox.clear()

    # when
    with (
        django_capture_on_commit_callbacks(execute=True) as callbacks,
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        review_moderate(review=review, decision=APPROVED, actor=None)
        raise RuntimeError("the request failed later")

    # then
    assert callbacks == []
    assert mail.outbox == []
    assert not OutboxMessage.objects.filter(task_name="reviews.decision_email_send").exists()
    assert rating_of(mug) == NO_RATING


def test_a_decision_email_is_sent_once_and_only_for_the_latest_decision(mug):
    # given: approved, then taken down before the first e-mail went out
    review = review_by(buyer_of(mug), mug, status=APPROVED)
    review_moderate(review=review, decision=REJECTED, actor=None, reason="spam")
    mail.outbox.clear()

    # when
    first = review_decision_email_send(review_id=review.pk, decision=1)
    latest = review_decision_email_send(review_id=review.pk, decision=2)
    again = review_decision_email_send(review_id=review.pk, decision=2)

    # then
    assert (first, latest, again) == (False, True, False)
    assert [message.subject for message in mail.outbox] == [
        "Your review of Product MUG-1 was not published"
    ]
    assert list(SentReviewEmail.objects.values_list("key", flat=True)) == [
        f"decision:{review.pk}:2"
    ]


def test_staff_get_one_digest_a_day_of_the_reviews_waiting(mug, settings):
    # given
    settings.STAFF_ALERT_EMAILS = ["staff@stockwire.example"]
    assert reviews_pending_digest_send() == 0
    review_by(buyer_of(mug), mug, title="<i>Nice</i>")
    review_by(buyer_of(mug), mug, status=APPROVED)

    # when
    sent = reviews_pending_digest_send()
    again = reviews_pending_digest_send()

    # then
    assert (sent, again) == (1, 0)
    (message,) = mail.outbox
    assert message.subject == "Reviews to moderate: 1 pending"
    assert "4/5\tProduct MUG-1: <i>Nice</i>" in message.body
    assert "/admin/reviews/review/?status__exact=pending" in message.body
    assert message.alternatives == []


# --- demo -----------------------------------------------------------------------------------


def test_demo_reviews_come_from_demo_buyers_once(settings):
    # given: nothing shipped yet, then two demo products shipped to one customer, and a
    # product outside the demo catalog
    kettle = variant_stocked("DEMO-001-1", on_hand=10).product
    dripper = variant_stocked("DEMO-002-1", on_hand=10).product
    other = product_with_stock("REAL-1")
    assert demo_reviews_seed() == 0
    ada = buyer_of(kettle)
    buyer_of(dripper, ada)
    buyer_of(other, ada)

    # when
    written = demo_reviews_seed()
    again = demo_reviews_seed()

    # then
    assert (written, again) == (2, 0)
    assert set(Review.objects.values_list("product_id", "status")) == {
        (kettle.pk, APPROVED),
        (dripper.pk, APPROVED),
    }
    assert rating_of(kettle)[0] == rating_of(dripper)[0] == 1
