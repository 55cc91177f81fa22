"""The order page in a real browser, as staff use it all day on a 1366 by 768 laptop: the
actions each role may take as buttons, the story above the fold, and the admin's own 403 page.

The order-page screenshot is taken by `test_the_timeline_payments_and_refunds_are_above_the_fold`
into the test's temporary folder, or into docs/ by `make screenshots` (`--screenshots=docs`).
"""

import pytest

from orders.models import OrderStatus
from orders.services import order_flag, order_ship
from tests.admin_shop import order_paid, order_placed, staff_user, variant_stocked
from tests.browser.conftest import LAPTOP, log_in

pytestmark = pytest.mark.django_db(transaction=True)


def order_url(live_server, order) -> str:
    return f"{live_server.url}/admin/orders/order/{order.pk}/change/"


def buttons(page) -> list[str]:
    return page.locator("#sw-order-actions a.sw-tool").evaluate_all(
        "links => links.map(link => link.textContent)"
    )


def test_warehouse_ships_from_the_order_page_and_keeps_the_form_on_an_empty_tracking_number(
    shop, laptop_page, live_server
):
    # given
    page = laptop_page
    order = order_paid(variant=variant_stocked(sku="SHIP-HERE", on_hand=6), quantity=2)
    log_in(page, live_server, staff_user("warehouse"))
    page.goto(order_url(live_server, order))
    offered = buttons(page)

    # when: the button, then the form sent without a tracking number, then with one
    page.click("#sw-order-actions a:text-is('Ship everything')")
    page.fill("input[name=carrier]", "DHL")
    page.click("input[name=apply]")
    refused = page.inner_text(".errorlist")
    carrier_kept = page.input_value("input[name=carrier]")
    page.fill("input[name=tracking_number]", "TRK-PAGE-1")
    page.click("input[name=apply]")

    # then: back on the order page, shipped, and now only "Mark delivered" is offered
    assert offered == ["Ship everything", "Create shipment"]
    assert (refused, carrier_kept) == ("This field is required.", "DHL")
    assert page.url == order_url(live_server, order)
    assert page.inner_text(".messagelist") == f"{order.number} shipped."
    assert "Shipped" in page.inner_text("div.field-status")
    assert buttons(page) == ["Mark delivered"]
    order.refresh_from_db()
    assert (order.status, order.tracking_number) == (OrderStatus.SHIPPED, "TRK-PAGE-1")


def test_support_cancels_and_refunds_from_the_order_page_and_sees_no_shipping(
    shop, laptop_page, live_server
):
    # given
    page = laptop_page
    variant = variant_stocked(sku="SUPPORT-ME", price="20.00", on_hand=10)
    to_refund = order_paid(variant=variant, quantity=1)
    to_cancel = order_placed(variant=variant, quantity=1, email="late@example.com")
    log_in(page, live_server, staff_user("support"))

    # when: refund one order from its page
    page.goto(order_url(live_server, to_refund))
    offered = buttons(page)
    page.click("#sw-order-actions a:text-is('Refund')")
    page.fill("input[name=reason]", "parcel lost")
    page.click("input[name=apply]")
    refunded_message = page.inner_text(".messagelist")
    credit_notes = page.inner_text("div.field-credit_note_links")
    # and cancel the other from its page
    page.goto(order_url(live_server, to_cancel))
    page.click("#sw-order-actions a:text-is('Cancel order')")
    page.fill("input[name=reason]", "customer called")
    page.click("input[name=apply]")

    # then
    assert offered == ["Cancel order", "Cancel units", "Refund"]
    assert refunded_message == f"{to_refund.number} refunded."
    assert to_refund.refunds.get().credit_note.number in credit_notes
    assert page.inner_text(".messagelist") == f"{to_cancel.number} cancelled."
    assert "Cancelled" in page.inner_text("div.field-status")
    assert buttons(page) == []


def test_the_timeline_payments_and_refunds_are_above_the_fold(
    shop, laptop_page, live_server, screenshot_dir
):
    # given: a paid order, shipped, flagged and partly refunded
    page = laptop_page
    order = order_paid(variant=variant_stocked(sku="MUG-BLUE", price="12.50"), quantity=3)
    order_ship(order=order, tracking_number="TRK-204-998")
    order_flag(order=order, reason="the customer reports one mug broken")
    log_in(page, live_server, staff_user("manager"))
    page.goto(order_url(live_server, order))
    page.click("#sw-order-actions a:text-is('Return and refund')")
    page.fill(f"input[name=units_{order.lines.get().pk}]", "1")
    page.fill("input[name=reason]", "one mug arrived broken")
    page.click("input[name=apply]")

    # when
    boxes = {
        name: page.locator(f"#{name}-group").bounding_box()
        for name in ("events", "payments", "refunds")
    }

    # then: each section ends within the first screen
    assert {name: box["y"] + box["height"] <= LAPTOP["height"] for name, box in boxes.items()} == {
        "events": True,
        "payments": True,
        "refunds": True,
    }
    assert "Units returned" in page.inner_text("#events-group")
    assert "one mug arrived broken" in page.inner_text("#refunds-group")
    screenshot = screenshot_dir / "order-page.png"
    page.screenshot(path=str(screenshot), full_page=False)
    assert screenshot.stat().st_size > 10_000


def test_the_order_list_shows_whole_dates_at_1366_pixels(shop, laptop_page, live_server):
    # given
    page = laptop_page
    variant = variant_stocked(on_hand=20)
    for index in range(3):
        order_paid(variant=variant, quantity=1, email=f"buyer-{index}@example.com")
    log_in(page, live_server, staff_user("support"))

    # when
    page.goto(f"{live_server.url}/admin/orders/order/")

    # then: each date reads whole on one line, and the list needs no sideways scroll
    cells = page.locator("td.field-placed_at")
    lines = cells.evaluate_all(
        """cells => cells.map(cell => {
            const text = document.createRange();
            text.selectNodeContents(cell);
            return text.getClientRects().length;
        })"""
    )
    assert lines == [1, 1, 1]
    assert cells.first.inner_text().endswith(" UTC")
    assert page.locator("#changelist .results").evaluate("el => el.scrollWidth <= el.clientWidth")


@pytest.mark.parametrize(
    ("role", "url", "needs", "back"),
    [
        ("warehouse", "/admin/payments/refund/", "(payments.view_refund)", "/admin/"),
        (
            "support",
            "/admin/inventory/stocklevel/receive/",
            "(inventory.receive_stock)",
            "/admin/inventory/stocklevel/",
        ),
        ("manager", "/admin/auth/group/", "(auth.view_group)", "/admin/"),
    ],
)
def test_each_role_meets_the_admins_own_403_page_with_a_way_back(
    shop, laptop_page, live_server, role, url, needs, back
):
    # given: a link typed or followed from elsewhere (no page of the admin to go back to)
    page = laptop_page
    log_in(page, live_server, staff_user(role))

    # when
    response = page.goto(f"{live_server.url}{url}")
    reason = page.inner_text("#sw-denied-reason")
    breadcrumbs = page.inner_text(".breadcrumbs")
    header = page.locator("#user-tools").count()
    with page.expect_navigation():
        page.click("#sw-denied-back")

    # then: the page keeps the admin's header and breadcrumbs, and leads to the list the role
    # may read, or else the dashboard
    assert response.status == 403
    assert needs in reason
    assert (header, breadcrumbs.startswith("Home")) == (1, True)
    assert page.url == f"{live_server.url}{back}"
