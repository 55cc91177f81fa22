"""Staff endpoints for warehouse integrations: staff tokens only."""

from django.http import HttpRequest, JsonResponse
from ninja import Router

from orders import selectors as order_selectors
from orders import services as order_services
from orders.models import Order
from storefront.api.errors import ApiError, Problem, ValidationProblem
from storefront.api.orders import OrderNumber, order_body
from storefront.api.schemas import OrderOut, ShipIn
from storefront.api.security import staff_token_auth

router = Router(tags=["staff"], auth=staff_token_auth)


@router.post(
    "/orders/{number}/ship",
    response={
        200: OrderOut,
        401: Problem,
        403: Problem,
        404: Problem,
        409: Problem,
        422: ValidationProblem,
    },
    summary="Ship a paid order",
)
def order_ship(request: HttpRequest, number: OrderNumber, shipment: ShipIn):
    """Mark a paid order shipped with its tracking number; 409 `invalid_transition` otherwise."""
    try:
        order = order_selectors.order_get(number=number)
    except Order.DoesNotExist:
        raise ApiError(404, "not_found", f"No order {number}.") from None
    order = order_services.order_ship(
        order=order, tracking_number=shipment.tracking_number, actor=request.auth
    )
    response = JsonResponse(order_body(order))
    response["Cache-Control"] = "private, no-store"
    return response
