"""A month of demo orders, each lived through the real services and then dated in the past.

Every order is placed with `order_place`, paid through the demo provider's signed webhook
(`webhook_handle`), shipped, delivered, cancelled or refunded by the services staff use, so the
invoices, credit notes, counters, e-mails and timelines are the real ones. The services stamp
the present; each step's rows are then re-dated to when the step "happened" (`_dated`), so the
dashboard shows 30 days of sales. The same plan (a seeded random generator) every run.

To adapt: `_FATES` says what becomes of orders by age, `_STEPS` how each step is taken.
"""

import datetime
import random
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from backoffice.demo.catalog import SKU_PREFIX
from backoffice.demo.customers import customer_address, demo_customers
from catalog.models import Variant
from inventory.selectors import availability_by_variant
from orders.models import Fulfilment, Order, OrderEvent
from orders.services import (
    LineRequest,
    OrderError,
    fulfilment_create,
    order_cancel,
    order_mark_delivered,
    order_place,
    order_ship,
)
from payments.demo_provider import demo_event, demo_event_signed
from payments.models import CreditNote, Invoice, Payment, Refund
from payments.services import refund_issue, webhook_handle

DAYS = 30
SEED = 2026
# Orders a day: a quiet shop with the odd busy day; today has a few, so its panel shows some.
ORDERS_PER_DAY = (1, 3)
ORDERS_TODAY = 5
# Only SKUs with at least this many units are ordered: a month of orders takes a few units of
# each, and the catalog's scarce SKUs stay as the low-stock panel shows them.
MIN_UNITS_TO_ORDER = 12
# What becomes of an order, by how many days ago it was placed: (fate, weight).
_FATES: tuple[tuple[int, tuple[tuple[str, int], ...]], ...] = (
    (0, (("pending", 3), ("paid", 2), ("expired", 1), ("mismatch", 2))),
    (2, (("paid", 3), ("shipped", 3), ("part_shipped", 1), ("cancelled", 1), ("late_payment", 1))),
    (
        6,
        (
            ("shipped", 2),
            ("part_shipped", 1),
            ("delivered", 4),
            ("expired", 1),
            ("late_payment", 1),
        ),
    ),
    (DAYS, (("delivered", 8), ("refunded", 1), ("cancelled", 1), ("expired", 1))),
)
# The steps of each fate, in order.
_PATHS = {
    "pending": ("placed",),
    "paid": ("placed", "paid"),
    "shipped": ("placed", "paid", "shipped"),
    "part_shipped": ("placed", "paid", "part_shipped"),
    "delivered": ("placed", "paid", "shipped", "delivered"),
    "refunded": ("placed", "paid", "shipped", "delivered", "refunded"),
    "cancelled": ("placed", "paid", "cancelled"),
    "expired": ("placed", "expired"),
    "mismatch": ("placed", "underpaid"),
    "late_payment": ("placed", "expired", "late_payment"),
}
# How long after the step before it each step happens: (least, most) minutes.
_DELAYS = {
    "paid": (2, 20),
    "underpaid": (2, 20),
    "shipped": (18 * 60, 40 * 60),
    "part_shipped": (18 * 60, 40 * 60),
    "delivered": (36 * 60, 72 * 60),
    "refunded": (2 * 24 * 60, 5 * 24 * 60),
    "cancelled": (60, 8 * 60),
    "expired": (30, 31),
    "late_payment": (45, 6 * 60),
}
# The Order column each step stamps.
_STAMPED_FIELD = {
    "placed": "placed_at",
    "paid": "paid_at",
    "shipped": "shipped_at",
    "delivered": "delivered_at",
    "refunded": "refunded_at",
    "cancelled": "cancelled_at",
    "expired": "cancelled_at",
}

# Steps that write payments and invoices, and those that may write refunds and credit notes.
_PAYING_STEPS = {"paid", "underpaid", "late_payment"}
_REFUNDING_STEPS = {"refunded", "cancelled"}
_SHIPPING_STEPS = {"shipped", "part_shipped"}


@dataclass(frozen=True)
class PlannedOrder:
    customer_index: int
    lines: tuple[tuple[int, int], ...]  # (variant id, quantity)
    steps: tuple[tuple[str, datetime.datetime], ...]


def _pay(order: Order, *, amount: Decimal) -> None:
    """Pay as the provider would: a signed `payment.succeeded` event through the webhook path."""
    body, signature = demo_event_signed(
        demo_event(order_number=order.number, amount=amount, currency=order.currency)
    )
    webhook_handle(provider="demo", body=body, signature_header=signature)


def _ship(order: Order) -> None:
    order_ship(order=order, tracking_number=f"DEMO-TRK-{order.pk:05d}")


