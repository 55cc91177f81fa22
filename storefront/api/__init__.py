"""The storefront HTTP API v1: one NinjaAPI with a router per area.

Every operation documents the problems it can answer; the ones any operation can answer (a
malformed body, a server error) are added to all of them when the schema is generated, so the
OpenAPI document lists every status the API really sends, with the headers sent beside them
(`X-Request-ID` on every answer, `Retry-After` on 429 and 503). Operation ids are the view
functions' names (`order_place`), which generated clients turn into readable function names.
"""

from typing import Any

from django.core.exceptions import ImproperlyConfigured
from ninja import NinjaAPI
from ninja.operation import Operation

from storefront.api import auth, catalog, index, orders, payments, reviews, staff
from storefront.api.bodies import JsonBodyParser
from storefront.api.errors import PROBLEM_CONTENT_TYPE, ServerProblem, register_error_handlers

PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
VALIDATION_PROBLEM_REF = {"$ref": "#/components/schemas/ValidationProblem"}
SERVER_PROBLEM_REF = {"$ref": "#/components/schemas/ServerProblem"}
# Statuses any operation may answer: 400 for a body that is not JSON, 422 for invalid input,
# 500 for a bug (never for bad input, but documented rather than hidden), 503 while the
# database does not answer.
PROBLEMS_EVERYWHERE = {
    "400": ("Bad request", PROBLEM_REF),
    "422": ("Invalid input", VALIDATION_PROBLEM_REF),
    "500": ("Server error", SERVER_PROBLEM_REF),
    "503": ("Database unavailable; retry after `Retry-After` seconds", PROBLEM_REF),
}
# Only an operation that reads a body can receive one too large, or of another type than JSON.
PROBLEMS_WITH_A_BODY = {
    "413": ("Request body too large", PROBLEM_REF),
    "415": ("Request body not sent as application/json", PROBLEM_REF),
}
REQUEST_ID_HEADER = {
    "description": "The request's id (yours from `X-Request-ID`, or a new one), also in the logs.",
    "schema": {"type": "string"},
}
RETRY_AFTER_HEADER = {
    "description": "Seconds to wait before trying again.",
    "schema": {"type": "integer", "minimum": 0},
}
STAFF_TAG = "staff"
STAFF_NOTE = "**Staff only**: needs a staff user's token; a customer's token answers 403."


class StorefrontAPI(NinjaAPI):
    def get_openapi_operation_id(self, operation: Operation) -> str:
        """The view function's name: `order_place`, not `storefront_api_orders_order_place`."""
        return operation.view_func.__name__

    def get_openapi_schema(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        schema = super().get_openapi_schema(*args, **kwargs)
        operation_ids = [
            operation["operationId"]
            for path in schema["paths"].values()
            for operation in path.values()
        ]
        duplicates = {name for name in operation_ids if operation_ids.count(name) > 1}
        if duplicates:
            raise ImproperlyConfigured(f"two API views share a name: {sorted(duplicates)}")
        # No view declares the 500 it may answer: its schema is added here, with the others.
        schema["components"]["schemas"]["ServerProblem"] = ServerProblem.model_json_schema()
        for path in schema["paths"].values():
            for operation in path.values():
                if STAFF_TAG in operation.get("tags", ()):
                    operation["description"] = f"{STAFF_NOTE}\n\n{operation.get('description', '')}"
                responses = {str(status): value for status, value in operation["responses"].items()}
                problems = PROBLEMS_EVERYWHERE
                if "requestBody" in operation:
                    problems = {**PROBLEMS_EVERYWHERE, **PROBLEMS_WITH_A_BODY}
                for status, (description, ref) in problems.items():
                    responses.setdefault(
                        status,
                        {
                            "description": description,
                            "content": {PROBLEM_CONTENT_TYPE: {"schema": ref}},
                        },
                    )
                for status, response in responses.items():
                    content = response.get("content", {})
                    if status.startswith(("4", "5")) and "application/json" in content:
                        content[PROBLEM_CONTENT_TYPE] = content.pop("application/json")
                    headers = response.setdefault("headers", {})
                    headers["X-Request-ID"] = REQUEST_ID_HEADER
                    if status in {"429", "503"}:
                        headers["Retry-After"] = RETRY_AFTER_HEADER
                operation["responses"] = responses
        return schema


api = StorefrontAPI(
    title="Stockwire storefront API",
    version="1",
    urls_namespace="api-v1",
    parser=JsonBodyParser(),
    description=(
        "Browse the catalog, place and follow orders, receive payment events. Errors are "
        "application/problem+json with a stable `code`."
    ),
)
register_error_handlers(api)
api.add_router("/", index.router)
api.add_router("/auth", auth.router)
api.add_router("/", catalog.router)
api.add_router("/", orders.router)
api.add_router("/staff", staff.router)
api.add_router("/payments", payments.router)
api.add_router("/", reviews.router)
