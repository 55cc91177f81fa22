"""What staff did, where they look for it: the index's "Recent actions" and each object's
History read the audit trail (and an order's timeline), since every action goes through the
services, which Django's own log never sees."""

import pytest
from django.urls import reverse

from inventory.models import StockLevel
from orders.services import order_ship
from tests.admin.client import LEVELS_URL, run_action
from tests.admin_shop import order_paid, staff_user, variant_stocked

pytestmark = pytest.mark.django_db


def test_recent_actions_list_what_the_user_did_through_the_services_linked(
    client, django_assert_max_num_queries
):
    # given: a warehouse clerk ships an order from its page and receives stock; someone else
    # ships another order
    variant = variant_stocked(sku="MUG-BLUE", on_hand=10)
    order = order_paid(variant=variant, quantity=1)
    other = order_paid(variant=variant, quantity=1, email="other@example.com")
    order_ship(order=other, tracking_number="TRK-OTHER", actor=staff_user("manager"))
    clerk = staff_user("warehouse")
    client.force_login(clerk)
    client.post(
        reverse("admin:orders_order_tool", args=[order.pk, "ship"]), {"tracking_number": "TRK-1"}
    )
    level = StockLevel.objects.get(variant=variant)
    run_action(
        client,
        LEVELS_URL,
        "receive_stock",
        [level],
        apply="Receive",
        quantity=5,
        reason="Supplier delivery",
        reference="",
        note="",
    )

    # when: the panels, their counts, and one query for the recent actions
    with django_assert_max_num_queries(20):
        index = client.get("/admin/")

    # then: newest first, named and linked, and nothing the clerk did not do
    actions = index.context["recent_actions"]
    assert [(action.entry.object_repr, action.noun, action.url) for action in actions] == [
        (
            "MUG-BLUE — Product MUG-BLUE — Main warehouse",
            "stock level",
            reverse("admin:inventory_stocklevel_change", args=[level.pk]),
        ),
        (order.number, "order", reverse("admin:orders_order_change", args=[order.pk])),
    ]
    html = index.content.decode()
    assert "None available" not in html
    assert "status: paid → shipped; tracking_number:  → TRK-1" in html
    assert other.number not in html.split('id="recent-actions-module"')[1]


def test_order_history_shows_the_timeline_and_the_audit_trail(client):
    # given
    order = order_paid(variant=variant_stocked())
    order_ship(order=order, tracking_number="TRK-7", actor=staff_user("warehouse"))
    client.force_login(staff_user("support"))

    # when
    response = client.get(reverse("admin:orders_order_history", args=[order.pk]))

    # then
    html = response.content.decode()
    assert response.status_code == 200
    assert [(row.what, row.status, row.who) for row in response.context["history_before"]] == [
        ("Placed", "Pending payment", "system"),
        ("Paid", "Pending payment → Paid", "system"),
        ("Shipped", "Paid → Shipped", "warehouse@stockwire.example"),
    ]
    assert 'id="sw-audit-trail"' in html
    assert "status: paid → shipped; tracking_number:  → TRK-7" in html
    assert "doesn’t have a change history" not in html


def test_history_without_the_audit_trail_permission_shows_the_timeline_only(client):
    # given: warehouse staff read orders but not the audit trail
    order = order_paid(variant=variant_stocked())
    client.force_login(staff_user("warehouse"))

    # when
    response = client.get(reverse("admin:orders_order_history", args=[order.pk]))

    # then
    html = response.content.decode()
    assert 'id="sw-timeline"' in html
    assert 'id="sw-audit-trail"' not in html


def test_a_stock_levels_history_lists_its_receipts(client):
    # given
    level = StockLevel.objects.get(variant=variant_stocked(sku="MUG-RED", on_hand=4))
    client.force_login(staff_user("manager"))

    # when
    response = client.get(reverse("admin:inventory_stocklevel_history", args=[level.pk]))

    # then
    html = response.content.decode()
    assert "<td>Stock change</td>" in html
    assert "on_hand: 0 → 4" in html
    assert "reason: None → receipt" in html
