"""The admin dashboard follows the staff socket: a flagged order and a placed one show in its
panels and figures without a reload (Daphne serving the admin and the socket, as `make run`)."""

from types import SimpleNamespace

import pytest

from backoffice.roles import roles_sync
from orders.services import order_flag
from tests.admin_shop import order_pay, order_placed, staff_user, variant_stocked
from tests.browser.conftest import log_in
from tests.live_helpers import daphne

# The dashboard's server is a process of its own sharing the test database, and this process
# pushes to it through Redis.
pytestmark = [pytest.mark.redis, pytest.mark.postgres]


@pytest.fixture
def asgi_server(transactional_db, child_process_env, tmp_path):
    """Daphne serving the admin and the sockets. The `shop` fixture's cheap password hashing
    is this process's only: the staff's passwords here are hashed as the server checks them."""
    roles_sync()
    server = daphne(env=child_process_env, log=tmp_path / "daphne.log").wait_ready()
    yield SimpleNamespace(url=f"http://127.0.0.1:{server.port}", process=server)
    server.stop()


def test_the_dashboard_shows_a_flagged_and_a_paid_order_without_a_reload(page, asgi_server):
    # given: a manager on the dashboard, its socket open, nothing waiting
    variant = variant_stocked(sku="LIVE-1", on_hand=20, threshold=3)
    waiting = order_placed(variant=variant, quantity=1, email="ada@example.com")
    log_in(page, asgi_server, staff_user("manager"))
    page.wait_for_selector("body[data-live=connected]")
    page.evaluate("window.sameDocument = true")
    assert "(0)" in page.inner_text("#sw-attention caption")
    orders_today = page.inner_text("#sw-orders-today")

    # when: a payment that does not match flags one order, and another is paid
    order_flag(order=waiting, reason="payment of 1.00 EUR does not match 17.40 EUR")
    page.wait_for_function(
        "document.querySelector('#sw-attention caption').textContent.includes('(1)')"
    )
    order_pay(order_placed(variant=variant, quantity=2, email="bob@example.com"))
    page.wait_for_function(
        f"document.querySelector('#sw-orders-today').textContent.trim() !== '{orders_today}'"
    )

    # then: the panels show them, read again in the same document (no reload)
    assert waiting.number in page.inner_text("#sw-attention")
    assert "does not match" in page.inner_text("#sw-attention")
    assert int(page.inner_text("#sw-orders-today")) == int(orders_today) + 1
    assert page.evaluate("window.sameDocument") is True
