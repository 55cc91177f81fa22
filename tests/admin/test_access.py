"""Who may reach the admin: staff only, everyone else is sent to the login page; a page the role
may not open says so inside the admin."""

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse
from django.utils.html import strip_tags

from tests.admin.client import ORDERS_URL
from tests.admin_shop import PASSWORD, order_paid, staff_user, variant_stocked

pytestmark = pytest.mark.django_db


def test_anonymous_visitor_is_sent_to_the_admin_login(client):
    # when
    response = client.get("/admin/")

    # then
    assert response.status_code == 302
    assert response.url == "/admin/login/?next=/admin/"


def test_customer_who_is_not_staff_cannot_log_in_to_the_admin(client):
    # given
    get_user_model().objects.create_user(username="cust@example.com", password=PASSWORD)

    # when
    login = client.post(
        "/admin/login/", {"username": "cust@example.com", "password": PASSWORD, "next": "/admin/"}
    )
    index = client.get("/admin/")

    # then
    assert login.status_code == 200
    assert "staff account" in login.content.decode()
    assert index.status_code == 302
    assert index.url.startswith("/admin/login/")


def test_logged_in_customer_is_redirected_from_every_admin_page(client):
    # given
    customer = get_user_model().objects.create_user(username="cust@example.com")
    client.force_login(customer)

    # when
    response = client.get(ORDERS_URL)

    # then
    assert response.status_code == 302
    assert response.url.startswith("/admin/login/")


@pytest.mark.parametrize(
    ("role", "url", "sentence"),
    [
        (
            "warehouse",
            "/admin/payments/refund/",
            "This page needs the permission “Can view refund” (payments.view_refund), which "
            "the manager and support roles have. Your account has none of them; an "
            "administrator can add you to one.",
        ),
        (
            "support",
            "/admin/inventory/stocklevel/receive/",
            "This page needs the permission “Can receive stock” (inventory.receive_stock), "
            "which the manager and warehouse roles have.",
        ),
        (
            "manager",
            "/admin/auth/user/",
            "This page needs the permission “Can view user” (auth.view_user), which no role "
            "has; an administrator can give it to your account.",
        ),
    ],
)
def test_a_page_the_role_may_not_open_says_inside_the_admin_which_permission_it_needs(
    client, role, url, sentence
):
    # given
    client.force_login(staff_user(role))

    # when
    response = client.get(url, HTTP_REFERER="http://testserver/admin/")

    # then
    assert response.status_code == 403
    assert response.templates[0].name == "admin/permission_denied.html"
    html = response.content.decode()
    assert 'id="user-tools"' in html
    assert '<div class="breadcrumbs">\n  <a href="/admin/">Home</a>' in html
    assert sentence in text_of(html)
    assert 'id="sw-denied-back" href="http://testserver/admin/"' in html


def test_a_refused_tool_page_of_an_order_leads_back_to_the_order(client):
    # given
    order = order_paid(variant=variant_stocked())
    client.force_login(staff_user("support"))

    # when
    response = client.get(reverse("admin:orders_order_tool", args=[order.pk, "shipment"]))

    # then
    assert response.status_code == 403
    html = response.content.decode()
    assert "(orders.ship_order), which the manager and warehouse roles have." in text_of(html)
    order_page = reverse("admin:orders_order_change", args=[order.pk])
    assert f'id="sw-denied-back" href="{order_page}"' in html


def text_of(html: str) -> str:
    """The page's text as a reader sees it: no tags, single spaces."""
    return " ".join(strip_tags(html).split())
