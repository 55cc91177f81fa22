"""The production URLconf plus two bench-only views, so the framework's ceiling is measured on the
same server, with the same middleware, as the API."""

from django.contrib.auth import get_user_model
from django.http import HttpRequest, JsonResponse
from django.urls import path

from config.urls import urlpatterns as production_urlpatterns


def bare_json(request: HttpRequest) -> JsonResponse:
    """No database, no cache: what Django and gunicorn cost per request (the ceiling)."""
    return JsonResponse({"ok": True, "items": [{"sku": "BENCH-00001", "price": "9.99"}]})


def orm_get(request: HttpRequest) -> JsonResponse:
    """One primary-key read through the ORM: the cost of getting a database connection."""
    user = get_user_model().objects.only("id", "username").get(pk=request.GET.get("id", 1))
    return JsonResponse({"id": user.pk, "username": user.username})


urlpatterns = [
    path("bench/bare", bare_json),
    path("bench/orm-get", orm_get),
    *production_urlpatterns,
]
