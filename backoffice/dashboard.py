"""What the admin index shows: today's trade, 30 days of sales as a chart, low stock, attention.

The figures are read from the source rows (orders, stock levels), not from the derived
counters, so the dashboard is right even while a counter waits for its reconcile.
"""

import datetime
from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal

from django.conf import settings
from django.db.models import Count, F, OuterRef, Q, QuerySet, Subquery, Sum
from django.db.models.functions import Coalesce, TruncDate
from django.utils import timezone

from catalog.models import Variant
from inventory.models import available_units
from orders.models import Order, OrderStatus
from payments.models import Refund
from payments.selectors import unmatched_open
from reviews.selectors import reviews_pending

CHART_DAYS = 30
# Enough rows to act on in one sitting; the full lists are one click away.
PANEL_ROWS = 10
# Orders whose money the shop keeps: paid and not given back.
SOLD_STATUSES = (OrderStatus.PAID, OrderStatus.SHIPPED, OrderStatus.DELIVERED)

# Chart geometry in SVG user units; the SVG scales to the width of its panel.
CHART_WIDTH = 760
CHART_HEIGHT = 260
CHART_LEFT = 64
CHART_RIGHT = 12
CHART_TOP = 16
CHART_BOTTOM = 36
# At most this many gridline steps above the baseline: enough to read a bar's height by.
CHART_TICKS = 5


@dataclass(frozen=True)
class DaySales:
    day: datetime.date
    orders: int
    revenue: Decimal


@dataclass(frozen=True)
class ChartBar:
    x: float
    y: float
    width: float
    height: float
    sales: DaySales
    label: str

    @property
    def center(self) -> float:
        return round(self.x + self.width / 2, 2)


@dataclass(frozen=True)
class ChartTick:
    y: float
    label: str


def sales_by_day(*, days: int = CHART_DAYS, today: datetime.date | None = None) -> list[DaySales]:
    """Orders placed and revenue kept, per day of the last `days` days (oldest first), one query.

    Revenue kept is the total of orders still paid, shipped or delivered, less what was given
    back of the payments that paid them (a partial refund leaves its order paid).
    Days without orders are present with zeros, so the chart's time axis has no gaps.
    """
    today = today or timezone.localdate()
    first = today - datetime.timedelta(days=days - 1)
    start = timezone.make_aware(datetime.datetime.combine(first, datetime.time.min))
    refunded = (
        Refund.objects.filter(order=OuterRef("pk"), payment__settles_order=True)
        .values("order")
        .annotate(amount=Sum("amount"))
        .values("amount")
    )
    rows = (
        Order.objects.filter(placed_at__gte=start)
        .annotate(
            day=TruncDate("placed_at"),
            kept=F("total") - Coalesce(Subquery(refunded), Decimal("0")),
        )
        .values("day")
        .annotate(
            orders=Count("id"),
            revenue=Sum("kept", filter=Q(status__in=SOLD_STATUSES), default=Decimal("0")),
        )
        .order_by("day")
    )
    by_day = {row["day"]: row for row in rows}
    result = []
    for offset in range(days):
        day = first + datetime.timedelta(days=offset)
        row = by_day.get(day, {})
        result.append(
            DaySales(
                day=day,
                orders=row.get("orders", 0),
                revenue=Decimal(row.get("revenue", 0)).quantize(Decimal("0.01")),
            )
        )
    return result


def nice_ticks(maximum: Decimal, *, most: int = CHART_TICKS) -> list[Decimal]:
    """Return the y-axis values from 0 up to the first at or above `maximum`, a round step apart.

    The step is the smallest of 1, 2 or 5 times a power of ten (never below 1: labels are whole
    amounts) that needs at most `most` steps, so every label reads round (0, 50, 100, 150) and
    the gridlines are drawn at the labels' values. A maximum below `most` is taken as `most`,
    so an empty chart still shows a scale.
    """
    maximum = max(maximum, Decimal(most))
    wanted = maximum / most
    magnitude = Decimal(1).scaleb(wanted.adjusted())
    step = next(
        Decimal(int(mantissa * magnitude))
        for mantissa in (1, 2, 5, 10)
        if mantissa * magnitude >= wanted
    )
    steps = int((maximum / step).to_integral_value(rounding=ROUND_CEILING))
    return [step * index for index in range(steps + 1)]


