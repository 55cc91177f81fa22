"""A customer's orders: place (idempotently), list, read, cancel, and the invoice once paid.

Orders are looked up through the caller's customer only, so another customer's order number
answers 404 exactly like a number that does not exist.
"""

import logging
from collections.abc import Iterable
from decimal import Decimal
from typing import Annotated, Any

from django.http import FileResponse, HttpRequest, HttpResponse, JsonResponse
from django.urls import reverse
from ninja import Path, Router

from orders import selectors as order_selectors
from orders import services as order_services
from orders.models import Fulfilment, Order, OrderLine
from payments import selectors as payment_selectors
from payments.models import Invoice
from storefront import services
from storefront.api.errors import ApiError, ConflictProblem, Problem, ValidationProblem
from storefront.api.pages import DEFAULT_PAGE_SIZE, Limit, Offset, listing_total
from storefront.api.schemas import InvoiceOut, OrderIn, OrderOut, OrderPageOut, money
from storefront.api.security import token_auth

logger = logging.getLogger("stockwire.api")
# A storage that does not answer is usually back within a minute.
DOCUMENT_RETRY_AFTER_SECONDS = 60

router = Router(tags=["orders"], auth=token_auth)

OrderNumber = Annotated[str, Path(pattern=r"^[A-Za-z0-9-]{1,32}$")]
# Read from the request rather than declared as a ninja parameter: a missing key is the
# contract's 400, not the 422 of a missing parameter. Documented as required all the same.
IDEMPOTENCY_KEY_DOC = {
    "parameters": [
        {
            "in": "header",
            "name": "Idempotency-Key",
            "required": True,
            "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": r"^\S+$"},
            "description": "Unique per new order; repeat it to retry the same order safely.",
        }
    ],
    "responses": {
        201: {
            "headers": {
                "Idempotent-Replayed": {
                    "description": "`true` when this answer repeats the first one for the key.",
                    "schema": {"type": "string", "enum": ["true"]},
                }
            }
        }
    },
}


def order_body(
    order: Order,
    *,
    lines: Iterable[OrderLine] | None = None,
    shipments: Iterable[Fulfilment] | None = None,
    refunded: Decimal | None = None,
) -> dict[str, Any]:
    """The contract's order object as JSON-ready data (also what idempotency keys store).

    `lines`, `shipments` and `refunded` save queries when the caller knows them already (the
    order just placed: its lines, none shipped, nothing refunded; a page of orders: the
    refunds of all of them at once).
    """

    def stamp(value) -> str | None:
        return value.isoformat() if value else None

    if refunded is None:
        refunded = payment_selectors.refunded_by_order(order_ids=[order.pk])[order.pk]
    address = order.shipping_address or {}
    return {
        "number": order.number,
        "status": order.status,
        "currency": order.currency,
        "subtotal": money(order.subtotal),
        "shipping": money(order.shipping),
        "total": money(order.total),
        "lines": [
            {
                "sku": line.sku,
                "name": line.name,
                "quantity": line.quantity,
                "shipped_quantity": line.shipped_quantity,
                "cancelled_quantity": line.cancelled_quantity,
                "returned_quantity": line.returned_quantity,
                "backordered_quantity": line.backordered_quantity,
                "unit_price": money(line.unit_price),
                "line_total": money(line.line_total),
            }
            for line in (order.lines.all() if lines is None else lines)
        ],
        "shipments": [
            {
                "tracking_number": shipment.tracking_number,
                "carrier": shipment.carrier,
                "shipped_at": stamp(shipment.created_at),
                "lines": [
                    {
                        "sku": item.line.sku,
                        "quantity": item.quantity,
                        "warehouse": item.warehouse.code,
                    }
                    for item in shipment.lines.all()
                ],
            }
            for shipment in (order.shipments.all() if shipments is None else shipments)
        ],
        "refunded": money(refunded),
        "shipping_address": {
            field: str(address.get(field, ""))
            for field in ("name", "line1", "city", "postal_code", "country")
        },
        "tracking_number": order.tracking_number,
        "placed_at": stamp(order.placed_at),
        "paid_at": stamp(order.paid_at),
        "shipped_at": stamp(order.shipped_at),
        "cancelled_at": stamp(order.cancelled_at),
    }


def _private(response: HttpResponse) -> HttpResponse:
    response["Cache-Control"] = "private, no-store"
    return response


def _json(status: int, body: Any) -> HttpResponse:
    return _private(JsonResponse(body, status=status, safe=False))


def _customer_order(request: HttpRequest, number: str) -> Order:
    customer = order_services.customer_for_user(user=request.auth)
    try:
        return order_selectors.order_get_for_customer(customer=customer, number=number)
    except Order.DoesNotExist:
        raise ApiError(404, "not_found", f"You have no order {number}.") from None


