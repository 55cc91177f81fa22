"""Back-ordered lines: units sold beyond stock get their stock as it comes in.

A checkout of a variant that back-orders (or pre-orders) reserves what is available and
records the rest on its line as `backordered_quantity`. When stock becomes free (a receipt, a
purchase order received, a release), `order_backorders_allocate` runs after that commit, in
a transaction of its own: it locks the waiting orders (primary-key order), lets inventory
reserve the free units for their backorders, the oldest first, and lowers each line's count.
A line that waits for nothing more is complete: `order_lines_allocated` names it, and its
receiver requests the customer's e-mail.
"""

from collections import defaultdict
from collections.abc import Sequence

from django.db import transaction
from django.db.models import F

from inventory import selectors as inventory_selectors
from inventory.services import InvalidStockOperation, backorders_allocate
from orders.models import Order, OrderEvent, OrderLine, OrderStatus
from orders.signals import order_lines_allocated

# An order whose lines may still wait for stock: placed, not yet shipped in full, cancelled
# or refunded (those release their backorders).
WAITING = (OrderStatus.PENDING_PAYMENT, OrderStatus.PAID, OrderStatus.PARTIALLY_SHIPPED)


def order_backorders_allocate(*, variant_ids: Sequence[int]) -> int:
    """Give the units of these variants free now to the orders waiting for them, the oldest
    backorder first; return the number of orders served.

    Run by the `stock_changed` receiver after a commit that freed units. One query when
    nothing waits. Otherwise one transaction: the orders are locked (primary-key order, as
    every order service takes its order first), inventory reserves what is free
    (`backorders_allocate`), each line's `backordered_quantity` falls by its units, the
    order's timeline says so, and `order_lines_allocated(order, lines, completed)` is sent per
    order. Sends that signal; its receiver requests the e-mail of each completed line.
    """
    references = inventory_selectors.backorder_references(variant_ids=variant_ids)
    if not references:
        return 0
    with transaction.atomic():
        orders = {
            order.number: order
            for order in Order.objects.select_for_update(no_key=True)
            .filter(number__in=references, status__in=WAITING)
            .order_by("pk")
        }
        allocated = backorders_allocate(references=list(orders), variant_ids=variant_ids)
        by_order: dict[str, list] = defaultdict(list)
        for units in allocated:
            by_order[units.reference].append(units)
        for number, order_units in by_order.items():
            _lines_allocated(order=orders[number], allocated=order_units)
    return len(by_order)


def order_backorders_sweep() -> int:
    """Serve every backorder that free units can serve now; return the orders served.

    The safety net under the best-effort allocation after a commit (`stock_changed`'s
    receiver, a checkout that back-ordered): one that failed, or a free unit no signal
    announced, is served by the next sweep (beat, every minute). One query when nothing waits.
    """
    variant_ids = inventory_selectors.backordered_variant_ids()
    if not variant_ids:
        return 0
    return order_backorders_allocate(variant_ids=variant_ids)


def _lines_allocated(*, order: Order, allocated: list) -> None:
    lines = {line.variant_id: line for line in OrderLine.objects.filter(order=order)}
    touched = []
    for units in allocated:
        line = lines[units.variant_id]
        if not OrderLine.objects.filter(
            pk=line.pk, backordered_quantity__gte=units.quantity
        ).update(backordered_quantity=F("backordered_quantity") - units.quantity):
            raise InvalidStockOperation(
                f"line {line.sku} of {order.number} waits for fewer units than inventory "
                "allocated; run `manage.py inventory_verify`"
            )
        line.refresh_from_db()
        touched.append((line, units.quantity))
    completed = [line for line, _ in touched if line.backordered_quantity == 0]
    OrderEvent.objects.create(
        order=order,
        kind="backorder_allocated",
        from_status=order.status,
        to_status=order.status,
        note="in stock now: "
        + ", ".join(
            f"{quantity} × {line.sku}"
            + (f" ({line.backordered_quantity} still awaited)" if line.backordered_quantity else "")
            for line, quantity in touched
        ),
    )
    order_lines_allocated.send(
        sender=order_backorders_allocate, order=order, lines=touched, completed=completed
    )
