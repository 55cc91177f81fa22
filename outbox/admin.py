"""Staff see what the outbox still owes and which tasks failed for good, and what each task is
about; nothing is edited here."""

from collections.abc import Iterable

from django.contrib import admin, messages
from django.contrib.admin.views.main import ChangeList
from django.db.models import Model, Q, QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from outbox.models import OutboxMessage, TaskFailure
from outbox.services import outbox_relay, redeliver_after, task_failure_rerun
from outbox.subjects import Subject, task_subjects

OPEN = Q(done_at__isnull=True, failed_at__isnull=True)


def _states() -> dict[str, tuple[str, Q]]:
    """Each state a request can be in: its label and the rows in it (the deadline moves)."""
    deadline = timezone.now() - redeliver_after()
    return {
        "pending": ("Pending", OPEN & Q(published_at__isnull=True, attempts=0)),
        "refused": (
            "Refused by the broker (will retry)",
            OPEN & Q(published_at__isnull=True, attempts__gt=0),
        ),
        "published": ("Published, not done yet", OPEN & Q(published_at__gt=deadline)),
        "overdue": (
            "Overdue: lost by the broker or a worker (will be re-sent)",
            OPEN & Q(published_at__lte=deadline),
        ),
        "done": ("Done", Q(done_at__isnull=False)),
        "failed": ("Failed for good (see failed tasks)", Q(failed_at__isnull=False)),
    }


class DeliveryStateFilter(admin.SimpleListFilter):
    """Where each request stands, from pending to done; the relay acts on the open states."""

    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [(value, label) for value, (label, _rows) in _states().items()]

    def queryset(self, request, queryset):
        state = _states().get(self.value() or "")
        return queryset.filter(state[1]) if state else queryset


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


def _subject_link(subject: Subject, request: HttpRequest, site: admin.AdminSite) -> str:
    """The subject's label, linked to its row's page when the user may read that page; a row
    the user may not read is named by its kind and id only."""
    row = subject.page
    if row is None:
        return format_html("{}", subject.label)
    opts = row._meta
    if not request.user.has_perm(f"{opts.app_label}.view_{opts.model_name}"):
        return format_html("{}", subject.unnamed)
    if not site.is_registered(type(row)):
        return format_html("{}", subject.label)
    url = reverse(f"{site.name}:{opts.app_label}_{opts.model_name}_change", args=[row.pk])
    return format_html('<a href="{}">{}</a>', url, subject.label)


def _name_subjects(rows: Iterable[Model], request: HttpRequest, site: admin.AdminSite) -> None:
    """Set `about` on each task row: what its keywords point at, one query per kind of row."""
    rows = list(rows)
    for row, subjects in zip(rows, task_subjects(row.kwargs for row in rows), strict=True):
        row.about = format_html_join(
            " · ", "{}", ((_subject_link(subject, request, site),) for subject in subjects)
        )


class _SubjectsChangeList(ChangeList):
    def get_results(self, request: HttpRequest) -> None:
        super().get_results(request)
        _name_subjects(self.result_list, request, self.model_admin.admin_site)


class TaskSubjectsMixin:
    """For a ModelAdmin of task rows (with `kwargs`): an `about` column and field naming what
    each task is about (the order, the e-mail's kind, the product), linked (outbox.subjects)."""

    def get_changelist(self, request: HttpRequest, **kwargs) -> type[ChangeList]:
        return _SubjectsChangeList

    def get_object(self, request: HttpRequest, object_id: str, from_field=None):
        row = super().get_object(request, object_id, from_field)
        if row is not None:
            _name_subjects([row], request, self.admin_site)
        return row

    @admin.display(description="about")
    def about(self, row: OutboxMessage | TaskFailure) -> str:
        return getattr(row, "about", "")


@admin.register(OutboxMessage)
class OutboxMessageAdmin(TaskSubjectsMixin, ReadOnlyAdmin):
    list_display = [
        "task_name",
        "about",
        "state",
        "attempts",
        "redeliveries",
        "created_at",
        "published_at",
        "done_at",
        "last_error_short",
    ]
    list_filter = [DeliveryStateFilter, "task_name"]
    search_fields = ["=id", "dedupe_key"]
    date_hierarchy = "created_at"
    actions = ["relay_now"]
    readonly_fields = ["about"]

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False  # an open row is work owed; ended rows are pruned by the beat schedule

    @admin.display(description="state")
    def state(self, message: OutboxMessage) -> str:
        if message.done_at:
            return "done"
        if message.failed_at:
            return "failed"
        if message.published_at:
            overdue = message.published_at <= timezone.now() - redeliver_after()
            return "overdue" if overdue else "published"
        return "refused" if message.attempts else "pending"

    @admin.display(description="last error")
    def last_error_short(self, message: OutboxMessage) -> str:
        return message.last_error[:120]

    def has_relay_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("outbox.relay_outbox")

    @admin.action(
        description="Relay now (ignore backoff; re-send if not done)", permissions=["relay"]
    )
    def relay_now(self, request: HttpRequest, queryset: QuerySet[OutboxMessage]) -> None:
        ids = list(queryset.filter(OPEN).values_list("pk", flat=True))
        published = outbox_relay(message_ids=ids, batch_size=len(ids) or 1)
        level = messages.SUCCESS if published == len(ids) else messages.WARNING
        self.message_user(
            request, f"Handed {published} of {len(ids)} open requests to the broker.", level
        )


class RerunFilter(admin.SimpleListFilter):
    title = "re-run"
    parameter_name = "rerun"

    def lookups(self, request, model_admin):
        return [("no", "Not re-run"), ("yes", "Re-run")]

    def queryset(self, request, queryset):
        if self.value() in {"no", "yes"}:
            return queryset.filter(rerun_at__isnull=self.value() == "no")
        return queryset


@admin.register(TaskFailure)
class TaskFailureAdmin(TaskSubjectsMixin, ReadOnlyAdmin):
    """Deleting a row is how staff acknowledge a failure they have dealt with; "Re-run" asks for
    the task again once its cause is fixed."""

    list_display = [
        "task_name",
        "about",
        "failed_at",
        "exception_short",
        "rerun_at",
        "rerun_by",
        "task_id",
        "hostname",
    ]
    list_filter = [RerunFilter, "task_name"]
    search_fields = ["=task_id", "exception"]
    date_hierarchy = "failed_at"
    actions = ["rerun"]
    readonly_fields = ["about"]

    @admin.display(description="exception")
    def exception_short(self, failure: TaskFailure) -> str:
        return failure.exception[:120]

    def has_rerun_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("outbox.rerun_task")

    @admin.action(description="Re-run (request the task again)", permissions=["rerun"])
    def rerun(self, request: HttpRequest, queryset: QuerySet[TaskFailure]) -> None:
        failures = list(queryset)
        rerun = [
            failure
            for failure in failures
            if task_failure_rerun(failure=failure, actor=request.user) is not None
        ]
        skipped = len(failures) - len(rerun)
        text = f"Requested {len(rerun)} of {len(failures)} failed tasks again."
        if skipped:
            text += f" {skipped} had been re-run already or take positional arguments."
        self.message_user(request, text, messages.WARNING if skipped else messages.SUCCESS)
