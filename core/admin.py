"""Admin bases every app's admin may use: read-only pages, panels asking their rows' permission,
the refusal that names the permission a page needs, and times written as the admin writes them.

Here rather than in one app's admin so every layer can use them (an app may not import the
admin of an app above it).
"""

import datetime

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest
from django.utils import timezone
from django.utils.formats import date_format


def admin_datetime(value: datetime.datetime) -> str:
    """Write a time as the admin's own fields do: in TIME_ZONE, naming the zone."""
    return date_format(timezone.localtime(value), "DATETIME_FORMAT")


class PermissionRequired(PermissionDenied):
    """Refuse a page to a user without `permission` (`"app_label.codename"`).

    Raised by the admin's own pages (a tool page, receiving stock) so the 403 page can say
    which permission opens them, and which roles hold it; Django's model pages need the
    model's view, add or delete permission, which the admin site tells from the view.
    """

    def __init__(self, permission: str) -> None:
        super().__init__(f"needs the permission {permission}")
        self.permission = permission


class ReadOnlyAdmin(admin.ModelAdmin):
    """Show rows that only services and receivers write: staff read them, never edit them."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


class ReadOnlyInline(admin.TabularInline):
    """Show a page's related rows that only services and receivers write, read-only."""

    extra = 0
    can_delete = False
    classes = ("sw-readonly",)

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


class PanelPermissionsMixin:
    """Leave out of the page every panel the user may not read, and a fieldset left empty.

    A panel (the audit entries on a product page) is a field of the page's model admin, so the
    page's own permission would decide who reads it; a user refused the audit trail's list must
    not read the same entries on a product page. `panel_permissions` maps a field name
    (top-level in its fieldset) to the permission its rows' own admin list asks for
    (`"app_label.codename"`).
    """

    panel_permissions: dict[str, str] = {}

    def get_fieldsets(self, request: HttpRequest, obj=None):
        hidden = {
            field
            for field, permission in self.panel_permissions.items()
            if not request.user.has_perm(permission)
        }
        fieldsets = super().get_fieldsets(request, obj)
        if not hidden:
            return fieldsets
        shown = []
        for name, options in fieldsets:
            fields = [field for field in options["fields"] if field not in hidden]
            if fields:
                shown.append((name, {**options, "fields": fields}))
        return shown