def sales_chart(days: list[DaySales]) -> dict:
    """Bar geometry for the revenue chart, computed here so the template only draws."""
    plot_width = CHART_WIDTH - CHART_LEFT - CHART_RIGHT
    plot_height = CHART_HEIGHT - CHART_TOP - CHART_BOTTOM
    values = nice_ticks(max((day.revenue for day in days), default=Decimal("0")))
    top = values[-1]
    slot = plot_width / len(days)
    bars = []
    for index, day in enumerate(days):
        height = float(day.revenue / top) * plot_height
        bars.append(
            ChartBar(
                x=round(CHART_LEFT + index * slot + slot * 0.15, 2),
                y=round(CHART_TOP + plot_height - height, 2),
                width=round(slot * 0.7, 2),
                height=round(height, 2),
                sales=day,
                # Every fifth day and the last one, so labels never overlap.
                label=day.day.strftime("%d %b") if (len(days) - 1 - index) % 5 == 0 else "",
            )
        )
    ticks = [
        ChartTick(
            y=round(CHART_TOP + plot_height - float(value / top) * plot_height, 2),
            label=f"{value:,.0f}",
        )
        for value in values
    ]
    return {
        "width": CHART_WIDTH,
        "height": CHART_HEIGHT,
        "left": CHART_LEFT,
        "right": CHART_WIDTH - CHART_RIGHT,
        "baseline": CHART_TOP + plot_height,
        "label_y": CHART_HEIGHT - CHART_BOTTOM + 18,
        "bars": bars,
        "ticks": ticks,
        "total": sum((day.revenue for day in days), Decimal("0")),
        "orders": sum(day.orders for day in days),
    }


def low_stock_variants() -> QuerySet[Variant]:
    """Active variants whose units available in active warehouses (on hand - reserved -
    unavailable - safety stock, per level) are at or below threshold."""
    return (
        Variant.objects.filter(is_active=True, product__is_active=True)
        .annotate(
            available=Coalesce(
                Sum(
                    available_units("stock_levels__"),
                    filter=Q(stock_levels__warehouse__is_active=True),
                ),
                0,
            )
        )
        .filter(available__lte=F("low_stock_threshold"))
        .select_related("product")
        .order_by("available", "sku")
    )


def orders_needing_attention() -> QuerySet[Order]:
    """Flagged orders, oldest first: the longest-waiting customer is helped first."""
    return (
        Order.objects.filter(needs_attention=True)
        .select_related("customer__user")
        .order_by("placed_at", "id")
    )


def dashboard_context(*, user) -> dict:
    """The panels `user` may read: sales need order access, low stock needs inventory access,
    unmatched payments need access to them, the reviews waiting for moderation the permission
    to moderate them."""
    context: dict = {"currency": settings.SHOP_CURRENCY}
    if user.has_perm("orders.view_order"):
        days = sales_by_day()
        context["today"] = days[-1]
        context["chart"] = sales_chart(days)
        attention = orders_needing_attention()
        context["attention_orders"] = list(attention[:PANEL_ROWS])
        context["attention_count"] = attention.count()
    if user.has_perm("payments.view_unmatchedpayment"):
        unmatched = unmatched_open()
        context["unmatched"] = list(unmatched[:PANEL_ROWS])
        context["unmatched_count"] = unmatched.count()
    if user.has_perm("inventory.view_stocklevel"):
        low_stock = low_stock_variants()
        context["low_stock"] = list(low_stock[:PANEL_ROWS])
        context["low_stock_count"] = low_stock.count()
    if user.has_perm("reviews.moderate_review"):
        context["pending_reviews_count"] = reviews_pending().count()
    return context
