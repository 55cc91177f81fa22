"""Read queries of the orders app, shared by the API and the admin."""

from django.db.models import Prefetch, QuerySet

from orders.models import Customer, Order, OrderLine


def _orders() -> QuerySet[Order]:
    return Order.objects.select_related("customer__user").prefetch_related(
        Prefetch("lines", queryset=OrderLine.objects.order_by("id"))
    )


def order_list_for_customer(*, customer: Customer) -> QuerySet[Order]:
    """The customer's orders, newest first, with their lines prefetched."""
    return _orders().filter(customer=customer)


def order_get_for_customer(*, customer: Customer, number: str) -> Order:
    """One of the customer's orders; another customer's order raises Order.DoesNotExist too,
    so its existence is not revealed."""
    return _orders().get(customer=customer, number=number)


def order_get(*, number: str) -> Order:
    """Any order by number (staff), with lines prefetched."""
    return _orders().get(number=number)
