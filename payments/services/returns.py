"""Returns: shipped goods come back (restocked or not) and their price is refunded."""

from collections.abc import Sequence

from django.db import transaction

from inventory.models import Warehouse
from orders.models import Order
from orders.services import LineRequest, order_lines_return
from payments.models import Refund
from payments.services.refunds import refund_partial


@transaction.atomic
def refund_return(
    *,
    order: Order,
    lines: Sequence[LineRequest],
    restock_warehouse: Warehouse | None = None,
    refund_shipping: bool = False,
    actor=None,
    reason: str = "",
) -> Refund | None:
    """Take shipped units back and refund their price (and the shipping charge, when asked)
    in one transaction; return the refund (None when the units were free and no shipping was
    refunded).

    orders counts the units returned and restocks them into `restock_warehouse`
    (`order_lines_return`); the refund is `refund_partial`. Raises what they raise (a bad
    line, more than shipped, a refund beyond what is left of the payment); nothing changes
    then. Sends `refund_issued` (through `refund_partial`): the credit note for exactly that
    amount and the refund e-mail follow.
    """
    amount = order_lines_return(
        order=order,
        lines=lines,
        restock_warehouse=restock_warehouse,
        refund_shipping=refund_shipping,
        actor=actor,
        reason=reason,
    )
    if amount == 0:
        return None
    return refund_partial(
        order=order, amount=amount, actor=actor, reason=(reason or "goods returned").strip()
    )
