"""The staff admin site: Django's admin with the shop's dashboard as its index page."""

from django.contrib import admin
from django.http import HttpRequest
from django.template.response import TemplateResponse

from backoffice.admin_login import ThrottledAdminAuthenticationForm
from backoffice.dashboard import dashboard_context


class StockwireAdminSite(admin.AdminSite):
    site_header = "Stockwire"
    site_title = "Stockwire admin"
    index_title = "Dashboard"
    index_template = "admin/dashboard.html"
    # The project serves an API, not pages: a "View site" link would lead to a 404.
    site_url = None
    login_form = ThrottledAdminAuthenticationForm

    def index(self, request: HttpRequest, extra_context: dict | None = None) -> TemplateResponse:
        """Show the dashboard panels the user may read above the usual list of apps."""
        context = dashboard_context(user=request.user)
        context.update(extra_context or {})
        return super().index(request, extra_context=context)
