"""Staff admin for reviews: the moderation queue, and the rating panel of the product page.

What customers wrote is never edited here, only approved or rejected by actions calling
`reviews.services.review_moderate` (the rating moves, the author is e-mailed). Review text is
plain text, escaped wherever a page shows it.
"""

from functools import partial

from django import forms
from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from catalog.admin_hooks import product_page
from catalog.models import Product
from core.admin import admin_datetime
from core.admin_actions import ServiceActionsMixin
from core.admin_hooks import PageExtension, PagePanel
from outbox.subjects import TaskSubject, task_subject_register
from reviews import selectors
from reviews.models import REASON_MAX_LENGTH, Review, ReviewStatus
from reviews.services import ReviewError, review_moderate

# The latest reviews a product page lists; the review list has the rest.
PRODUCT_PANEL_ROWS = 10


class ReviewStatusFilter(admin.SimpleListFilter):
    """By status, pending unless another is chosen: the list opens as the moderation queue."""

    title = "status"
    parameter_name = "status__exact"
    ALL = "all"

    def lookups(self, request: HttpRequest, model_admin) -> list[tuple[str, str]]:
        return [*ReviewStatus.choices, (self.ALL, "All")]

    def value(self) -> str:
        return super().value() or ReviewStatus.PENDING

    def choices(self, changelist):
        for lookup, title in self.lookup_choices:
            yield {
                "selected": self.value() == lookup,
                "query_string": changelist.get_query_string({self.parameter_name: lookup}),
                "display": title,
            }

    def queryset(self, request: HttpRequest, queryset: QuerySet[Review]) -> QuerySet[Review]:
        if self.value() == self.ALL:
            return queryset
        return queryset.filter(status=self.value())


class RejectionForm(forms.Form):
    """Why a review is not published: the author reads it in their e-mail."""

    reason = forms.CharField(max_length=REASON_MAX_LENGTH, widget=forms.Textarea(attrs={"rows": 3}))


@admin.register(Review)
class ReviewAdmin(ServiceActionsMixin, admin.ModelAdmin):
    list_display = (
        "id",
        "product",
        "rating",
        "title",
        "author_name",
        "customer_email",
        "status",
        "verified_purchase",
        "helpful_count",
        "created_at",
    )
    list_display_links = ("id", "title")
    list_filter = (ReviewStatusFilter, "rating", "verified_purchase", "created_at")
    list_select_related = ("product", "customer__user")
    search_fields = ("title", "body", "product__name", "customer__user__email")
    # The queue is worked oldest first: the longest-waiting author is answered first.
    ordering = ("created_at", "id")
    fields = (
        "product",
        "customer",
        "author_name",
        "rating",
        "title",
        "body",
        "verified_purchase",
        "status",
        "moderator",
        "moderation_reason",
        "moderated_at",
        "helpful_count",
        "created_at",
        "updated_at",
    )
    readonly_fields = fields
    actions = ("approve_reviews", "reject_reviews")
    service_argument = "review"
    action_ordering = ("created_at", "id")
    action_errors = (ReviewError,)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Review]:
        return super().get_queryset(request).select_related("product", "customer__user")

    def has_add_permission(self, request: HttpRequest) -> bool:
        # Reviews are written by customers who received the product, through the API.
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        # What a customer wrote is theirs; staff decide with the actions below.
        return False

    def has_moderate_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("reviews.moderate_review")

    @admin.display(description="customer", ordering="customer__user__email")
    def customer_email(self, review: Review) -> str:
        return review.customer.user.email

    @admin.action(description="Approve the selected reviews", permissions=["moderate"])
    def approve_reviews(self, request: HttpRequest, queryset: QuerySet[Review]) -> None:
        # One review per transaction: its row lock, then its product's rating, never two
        # reviews' locks held out of order.
        for review in queryset.order_by(*self.action_ordering):
            self.run_for_object(
                request,
                review,
                "approved",
                review_moderate,
                decision=ReviewStatus.APPROVED,
            )

    @admin.action(
        description="Reject the selected reviews (asks for the reason)", permissions=["moderate"]
    )
    def reject_reviews(
        self, request: HttpRequest, queryset: QuerySet[Review]
    ) -> TemplateResponse | None:
        return self.run_with_form(
            request,
            queryset,
            form_class=RejectionForm,
            action="reject_reviews",
            title="Reject reviews",
            submit="Reject",
            intro="The authors are e-mailed the reason.",
            verb="rejected",
            service=partial(review_moderate, decision=ReviewStatus.REJECTED),
        )


@admin.display(description="rating and latest reviews")
def product_reviews_panel(product: Product) -> str:
    """The product's rating (average, count, stars histogram) and its latest reviews in any
    status, the text escaped."""
    if product.pk is None:
        return "—"
    rating = selectors.product_rating(product_id=product.pk)
    average = selectors.rating_average(count=rating.approved_count, total=rating.rating_sum)
    histogram = " · ".join(
        f"{stars}★ {getattr(rating, f'stars_{stars}')}" for stars in range(5, 0, -1)
    )
    summary = format_html(
        "<p>{} from {} approved review{} ({})</p>",
        f"{average} / 5" if average is not None else "No rating yet",
        rating.approved_count,
        "" if rating.approved_count == 1 else "s",
        histogram,
    )
    reviews = selectors.reviews_recent(product_id=product.pk, limit=PRODUCT_PANEL_ROWS)
    if not reviews:
        return format_html("{}<p>No review yet.</p>", summary)
    rows = format_html_join(
        "",
        '<tr><td><a href="{}">{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>',
        (
            (
                reverse("admin:reviews_review_change", args=[review.pk]),
                admin_datetime(review.created_at),
                review.get_status_display(),
                f"{review.rating}/5",
                review.title,
                review.author_name,
            )
            for review in reviews
        ),
    )
    return format_html(
        '{}<table class="sw-reviews"><thead><tr><th>when</th><th>status</th><th>rating</th>'
        "<th>title</th><th>author</th></tr></thead><tbody>{}</tbody></table>"
        '<p><a href="{}?product__id__exact={}&amp;status__exact=all">All reviews of this '
        "product</a></p>",
        summary,
        rows,
        reverse("admin:reviews_review_changelist"),
        product.pk,
    )


product_page.extend(
    app_label="reviews",
    extension=PageExtension(
        title="Reviews",
        panels=(PagePanel(display=product_reviews_panel, permission="reviews.view_review"),),
    ),
)


# The decision e-mails name their review, by its product and rating.
task_subject_register(
    TaskSubject(
        key="review_id",
        model=Review,
        name=lambda review: f"of {review.product.name} ({review.rating}/5)",
        related=("product",),
    )
)
