"""Admin pages that show other models' rows in read-only panels: each panel asks for the
permission of the rows it shows.

A panel (the audit entries on a product page, the invoice on an order page) is a field of the
page's model admin, so the page's own permission would decide who reads it. A user refused
the audit trail's list must not read the same entries on a product page, so each such field
names the permission that its rows' own admin list asks for. Here rather than in one app's
admin so every layer can use it (an app may not import the admin of an app above it).
"""

from django.http import HttpRequest


class PanelPermissionsMixin:
    """Leaves out of the page's fieldsets every field in `panel_permissions` whose permission
    the user lacks, and a fieldset left with no field at all.

    `panel_permissions` maps a field name (top-level in its fieldset) to a permission
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
