"""Request bodies are JSON, say so, and nest no deeper than JSON the API could use.

A body whose type says one thing and holds another is a bug the client should hear about, and
JSON sent as `text/plain` is what a page on another site can make its visitors' browsers send
without a CORS preflight (registrations from their addresses, say). So every operation that
reads a body answers 415 `unsupported_media_type` unless its `Content-Type` is
`application/json` (parameters such as `charset=utf-8` allowed). A request without a body has
nothing to refuse: its missing fields are a 422, as before. A body that is not JSON, or nests
beyond core.json_input.MAX_DEPTH, is 400 `bad_request` saying why.
"""

from typing import Any

from django.http import HttpRequest
from ninja.parser import Parser

from core.json_input import json_parse
from storefront.api.errors import ApiError

JSON_MEDIA_TYPE = "application/json"


def json_body_required(request: HttpRequest) -> None:
    """Raise ApiError(415) if `request` carries a body that is not declared application/json."""
    if request.body and request.content_type != JSON_MEDIA_TYPE:
        sent = request.content_type or "no Content-Type"
        raise ApiError(
            415,
            "unsupported_media_type",
            f"Send the body as {JSON_MEDIA_TYPE}, not {sent}.",
        )


class JsonBodyParser(Parser):
    """Ninja's parser, refusing a body of another declared type, or nested too deeply.

    Ninja answers 400 for whatever parsing raises; the ApiError raised here travels as that
    400's cause and is answered as itself (storefront.api.errors).
    """

    def parse_body(self, request: HttpRequest) -> Any:
        json_body_required(request)
        try:
            return json_parse(request.body)
        except ValueError as error:
            raise ApiError(
                400, "bad_request", f"The body cannot be read as JSON: {error}."
            ) from error
