"""What staff did, where they look for it: each object's History reads the audit trail (and an
order's timeline), since every action goes through the services, which Django's own log never
sees."""

import pytest
from django.urls import reverse

from inventory.models import StockLevel
from orders.services import order_ship
from tests.admin_shop import order_paid, staff_user, variant_stocked

pytestmark = pytest.mark.django_db


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
