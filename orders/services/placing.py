"""Placing an order: validate, price from the catalog, write, reserve stock, then announce."""

import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Case, Value, When

from catalog.selectors import PricedSku, priced_skus
from core.commit import on_commit_robust
from core.sql import insert_with_children
from inventory.services import OutOfStock, stock_reserve
from orders.models import Customer, Order, OrderEvent, OrderLine, OrderStatus
from orders.services.backorders import order_backorders_allocate
from orders.services.errors import InvalidOrder, LinesOutOfStock, UnknownSku
from orders.signals import order_placed

# Crockford's base32: no I, L, O or U, so a number read over the phone is not misheard.
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
ORDER_NUMBER_PREFIX = "SW-"
ORDER_NUMBER_LENGTH = 8  # 40 random bits: a clash is a one-in-a-trillion event, retried once.
# Far above any real basket; bounds the work and the size of one reservation statement.
MAX_LINES = 100
MAX_QUANTITY_PER_LINE = 1000
SHIPPING_ADDRESS_FIELDS = ("name", "line1", "city", "postal_code", "country")
CENTS = Decimal("0.01")
# The largest amount the order's money columns hold; a line's total is at most the order's.
_TOTAL = Order._meta.get_field("total")
MAX_ORDER_TOTAL = Decimal(10) ** (_TOTAL.max_digits - _TOTAL.decimal_places) - CENTS


@dataclass(frozen=True)
class LineRequest:
    sku: str
    quantity: int


def order_number_new() -> str:
    """Return a fresh human-friendly order number such as `SW-7K2Q9XHD`."""
    bits = secrets.randbits(5 * ORDER_NUMBER_LENGTH)
    chars = [_CROCKFORD[(bits >> (5 * i)) & 31] for i in range(ORDER_NUMBER_LENGTH)]
    return ORDER_NUMBER_PREFIX + "".join(chars)


def shipping_for(subtotal: Decimal) -> Decimal:
    """Flat-rate shipping, free at or above the threshold (both from settings)."""
    if subtotal >= Decimal(settings.SHIPPING_FREE_ABOVE):
        return Decimal("0.00")
    return Decimal(settings.SHIPPING_FLAT_RATE).quantize(CENTS)


# Called with the written order and its lines, inside the transaction, before the stock is
# reserved: the caller's rows that must commit with the order are written outside the lock window.
OnWritten = Callable[[Order, list[OrderLine]], None]


def order_place(
    *,
    customer: Customer,
    lines: Sequence[LineRequest],
    shipping_address: dict,
    actor=None,
    on_written: OnWritten | None = None,
    on_backordered: OnWritten | None = None,
) -> Order:
    """Place an order: validate the lines, price them from the catalog, write the order and
    its lines, reserve the stock, then send `order_placed`.

    Each attempt is one `transaction.atomic` block (a savepoint inside a caller's
    transaction) ending with the reservation and the signal, so the stock rows stay locked
    only for that UPDATE, the receivers' writes (the outbox row) and the commit. When the
    reservation fails only because availability changed between inventory's plan and its
    update while enough is still available, or the random order number clashed, the whole
    attempt is repeated once, planning the reservation under the stock rows' locks: so a
    refusal (`LinesOutOfStock`) always means that the units were short when it was decided,
    never that other buyers were faster twice.

    `on_written(order, lines)`, if given, runs after the order is written, before the
    reservation and `order_placed`, in the same transaction: the API records its idempotency
    key there, so that row commits or rolls back with the order without lengthening the
    stock lock window, and a repeated key fails before any receiver runs.
    An exception from it rolls the attempt back and propagates. `on_backordered(order, lines)`,
    if given, runs in the same transaction once some lines were found to wait for stock (their
    `backordered_quantity` set): the API amends the answer it recorded. A checkout of units
    all available never calls it.

    A variant that back-orders or pre-orders (inventory's `StockPolicy`) sells beyond its
    available units, within its limit: the line's `backordered_quantity` says how many wait
    for stock; they are reserved when stock comes in (`order_backorders_allocate`, also run
    after the commit of a checkout that back-ordered, and by the minute's sweep). A variant
    with units waiting sells its free units to the oldest back-orders first: this checkout
    then waits too (inventory's `stock_reserve`).

    Raises InvalidOrder, UnknownSku, LinesOutOfStock; nothing is written then.
    Sends `order_placed(order)` once the stock is reserved; its receivers request
    `orders.email_send` (confirmation) and bump the customer's order count on commit.
    """
    requested = _validated(lines=lines, shipping_address=shipping_address)
    for attempt in (1, 2):
        number = order_number_new()
        try:
            with transaction.atomic():
                order, order_lines = _order_write(
                    number=number,
                    customer=customer,
                    requested=requested,
                    shipping_address=shipping_address,
                    actor=actor,
                )
                if on_written is not None:
                    on_written(order, order_lines)
                # Last but the signal: from here to the commit the stock rows stay locked.
                backordered = stock_reserve(
                    reference=number,
                    quantities=[(line.variant_id, line.quantity) for line in order_lines],
                    actor=actor,
                    lock_rows=attempt == 2,
                )
                if backordered:
                    _lines_backordered(order_lines=order_lines, backordered=backordered)
                    if on_backordered is not None:
                        on_backordered(order, order_lines)
                    # Units freed while this checkout planned (a cancellation committing
                    # meanwhile) announced themselves before this order waited for them.
                    on_commit_robust(order_backorders_allocate, variant_ids=sorted(backordered))
                # The order exists for good only now: its receivers never see one that the
                # reservation then refuses.
                order_placed.send(sender=order_place, order=order)
            return order
        except OutOfStock as error:
            if attempt == 2 or not error.retryable:
                raise LinesOutOfStock(_shortage_lines(error=error, requested=requested)) from error
        except IntegrityError:
            if attempt == 2 or not Order.objects.filter(number=number).exists():
                raise
    raise AssertionError("unreachable: the second attempt returns or raises")


