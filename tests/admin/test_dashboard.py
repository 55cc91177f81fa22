"""The dashboard: what counts as a sale, days without orders, the chart's scale, and the page
with the panels each user may read."""

import datetime
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone
from hypothesis import given
from hypothesis import strategies as st

from backoffice.dashboard import (
    CHART_TICKS,
    DaySales,
    low_stock_variants,
    nice_ticks,
    sales_by_day,
    sales_chart,
)
from orders.models import Order
from orders.services import order_cancel
from payments.services import webhook_handle
from tests.admin.client import LEVELS_URL
from tests.admin_shop import (
    order_paid,
    order_placed,
    staff_user,
    variant_stocked,
    warehouse_main,
)
from tests.payments_helpers import payment_event, signed

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("maximum", "ticks"),
    [
        ("0", [0, 1, 2, 3, 4, 5]),
        ("7", [0, 2, 4, 6, 8]),
        ("12", [0, 5, 10, 15]),
        ("50", [0, 10, 20, 30, 40, 50]),
        ("51", [0, 20, 40, 60]),
        ("201", [0, 50, 100, 150, 200, 250]),
        ("2239.90", [0, 500, 1000, 1500, 2000, 2500]),
        ("5001", [0, 2000, 4000, 6000]),
    ],
)
def test_chart_ticks_are_round_values_from_zero_to_the_first_above_the_best_day(maximum, ticks):
    assert nice_ticks(Decimal(maximum)) == [Decimal(tick) for tick in ticks]


@given(maximum=st.decimals(min_value=0, max_value=10**12, places=2))
def test_chart_ticks_of_any_maximum_step_by_one_two_or_five_times_a_power_of_ten(maximum):
    # when
    ticks = nice_ticks(maximum)

    # then: evenly spaced whole steps of 1, 2 or 5 times 10^k, from 0 to the first at or above the
    # maximum, at most CHART_TICKS of them, and no smaller such step would fit in as many
    step = ticks[1]
    assert ticks == [step * index for index in range(len(ticks))]
    assert str(step).rstrip("0") in {"1", "2", "5"}
    assert len(ticks) - 1 <= CHART_TICKS
    assert ticks[-1] >= maximum > ticks[-2] or maximum <= CHART_TICKS
    smaller = {"1": step / 2, "2": step / 2, "5": step * 2 / 5}[str(step).rstrip("0")]
    assert smaller < 1 or smaller * CHART_TICKS < max(maximum, Decimal(CHART_TICKS))


def test_sales_count_every_order_but_revenue_only_of_orders_kept_paid():
    # given
    variant = variant_stocked(price="10.00", on_hand=20)
    paid = order_paid(variant=variant, quantity=2)
    order_placed(variant=variant, quantity=1)
    order_cancel(order=order_paid(variant=variant, quantity=3, email="b@example.com"))
    two_days_ago = order_paid(variant=variant, quantity=1, email="c@example.com")
    Order.objects.filter(pk=two_days_ago.pk).update(
        placed_at=timezone.now() - datetime.timedelta(days=2)
    )

    # when
    days = sales_by_day(days=30)

    # then
    assert len(days) == 30
    assert days[-1].day == timezone.localdate()
    assert (days[-1].orders, days[-1].revenue) == (3, paid.total)
    assert (days[-3].orders, days[-3].revenue) == (1, two_days_ago.total)
    assert sum(day.orders for day in days) == 4
    assert all(day.revenue == Decimal("0.00") for day in days[:-3])


def test_revenue_leaves_out_what_was_refunded_of_a_paid_order():
    # given: two paid orders, 5.00 of one refunded by the provider, a duplicate charge of the
    # other refunded in full
    variant = variant_stocked(price="10.00", on_hand=20)
    partly, charged_twice = (
        order_paid(variant=variant, quantity=2, email=email)
        for email in ("a@example.com", "b@example.com")
    )
    webhook_handle(
        **signed(
            payment_event(
                partly,
                event_type="refund.succeeded",
                amount="5.00",
                payment_reference=partly.payments.get().provider_reference,
            )
        )
    )
    webhook_handle(**signed(payment_event(charged_twice, payment_reference="pay_twice")))
    webhook_handle(
        **signed(
            payment_event(
                charged_twice, event_type="refund.succeeded", payment_reference="pay_twice"
            )
        )
    )

    # when
    today = sales_by_day(days=1)[-1]

    # then
    assert (today.orders, today.revenue) == (
        2,
        partly.total - Decimal("5.00") + charged_twice.total,
    )


