"""Who changed what: the request's user becomes the actor of the audit entries it causes."""

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from audit.context import acting_as


class AuditActorMiddleware:
    """Make the authenticated user the actor of every audited change during the request."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        with acting_as(getattr(request, "user", None)):
            return self.get_response(request)
