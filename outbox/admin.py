"""Staff see what the outbox still owes and which tasks failed for good; nothing is edited here."""

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from outbox.models import OutboxMessage, TaskFailure
from outbox.services import outbox_relay


class DeliveryStateFilter(admin.SimpleListFilter):
    """Pending: not yet tried by the relay; failed: the broker refused it at least once."""

    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [("pending", "Pending"), ("failed", "Failed (will retry)"), ("sent", "Sent")]

    def queryset(self, request, queryset):
        if self.value() == "pending":
            return queryset.filter(sent_at__isnull=True, attempts=0)
        if self.value() == "failed":
            return queryset.filter(sent_at__isnull=True, attempts__gt=0)
        if self.value() == "sent":
            return queryset.filter(sent_at__isnull=False)
        return queryset


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


@admin.register(OutboxMessage)
class OutboxMessageAdmin(ReadOnlyAdmin):
    list_display = [
        "task_name",
        "state",
        "attempts",
        "created_at",
        "next_attempt_at",
        "sent_at",
        "last_error_short",
    ]
    list_filter = [DeliveryStateFilter, "task_name"]
    search_fields = ["=id", "dedupe_key"]
    date_hierarchy = "created_at"
    actions = ["relay_now"]

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False  # an unsent row is work owed; sent rows are pruned by the beat schedule

    @admin.display(description="state")
    def state(self, message: OutboxMessage) -> str:
        if message.sent_at:
            return "sent"
        return "failed" if message.attempts else "pending"

    @admin.display(description="last error")
    def last_error_short(self, message: OutboxMessage) -> str:
        return message.last_error[:120]

    def has_relay_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("outbox.relay_outbox")

    @admin.action(description="Relay now (ignore backoff)", permissions=["relay"])
    def relay_now(self, request: HttpRequest, queryset: QuerySet[OutboxMessage]) -> None:
        ids = list(queryset.filter(sent_at__isnull=True).values_list("pk", flat=True))
        published = outbox_relay(message_ids=ids, batch_size=len(ids) or 1)
        level = messages.SUCCESS if published == len(ids) else messages.WARNING
        self.message_user(
            request, f"Handed {published} of {len(ids)} unsent requests to the broker.", level
        )


@admin.register(TaskFailure)
class TaskFailureAdmin(ReadOnlyAdmin):
    """Deleting a row is how staff acknowledge a failure they have dealt with."""

    list_display = ["task_name", "failed_at", "exception_short", "task_id", "hostname"]
    list_filter = ["task_name"]
    search_fields = ["=task_id", "exception"]
    date_hierarchy = "failed_at"

    @admin.display(description="exception")
    def exception_short(self, failure: TaskFailure) -> str:
        return failure.exception[:120]
