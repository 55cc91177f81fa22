"""The admin's log-in under the API log-in's limits: per account, per client address, logged,
and never a lock-out while the cache is down."""

import json
import logging

import pytest
from django.core.cache import cache
from django.test import Client, override_settings

from core import throttle
from tests.admin_shop import PASSWORD, staff_user
from tests.storefront_helpers import CACHE_DOWN

pytestmark = pytest.mark.django_db

LOGIN = "/admin/login/?next=/admin/"
LOCKED = "Too many log-in attempts. Try again in"


@pytest.fixture(autouse=True)
def fresh():
    cache.clear()


@pytest.fixture
def manager():
    return staff_user("manager")


def admin_log_in(client: Client, username: str, password: str, **extra):
    return client.post(LOGIN, {"username": username, "password": password}, **extra)


def logged_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


def test_the_right_password_is_refused_after_the_per_account_limit(client, manager, caplog):
    # given
    for _ in range(throttle.LOGIN_PER_EMAIL.requests):
        assert admin_log_in(client, manager.username, "guess").status_code == 200

    # when
    with caplog.at_level(logging.WARNING, logger="stockwire.throttle"):
        response = admin_log_in(client, manager.username, PASSWORD)

    # then
    assert response.status_code == 200
    assert LOCKED in response.content.decode()
    assert not logged_in(client)
    (record,) = [r for r in caplog.records if r.name == "stockwire.throttle"]
    assert record.levelname == "WARNING"
    assert (record.scope, record.account, record.address) == (
        "login-email",
        manager.username,
        "127.0.0.1",
    )


def test_attempts_beyond_the_per_address_limit_are_refused_whatever_the_account(client, manager):
    # given
    for index in range(throttle.LOGIN_PER_IP.requests):
        admin_log_in(client, f"guess{index}@stockwire.example", "guess")

    # when
    response = admin_log_in(client, manager.username, PASSWORD)

    # then
    assert LOCKED in response.content.decode()
    assert not logged_in(client)


def test_guesses_through_the_api_count_against_the_admin_too(client, manager):
    # given
    for _ in range(throttle.LOGIN_PER_EMAIL.requests):
        client.post(
            "/api/v1/auth/token",
            data=json.dumps({"email": manager.username, "password": "guess"}),
            content_type="application/json",
        )

    # when
    response = admin_log_in(client, manager.username, PASSWORD)

    # then
    assert LOCKED in response.content.decode()
    assert not logged_in(client)


def test_another_client_behind_the_proxy_still_logs_in(client, manager, settings):
    # given one client behind the shop's nginx used the address's whole budget
    settings.TRUSTED_PROXY_NETWORKS = ["10.231.64.0/24"]
    behind_nginx = {"REMOTE_ADDR": "10.231.64.5"}
    for index in range(throttle.LOGIN_PER_IP.requests):
        admin_log_in(
            client,
            f"guess{index}@stockwire.example",
            "guess",
            headers={"X-Forwarded-For": "203.0.113.9"},
            **behind_nginx,
        )

    # when staff log in from their own address through the same nginx
    response = admin_log_in(
        client,
        manager.username,
        PASSWORD,
        headers={"X-Forwarded-For": "198.51.100.20"},
        **behind_nginx,
    )

    # then
    assert response.status_code == 302
    assert logged_in(client)


def test_staff_log_in_while_the_cache_is_down(manager, monkeypatch):
    # given
    monkeypatch.setattr(throttle, "_outage", False)
    attempts = throttle.LOGIN_PER_EMAIL.requests + 1

    # when
    with override_settings(CACHES=CACHE_DOWN):
        statuses = [admin_log_in(Client(), manager.username, PASSWORD) for _ in range(attempts)]

    # then
    assert [response.status_code for response in statuses] == [302] * attempts
    assert [response["Location"] for response in statuses] == ["/admin/"] * attempts
