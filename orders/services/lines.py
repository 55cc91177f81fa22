"""Units of an order's lines that one action takes (ship, cancel, return): asked for by SKU,
checked against what each line has left, and counted with guarded F() updates."""

from collections.abc import Callable, Sequence
from decimal import Decimal

from django.db.models import F, Q
from django.db.models.functions import Round

from orders.models import Order, OrderLine
from orders.services.errors import InvalidOrder, InvalidTransition, UnitsExceeded, UnknownSku
from orders.services.placing import MAX_LINES, LineRequest
from orders.services.transitions import order_lock

LineUnits = list[tuple[OrderLine, int]]

# What each count may grow into: ship and cancel take units still to ship (a shipment only
# those not waiting for stock), a return takes units shipped and not yet back.
_ROOM: dict[str, Callable[[int], Q]] = {
    "shipped_quantity": lambda units: Q(
        quantity__gte=F("shipped_quantity")
        + F("cancelled_quantity")
        + F("backordered_quantity")
        + units
    ),
    "cancelled_quantity": lambda units: Q(
        quantity__gte=F("shipped_quantity") + F("cancelled_quantity") + units
    ),
    "returned_quantity": lambda units: Q(shipped_quantity__gte=F("returned_quantity") + units),
}


def line_units(
    *,
    order_lines: Sequence[OrderLine],
    requested: Sequence[LineRequest] | None,
    left: Callable[[OrderLine], int],
    code: str,
    verb: str,
) -> LineUnits:
    """Return (line, units) for the request, in the order's line order.

    `requested` None asks for everything each line has `left`; units of one SKU asked for
    twice are added up. Raises InvalidOrder (no line, a quantity that is not a whole number
    above zero), UnknownSku (a SKU not on the order), UnitsExceeded with `code` (more than
    a line has left).
    """
    if requested is None:
        return [(line, left(line)) for line in order_lines if left(line) > 0]
    if not requested:
        raise InvalidOrder(f"name at least one line to {verb}")
    if len(requested) > MAX_LINES:
        raise InvalidOrder(f"at most {MAX_LINES} lines at once")
    units: dict[str, int] = {}
    for line in requested:
        if not isinstance(line.sku, str) or not line.sku.strip():
            raise InvalidOrder("every line needs a SKU")
        quantity = line.quantity
        if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 1:
            raise InvalidOrder(f"quantity of {line.sku!r} must be a whole number above zero")
        units[line.sku] = units.get(line.sku, 0) + quantity
    by_sku = {line.sku: line for line in order_lines}
    unknown = [sku for sku in units if sku not in by_sku]
    if unknown:
        raise UnknownSku(unknown)
    short = [
        {"sku": sku, "requested": quantity, "available": left(by_sku[sku])}
        for sku, quantity in units.items()
        if quantity > left(by_sku[sku])
    ]
    if short:
        raise UnitsExceeded(code=code, verb=verb, lines=short)
    return [(line, units[line.sku]) for line in order_lines if line.sku in units]


def order_units_locked(
    *,
    order: Order,
    allowed: tuple[str, ...],
    action: str,
    requested: Sequence[LineRequest] | None,
    left: Callable[[OrderLine], int],
    code: str,
    verb: str,
) -> tuple[str, list[OrderLine], LineUnits]:
    """Lock the order, check it may be `action` from its status, and take the request's units
    from its lines as they stand under the lock (`line_units`).

    Returns the status, every line of the order and the (line, units) asked for. Raises
    InvalidTransition when the status is not in `allowed`, and what `line_units` raises.
    """
    status = order_lock(order=order)
    if status not in allowed:
        raise InvalidTransition(number=order.number, action=action, allowed=allowed)
    order_lines = list(OrderLine.objects.filter(order=order).order_by("id"))
    units = line_units(
        order_lines=order_lines, requested=requested, left=left, code=code, verb=verb
    )
    return status, order_lines, units


def lines_count(*, units: LineUnits, field: str, code: str, verb: str) -> None:
    """Add each line's units to its `field` (shipped, cancelled or returned quantity).

    Guarded by the room the line has, so even a caller that did not hold the order's lock
    cannot count a unit twice; a cancelled unit also leaves the line's total, and the units
    the line waits for first (read from `line`, locked with its order). Raises
    UnitsExceeded with `code` when a line has no such room (the caller rolls back).
    """
    for line, quantity in units:
        changes = {field: F(field) + quantity}
        guard = _ROOM[field](quantity)
        if field == "cancelled_quantity":
            changes["line_total"] = Round(
                F("unit_price") * (F("quantity") - F("cancelled_quantity") - quantity), 2
            )
            # Units waiting for stock are cancelled first (inventory's `stock_release` drops
            # them first too): they would have shipped last.
            waiting = min(quantity, line.backordered_quantity)
            if waiting:
                changes["backordered_quantity"] = F("backordered_quantity") - waiting
                guard &= Q(backordered_quantity__gte=waiting)
        if not OrderLine.objects.filter(guard, pk=line.pk).update(**changes):
            raise UnitsExceeded(
                code=code,
                verb=verb,
                lines=[{"sku": line.sku, "requested": quantity, "available": 0}],
            )


def units_amount(units: LineUnits) -> Decimal:
    """The price of these units, as they were bought."""
    return sum((line.unit_price * quantity for line, quantity in units), Decimal("0.00"))


def units_summary(units: LineUnits) -> str:
    """Say which units, as `2 x MUG-1, 1 x TEE-M` (with the multiplication sign): for the
    order's timeline."""
    return ", ".join(f"{quantity} × {line.sku}" for line, quantity in units)
