from django.urls import path, re_path

from storefront.api import api
from storefront.api.errors import not_found_view, problem_for_plain_errors
from storefront.api.http import head_as_get

# Not `app_name`/`namespace` at module level: Django would read them as this module's own.
api_patterns, api_app, api_namespace = api.urls
for api_pattern in api_patterns:
    api_pattern.callback = problem_for_plain_errors(head_as_get(api_pattern.callback))

urlpatterns = [
    path("", (api_patterns, api_app, api_namespace)),
    # Anything else under /api/v1/ is a problem+json 404, not Django's HTML page.
    re_path(r"^.*$", not_found_view),
]
