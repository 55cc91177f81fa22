"""The staff admin in a real browser: Debian's headless Chromium driven by Playwright against
a live server, the way staff click through it.

The dashboard screenshot is written by `test_manager_sees_the_dashboard_chart` to the test's
temporary folder, or to docs/ by `make screenshots` (`--screenshots=docs`).
"""

import datetime
from decimal import Decimal

import httpx
import pytest
from django.utils import timezone

from core import throttle
from inventory.models import StockLevel
from orders.models import Order, OrderStatus
from orders.services import customer_for_user, order_ship
from tests.admin_shop import (
    ADDRESS,
    PASSWORD,
    order_paid,
    order_placed,
    staff_user,
    variant_stocked,
)
from tests.browser.conftest import log_in

pytestmark = pytest.mark.django_db(transaction=True)


def run_action(page, live_server, url: str, pks: list[int], action: str) -> None:
    """Tick the rows, pick the action and press Go, as on any changelist."""
    page.goto(f"{live_server.url}{url}")
    for pk in pks:
        page.check(f"input[name=_selected_action][value='{pk}']")
    page.select_option("select[name=action]", action)
    page.click("button[name=index]")


def test_warehouse_ships_a_paid_order_with_a_tracking_number(shop, page, live_server):
    # given
    order = order_paid(variant=variant_stocked(sku="SHIP-ME", on_hand=6), quantity=2)
    log_in(page, live_server, staff_user("warehouse"))

    # when
    run_action(page, live_server, "/admin/orders/order/", [order.pk], "ship_orders")
    page.fill(f"input[name=tracking_{order.pk}]", "TRK-BROWSER-1")
    page.click("input[name=apply]")

    # then
    assert page.inner_text(".messagelist") == f"{order.number} shipped."
    actions = page.locator("select[name=action] option").evaluate_all(
        "options => options.map(o => o.value)"
    )
    assert "ship_orders" in actions
    assert "refund_orders" not in actions
    page.click(f"#result_list a:text-is('{order.number}')")
    assert "Shipped" in page.inner_text("div.field-status")
    assert "TRK-BROWSER-1" in page.inner_text("div.field-tracking_number")
    ledger = page.inner_text("#stock-ledger")
    assert "Shipment\tSHIP-ME\tmain\t-2\t-2" in ledger
    assert "Reservation\tSHIP-ME\tmain\t+0\t+2" in ledger
    order.refresh_from_db()
    assert order.status == "shipped"


def test_warehouse_receives_stock_and_the_storefront_shows_it(shop, page, live_server):
    # given
    variant = variant_stocked(sku="RESTOCK-ME", on_hand=3)
    level = StockLevel.objects.get(variant=variant)
    product_url = f"{live_server.url}/api/v1/products/{variant.product.slug}"
    before = httpx.get(product_url).json()["variants"][0]["available"]
    log_in(page, live_server, staff_user("warehouse"))

    # when
    run_action(page, live_server, "/admin/inventory/stocklevel/", [level.pk], "receive_stock")
    page.fill("input[name=quantity]", "12")
    page.select_option("select[name=reason]", "Supplier delivery")
    page.fill("input[name=reference]", "PO-7")
    page.click("input[name=apply]")

    # then
    assert (
        "RESTOCK-ME — Product RESTOCK-ME — Main warehouse received: 15 on hand, 15 available."
        in page.inner_text(".messagelist")
    )
    after = httpx.get(product_url).json()["variants"][0]["available"]
    assert (before, after) == (3, 15)


def test_support_refunds_an_order_and_sees_the_credit_note(shop, page, live_server):
    # given
    order = order_paid(variant=variant_stocked(sku="REFUND-ME", price="20.00"), quantity=1)
    log_in(page, live_server, staff_user("support"))

    # when
    run_action(page, live_server, "/admin/orders/order/", [order.pk], "refund_orders")
    page.fill("input[name=reason]", "parcel lost")
    page.click("input[name=apply]")

    # then
    assert page.inner_text(".messagelist") == f"{order.number} refunded."
    page.click(f"#result_list a:text-is('{order.number}')")
    assert "Refunded" in page.inner_text("div.field-status")
    credit_notes = page.inner_text("div.field-credit_note_links")
    credit_note = order.refunds.get().credit_note
    assert credit_note.number in credit_notes
    assert f"{order.total} {order.currency}" in credit_notes


def test_staff_who_guessed_too_often_are_told_to_wait_even_with_the_right_password(
    shop, page, live_server
):
    # given
    manager = staff_user("manager")
    page.goto(f"{live_server.url}/admin/login/?next=/admin/")

    def submit(password: str) -> None:
        page.fill("input[name=username]", manager.username)
        page.fill("input[name=password]", password)
        with page.expect_navigation():
            page.click("input[type=submit]")

    for _ in range(throttle.LOGIN_PER_EMAIL.requests):
        submit("guess")

    # when
    submit(PASSWORD)

    # then
    assert "Too many log-in attempts. Try again in" in page.inner_text(".errornote")
    assert page.locator("#user-tools").count() == 0


def test_manager_sees_the_dashboard_chart(shop, page, live_server, screenshot_dir):
    # given: a month of paid orders (history written as rows; today's through the services),
    # one low-stock variant and one order waiting for staff
    variant = variant_stocked(sku="BESTSELLER", price="14.90", on_hand=400, threshold=5)
    customer = customer_for_user(user=staff_user("support"))
    now = timezone.now()
    Order.objects.bulk_create(
        Order(
            number=f"SW-HIST{days_ago:04d}",
            customer=customer,
            status=OrderStatus.DELIVERED,
            currency="EUR",
            subtotal=total,
            shipping=Decimal("0"),
            total=total,
            shipping_address=ADDRESS,
            paid_at=now - datetime.timedelta(days=days_ago),
        )
        for days_ago in range(1, 30)
        for total in [Decimal("14.90") * (1 + (days_ago * 7) % 5 + (days_ago % 3) * 2)]
    )
    for days_ago in range(1, 30):
        Order.objects.filter(number=f"SW-HIST{days_ago:04d}").update(
            placed_at=now - datetime.timedelta(days=days_ago)
        )
    order_ship(order=order_paid(variant=variant, quantity=1), tracking_number="TRK-9")
    variant_stocked(sku="LAST-TWO", on_hand=2, threshold=5)
    flagged = order_placed(variant=variant, quantity=1, email="late@example.com")
    Order.objects.filter(pk=flagged.pk).update(
        needs_attention=True, attention_reason="payment of 9.90 EUR does not match 19.80 EUR"
    )
    log_in(page, live_server, staff_user("manager"))

    # when
    page.goto(f"{live_server.url}/admin/")

    # then
    chart = page.locator("#sw-sales-chart")
    assert chart.locator("rect.bar").count() == 30
    assert "LAST-TWO" in page.inner_text("#sw-low-stock")
    assert flagged.number in page.inner_text("#sw-attention")
    screenshot = screenshot_dir / "dashboard.png"
    page.screenshot(path=str(screenshot), full_page=False)
    assert screenshot.stat().st_size > 10_000
