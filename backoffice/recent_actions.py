"""The index's "Recent actions" box: the user's own latest changes, read from the audit trail.

Django's box lists only the admin's form edits (its LogEntry), so it stayed empty: staff act
through the services (ship, refund, receive stock), which the audit trail records with the
acting user.
"""

from dataclasses import dataclass

from django.apps import apps
from django.contrib.admin import AdminSite
from django.urls import reverse

from audit.changes import changes_text
from audit.models import AuditAction, AuditEntry
from audit.selectors import audit_entries_by_actor

# Django's icons of the box, by audit action; updates and stock changes are changes.
_ACTION_CSS = {AuditAction.CREATE: "addlink", AuditAction.DELETE: "deletelink"}


@dataclass(frozen=True)
class RecentAction:
    """One change as the box lists it: the entry, the kind of object, the change in one line,
    and the object's page (empty when the user may not read it, or it is gone)."""

    entry: AuditEntry
    noun: str
    changes: str
    url: str
    css: str


def recent_actions(*, user, site: AdminSite) -> list[RecentAction]:
    """The user's latest changes, newest first, each linked to its object's page (one query)."""
    return [_action(entry, user=user, site=site) for entry in audit_entries_by_actor(user=user)]


def _action(entry: AuditEntry, *, user, site: AdminSite) -> RecentAction:
    try:
        model = apps.get_model(entry.object_type)
    except (LookupError, ValueError):
        model = None
    opts = model._meta if model is not None else None
    url = ""
    if (
        opts is not None
        and entry.action != AuditAction.DELETE
        and site.is_registered(model)
        and user.has_perm(f"{opts.app_label}.view_{opts.model_name}")
    ):
        url = reverse(
            f"{site.name}:{opts.app_label}_{opts.model_name}_change", args=[entry.object_id]
        )
    return RecentAction(
        entry=entry,
        noun=opts.verbose_name if opts else entry.object_type,
        changes=changes_text(entry.changes),
        url=url,
        css=_ACTION_CSS.get(entry.action, "changelink"),
    )
