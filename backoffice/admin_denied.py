"""The admin's answer to a page the user's role may not open: a page of the admin, not a bare 403.

It keeps the header and breadcrumbs, names the permission the page needs and the roles (groups)
holding it, and links back, so a clerk who followed a link knows whom to ask and where to go.
"""

from collections.abc import Callable

from django.contrib.admin import ModelAdmin
from django.contrib.auth.models import Group, Permission
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme

from core.admin import PermissionRequired

# What Django's own model pages ask for; every other page of a model asks to view it.
_VIEW_PERMISSIONS = {"add_view": "add", "delete_view": "delete"}


def permission_denied_page(
    request: HttpRequest, *, site, view: Callable, refusal: PermissionDenied, object_id: str = ""
) -> TemplateResponse:
    """Render the admin's 403 page for `view` (of the object `object_id`, if it is an
    object's page), refused with `refusal`."""
    model_admin = getattr(view, "__self__", None)
    if not isinstance(model_admin, ModelAdmin):
        model_admin = None
    permission = _needed(model_admin, view, refusal)
    context = {
        **site.each_context(request),
        "title": "You may not open this page",
        "opts": model_admin.opts if model_admin else None,
        "permission": permission,
        "back_url": _back_url(request, site, model_admin, object_id),
    }
    if permission:
        app_label, codename = permission.split(".", 1)
        found = Permission.objects.filter(
            content_type__app_label=app_label, codename=codename
        ).first()
        context["permission_name"] = found.name if found else permission
        context["roles"] = list(
            Group.objects.filter(
                permissions__content_type__app_label=app_label, permissions__codename=codename
            )
            .order_by("name")
            .values_list("name", flat=True)
        )
    return TemplateResponse(request, "admin/permission_denied.html", context, status=403)


def _needed(model_admin: ModelAdmin | None, view: Callable, refusal: PermissionDenied) -> str:
    """The permission the refused page needs, as `"app_label.codename"`; "" when unknown."""
    if isinstance(refusal, PermissionRequired):
        return refusal.permission
    if model_admin is None:
        return ""
    opts = model_admin.opts
    action = _VIEW_PERMISSIONS.get(getattr(view, "__name__", ""), "view")
    return f"{opts.app_label}.{action}_{opts.model_name}"


def _back_url(request: HttpRequest, site, model_admin: ModelAdmin | None, object_id: str) -> str:
    """The page the user came from when it is this site's, else the object's page or the
    model's list when the user may read them, else the dashboard."""
    referer = request.headers.get("referer", "")
    came_from_here = url_has_allowed_host_and_scheme(
        referer, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    )
    if referer and came_from_here and referer != request.build_absolute_uri():
        return referer
    if model_admin is not None and model_admin.has_view_or_change_permission(request):
        name = f"{site.name}:{model_admin.opts.app_label}_{model_admin.opts.model_name}"
        if object_id:
            return reverse(f"{name}_change", args=[object_id])
        return reverse(f"{name}_changelist")
    return reverse(f"{site.name}:index")