def test_chart_bars_are_scaled_to_the_best_day():
    # given
    today = timezone.localdate()
    days = sales_by_day(days=30, today=today)
    days[-1] = DaySales(day=today, orders=2, revenue=Decimal("150.00"))
    days[-2] = DaySales(day=days[-2].day, orders=1, revenue=Decimal("75.00"))

    # when
    chart = sales_chart(days)

    # then: the scale tops at 150 (steps of 50), so 150 fills the plot and 75 half of it, and
    # each label sits on its gridline's height
    plot_height = chart["baseline"] - 16
    assert [tick.label for tick in chart["ticks"]] == ["0", "50", "100", "150"]
    assert [tick.y for tick in chart["ticks"]] == [
        round(chart["baseline"] - plot_height * share, 2) for share in (0, 1 / 3, 2 / 3, 1)
    ]
    assert chart["bars"][-1].height == round(plot_height, 2)
    assert chart["bars"][-2].height == round(plot_height * 0.5, 2)
    assert chart["bars"][0].height == 0
    assert chart["total"] == Decimal("225.00")
    assert [bar.label for bar in chart["bars"] if bar.label][-1] == today.strftime("%d %b")


def test_low_stock_counts_units_available_in_active_warehouses_only():
    # given
    variant_stocked(sku="LOW", on_hand=3, threshold=3)
    variant_stocked(sku="FINE", on_hand=4, threshold=3)
    reserved = variant_stocked(sku="HELD", on_hand=6, threshold=3)
    order_placed(variant=reserved, quantity=4)
    warehouse = warehouse_main()
    warehouse.is_active = False
    warehouse.save(update_fields=["is_active"])

    # when
    with_main_closed = {v.sku: v.available for v in low_stock_variants()}
    warehouse.is_active = True
    warehouse.save(update_fields=["is_active"])
    with_main_open = {v.sku: v.available for v in low_stock_variants()}

    # then
    assert with_main_closed == {"LOW": 0, "FINE": 0, "HELD": 0}
    assert with_main_open == {"LOW": 3, "HELD": 2}


def test_dashboard_shows_today_chart_low_stock_and_attention(client, django_assert_max_num_queries):
    # given
    variant = variant_stocked(sku="LAST-FEW", price="10.00", on_hand=4, threshold=3)
    paid = order_paid(variant=variant, quantity=2)
    flagged = order_placed(variant=variant, quantity=1)
    Order.objects.filter(pk=flagged.pk).update(needs_attention=True, attention_reason="odd")
    client.force_login(staff_user("manager"))

    # when
    with django_assert_max_num_queries(20):
        response = client.get("/admin/")

    # then
    html = response.content.decode()
    assert response.context["today"].orders == 2
    assert response.context["today"].revenue == paid.total
    assert len(response.context["chart"]["bars"]) == 30
    assert html.count('class="bar"') == 30
    assert [v.sku for v in response.context["low_stock"]] == ["LAST-FEW"]
    assert response.context["low_stock"][0].available == 1
    assert [o.number for o in response.context["attention_orders"]] == [flagged.number]
    assert "<svg" in html


def test_dashboard_hides_sales_from_a_user_without_order_access(client):
    # given
    user = get_user_model().objects.create_user(username="clerk", is_staff=True)
    client.force_login(user)

    # when
    response = client.get("/admin/")

    # then
    assert response.status_code == 200
    assert "chart" not in response.context
    assert "low_stock" not in response.context


def test_dashboard_low_stock_link_lists_the_levels_of_that_variant(client):
    # given
    low = variant_stocked(sku="LOW-ONE", on_hand=1, threshold=3)
    variant_stocked(sku="OTHER", on_hand=1, threshold=3)
    client.force_login(staff_user("warehouse"))
    dashboard = client.get("/admin/").content.decode()
    link = f"{LEVELS_URL}?variant__id__exact={low.pk}"

    # when
    response = client.get(link)

    # then
    assert f'href="{link}"' in dashboard
    assert [level.variant.sku for level in response.context["cl"].result_list] == ["LOW-ONE"]
