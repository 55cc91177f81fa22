"""HTTP semantics ninja leaves to the application: HEAD wherever GET is served.

Ninja routes a request to the operation registered for its method, so HEAD, registered
nowhere, was a 405 on every GET resource. HTTP expects HEAD wherever GET works (RFC 9110,
9.3.2): clients and caches use it to read headers, such as the ETag, without the body. Like
Django's own class-based views, HEAD runs the GET operation; unlike them, the body is
dropped here rather than left to the server, so every server answers the same.
"""

from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponseNotAllowed
from django.http.response import HttpResponseBase


def head_as_get(view: Callable[..., HttpResponseBase]) -> Callable[..., HttpResponseBase]:
    """Wrap a ninja URL view so HEAD answers GET's status and headers without its body, and
    every 405's `Allow` lists HEAD beside GET (in a stable order)."""

    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if request.method != "HEAD":
            return _allow_head(view(request, *args, **kwargs))
        request.method = "GET"
        try:
            response = view(request, *args, **kwargs)
        finally:
            request.method = "HEAD"
        if isinstance(response, HttpResponseNotAllowed):
            return _allow_head(response)  # GET is not served here either
        return _without_body(response)

    wrapped.csrf_exempt = getattr(view, "csrf_exempt", False)
    return wrapped


def _allow_head(response: HttpResponseBase) -> HttpResponseBase:
    if isinstance(response, HttpResponseNotAllowed):
        allowed = {method.strip() for method in response["Allow"].split(",")}
        if "GET" in allowed:
            allowed.add("HEAD")
        response["Allow"] = ", ".join(sorted(allowed))
    return response


def _without_body(response: HttpResponseBase) -> HttpResponseBase:
    # Content-Length stays what GET would send, as RFC 9110 (8.6) allows for HEAD.
    if response.streaming:
        response.streaming_content = []  # a file behind it is still closed with the response
        return response
    if not response.has_header("Content-Length"):
        response["Content-Length"] = str(len(response.content))
    response.content = b""
    return response
