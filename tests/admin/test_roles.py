"""The staff roles: the groups the migrations make, what each may see and do, and their repair."""

import pytest
from django.contrib.auth.models import Group, Permission
from django.core.management import call_command
from django.db import connection
from django.db.migrations.recorder import MigrationRecorder

from backoffice.roles import roles_sync
from inventory.models import StockLevel, StockMovement
from orders.models import OrderStatus
from payments.models import Refund
from tests.admin.client import LEVELS_URL, ORDERS_URL, action_choices, run_action
from tests.admin_shop import (
    order_paid,
    staff_user,
    variant_stocked,
)

pytestmark = pytest.mark.django_db


def test_migration_creates_the_three_roles_with_their_action_permissions():
    # when
    roles = {
        group.name: {f"{p.content_type.app_label}.{p.codename}" for p in group.permissions.all()}
        for group in Group.objects.prefetch_related("permissions__content_type")
    }

    # then
    assert set(roles) >= {"warehouse", "support", "manager"}
    actions = {
        "inventory.receive_stock",
        "inventory.adjust_stock",
        "inventory.hold_stock",
        "inventory.set_safety_stock",
        "inventory.receive_purchase_order",
        "inventory.add_purchaseorder",
        "inventory.change_stockpolicy",
        "orders.ship_order",
        "orders.deliver_order",
        "orders.cancel_order",
        "payments.issue_refund",
        "outbox.rerun_task",
    }
    assert roles["warehouse"] & actions == {
        "inventory.receive_stock",
        "inventory.adjust_stock",
        "inventory.hold_stock",
        "inventory.set_safety_stock",
        "inventory.receive_purchase_order",
        "inventory.add_purchaseorder",
        "orders.ship_order",
        "orders.deliver_order",
    }
    assert roles["support"] & actions == {
        "orders.cancel_order",
        "payments.issue_refund",
        "outbox.rerun_task",
    }
    assert roles["manager"] >= actions
    assert "orders.view_order" in roles["support"]
    assert not {p for p in roles["support"] if p.startswith("inventory.") and "view_" not in p}


# The actions the last role migrations in config gave support and the manager.
LATEST_ACTIONS = ("rerun_task", "resolve_order")


@pytest.mark.django_db(transaction=True)
def test_migrate_gives_a_database_from_before_the_backoffice_app_exactly_the_roles():
    # given: a database migrated when config held the role migrations (label `stockwire`),
    # whose warehouse and support groups have drifted, and without the backoffice's migration
    call_command("migrate", "backoffice", "zero", verbosity=0)
    recorder = MigrationRecorder(connection)
    for name in (
        "0001_roles",
        "0002_roles_outbox",
        "0003_roles_task_rerun",
        "0004_roles_attention",
    ):
        recorder.record_applied("stockwire", name)
    roles_sync()
    warehouse = Group.objects.get(name="warehouse")
    warehouse.permissions.add(Permission.objects.get(codename="issue_refund"))
    support = Group.objects.get(name="support")
    support.permissions.remove(*Permission.objects.filter(codename__in=LATEST_ACTIONS))

    try:
        # when
        call_command("migrate", verbosity=0)

        # then
        assert ("backoffice", "0001_roles") in recorder.applied_migrations()
        assert set(Group.objects.values_list("name", flat=True)) == {
            "warehouse",
            "support",
            "manager",
        }
        assert not warehouse.permissions.filter(codename="issue_refund").exists()
        assert warehouse.permissions.filter(codename="ship_order").exists()
        for codename in LATEST_ACTIONS:
            holders = Group.objects.filter(permissions__codename=codename)
            assert set(holders.values_list("name", flat=True)) == {"support", "manager"}
    finally:
        recorder.migration_qs.filter(app="stockwire").delete()


def test_warehouse_sees_ship_and_deliver_but_not_refund_or_cancel(client):
    # given
    client.force_login(staff_user("warehouse"))

    # when
    choices = action_choices(client, ORDERS_URL)

    # then
    assert {"ship_orders", "mark_delivered"} <= choices
    assert "refund_orders" not in choices
    assert "cancel_orders" not in choices


def test_support_sees_cancel_and_refund_but_not_ship(client):
    # given
    client.force_login(staff_user("support"))

    # when
    choices = action_choices(client, ORDERS_URL)

    # then
    assert {"cancel_orders", "refund_orders"} <= choices
    assert "ship_orders" not in choices


def test_support_cannot_receive_or_adjust_stock(client):
    # given
    variant = variant_stocked(on_hand=4)
    level = StockLevel.objects.get(variant=variant)
    client.force_login(staff_user("support"))

    # when
    choices = action_choices(client, LEVELS_URL)
    forced = run_action(
        client,
        LEVELS_URL,
        "receive_stock",
        [level],
        apply="1",
        quantity=5,
        reason="Other",
        note="forced",
    )
    receive_page = client.get(f"{LEVELS_URL}receive/")

    # then
    assert "receive_stock" not in choices
    assert "adjust_stock" not in choices
    assert forced.status_code == 200  # the changelist again: no action it may run
    assert receive_page.status_code == 403
    level.refresh_from_db()
    assert level.on_hand == 4
    assert StockMovement.objects.filter(level=level).count() == 1


def test_warehouse_cannot_refund_even_by_posting_the_action(client):
    # given
    order = order_paid(variant=variant_stocked())
    client.force_login(staff_user("warehouse"))

    # when
    run_action(client, ORDERS_URL, "refund_orders", [order], apply="1", reason="forced")

    # then
    order.refresh_from_db()
    assert order.status == OrderStatus.PAID
    assert not Refund.objects.filter(order=order).exists()


def test_roles_sync_puts_a_drifted_group_back_to_its_role():
    # given: someone gave the warehouse group the refund permission by hand
    warehouse = Group.objects.get(name="warehouse")
    warehouse.permissions.add(Permission.objects.get(codename="issue_refund"))
    before = warehouse.permissions.count()

    # when
    roles_sync()
    roles_sync()

    # then
    assert not warehouse.permissions.filter(codename="issue_refund").exists()
    assert warehouse.permissions.count() == before - 1
    assert Permission.objects.filter(codename="issue_refund").count() == 1
