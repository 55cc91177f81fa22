"""The staff admin site: Django's admin with the shop's dashboard as its index page."""

from collections.abc import Callable
from functools import update_wrapper

from django.contrib import admin
from django.core.exceptions import BadRequest, PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from backoffice.admin_denied import permission_denied_page
from backoffice.admin_login import ThrottledAdminAuthenticationForm
from backoffice.admin_query import query_refusal
from backoffice.dashboard import dashboard_context
from backoffice.recent_actions import recent_actions


class StockwireAdminSite(admin.AdminSite):
    site_header = "Stockwire"
    site_title = "Stockwire admin"
    index_title = "Dashboard"
    index_template = "admin/dashboard.html"
    # The project serves an API, not pages: a "View site" link would lead to a 404.
    site_url = None
    login_form = ThrottledAdminAuthenticationForm

    def index(self, request: HttpRequest, extra_context: dict | None = None) -> TemplateResponse:
        """Show the dashboard panels the user may read above the usual list of apps, and the
        user's own recent changes beside them."""
        context = {
            **dashboard_context(user=request.user),
            "recent_actions": recent_actions(user=request.user, site=self),
        }
        context.update(extra_context or {})
        return super().index(request, extra_context=context)

    def admin_view(self, view: Callable, cacheable: bool = False) -> Callable:
        """Guard `view` as Django's admin does, and answer a refusal with the admin's 403 page
        (naming the permission the page needs) instead of a bare "403 Forbidden"; refuse a
        query string the view cannot answer with a 400 (`admin_query`)."""
        guarded = super().admin_view(view, cacheable)

        def refused_in_the_admin(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            owner = getattr(view, "__self__", None)  # the ModelAdmin of a model's page
            model_admin = owner if isinstance(owner, admin.ModelAdmin) else None
            refusal = query_refusal(request.GET, model_admin=model_admin)
            if refusal is not None:
                raise BadRequest(refusal)
            try:
                return guarded(request, *args, **kwargs)
            except PermissionDenied as refusal:
                return permission_denied_page(
                    request,
                    site=self,
                    view=view,
                    refusal=refusal,
                    object_id=kwargs.get("object_id", ""),
                )

        return update_wrapper(refused_in_the_admin, guarded)
