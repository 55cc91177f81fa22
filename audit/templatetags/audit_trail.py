"""Template tags of the admin's History pages: an object's audit trail, as the trail records it.

A tag, as Django's own History page reads its log with `get_admin_log`: every model's History
page shows its entries without each ModelAdmin asking for them.
"""

from django import template
from django.db.models import Model

from audit.changes import changes_text
from audit.models import AuditEntry
from audit.selectors import audit_entries_for_object

register = template.Library()


@register.simple_tag
def audit_trail_of(obj: Model) -> list[AuditEntry]:
    """The object's audit entries, oldest first."""
    return list(audit_entries_for_object(obj=obj))


@register.filter
def audit_changes(entry: AuditEntry) -> str:
    """The entry's changes as one line: `status: paid → shipped; tracking_number: → TRK-1`."""
    return changes_text(entry.changes)
