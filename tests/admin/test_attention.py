"""What needs staff attention in the admin: flagged orders are resolved with a note."""

import pytest
from django.contrib.auth.models import Group

from orders.models import Order
from orders.services import order_flag
from tests.admin.client import ORDERS_URL, action_choices, messages_of, run_action
from tests.admin_shop import (
    order_paid,
    order_placed,
    staff_user,
    variant_stocked,
)

pytestmark = pytest.mark.django_db


def test_support_and_the_manager_may_resolve_flagged_orders_and_warehouse_staff_may_not(client):
    # given
    roles = {
        group.name: {f"{p.content_type.app_label}.{p.codename}" for p in group.permissions.all()}
        for group in Group.objects.prefetch_related("permissions__content_type")
    }
    client.force_login(staff_user("warehouse"))

    # when
    warehouse_actions = action_choices(client, ORDERS_URL)

    # then
    assert "orders.resolve_order" in roles["support"] & roles["manager"]
    assert "orders.resolve_order" not in roles["warehouse"]
    assert "resolve_orders" not in warehouse_actions


def test_support_resolves_a_flagged_order_with_a_note_and_it_leaves_the_dashboard(client):
    # given: a paid order paid a second time, which flags it
    order = order_paid(variant=variant_stocked(on_hand=5), quantity=1)
    order_flag(order=order, reason="payment pay-2 arrived for an order that is paid")
    support = staff_user("support")
    client.force_login(support)
    assert client.get("/admin/").context["attention_count"] == 1

    # when
    page = run_action(client, ORDERS_URL, "resolve_orders", [order])
    response = run_action(
        client,
        ORDERS_URL,
        "resolve_orders",
        [order],
        apply="Resolve",
        note="refunded pay-2 at the provider",
    )

    # then
    assert "resolve_orders" in action_choices(client, ORDERS_URL)
    assert page.status_code == 200
    assert messages_of(response) == [f"{order.number} resolved."]
    order.refresh_from_db()
    assert (order.needs_attention, order.status) == (False, "paid")
    event = order.events.get(kind="resolved")
    assert (event.note, event.actor) == ("refunded pay-2 at the provider", support)
    assert client.get("/admin/").context["attention_count"] == 0


def test_resolving_without_a_note_asks_again_and_changes_nothing(client):
    # given
    order = order_placed(variant=variant_stocked(on_hand=5), quantity=1)
    order_flag(order=order, reason="address looks wrong")
    client.force_login(staff_user("support"))

    # when
    response = run_action(client, ORDERS_URL, "resolve_orders", [order], apply="Resolve", note="  ")

    # then
    assert response.status_code == 200
    assert "note" in response.context["form"].errors
    assert Order.objects.get(pk=order.pk).needs_attention is True
    assert not order.events.filter(kind="resolved").exists()
