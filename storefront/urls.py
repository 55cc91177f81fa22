from django.urls import path, re_path

from storefront.api import api
from storefront.api.errors import not_found_view, problem_for_method_not_allowed

patterns, app_name, namespace = api.urls
for pattern in patterns:
    pattern.callback = problem_for_method_not_allowed(pattern.callback)

urlpatterns = [
    path("", (patterns, app_name, namespace)),
    # Anything else under /api/v1/ is a problem+json 404, not Django's HTML page.
    re_path(r"^.*$", not_found_view),
]
