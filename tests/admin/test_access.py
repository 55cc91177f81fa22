"""Who may reach the admin: staff only; everyone else is sent to the login page."""

import pytest
from django.contrib.auth import get_user_model

from tests.admin.client import ORDERS_URL
from tests.admin_shop import (
    PASSWORD,
)

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
