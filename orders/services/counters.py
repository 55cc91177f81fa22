"""Derived sales counters: bumped in the database after commits (`SET f = f + delta`, what an F()
expression sends), recomputed by the reconcile task.

Definitions (the reconcile task recomputes exactly these from the source rows):
- Customer.order_count: orders the customer placed, whatever became of them.
- Customer.lifetime_value: totals of the customer's orders that are paid and stay paid
  (paid, partially shipped, shipped, delivered); refunding the last of the payment that paid
  an order takes its total back off (a partial refund leaves the order paid, and counted); a
  partial cancellation lowers the total, and the counter with it.
- DailySales(date): orders paid that day (UTC), their units not cancelled and their totals
  (gross of refunds, net of partial cancellations).
- VariantSales.units_sold: units on paid orders, less those cancelled; units_shipped: units
  in shipments.

The bumps run after the commit of what they count (receivers register them with
`transaction.on_commit`), so each of them logs its failure instead of raising it: the order or
payment is saved, an error would reach its caller as a failure (and stop Django from running
the transaction's later on-commit callbacks, the cache invalidation among them), and the
nightly reconcile repairs the drift.
"""

import functools
import logging
from collections import defaultdict
from collections.abc import Callable
from decimal import Decimal

from django.db import DatabaseError, models, transaction
from django.db.models import Count, F, Q, Sum
from django.db.models.functions import Coalesce, TruncDate

from core.sql import update_adding, upsert_adding
from orders.models import (
    Customer,
    DailySales,
    FulfilmentLine,
    Order,
    OrderLine,
    OrderStatus,
    VariantSales,
)

logger = logging.getLogger(__name__)

ZERO = Decimal("0.00")
LIFETIME_STATUSES = (
    OrderStatus.PAID,
    OrderStatus.PARTIALLY_SHIPPED,
    OrderStatus.SHIPPED,
    OrderStatus.DELIVERED,
)
# Units an order line sold: those not cancelled.
UNITS_SOLD = F("quantity") - F("cancelled_quantity")


def _after_commit(bump: Callable[..., None]) -> Callable[..., None]:
    """Make a counter bump log its failure instead of raising it (see the module docstring)."""

    @functools.wraps(bump)
    def logged(**kwargs) -> None:
        try:
            bump(**kwargs)
        except Exception:
            logger.warning(
                "counter bump failed after the commit; the reconcile repairs it",
                extra={"counter": bump.__name__, **kwargs},
                exc_info=True,
            )

    return logged


def _units_by_variant(order_id: int) -> dict[int, int]:
    units: dict[int, int] = defaultdict(int)
    for variant_id, quantity in (
        OrderLine.objects.filter(order_id=order_id)
        .annotate(sold=UNITS_SOLD)
        .values_list("variant_id", "sold")
    ):
        units[variant_id] += quantity
    return dict(units)


def _variant_sales_add(*, units: dict[int, int], field: str) -> None:
    """Add `units[variant_id]` to `field` (units_sold or units_shipped) of each variant."""
    fields = ("units_sold", "units_shipped")
    upsert_adding(
        VariantSales,
        key=("variant_id",),
        fields=fields,
        rows=[
            (variant_id, *(quantity if name == field else 0 for name in fields))
            for variant_id, quantity in units.items()
        ],
    )


@_after_commit
def counters_count_placed(*, customer_id: int) -> None:
    """Count a placed order in its customer's order count (call after the commit).

    Sends no signals, requests no tasks.
    """
    update_adding(Customer, pk=customer_id, deltas={"order_count": 1})


@_after_commit
@transaction.atomic
def counters_count_paid(*, order_id: int) -> None:
    """Count a paid order: customer lifetime value, daily sales and units sold per variant.

    Sends no signals, requests no tasks.
    """
    order = Order.objects.only("customer_id", "total", "paid_at").get(pk=order_id)
    units = _units_by_variant(order_id)
    update_adding(Customer, pk=order.customer_id, deltas={"lifetime_value": order.total})
    upsert_adding(
        DailySales,
        key=("date",),
        fields=("orders", "units", "revenue"),
        rows=[(order.paid_at.date(), 1, sum(units.values()), order.total)],
    )
    _variant_sales_add(units=units, field="units_sold")


@_after_commit
def counters_count_shipped(*, fulfilment_id: int) -> None:
    """Count a shipment's units per variant.

    No transaction of its own: one statement writes, so there is nothing to keep together.
    Sends no signals, requests no tasks.
    """
    units: dict[int, int] = defaultdict(int)
    for variant_id, quantity in FulfilmentLine.objects.filter(
        fulfilment_id=fulfilment_id
    ).values_list("line__variant_id", "quantity"):
        units[variant_id] += quantity
    _variant_sales_add(units=dict(units), field="units_shipped")


@_after_commit
@transaction.atomic
def counters_count_cancelled(*, order_id: int, amount: Decimal, units: dict[int, int]) -> None:
    """Take units cancelled from a paid order (and their `amount`) off what it counted:
    lifetime value, the day's units and revenue, units sold per variant.

    An order not paid yet counted nothing; it counts what is left once paid.
    Sends no signals, requests no tasks.
    """
    order = Order.objects.only("customer_id", "paid_at").get(pk=order_id)
    if order.paid_at is None:
        return
    # Plain UPDATEs: the rows exist since the payment was counted, and an upsert's INSERT
    # of negative figures would fail the columns' CHECKs before it met the row.
    update_adding(Customer, pk=order.customer_id, deltas={"lifetime_value": -amount})
    DailySales.objects.filter(date=order.paid_at.date()).update(
        units=F("units") - sum(units.values()), revenue=F("revenue") - amount
    )
    for variant_id, quantity in sorted(units.items()):
        update_adding(VariantSales, pk=variant_id, deltas={"units_sold": -quantity})


