"""Every error under /api/ becomes one `application/problem+json` answer, here and nowhere else.

Domain errors from the layers below carry a stable `code` attribute; `DOMAIN_ERROR_STATUS` maps
each code to its HTTP status, so the API never imports another app's exception classes just to
translate them. Anything without a known code is a bug: it is logged with the request id and
answered as a bare 500 problem (no traceback leaves the server). A database that does not
answer is a 503 with `Retry-After`: nothing was written, and retrying is the right reaction.
What Django refuses as suspicious (a body over DATA_UPLOAD_MAX_MEMORY_SIZE, too many fields) is
the client's doing, so it is a 4xx here as it is in Django's own handler, not a bug.
"""

import json
import logging
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from django.conf import settings
from django.core.exceptions import DisallowedHost, RequestDataTooBig, SuspiciousOperation
from django.db import DatabaseError, InterfaceError, OperationalError
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed
from ninja import NinjaAPI, Schema
from ninja.errors import AuthenticationError, AuthorizationError, HttpError, ValidationError
from pydantic import Field

logger = logging.getLogger("stockwire.api")

PROBLEM_CONTENT_TYPE = "application/problem+json"
PROBLEM_TYPE_BASE = "https://stockwire.dev/problems/"

# Stable codes of the domain errors raised below the API, and the status each one answers.
DOMAIN_ERROR_STATUS = {
    "out_of_stock": 409,
    "invalid_transition": 409,
    "over_shipment": 409,
    "over_cancellation": 409,
    "over_return": 409,
    "units_not_held": 409,
    "shipping_refunded_already": 409,
    "refund_impossible": 409,
    "refund_exceeds_payment": 409,
    "unknown_sku": 422,
    "invalid_order": 422,
    "invalid_stock_operation": 422,
    "bad_signature": 400,
    "stale_event": 400,
    "malformed_event": 400,
    "email_taken": 409,
    "validation_error": 422,
    "idempotency_key_reused": 422,
    "request_in_progress": 409,
    "throttled": 429,
    "invalid_review": 422,
    "not_a_buyer": 403,
    "review_exists": 409,
    "own_review": 403,
}
# A database restart or failover takes seconds; asking clients to wait less only adds load.
DATABASE_RETRY_AFTER_SECONDS = 5
# Extra attributes a domain error may carry that the client needs to act on.
DOMAIN_ERROR_FIELDS = ("lines", "skus", "errors", "review_id")

# The code for an HTTP error raised without one (ninja's own, or `HttpError(status, message)`).
CODE_FOR_STATUS = {
    400: "bad_request",
    401: "not_authenticated",
    403: "permission_denied",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    422: "validation_error",
    429: "throttled",
    500: "server_error",
}


class Problem(Schema):
    """An RFC 9457 problem: `code` is the stable, machine-readable part."""

    type: str
    title: str
    status: int
    detail: str
    code: str


class FieldProblem(Schema):
    field: str
    message: str


class ValidationProblem(Problem):
    """422: `errors` lists the failing fields of invalid input; a domain refusal carries its
    own fields instead (`unknown_sku`: `skus`, those not in the catalog)."""

    errors: list[FieldProblem] = Field(default_factory=list)
    skus: list[str] = Field(default_factory=list)


class ServerProblem(Problem):
    """500: a bug on the server's side; `request_id` finds its traceback in the logs."""

    request_id: str


class ShortLine(Schema):
    sku: str
    requested: int
    available: int


class ConflictProblem(Problem):
    """409: for `out_of_stock`, and `over_shipment`, `over_cancellation`, `over_return` (more
    units than a line has left), `lines` holds each short SKU."""

    lines: list[ShortLine] = Field(default_factory=list)


class ReviewExistsProblem(Problem):
    """409 `review_exists`: `review_id` is the caller's review of the product, to edit instead."""

    review_id: int


