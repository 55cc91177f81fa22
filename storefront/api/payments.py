"""The payment provider's webhook: the raw body and its signature go to payments unparsed."""

from django.http import HttpRequest
from ninja import Router, Status

from payments.services import webhook_handle
from storefront.api.bodies import json_body_required
from storefront.api.errors import Problem
from storefront.api.schemas import WebhookAckOut

router = Router(tags=["payments"])

# Documented, not parsed here: the signature covers the raw bytes, so payments verifies them
# before anything reads the JSON.
WEBHOOK_BODY_DOC = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["id", "type", "data"],
                    "properties": {
                        "id": {"type": "string"},
                        "type": {
                            "type": "string",
                            "enum": ["payment.succeeded", "payment.failed", "refund.succeeded"],
                        },
                        "data": {
                            "type": "object",
                            "properties": {
                                "order_number": {"type": "string"},
                                "amount": {"type": "string", "examples": ["19.99"]},
                                "currency": {"type": "string"},
                                "payment_reference": {"type": "string"},
                            },
                        },
                    },
                }
            }
        },
    },
    "parameters": [
        {
            "in": "header",
            "name": "Stockwire-Signature",
            "required": True,
            "schema": {"type": "string"},
            "description": 't=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>',
        }
    ],
}


@router.post(
    "/webhook",
    response={200: WebhookAckOut, 400: Problem},
    openapi_extra=WEBHOOK_BODY_DOC,
    summary="Receive a payment provider event",
)
def payment_webhook(request: HttpRequest):
    """Verify and apply a signed `demo` provider event; a duplicate answers 200 too.

    400 with `bad_signature`, `stale_event` (clock skew beyond 300 s) or `malformed_event`;
    415 for a body not sent as application/json, as providers send their events.
    """
    json_body_required(request)
    webhook_handle(
        provider="demo",
        body=request.body,
        signature_header=request.headers.get("Stockwire-Signature", ""),
    )
    return Status(200, {"received": True})