@_after_commit
def counters_count_refund(*, order_id: int) -> None:
    """Take a refunded order's total back off its customer's lifetime value, if it was ever
    counted there (only orders marked paid were).

    No transaction of its own: one statement writes.
    Sends no signals, requests no tasks.
    """
    order = Order.objects.only("customer_id", "total", "paid_at").get(pk=order_id)
    if order.paid_at is None:
        return
    update_adding(Customer, pk=order.customer_id, deltas={"lifetime_value": -order.total})


def counters_recomputed() -> dict[str, dict]:
    """Compute every derived counter from orders and their lines (what the rows should hold)."""
    kept = Q(status__in=LIFETIME_STATUSES)
    placed = dict(Order.objects.values_list("customer_id").annotate(n=Count("pk")))
    kept_total = dict(
        Order.objects.filter(kept).values_list("customer_id").annotate(t=Sum("total"))
    )
    customers = {
        pk: (placed.get(pk, 0), kept_total.get(pk, ZERO))
        for pk in Customer.objects.values_list("pk", flat=True)
    }
    paid_days = (
        Order.objects.filter(paid_at__isnull=False)
        .annotate(day=TruncDate("paid_at"))
        .values_list("day")
    )
    units_by_day = dict(
        OrderLine.objects.filter(order__paid_at__isnull=False)
        .annotate(day=TruncDate("order__paid_at"))
        .values_list("day")
        .annotate(units=Sum(UNITS_SOLD))
    )
    daily = {
        day: (orders, units_by_day.get(day, 0), revenue)
        for day, orders, revenue in paid_days.annotate(orders=Count("pk"), revenue=Sum("total"))
    }
    variants = {
        variant_id: (sold, shipped)
        for variant_id, sold, shipped in OrderLine.objects.values_list("variant_id").annotate(
            sold=Coalesce(Sum(UNITS_SOLD, filter=Q(order__paid_at__isnull=False)), 0),
            shipped=Coalesce(Sum("shipped_quantity"), 0),
        )
    }
    return {"customers": customers, "daily": daily, "variants": variants}


@transaction.atomic
def counters_reconcile() -> int:
    """Recompute the derived counters and repair every row that drifted; return how many.

    Counter rows are locked while repaired, so a bump arriving meanwhile waits and then adds to
    the repaired figure. Customers are locked FOR NO KEY UPDATE: a checkout only key-shares
    its customer's row (the order's foreign key) and is not held up. A sale counted between
    the recompute's read and the lock is overwritten by the older figure, which the next run
    repairs: the counters are derived, and a nightly run bounds their drift. Each row is
    repaired on its own (`_repaired`), so a row the database refuses is logged and the others
    are still repaired.
    Sends no signals (row updates, nothing listens), requests no tasks.
    """
    expected = counters_recomputed()
    repaired = 0

    for customer in Customer.objects.select_for_update(no_key=True).order_by("pk"):
        count, value = expected["customers"].get(customer.pk, (0, ZERO))
        if (customer.order_count, customer.lifetime_value) != (count, value):
            values = {"order_count": count, "lifetime_value": value}
            repaired += _repaired(Customer, key={"pk": customer.pk}, values=values)

    current = {row.date: row for row in DailySales.objects.select_for_update().order_by("date")}
    for day in sorted(current.keys() | expected["daily"].keys()):
        orders, units, revenue = expected["daily"].get(day, (0, 0, ZERO))
        row = current.get(day)
        # A missing row reads as zeros (the dashboard's reading): only a figure that differs
        # is a repair.
        stored = (row.orders, row.units, row.revenue) if row else (0, 0, ZERO)
        if stored != (orders, units, revenue):
            values = {"orders": orders, "units": units, "revenue": revenue}
            repaired += _repaired(DailySales, key={"date": day}, values=values)

    current = {
        row.variant_id: row
        for row in VariantSales.objects.select_for_update().order_by("variant_id")
    }
    for variant_id in sorted(current.keys() | expected["variants"].keys()):
        sold, shipped = expected["variants"].get(variant_id, (0, 0))
        row = current.get(variant_id)
        stored = (row.units_sold, row.units_shipped) if row else (0, 0)
        if stored != (sold, shipped):
            values = {"units_sold": sold, "units_shipped": shipped}
            repaired += _repaired(VariantSales, key={"variant_id": variant_id}, values=values)
    return repaired


def _repaired(model: type[models.Model], *, key: dict, values: dict) -> int:
    """Write one counter row's recomputed `values`, creating the row if it is missing, in a
    savepoint of its own; return 1, or 0 when the database refused it (logged with the row):
    one bad row must not stop the nightly repair of all the others."""
    try:
        with transaction.atomic():
            if not model.objects.filter(**key).update(**values):
                model.objects.create(**key, **values)
    except DatabaseError:
        logger.error(
            "counter row not repaired; the others were",
            extra={"counter": model._meta.label, "row": str(key), "values": str(values)},
            exc_info=True,
        )
        return 0
    return 1
