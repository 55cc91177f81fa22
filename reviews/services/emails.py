"""Reviews e-mails: the author hears of each decision, staff get a daily digest of the queue.

Each goes through `outbox.claims.send_once` with a `SentReviewEmail` row, as the order e-mails
do with their SentEmail: claimed in one short transaction, sent with none open (a hung mail
server holds no lock a moderator could wait on), marked sent in another. A second delivery of
the same task sends nothing; a failed send releases the claim, so the task's retry sends.
"""

from functools import partial

from django.conf import settings
from django.core.mail import EmailMultiAlternatives, send_mail
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from outbox.claims import send_once
from outbox.services import outbox_enqueue
from reviews.models import Review, ReviewStatus, SentReviewEmail

# The oldest pending reviews the digest lists; the queue in the admin has the rest.
DIGEST_ROWS = 20


def review_decision_email_request(*, review: Review) -> None:
    """Request the e-mail telling the author the review's latest decision, in the caller's
    transaction (through the outbox: sent only if the decision commits).

    Sends no signals; requests `reviews.decision_email_send`.
    """
    outbox_enqueue(
        task_name="reviews.decision_email_send",
        kwargs={"review_id": review.pk, "decision": review.decision_count},
        dedupe_key=f"email:review_decision:{review.pk}:{review.decision_count}",
    )


def review_decision_email_render(*, review: Review) -> EmailMultiAlternatives:
    """Build the text + HTML e-mail telling the author their review was approved or rejected
    (templates in reviews/email/; the HTML part escapes what the author and staff wrote)."""
    context = {
        "review": review,
        "product_name": review.product.name,
        "approved": review.status == ReviewStatus.APPROVED,
    }
    subject = " ".join(render_to_string("reviews/email/decision_subject.txt", context).split())
    message = EmailMultiAlternatives(
        subject=subject,
        body=render_to_string("reviews/email/decision.txt", context),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[review.customer.user.email],
    )
    message.attach_alternative(
        render_to_string("reviews/email/decision.html", context), "text/html"
    )
    return message


def review_decision_email_send(*, review_id: int, decision: int) -> bool:
    """Tell the author of decision number `decision` on their review, once; return whether
    the e-mail was sent.

    Nothing is sent when the review is gone, was decided on again since (that decision's
    e-mail tells the final word) or was edited back to pending. Not atomic on purpose: see the
    module docstring.
    Sends no signals, requests no tasks.
    """
    review = Review.objects.select_related("customer__user", "product").filter(pk=review_id).first()
    if (
        review is None
        or review.decision_count != decision
        or review.status == ReviewStatus.PENDING
        or not review.customer.user.email
    ):
        return False
    return send_once(
        model=SentReviewEmail,
        lookup={"key": f"decision:{review_id}:{decision}"},
        send=review_decision_email_render(review=review).send,
    )


def reviews_pending_digest_send() -> int:
    """E-mail staff how many reviews wait for moderation and the oldest of them, once a day;
    return how many wait (0 when nothing was sent).

    Nothing is sent when none waits. Plain text only: what customers wrote is never read as
    markup.
    Sends no signals, requests no tasks.
    """
    pending = Review.objects.filter(status=ReviewStatus.PENDING)
    count = pending.count()
    if not count or not settings.STAFF_ALERT_EMAILS:
        return 0
    oldest = pending.select_related("product").order_by("created_at", "id")[:DIGEST_ROWS]
    lines = [
        f"{review.created_at:%Y-%m-%d}\t{review.rating}/5\t{review.product.name}: {review.title}"
        for review in oldest
    ]
    queue = reverse("admin:reviews_review_changelist") + f"?status__exact={ReviewStatus.PENDING}"
    sent = send_once(
        model=SentReviewEmail,
        lookup={"key": f"pending_digest:{timezone.localdate().isoformat()}"},
        send=partial(
            send_mail,
            subject=f"Reviews to moderate: {count} pending",
            message="\n".join([*lines, "", f"Moderate them in the admin: {queue}"]) + "\n",
            from_email=settings.DEFAULT_FROM_EMAIL,
            recipient_list=list(settings.STAFF_ALERT_EMAILS),
        ),
    )
    return count if sent else 0
