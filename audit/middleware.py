from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from audit.context import current_actor


class AuditActorMiddleware:
    """Make the authenticated user the actor of every audited change during the request."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        token = current_actor.set(user if user is not None and user.is_authenticated else None)
        try:
            return self.get_response(request)
        finally:
            current_actor.reset(token)