class ApiError(Exception):
    """An error the API itself answers with (missing key, throttled, staff only, …)."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        *,
        extra: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.extra = extra or {}
        self.headers = headers or {}


def problem_response(
    status: int,
    code: str,
    detail: str,
    *,
    extra: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> HttpResponse:
    """Build the problem+json answer; every error path of the API ends here."""
    body = {
        "type": PROBLEM_TYPE_BASE + code,
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "code": code,
        **(extra or {}),
    }
    response = HttpResponse(json.dumps(body), status=status, content_type=PROBLEM_CONTENT_TYPE)
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def _field_name(location: tuple | list) -> str:
    # ("body", "payload", "lines", 0, "sku") -> "lines.0.sku": the source and the parameter
    # name are ninja's plumbing, not the client's field.
    parts = [str(part) for part in location]
    if parts and parts[0] == "body" and len(parts) > 1:
        parts = parts[2:] or parts[1:]
    elif len(parts) > 1:
        parts = parts[1:]
    return ".".join(parts) or "body"


def validation_problem(errors: list[dict[str, str]]) -> HttpResponse:
    """Answer 422 listing every failing field as `{field, message}`."""
    fields = ", ".join(sorted({error["field"] for error in errors}))
    return problem_response(
        422, "validation_error", f"Invalid input: {fields}.", extra={"errors": errors}
    )


def _on_validation_error(request: HttpRequest, exc: ValidationError) -> HttpResponse:
    # A path value outside its pattern (a slug with a dot, an order number with "_") names
    # no resource that could exist: the contract's 404, as for one that does not.
    if any(tuple(error.get("loc", ()))[:1] == ("path",) for error in exc.errors):
        return problem_response(404, "not_found", f"Nothing at {request.path}.")
    errors = [
        {"field": _field_name(error.get("loc", ())), "message": str(error.get("msg", "invalid"))}
        for error in exc.errors
    ]
    return validation_problem(errors)


def _on_api_error(request: HttpRequest, exc: ApiError) -> HttpResponse:
    return problem_response(exc.status, exc.code, exc.detail, extra=exc.extra, headers=exc.headers)


def _on_http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
    if isinstance(exc.__cause__, ApiError):  # raised by the body parser, which ninja wraps
        return _on_api_error(request, exc.__cause__)
    status = exc.status_code
    if isinstance(exc, AuthenticationError):
        detail = "Send a valid token: Authorization: Bearer <token>."
        return problem_response(
            401, "not_authenticated", detail, headers={"WWW-Authenticate": "Bearer"}
        )
    if isinstance(exc, AuthorizationError):
        return problem_response(403, "permission_denied", "This needs a staff token.")
    return problem_response(status, CODE_FOR_STATUS.get(status, "http_error"), str(exc))


def _on_not_found(request: HttpRequest, exc: Http404) -> HttpResponse:
    return problem_response(404, "not_found", "No such resource.")


def _on_exception(request: HttpRequest, exc: Exception) -> HttpResponse:
    code = getattr(exc, "code", None)
    if isinstance(code, str) and code in DOMAIN_ERROR_STATUS:
        extra = {name: getattr(exc, name) for name in DOMAIN_ERROR_FIELDS if hasattr(exc, name)}
        headers = {}
        if hasattr(exc, "retry_after"):
            headers["Retry-After"] = str(exc.retry_after)
        return problem_response(
            DOMAIN_ERROR_STATUS[code], code, str(exc) or code, extra=extra, headers=headers
        )
    request_id = getattr(request, "request_id", "-")
    logger.exception(
        "unhandled error in %s %s (request %s)", request.method, request.path, request_id
    )
    return problem_response(
        500,
        "server_error",
        "Something went wrong on our side; quote the request id when reporting it.",
        extra={"request_id": request_id},
    )


def _on_suspicious_operation(request: HttpRequest, exc: SuspiciousOperation) -> HttpResponse:
    # Logged where Django's own handler logs it, so alerts on django.security see the API too.
    logging.getLogger(f"django.security.{type(exc).__name__}").error(str(exc))
    return suspicious_request_problem(exc)


def suspicious_request_problem(exception: Exception) -> HttpResponse:
    """Answer what Django refused as suspicious, in the API or before it (a Host outside
    ALLOWED_HOSTS is refused by the middleware, before any view runs)."""
    if isinstance(exception, RequestDataTooBig):
        return problem_response(
            413,
            "payload_too_large",
            f"The request body is larger than {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes.",
        )
    if isinstance(exception, DisallowedHost):
        return problem_response(
            400, "disallowed_host", "The Host header names no host this server answers for."
        )
    return problem_response(400, "bad_request", "The request was refused as malformed.")


def _on_database_unavailable(request: HttpRequest, exc: DatabaseError) -> HttpResponse:
    # The connection broke or the server refused a statement (down, restarting, a timeout):
    # the transaction rolled back, nothing was written, and a retry may well succeed.
    request_id = getattr(request, "request_id", "-")
    logger.error(
        "database unavailable in %s %s (request %s): %s",
        request.method,
        request.path,
        request_id,
        exc,
    )
    return problem_response(
        503,
        "database_unavailable",
        "The database is not answering; nothing was changed. Retry shortly.",
        extra={"request_id": request_id},
        headers={"Retry-After": str(DATABASE_RETRY_AFTER_SECONDS)},
    )


def register_error_handlers(api: NinjaAPI) -> None:
    """Replace ninja's default handlers so every error is problem+json."""
    api.add_exception_handler(OperationalError, _on_database_unavailable)
    api.add_exception_handler(InterfaceError, _on_database_unavailable)
    api.add_exception_handler(ValidationError, _on_validation_error)
    api.add_exception_handler(ApiError, _on_api_error)
    api.add_exception_handler(HttpError, _on_http_error)
    api.add_exception_handler(Http404, _on_not_found)
    api.add_exception_handler(SuspiciousOperation, _on_suspicious_operation)
    api.add_exception_handler(Exception, _on_exception)


def not_found_view(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
    """Answer any unknown path under the API with a problem instead of Django's HTML page."""
    return problem_response(404, "not_found", f"No API endpoint at {request.path}.")


def problem_for_plain_errors(
    view: Callable[..., HttpResponse],
) -> Callable[..., HttpResponse]:
    """Wrap a ninja URL view so what ninja answers outside its operations is a problem too: a
    method the path does not serve (405 with `Allow`) and the bare API root (404)."""

    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            response = view(request, *args, **kwargs)
        except Http404:
            return not_found_view(request)
        if isinstance(response, HttpResponseNotAllowed):
            return problem_response(
                405,
                "method_not_allowed",
                f"{request.method} is not allowed here; allowed: {response['Allow']}.",
                headers={"Allow": response["Allow"]},
            )
        return response

    wrapped.csrf_exempt = getattr(view, "csrf_exempt", False)
    return wrapped
