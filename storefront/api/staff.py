"""Staff endpoints for warehouse and support integrations: staff tokens only.

Ship (everything left, or a shipment of some lines), cancel units not yet shipped, take
shipped units back with a refund. Each needs the permission the admin's same action needs,
so a role (backoffice/roles.py) grants the same through either door. Each answers the order
as it now stands.
"""

from django.http import HttpRequest, JsonResponse
from ninja import Router

from inventory import selectors as inventory_selectors
from inventory.models import Warehouse
from orders import selectors as order_selectors
from orders import services as order_services
from orders.models import Order
from payments import services as payment_services
from storefront.api.errors import ApiError, ConflictProblem, Problem, ValidationProblem
from storefront.api.orders import OrderNumber, order_body
from storefront.api.schemas import LinesCancelIn, OrderOut, ReturnIn, ShipIn, ShipmentIn
from storefront.api.security import staff_token_auth

router = Router(tags=["staff"], auth=staff_token_auth)

ANSWERS = {
    401: Problem,
    403: Problem,
    404: Problem,
    409: ConflictProblem,
    422: ValidationProblem,
}


def _allowed(request: HttpRequest, permission: str) -> None:
    """Refuse (403) a staff member whose role does not grant `permission`."""
    if not request.auth.has_perm(permission):
        raise ApiError(403, "permission_denied", f"Your role does not grant {permission}.")


def _order(number: str) -> Order:
    try:
        return order_selectors.order_get(number=number)
    except Order.DoesNotExist:
        raise ApiError(404, "not_found", f"No order {number}.") from None


def _warehouse(code: str | None, *, field: str) -> Warehouse | None:
    if code is None:
        return None
    try:
        return inventory_selectors.warehouse_get(code=code)
    except Warehouse.DoesNotExist:
        raise ApiError(
            422,
            "unknown_warehouse",
            f"No warehouse {code}.",
            extra={"errors": [{"field": field, "message": "no such warehouse"}]},
        ) from None


def _lines(payload) -> list[order_services.LineRequest]:
    return [
        order_services.LineRequest(sku=line.sku, quantity=line.quantity) for line in payload.lines
    ]


def _answer(order: Order, status: int = 200) -> JsonResponse:
    response = JsonResponse(
        order_body(order_selectors.order_get(number=order.number)), status=status
    )
    response["Cache-Control"] = "private, no-store"
    return response


@router.post(
    "/orders/{number}/ship",
    response={200: OrderOut, **ANSWERS},
    summary="Ship everything a paid order has left to ship",
)
def order_ship(request: HttpRequest, number: OrderNumber, shipment: ShipIn):
    """Ship every unit still to ship in one shipment with its tracking number; 409
    `invalid_transition` unless the order is paid or partially shipped."""
    _allowed(request, "orders.ship_order")
    order = order_services.order_ship(
        order=_order(number),
        tracking_number=shipment.tracking_number,
        carrier=shipment.carrier,
        actor=request.auth,
    )
    return _answer(order)


@router.post(
    "/orders/{number}/shipments",
    response={201: OrderOut, **ANSWERS},
    summary="Ship some units of a paid order",
)
def shipment_create(request: HttpRequest, number: OrderNumber, shipment: ShipmentIn):
    """Ship these units in one shipment, from `warehouse` if given; the order becomes
    `partially_shipped`, or `shipped` once every unit is shipped or cancelled. 409
    `over_shipment` (more than a line has left, or than the warehouse holds for the order),
    409 `invalid_transition` (not paid), 422 `unknown_sku` (not on the order)."""
    _allowed(request, "orders.ship_order")
    order = _order(number)
    order_services.fulfilment_create(
        order=order,
        lines=_lines(shipment),
        warehouse=_warehouse(shipment.warehouse, field="warehouse"),
        tracking_number=shipment.tracking_number,
        carrier=shipment.carrier,
        actor=request.auth,
    )
    return _answer(order, status=201)


@router.post(
    "/orders/{number}/cancel-lines",
    response={200: OrderOut, **ANSWERS},
    summary="Cancel units of an order that have not shipped",
)
def lines_cancel(request: HttpRequest, number: OrderNumber, cancellation: LinesCancelIn):
    """Cancel these units: their stock is released, the totals fall by their price (the
    shipping charge stays) and a paid order is refunded that amount. Cancelling everything
    left cancels the order (or completes it when some shipped). 409 `over_cancellation`,
    409 `invalid_transition`, 422 `unknown_sku`."""
    _allowed(request, "orders.cancel_order")
    order = _order(number)
    order_services.order_lines_cancel(
        order=order, lines=_lines(cancellation), actor=request.auth, reason=cancellation.reason
    )
    return _answer(order)


@router.post(
    "/orders/{number}/returns",
    response={200: OrderOut, **ANSWERS},
    summary="Take shipped units back and refund them",
)
def return_refund(request: HttpRequest, number: OrderNumber, goods: ReturnIn):
    """Count these shipped units as returned, restock them into `restock_warehouse` if given,
    and refund their price (plus the shipping charge with `refund_shipping`, once per order).
    409 `over_return`, `shipping_refunded_already`, `refund_exceeds_payment`,
    `invalid_transition`; 422 `unknown_sku`, `unknown_warehouse`."""
    _allowed(request, "payments.issue_refund")
    order = _order(number)
    payment_services.refund_return(
        order=order,
        lines=_lines(goods),
        restock_warehouse=_warehouse(goods.restock_warehouse, field="restock_warehouse"),
        refund_shipping=goods.refund_shipping,
        actor=request.auth,
        reason=goods.reason,
    )
    return _answer(order)
