from pathlib import Path

from django.conf import settings
from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.urls import include, path
from django.views import defaults
from django.views.generic import TemplateView

from config import health
from storefront.api.errors import suspicious_request_problem

API_PREFIX = "api/v1/"
# The media folder anyone may read (catalog.models.ProductImage uploads there).
PUBLIC_MEDIA = "products/"

urlpatterns = [
    # The landing page: where the API docs, the admin and the probes are.
    path("", TemplateView.as_view(template_name="home.html"), name="home"),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("admin/", admin.site.urls),
    path(API_PREFIX, include("storefront.urls")),
]


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    """Answer a request Django refused as suspicious outside any view: problem+json under the
    API, whose clients read no HTML, and Django's own page elsewhere (with DEBUG off)."""
    if request.path_info.startswith(f"/{API_PREFIX}"):
        return suspicious_request_problem(exception)
    return defaults.bad_request(request, exception)


handler400 = bad_request

if settings.DEBUG:
    from django.conf.urls.static import static

    # Only the product images are public, as behind the compose file's nginx: invoices and
    # credit notes are served to their customer by the API (`…/invoice/document`), never here.
    urlpatterns += static(
        f"{settings.MEDIA_URL}{PUBLIC_MEDIA}", document_root=Path(settings.MEDIA_ROOT, PUBLIC_MEDIA)
    )
