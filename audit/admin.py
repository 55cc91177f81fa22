"""The audit trail in the admin: read-only, searchable by object, actor and change."""

from django.contrib import admin
from django.utils.html import format_html, format_html_join

from audit.changes import change_pairs, changes_text
from audit.models import AuditEntry
from core.admin import ReadOnlyAdmin


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "actor_label", "action", "object_type", "object_repr", "summary")
    list_filter = ("action", "object_type", "created_at")
    search_fields = ("object_repr", "object_id", "actor_label", "changes")
    date_hierarchy = "created_at"
    fields = (
        "created_at",
        "actor",
        "actor_label",
        "action",
        "object_type",
        "object_id",
        "object_repr",
        "change_table",
    )
    readonly_fields = fields

    @admin.display(description="changes")
    def summary(self, entry: AuditEntry) -> str:
        return changes_text(entry.changes)

    @admin.display(description="changes")
    def change_table(self, entry: AuditEntry) -> str:
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            change_pairs(entry.changes),
        )
        return format_html(
            "<table><thead><tr><th>field</th><th>before</th><th>after</th></tr></thead>"
            "<tbody>{}</tbody></table>",
            rows,
        )
