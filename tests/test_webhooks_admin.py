"""The webhooks admin: managers only; the signing secret shown once and never again; rotation,
resending and re-activation through the services."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.contrib.messages import get_messages
from django.utils import timezone

from tests.admin_shop import staff_user
from tests.orders_helpers import customer_new, order_new, variant_stocked
from tests.webhooks_helpers import ConnectionGuard, Receiver, endpoint_for
from webhooks.models import DeliveryState, WebhookDelivery, WebhookEndpoint

pytestmark = pytest.mark.django_db

ENDPOINTS_URL = "/admin/webhooks/webhookendpoint/"
DELIVERIES_URL = "/admin/webhooks/webhookdelivery/"


@pytest.fixture(autouse=True)
def loopback_allowed(settings, monkeypatch) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    ConnectionGuard(monkeypatch)


@pytest.fixture
def receiver():
    receiver = Receiver().start()
    yield receiver
    receiver.stop()


@pytest.fixture
def manager(client):
    user = staff_user("manager")
    client.force_login(user)
    return user


def _messages(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


def _secret_in(messages: list[str]) -> str:
    [message] = [m for m in messages if m.startswith("Signing secret of ")]
    return message.split(": ", 1)[1].split(" ", 1)[0]


def test_the_manager_registers_an_endpoint_and_sees_its_secret_once(client, manager, receiver):
    # when
    response = client.post(
        f"{ENDPOINTS_URL}add/",
        {
            "url": receiver.url(),
            "description": "ERP",
            "events": ["order.placed", "order.paid"],
            "active": "on",
        },
        follow=True,
    )

    # then: saved through the service, by the manager; the message holds the stored secret
    assert response.status_code == 200
    endpoint = WebhookEndpoint.objects.get()
    secret = _secret_in(_messages(response))
    assert (endpoint.secret, endpoint.created_by, endpoint.events) == (
        secret,
        manager,
        ["order.placed", "order.paid"],
    )
    # and never again: not on its page, not in the list
    for url in (f"{ENDPOINTS_URL}{endpoint.pk}/change/", ENDPOINTS_URL):
        page = client.get(url)
        assert page.status_code == 200
        assert secret not in page.content.decode()


def test_the_add_form_ticks_every_event_but_the_opt_in_stock_changed(client, manager):
    response = client.get(f"{ENDPOINTS_URL}add/")

    assert response.context["adminform"].form.initial["events"] == [
        "order.placed",
        "order.paid",
        "order.shipped",
        "order.cancelled",
        "order.refunded",
        "stock.low",
        "product.updated",
    ]


def test_the_add_form_refuses_a_private_address_and_saves_nothing(client, manager, settings):
    # given: production's allow-list
    settings.WEBHOOK_ALLOWED_NETWORKS = []

    # when
    response = client.post(
        f"{ENDPOINTS_URL}add/",
        {"url": "http://127.0.0.1:9000/", "events": ["order.placed"], "active": "on"},
    )

    # then
    assert response.status_code == 200
    assert "in a network webhooks may not reach" in response.content.decode()
    assert WebhookEndpoint.objects.count() == 0


@pytest.mark.parametrize("role", ["support", "warehouse"])
def test_no_other_role_sees_webhooks(client, role):
    # given
    client.force_login(staff_user(role))
    endpoint, _ = endpoint_for("http://127.0.0.1:9/hooks", "order.placed")

    # when / then
    for url in (ENDPOINTS_URL, f"{ENDPOINTS_URL}{endpoint.pk}/change/", DELIVERIES_URL):
        assert client.get(url).status_code == 403


def test_the_manager_role_may_manage_endpoints_and_resend():
    manager = Group.objects.get(name="manager")
    codenames = set(
        manager.permissions.filter(content_type__app_label="webhooks").values_list(
            "codename", flat=True
        )
    )
    assert {
        "view_webhookendpoint",
        "add_webhookendpoint",
        "change_webhookendpoint",
        "view_webhookdelivery",
        "resend_webhookdelivery",
    } <= codenames
    assert not Group.objects.get(name="support").permissions.filter(
        content_type__app_label="webhooks"
    )


def test_rotating_shows_the_new_secret_once_and_keeps_the_old_one_signing(client, manager):
    # given
    endpoint, old = endpoint_for("http://127.0.0.1:9/hooks", "order.placed")

    # when
    response = client.post(
        ENDPOINTS_URL,
        {"action": "rotate_secret", "_selected_action": [endpoint.pk], "index": 0},
        follow=True,
    )

    # then
    new = _secret_in(_messages(response))
    endpoint.refresh_from_db()
    assert (endpoint.secret, endpoint.previous_secret) == (new, old)
    assert new != old
    expected_end = timezone.now() + timedelta(hours=24)
    assert abs(endpoint.previous_secret_expires_at - expected_end) < timedelta(minutes=1)
    assert new not in client.get(f"{ENDPOINTS_URL}{endpoint.pk}/change/").content.decode()


def test_endpoints_cannot_be_deleted_only_deactivated(client, manager):
    endpoint, _ = endpoint_for("http://127.0.0.1:9/hooks", "order.placed")

    assert client.get(f"{ENDPOINTS_URL}{endpoint.pk}/delete/").status_code == 403
    assert WebhookEndpoint.objects.filter(pk=endpoint.pk).exists()


def test_activating_a_disabled_endpoint_clears_its_failure_record(client, manager):
    # given
    endpoint, _ = endpoint_for("http://127.0.0.1:9/hooks", "order.placed")
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(
        active=False,
        failing_since=timezone.now() - timedelta(days=4),
        disabled_at=timezone.now(),
        disabled_reason="every attempt failed",
    )

    # when
    client.post(
        f"{ENDPOINTS_URL}{endpoint.pk}/change/",
        {"url": endpoint.url, "events": ["order.placed"], "description": "", "active": "on"},
    )

    # then
    endpoint.refresh_from_db()
    assert (endpoint.active, endpoint.failing_since, endpoint.disabled_at) == (True, None, None)
    assert endpoint.disabled_reason == ""


def test_resend_since_asks_for_a_time_then_resends(
    client, manager, receiver, django_capture_on_commit_callbacks
):
    # given: a delivered event
    endpoint, _ = endpoint_for(receiver.url(), "order.placed")
    variant_stocked("ADM-1", on_hand=5)
    with django_capture_on_commit_callbacks(execute=True):
        order_new(customer_new(), ("ADM-1", 1))
    action = {"action": "resend_since", "_selected_action": [endpoint.pk]}

    # when: the action is chosen, then its form submitted
    page = client.post(ENDPOINTS_URL, {**action, "index": 0})
    since = (timezone.now() - timedelta(hours=1)).strftime("%Y-%m-%d %H:%M")
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(ENDPOINTS_URL, {**action, "apply": "Resend", "since": since})

    # then
    assert "Resend events since" in page.content.decode()
    assert _messages(response) == [f"{endpoint}: 1 events resent."]
    assert len(receiver.requests) == 2
    assert WebhookDelivery.objects.filter(state=DeliveryState.SUCCEEDED).count() == 2


def test_the_delivery_page_shows_the_body_and_the_attempts_and_resends(
    client, manager, receiver, django_capture_on_commit_callbacks
):
    # given
    endpoint_for(receiver.url(), "order.placed")
    variant_stocked("ADM-2", on_hand=5)
    with django_capture_on_commit_callbacks(execute=True):
        order = order_new(customer_new(), ("ADM-2", 1))
    delivery = WebhookDelivery.objects.get()

    # when
    page = client.get(f"{DELIVERIES_URL}{delivery.pk}/change/")
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            DELIVERIES_URL,
            {"action": "resend", "_selected_action": [delivery.pk], "index": 0},
            follow=True,
        )

    # then
    content = page.content.decode()
    assert order.number in content and "order.placed" in content
    assert _messages(response) == [f"Delivery {delivery.pk} resent."]
    assert WebhookDelivery.objects.get(resend_of=delivery).state == DeliveryState.SUCCEEDED
