"""Staff admin for outbound webhooks: register endpoints, rotate their secrets, read every
delivery and its attempts, resend.

Endpoints are saved through `webhooks.services`; the signing secret appears once, in the
message after the endpoint is created or its secret rotated, and never in a form or a page.
Endpoints are deactivated rather than deleted, so their delivery log stays.
"""

import json

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html

from core.admin import ReadOnlyAdmin, ReadOnlyInline, admin_datetime
from core.admin_actions import ServiceActionsMixin
from outbox.subjects import TaskSubject, task_subject_register
from webhooks.forms import ResendSinceForm, WebhookEndpointForm
from webhooks.models import DeliveryAttempt, WebhookDelivery, WebhookEndpoint
from webhooks.services import (
    ResendRefused,
    delivery_resend,
    endpoint_create,
    endpoint_resend_since,
    endpoint_secret_rotate,
    endpoint_update,
)


def _show_secret_once(request: HttpRequest, endpoint: WebhookEndpoint, secret: str) -> None:
    messages.warning(
        request,
        f"Signing secret of {endpoint.url}: {secret} — copy it now into the receiver; it is "
        "not shown again.",
    )


class _ResendPermission:
    def has_resend_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("webhooks.resend_webhookdelivery")


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(_ResendPermission, ServiceActionsMixin, admin.ModelAdmin):
    form = WebhookEndpointForm
    list_display = ("url", "description", "subscribed_events", "active", "failing_since")
    list_filter = ("active",)
    search_fields = ("url", "description")
    readonly_fields = (
        "signing_secret",
        "failing_since",
        "disabled_at",
        "disabled_reason",
        "created_by",
        "created_at",
        "updated_at",
    )
    actions = ["rotate_secret", "resend_since"]

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    @admin.display(description="events")
    def subscribed_events(self, endpoint: WebhookEndpoint) -> str:
        return ", ".join(endpoint.events)

    @admin.display(description="signing secret")
    def signing_secret(self, endpoint: WebhookEndpoint) -> str:
        if endpoint.pk is None:
            return "Generated when the endpoint is saved, and shown once."
        text = "Set"
        if endpoint.secret_rotated_at:
            text += f", rotated {admin_datetime(endpoint.secret_rotated_at)}"
        expires = endpoint.previous_secret_expires_at
        if endpoint.previous_secret and expires:
            text += f"; the previous secret signs too until {admin_datetime(expires)}"
        return text + ". Shown only when generated: rotate to get a new one."

    def save_model(self, request: HttpRequest, obj: WebhookEndpoint, form, change: bool) -> None:
        fields = {name: form.cleaned_data[name] for name in ("url", "events", "description")}
        if change:
            saved = endpoint_update(endpoint=obj, active=form.cleaned_data["active"], **fields)
        else:
            saved, secret = endpoint_create(
                active=form.cleaned_data["active"], created_by=request.user, **fields
            )
            _show_secret_once(request, saved, secret)
        obj.pk = saved.pk
        obj.refresh_from_db()

    @admin.action(
        description="Rotate the signing secret (shows the new one once)", permissions=["change"]
    )
    def rotate_secret(self, request: HttpRequest, queryset: QuerySet[WebhookEndpoint]) -> None:
        for endpoint in queryset.order_by("pk"):
            _show_secret_once(request, endpoint, endpoint_secret_rotate(endpoint=endpoint))

    @admin.action(description="Resend deliveries since…", permissions=["resend"])
    def resend_since(self, request: HttpRequest, queryset: QuerySet[WebhookEndpoint]):
        endpoints = list(queryset.order_by("pk"))
        form = ResendSinceForm(request.POST if "apply" in request.POST else None)
        if not form.is_valid():
            return self.action_page(
                request,
                endpoints,
                form,
                action="resend_since",
                title="Resend deliveries",
                submit="Resend",
                intro="Each event goes out again as a new delivery with the same event id, so "
                "receivers can drop what they already have.",
            )
        for endpoint in endpoints:
            try:
                count = endpoint_resend_since(endpoint=endpoint, since=form.cleaned_data["since"])
            except ResendRefused as error:
                self.message_user(request, f"Not resent: {error} ({error.code})", messages.ERROR)
            else:
                self.message_user(request, f"{endpoint}: {count} events resent.", messages.SUCCESS)
        return None


class DeliveryAttemptInline(ReadOnlyInline):
    model = DeliveryAttempt
    fields = ("number", "created_at", "status_code", "latency_ms", "error", "response_excerpt")
    readonly_fields = fields


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(_ResendPermission, ReadOnlyAdmin):
    list_display = (
        "created_at",
        "event_type",
        "endpoint",
        "state",
        "attempts",
        "last_status_code",
        "next_attempt_at",
    )
    list_filter = ("state", "event__type", "endpoint")
    list_select_related = ("event", "endpoint")
    search_fields = ("event__id", "endpoint__url")
    date_hierarchy = "created_at"
    fields = (
        "event_type",
        "event_id",
        "endpoint",
        "state",
        "attempts",
        "next_attempt_at",
        "last_status_code",
        "last_error",
        "resend_of",
        "created_at",
        "finished_at",
        "body",
    )
    readonly_fields = fields
    inlines = [DeliveryAttemptInline]
    actions = ["resend"]

    @admin.display(description="event", ordering="event__type")
    def event_type(self, delivery: WebhookDelivery) -> str:
        return delivery.event.type

    @admin.display(description="body sent")
    def body(self, delivery: WebhookDelivery) -> str:
        return format_html("<pre>{}</pre>", json.dumps(delivery.event.payload, indent=2))

    @admin.action(description="Resend the selected deliveries", permissions=["resend"])
    def resend(self, request: HttpRequest, queryset: QuerySet[WebhookDelivery]) -> None:
        for delivery in queryset.select_related("event", "endpoint").order_by("pk"):
            try:
                delivery_resend(delivery=delivery)
            except ResendRefused as error:
                self.message_user(
                    request,
                    f"Delivery {delivery.pk} not resent: {error} ({error.code})",
                    messages.ERROR,
                )
            else:
                self.message_user(request, f"Delivery {delivery.pk} resent.", messages.SUCCESS)


# The delivery attempts and the disabled-endpoint notices name their delivery and endpoint.
task_subject_register(
    TaskSubject(key="delivery_id", model=WebhookDelivery, related=("event", "endpoint"))
)
task_subject_register(TaskSubject(key="endpoint_id", model=WebhookEndpoint))
