"""Read queries of the orders app, shared by the API and the admin."""

from django.contrib.auth import get_user_model
from django.db.models import F, IntegerField, OuterRef, Prefetch, Q, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce

from inventory.models import Backorder
from orders.models import Customer, Fulfilment, FulfilmentLine, Order, OrderLine, OrderStatus
from orders.services.customers import user_email_normalise

# An order whose goods reached (or are on their way to) the customer: its buyer has the units
# shipped of each line (a refunded order's buyer gave the money back, and counts no more).
RECEIVED_STATUSES = (OrderStatus.PARTIALLY_SHIPPED, OrderStatus.SHIPPED, OrderStatus.DELIVERED)


def _orders() -> QuerySet[Order]:
    return Order.objects.select_related("customer__user").prefetch_related(
        Prefetch("lines", queryset=OrderLine.objects.order_by("id")),
        Prefetch("shipments", queryset=Fulfilment.objects.order_by("created_at", "id")),
        Prefetch(
            "shipments__lines",
            queryset=FulfilmentLine.objects.select_related("line", "warehouse").order_by(
                "line_id", "warehouse_id"
            ),
        ),
    )


def order_list_for_customer(*, customer: Customer) -> QuerySet[Order]:
    """The customer's orders, newest first, with their lines and shipments prefetched."""
    return _orders().filter(customer=customer)


def order_get_for_customer(*, customer: Customer, number: str) -> Order:
    """One of the customer's orders; another customer's order raises Order.DoesNotExist too,
    so its existence is not revealed."""
    return _orders().get(customer=customer, number=number)


def order_get(*, number: str) -> Order:
    """Any order by number (staff), with lines and shipments prefetched."""
    return _orders().get(number=number)


def customer_received_product(*, customer: Customer, product_id: int) -> bool:
    """Whether units of the product left in a shipment of one of the customer's orders, shipped
    or on their way, not refunded, and were not all returned: a returned unit's money came back
    with it (one query)."""
    return OrderLine.objects.filter(
        order__customer=customer,
        order__status__in=RECEIVED_STATUSES,
        shipped_quantity__gt=F("returned_quantity"),
        variant__product_id=product_id,
    ).exists()


def products_received(*, product_ids: list[int]) -> list[tuple[int, int]]:
    """(customer id, product id) for each of these products shipped to a customer (as in
    `customer_received_product`), each pair once, in that order (one query)."""
    return list(
        OrderLine.objects.filter(
            variant__product_id__in=product_ids,
            order__status__in=RECEIVED_STATUSES,
            shipped_quantity__gt=F("returned_quantity"),
        )
        .values_list("order__customer_id", "variant__product_id")
        .distinct()
        .order_by("order__customer_id", "variant__product_id")
    )


def backordered_lines_drift() -> list[str]:
    """Order lines whose `backordered_quantity` is not the units inventory's backorder of
    their order and variant waits for; one line of text each (`manage.py orders_verify`).

    The two move together in every service (checkout, allocation, cancellation); a
    difference means one was changed behind the other's back. One query.
    """
    waiting = Backorder.objects.filter(
        reference=OuterRef("order__number"), variant=OuterRef("variant")
    ).values_list(F("quantity") - F("allocated") - F("cancelled"))[:1]
    lines = (
        OrderLine.objects.annotate(
            waiting=Coalesce(Subquery(waiting, output_field=IntegerField()), Value(0))
        )
        .exclude(backordered_quantity=F("waiting"))
        .select_related("order")
        .order_by("order__number", "sku")
    )
    return [
        f"{line.order.number} {line.sku}: the line waits for {line.backordered_quantity} units, "
        f"its backorder for {line.waiting}"
        for line in lines
    ]


def users_with_email(*, email: str) -> QuerySet:
    """Users whose username or e-mail is the normalised `email`, in either case.

    A customer's username is their e-mail; a staff member's may not be, so the e-mail column
    counts too: an address is taken when any user holds it in either column.
    """
    return get_user_model().objects.filter(Q(username__iexact=email) | Q(email__iexact=email))


def account_ids(*, identifier: str) -> list[int]:
    """The users a log-in typed as `identifier` (an e-mail, or a staff member's username) may
    be an attempt on, as the database matches it: what a log-in limit counts per account, so
    that one account typed several ways (its username, its e-mail, letters the database folds
    alike, a dotless i and an i) counts once."""
    users = users_with_email(email=user_email_normalise(identifier))
    return sorted(users.values_list("pk", flat=True))