def _lines_backordered(*, order_lines: list[OrderLine], backordered: dict[int, int]) -> None:
    """Record on each line the units it waits for (inventory back-ordered them by variant).

    Only an order with a back-ordered line gets here: a `deny` checkout writes nothing more.
    One UPDATE for all the lines, as it runs while the stock rows are locked.
    """
    waiting = [line for line in order_lines if backordered.get(line.variant_id)]
    OrderLine.objects.filter(pk__in=[line.pk for line in waiting]).update(
        backordered_quantity=Case(
            *(When(pk=line.pk, then=Value(backordered[line.variant_id])) for line in waiting)
        )
    )
    for line in waiting:
        line.backordered_quantity = backordered[line.variant_id]


@dataclass(frozen=True)
class _Requested:
    lines: list[LineRequest]  # one per SKU, quantities summed, in the caller's order
    variants: dict[str, PricedSku]


def _validated(*, lines: Sequence[LineRequest], shipping_address: dict) -> _Requested:
    if not lines:
        raise InvalidOrder("an order needs at least one line")
    if len(lines) > MAX_LINES:
        raise InvalidOrder(f"an order has at most {MAX_LINES} lines")
    quantities: dict[str, int] = {}
    for line in lines:
        quantity = line.quantity
        if not isinstance(quantity, int) or isinstance(quantity, bool):
            raise InvalidOrder(f"quantity of {line.sku!r} must be a whole number")
        if not 1 <= quantity <= MAX_QUANTITY_PER_LINE:
            raise InvalidOrder(
                f"quantity of {line.sku!r} must be between 1 and {MAX_QUANTITY_PER_LINE}"
            )
        if not isinstance(line.sku, str) or not line.sku.strip():
            raise InvalidOrder("every line needs a SKU")
        quantities[line.sku] = quantities.get(line.sku, 0) + quantity
    if quantities and max(quantities.values()) > MAX_QUANTITY_PER_LINE:
        raise InvalidOrder(f"at most {MAX_QUANTITY_PER_LINE} units of one SKU per order")
    if not isinstance(shipping_address, dict) or any(
        not isinstance(shipping_address.get(field), str) or not shipping_address[field].strip()
        for field in SHIPPING_ADDRESS_FIELDS
    ):
        raise InvalidOrder(f"the shipping address needs {', '.join(SHIPPING_ADDRESS_FIELDS)}")
    variants = priced_skus(skus=list(quantities))
    unknown = [sku for sku in quantities if sku not in variants]
    if unknown:
        raise UnknownSku(unknown)
    return _Requested(
        lines=[LineRequest(sku=sku, quantity=quantity) for sku, quantity in quantities.items()],
        variants=variants,
    )


def _order_write(
    *, number: str, customer: Customer, requested: "_Requested", shipping_address: dict, actor
) -> tuple[Order, list[OrderLine]]:
    """Insert the order, its lines and its first timeline event, in one statement on
    PostgreSQL.

    Through `insert_with_children`, not `save()`: these INSERTs run in every checkout, and
    no model-signal receiver listens to these models (`order_placed` announces the order).
    """
    order_lines = []
    for line in requested.lines:
        variant = requested.variants[line.sku]
        order_lines.append(
            OrderLine(
                variant_id=variant.variant_id,
                sku=variant.sku,
                name=variant.name,
                quantity=line.quantity,
                unit_price=variant.price,
                line_total=(variant.price * line.quantity).quantize(CENTS),
            )
        )
    subtotal = sum((line.line_total for line in order_lines), Decimal("0.00"))
    shipping = shipping_for(subtotal)
    if subtotal + shipping > MAX_ORDER_TOTAL:
        raise InvalidOrder(f"an order's total can be at most {MAX_ORDER_TOTAL}")
    order = Order(
        number=number,
        customer=customer,
        status=OrderStatus.PENDING_PAYMENT,
        currency=settings.SHOP_CURRENCY,
        subtotal=subtotal,
        shipping=shipping,
        total=subtotal + shipping,
        shipping_address=shipping_address,
    )
    placed = OrderEvent(kind="placed", to_status=OrderStatus.PENDING_PAYMENT, actor=actor)
    insert_with_children(order, order_lines, [placed])
    return order, order_lines


def _shortage_lines(*, error: OutOfStock, requested: _Requested) -> list[dict]:
    """Inventory's shortages (by variant id) as the API's `{sku, requested, available}`."""
    sku_of = {variant.variant_id: sku for sku, variant in requested.variants.items()}
    return [
        {"sku": sku_of[s.variant_id], "requested": s.requested, "available": s.available}
        for s in error.shortages
    ]
