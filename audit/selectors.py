"""Read queries of the audit trail, shared by the admin's pages."""

from django.db.models import Model, QuerySet

from audit.models import AuditEntry

# Enough of one user's recent work to pick up where they left off.
RECENT_ACTIONS = 10


def audit_entries_by_actor(*, user, limit: int = RECENT_ACTIONS) -> list[AuditEntry]:
    """The latest entries `user` made, newest first: what they did, whichever service did it."""
    return list(AuditEntry.objects.filter(actor=user).order_by("-created_at", "-id")[:limit])


def audit_entries_for_object(*, obj: Model) -> QuerySet[AuditEntry]:
    """Every entry of `obj`, oldest first: its history as the audit trail recorded it."""
    return AuditEntry.objects.filter(object_type=obj._meta.label, object_id=str(obj.pk)).order_by(
        "created_at", "id"
    )