def _ship_part(order: Order) -> None:
    """Ship half of the first line (at least a unit): the rest waits for a second parcel."""
    first = order.lines.order_by("pk").first()
    fulfilment_create(
        order=order,
        tracking_number=f"DEMO-TRK-{order.pk:05d}-1",
        lines=[LineRequest(sku=first.sku, quantity=max(1, first.quantity // 2))],
    )


_STEPS: dict[str, Callable[[Order], object]] = {
    "paid": lambda order: _pay(order, amount=order.total),
    "underpaid": lambda order: _pay(order, amount=order.total - Decimal("5.00")),
    "late_payment": lambda order: _pay(order, amount=order.total),
    "shipped": _ship,
    "part_shipped": _ship_part,
    "delivered": lambda order: order_mark_delivered(order=order),
    "refunded": lambda order: refund_issue(order=order, reason="returned by the customer"),
    "cancelled": lambda order: order_cancel(order=order, reason="by the customer"),
    "expired": lambda order: order_cancel(order=order, reason="unpaid after 30 minutes"),
}


def _fate(rng: random.Random, days_ago: int) -> str:
    weights = next(fates for upto, fates in _FATES if days_ago <= upto)
    names, counts = zip(*weights, strict=True)
    return rng.choices(names, weights=counts)[0]


def _timeline(
    rng: random.Random, *, fate: str, placed_at: datetime.datetime, now: datetime.datetime
) -> tuple[tuple[str, datetime.datetime], ...]:
    """The fate's steps with their times, cut where the next would lie in the future."""
    steps = [("placed", placed_at)]
    for step in _PATHS[fate][1:]:
        least, most = _DELAYS[step]
        at = steps[-1][1] + datetime.timedelta(minutes=rng.uniform(least, most))
        if at >= now:
            break
        steps.append((step, at))
    return tuple(steps)


def plan(*, now: datetime.datetime, variant_ids: list[int], customers: int) -> list[PlannedOrder]:
    """The month of orders to live through, oldest first; the same for the same inputs."""
    rng = random.Random(SEED)
    planned = []
    for days_ago in range(DAYS - 1, -1, -1):
        for _ in range(ORDERS_TODAY if days_ago == 0 else rng.randint(*ORDERS_PER_DAY)):
            fate = _fate(rng, days_ago)
            # Times are offsets from now, never clock times, so what has happened to each order
            # by now is the same whenever the demo is seeded; the oldest stay inside the chart.
            if days_ago == 0:
                # Today's: in the last hours, a pending one within its 30 minutes.
                minutes = rng.uniform(2, 25) if fate == "pending" else rng.uniform(45, 300)
            else:
                minutes = (days_ago - 1) * 24 * 60 + rng.uniform(2 * 60, 22 * 60)
            placed_at = now - datetime.timedelta(minutes=minutes)
            lines = tuple(
                (variant_id, rng.randint(1, 2))
                for variant_id in sorted(rng.sample(variant_ids, rng.choice((1, 1, 2, 3))))
            )
            planned.append(
                PlannedOrder(
                    customer_index=rng.randrange(customers),
                    lines=lines,
                    steps=_timeline(rng, fate=fate, placed_at=placed_at, now=now),
                )
            )
    return planned


def _dated(order: Order, *, step: str, since: datetime.datetime, at: datetime.datetime) -> None:
    """Move what `step` wrote for `order` (everything stamped since `since`) back to `at`."""
    OrderEvent.objects.filter(order=order, created_at__gte=since).update(created_at=at)
    if step in _PAYING_STEPS:
        Payment.objects.filter(order=order, created_at__gte=since).update(created_at=at)
        Invoice.objects.filter(order=order, issued_at__gte=since).update(issued_at=at)
    if step in _REFUNDING_STEPS:
        Refund.objects.filter(order=order, created_at__gte=since).update(created_at=at)
        CreditNote.objects.filter(refund__order=order, issued_at__gte=since).update(issued_at=at)
    if step in _SHIPPING_STEPS:
        Fulfilment.objects.filter(order=order, created_at__gte=since).update(created_at=at)
    if step in _STAMPED_FIELD:
        Order.objects.filter(pk=order.pk).update(**{_STAMPED_FIELD[step]: at})


def _live_through(planned: PlannedOrder, *, customer, skus: dict[int, str]) -> Order | None:
    first_step_at = timezone.now()
    try:
        order = order_place(
            customer=customer,
            lines=[LineRequest(sku=skus[variant], quantity=qty) for variant, qty in planned.lines],
            shipping_address=customer_address(customer.user.get_full_name()),
            actor=customer.user,
        )
    except OrderError:
        return None
    _dated(order, step="placed", since=first_step_at, at=planned.steps[0][1])
    for step, at in planned.steps[1:]:
        since = timezone.now()
        _STEPS[step](Order.objects.get(pk=order.pk))
        _dated(order, step=step, since=since, at=at)
    return order


def seed_orders() -> str | None:
    """Live through the month of demo orders once; None when the demo customers have orders.

    One transaction: a run that fails leaves no half month behind. Its e-mails, documents and
    counters follow on commit, from the orders as dated.
    """
    customers = demo_customers()
    if not customers or Order.objects.filter(customer__in=customers).exists():
        return None
    variants = Variant.objects.filter(sku__startswith=SKU_PREFIX, is_active=True).order_by("pk")
    available = availability_by_variant(variant_ids=[variant.pk for variant in variants])
    skus = {
        variant.pk: variant.sku
        for variant in variants
        if available.get(variant.pk, 0) >= MIN_UNITS_TO_ORDER
    }
    with transaction.atomic():
        planned = plan(now=timezone.now(), variant_ids=list(skus), customers=len(customers))
        placed = [
            order
            for entry in planned
            if (order := _live_through(entry, customer=customers[entry.customer_index], skus=skus))
        ]
    return f"orders: {len(placed)} placed over {DAYS} days, with their payments and shipments"