@router.post(
    "/orders",
    response={
        201: OrderOut,
        400: Problem,
        401: Problem,
        409: ConflictProblem,
        422: ValidationProblem,
    },
    summary="Place an order",
    openapi_extra=IDEMPOTENCY_KEY_DOC,
)
def order_place(request: HttpRequest, payload: OrderIn):
    """Reserve stock and place an order; prices come from the catalog, never the client.

    `Idempotency-Key` is required: a retry with the same key and body answers the first answer
    again without a second order; the same key with another body answers 422
    `idempotency_key_reused`. Out of stock answers 409 `out_of_stock` with the short `lines`.
    """
    key = request.headers.get("Idempotency-Key", "").strip()
    if not key or len(key) > 255 or "\x00" in key:
        raise ApiError(
            400,
            "idempotency_key_required",
            "Send an Idempotency-Key header (1 to 255 characters) with every new order.",
        )
    user = request.auth
    data = payload.dict()

    def perform(record: services.RecordAnswer) -> tuple[int, dict]:
        answer: dict[str, Any] = {}

        def record_answer(order: Order, lines: list[OrderLine]) -> None:
            # Before the stock is reserved: the key commits with the order, outside the
            # stock lock window.
            answer["body"] = order_body(order, lines=lines, shipments=(), refunded=Decimal("0.00"))
            record(201, answer["body"])

        def amend_answer(order: Order, lines: list[OrderLine]) -> None:
            # Some lines wait for stock: the answer recorded before the reservation says how
            # many, in the same transaction.
            answer["body"] = order_body(order, lines=lines, shipments=(), refunded=Decimal("0.00"))
            services.idempotent_answer_amend(user=user, key=key, body=answer["body"])

        order_services.order_place(
            customer=order_services.customer_for_user(user=user),
            lines=[
                order_services.LineRequest(sku=line["sku"], quantity=line["quantity"])
                for line in data["lines"]
            ],
            shipping_address=data["shipping_address"],
            actor=user,
            on_written=record_answer,
            on_backordered=amend_answer,
        )
        return 201, answer["body"]

    answer = services.idempotent_perform(
        user=user,
        key=key,
        fingerprint=services.request_fingerprint(
            method=request.method, path=request.path, payload=data
        ),
        perform=perform,
        refusals=(order_services.OrderError,),
    )
    response = _json(answer.status, answer.body)
    if answer.replayed:
        response["Idempotent-Replayed"] = "true"
    return response


@router.get(
    "/orders",
    response={200: OrderPageOut, 401: Problem, 422: ValidationProblem},
    summary="List my orders",
)
def order_list(request: HttpRequest, limit: Limit = DEFAULT_PAGE_SIZE, offset: Offset = 0):
    """A page of the caller's orders, newest first, with their `count`; `limit` is at most 100."""
    customer = order_services.customer_for_user(user=request.auth)
    orders = order_selectors.order_list_for_customer(customer=customer)
    page = list(orders[offset : offset + limit])
    count = listing_total(orders, offset=offset, limit=limit, page=page)
    refunded = payment_selectors.refunded_by_order(order_ids=[order.pk for order in page])
    items = [order_body(order, refunded=refunded[order.pk]) for order in page]
    return _json(200, {"count": count, "items": items})


@router.get(
    "/orders/{number}",
    response={200: OrderOut, 401: Problem, 404: Problem, 422: ValidationProblem},
    summary="Get one of my orders",
)
def order_detail(request: HttpRequest, number: OrderNumber):
    """One of the caller's orders; another customer's number answers 404."""
    return _json(200, order_body(_customer_order(request, number)))


@router.post(
    "/orders/{number}/cancel",
    response={200: OrderOut, 401: Problem, 404: Problem, 409: Problem, 422: ValidationProblem},
    summary="Cancel one of my orders",
)
def order_cancel(request: HttpRequest, number: OrderNumber):
    """Cancel before shipping (stock is released); later answers 409 `invalid_transition`."""
    order = _customer_order(request, number)
    order = order_services.order_cancel(order=order, actor=request.auth, reason="by the customer")
    return _json(200, order_body(order))


@router.get(
    "/orders/{number}/invoice",
    response={200: InvoiceOut, 401: Problem, 404: Problem, 422: ValidationProblem},
    summary="Get the invoice of one of my orders",
)
def order_invoice(request: HttpRequest, number: OrderNumber):
    """The invoice, once the order is paid; 404 before. `document_url` is null until the
    document task has rendered it."""
    invoice = _customer_invoice(request, number)
    body = {
        "number": invoice.number,
        "issued_at": invoice.issued_at.isoformat(),
        "total": money(invoice.total),
        "currency": invoice.currency,
        "document_url": request.build_absolute_uri(
            reverse("api-v1:order_invoice_document", args=[number])
        )
        if invoice.document
        else None,
    }
    return _json(200, body)


@router.get(
    "/orders/{number}/invoice/document",
    response={200: None, 401: Problem, 404: Problem, 422: ValidationProblem},
    url_name="order_invoice_document",
    summary="Download the invoice document of one of my orders",
    openapi_extra={
        "responses": {200: {"description": "The invoice (HTML)", "content": {"text/html": {}}}}
    },
)
def order_invoice_document(request: HttpRequest, number: OrderNumber):
    """The rendered invoice, served through the API so only the order's customer gets it
    (media files are not public); 404 before payment or while it is still being rendered."""
    invoice = _customer_invoice(request, number)
    if not invoice.document:
        raise ApiError(404, "not_found", f"The invoice of {number} is still being rendered.")
    try:
        document = invoice.document.open("rb")
    except OSError as error:  # the media storage out of reach, or the file lost
        logger.error(
            "invoice document %s cannot be read: %s", invoice.document.name, error, exc_info=True
        )
        raise ApiError(
            503,
            "document_unavailable",
            f"The invoice of {number} cannot be read now; try again later.",
            headers={"Retry-After": str(DOCUMENT_RETRY_AFTER_SECONDS)},
        ) from error
    return _private(
        FileResponse(
            document, content_type="text/html; charset=utf-8", filename=f"{invoice.number}.html"
        )
    )


def _customer_invoice(request: HttpRequest, number: str) -> Invoice:
    order = _customer_order(request, number)
    try:
        return payment_selectors.invoice_get_for_order(order=order)
    except Invoice.DoesNotExist:
        raise ApiError(404, "not_found", f"Order {number} has no invoice yet.") from None
