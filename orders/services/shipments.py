"""Shipments: an order leaves in one or several parcels, each moving exactly its units.

A shipment names lines and units (by default: everything still to ship), optionally the
warehouse they leave, a tracking number and a carrier. Under the order's row lock it checks
what each line has left, ships those units out of the order's reservation
(`inventory.services.stock_ship`, never more than the warehouse holds for the order), counts
them on the lines and records the `Fulfilment`; the order becomes `partially_shipped`, or
`shipped` once every unit is shipped or cancelled.
"""

from collections.abc import Sequence

from django.db import transaction
from django.db.models import Prefetch, prefetch_related_objects
from django.utils import timezone

from audit.models import AuditAction
from audit.services import audit_record
from inventory.models import Warehouse
from inventory.services import StockUnits, UnitsNotHeld, stock_ship
from orders.models import Fulfilment, FulfilmentLine, Order, OrderEvent, OrderLine, OrderStatus
from orders.services.errors import InvalidOrder, UnitsExceeded
from orders.services.lines import lines_count, order_units_locked, units_summary
from orders.services.placing import LineRequest
from orders.services.transitions import _transition
from orders.signals import order_shipped

S = OrderStatus
SHIPPABLE = (S.PAID, S.PARTIALLY_SHIPPED)
TRACKING_NUMBER_MAX_LENGTH = Fulfilment._meta.get_field("tracking_number").max_length
CARRIER_MAX_LENGTH = Fulfilment._meta.get_field("carrier").max_length


def _cleaned_label(value: str, *, name: str, max_length: int, required: bool) -> str:
    value = (value or "").strip()
    if (required and not value) or len(value) > max_length or "\x00" in value:
        raise InvalidOrder(
            f"a {name} of {1 if required else 0} to {max_length} characters is required"
        )
    return value


@transaction.atomic
def fulfilment_create(
    *,
    order: Order,
    tracking_number: str,
    lines: Sequence[LineRequest] | None = None,
    warehouse: Warehouse | None = None,
    carrier: str = "",
    actor=None,
) -> Fulfilment:
    """Ship units of a paid order in one parcel: `lines` (None: everything still to ship that
    is reserved), from `warehouse` (None: wherever the order holds them, by warehouse
    priority). Units a line waits for (back-ordered) never ship: they count as not there.

    Raises InvalidOrder (tracking number, carrier, a bad line), UnknownSku (a SKU not on the
    order), InvalidTransition (not paid or partially shipped), UnitsExceeded `over_shipment`
    (more than a line has left, or than the warehouse holds for the order); nothing changes.
    Sends `order_shipped(order, actor, shipment)`; its receivers request the shipment's
    e-mail (orders.email_send) and count its units.
    """
    tracking_number = _cleaned_label(
        tracking_number,
        name="tracking number",
        max_length=TRACKING_NUMBER_MAX_LENGTH,
        required=True,
    )
    carrier = _cleaned_label(carrier, name="carrier", max_length=CARRIER_MAX_LENGTH, required=False)
    status, _, units = order_units_locked(
        order=order,
        allowed=SHIPPABLE,
        action="shipped",
        requested=lines,
        # Back-ordered units are not reserved yet: they cannot ship.
        left=lambda line: line.shippable,
        code="over_shipment",
        verb="ship",
    )
    if not units:
        raise InvalidOrder(f"order {order.number} has nothing left to ship")
    line_of_variant = {line.variant_id: line for line, _ in units}
    try:
        shipped = stock_ship(
            reference=order.number,
            units=[
                StockUnits(
                    variant_id=line.variant_id,
                    quantity=quantity,
                    warehouse_id=warehouse.pk if warehouse is not None else None,
                )
                for line, quantity in units
            ],
            actor=actor,
        )
    except UnitsNotHeld as error:
        where = f" in {warehouse.code}" if warehouse is not None else ""
        raise UnitsExceeded(
            code="over_shipment",
            verb=f"ship{where}",
            lines=[
                {
                    "sku": line_of_variant[short.variant_id].sku,
                    "requested": short.requested,
                    "available": short.available,
                }
                for short in error.shortages
            ],
        ) from error
    lines_count(units=units, field="shipped_quantity", code="over_shipment", verb="ship")
    shipment = Fulfilment.objects.create(
        order=order, tracking_number=tracking_number, carrier=carrier, shipped_by=actor
    )
    FulfilmentLine.objects.bulk_create(
        FulfilmentLine(
            fulfilment=shipment,
            line=line_of_variant[unit.variant_id],
            warehouse_id=unit.warehouse_id,
            quantity=unit.quantity,
        )
        for unit in shipped
    )
    _status_after_shipment(
        order=order,
        status=status,
        shipment=shipment,
        note=f"shipment {tracking_number}{f' ({carrier})' if carrier else ''}: "
        + units_summary(units),
        actor=actor,
    )
    prefetch_related_objects(
        [shipment],
        Prefetch("lines", queryset=FulfilmentLine.objects.select_related("line", "warehouse")),
    )
    order_shipped.send(sender=fulfilment_create, order=order, actor=actor, shipment=shipment)
    return shipment


def _status_after_shipment(
    *, order: Order, status: str, shipment: Fulfilment, note: str, actor
) -> None:
    """Move the order to partially_shipped or shipped, or record the shipment on its
    timeline when it stays partially shipped; the order's tracking number becomes the
    shipment's either way."""
    to = (
        S.PARTIALLY_SHIPPED
        if any(line.unshipped for line in OrderLine.objects.filter(order=order))
        else S.SHIPPED
    )
    if to != status:
        _transition(
            order=order,
            action=to,
            allowed=(status,),
            to=to,
            actor=actor,
            note=note,
            tracking_number=shipment.tracking_number,
        )
        return
    before = order.tracking_number
    Order.objects.filter(pk=order.pk).update(
        tracking_number=shipment.tracking_number, updated_at=timezone.now()
    )
    order.refresh_from_db()
    OrderEvent.objects.create(
        order=order, kind="shipment", from_status=status, to_status=status, actor=actor, note=note
    )
    audit_record(
        action=AuditAction.UPDATE,
        obj=order,
        changes={"tracking_number": [before, order.tracking_number]},
        actor=actor,
    )


def order_ship(*, order: Order, tracking_number: str, carrier: str = "", actor=None) -> Order:
    """Ship everything an order still has to ship, in one shipment (`fulfilment_create`).

    What the admin's "ship" action and `POST /staff/orders/{number}/ship` do. Raises and sends
    what `fulfilment_create` does.
    """
    fulfilment_create(order=order, tracking_number=tracking_number, carrier=carrier, actor=actor)
    return order
