"""The staff admin through Django's test client: who may reach it, what each role may do, and
that every action goes through the services (ledger rows, events, refunds and credit notes)."""

import io
from decimal import Decimal

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.core import mail
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.db import connection
from django.db.migrations.recorder import MigrationRecorder
from django.urls import reverse
from model_bakery import baker
from PIL import Image as PILImage

from audit.models import AuditEntry
from backoffice.roles import roles_sync
from catalog.models import Category, Product, ProductImage, Variant
from inventory.models import MovementReason, StockLevel, StockMovement
from inventory.services import MAX_UNITS, stock_receive
from orders.admin import OrderAdmin
from orders.models import Order, OrderStatus
from orders.services import order_ship
from outbox.models import OutboxMessage, TaskFailure
from payments.models import CreditNote, Refund
from payments.services import refund_issue
from tests.admin_shop import (
    PASSWORD,
    action_choices,
    messages_of,
    order_paid,
    order_placed,
    run_action,
    staff_user,
    variant_stocked,
    warehouse_main,
)

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fast_passwords(settings) -> None:
    """Hash test passwords cheaply: the default hasher costs half a second per user."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


ORDERS_URL = "/admin/orders/order/"
LEVELS_URL = "/admin/inventory/stocklevel/"


# --- who may reach the admin ----------------------------------------------------------------


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


# --- roles ----------------------------------------------------------------------------------


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
        "orders.ship_order",
        "orders.deliver_order",
        "orders.cancel_order",
        "payments.issue_refund",
        "outbox.rerun_task",
    }
    assert roles["warehouse"] & actions == {
        "inventory.receive_stock",
        "inventory.adjust_stock",
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


# --- order actions --------------------------------------------------------------------------


def test_ship_action_asks_for_a_tracking_number_per_order(client):
    # given
    variant = variant_stocked()
    first, second = order_paid(variant=variant), order_paid(variant=variant)
    client.force_login(staff_user("warehouse"))

    # when
    response = run_action(client, ORDERS_URL, "ship_orders", [first, second])

    # then
    assert response.status_code == 200
    assert set(response.context["form"].fields) == {f"tracking_{first.pk}", f"tracking_{second.pk}"}
    first.refresh_from_db()
    assert first.status == OrderStatus.PAID


def test_ship_action_ships_paid_orders_and_says_why_the_others_were_not(client):
    # given
    variant = variant_stocked(on_hand=10)
    paid = order_paid(variant=variant, quantity=2)
    pending = order_placed(variant=variant, quantity=1)
    client.force_login(staff_user("warehouse"))

    # when
    response = run_action(
        client,
        ORDERS_URL,
        "ship_orders",
        [paid, pending],
        apply="Ship",
        **{f"tracking_{paid.pk}": "TRK-100", f"tracking_{pending.pk}": "TRK-200"},
    )

    # then
    assert response.status_code == 302
    paid.refresh_from_db()
    pending.refresh_from_db()
    assert (paid.status, paid.tracking_number) == (OrderStatus.SHIPPED, "TRK-100")
    assert (pending.status, pending.tracking_number) == (OrderStatus.PENDING_PAYMENT, "")
    shipment = StockMovement.objects.get(reference=paid.number, reason=MovementReason.SHIPMENT)
    assert (shipment.on_hand_delta, shipment.reserved_delta) == (-2, -2)
    assert not StockMovement.objects.filter(
        reference=pending.number, reason=MovementReason.SHIPMENT
    ).exists()
    assert messages_of(response) == [
        f"{paid.number} shipped.",
        f"{pending.number} not shipped: order {pending.number} cannot be shipped: it is no "
        "longer paid (invalid_transition)",
    ]
    assert paid.events.get(kind="shipped").actor.username == "warehouse@stockwire.example"


def test_ship_action_lands_in_the_audit_trail_as_the_staff_member(client):
    # given
    order = order_paid(variant=variant_stocked())
    client.force_login(staff_user("warehouse"))

    # when
    run_action(
        client, ORDERS_URL, "ship_orders", [order], apply="1", **{f"tracking_{order.pk}": "TRK-7"}
    )

    # then
    entry = (
        AuditEntry.objects.filter(object_type="orders.Order", object_id=str(order.pk))
        .order_by("id")
        .last()
    )
    assert entry.actor_label == "warehouse@stockwire.example"
    assert entry.changes == {"status": ["paid", "shipped"], "tracking_number": ["", "TRK-7"]}


def test_ship_action_without_a_tracking_number_ships_nothing(client):
    # given
    order = order_paid(variant=variant_stocked())
    client.force_login(staff_user("warehouse"))

    # when
    response = run_action(
        client, ORDERS_URL, "ship_orders", [order], apply="Ship", **{f"tracking_{order.pk}": ""}
    )

    # then
    order.refresh_from_db()
    assert order.status == OrderStatus.PAID
    assert "(invalid_order)" in messages_of(response)[0]


def test_cancel_action_cancels_with_the_reason_and_releases_stock(client):
    # given
    variant = variant_stocked(on_hand=5)
    order = order_placed(variant=variant, quantity=3)
    client.force_login(staff_user("support"))

    # when
    page = run_action(client, ORDERS_URL, "cancel_orders", [order])
    response = run_action(
        client, ORDERS_URL, "cancel_orders", [order], apply="Cancel", reason="customer called"
    )

    # then
    assert page.status_code == 200
    assert messages_of(response) == [f"{order.number} cancelled."]
    order.refresh_from_db()
    assert order.status == OrderStatus.CANCELLED
    assert order.events.get(kind="cancelled").note == "customer called"
    level = StockLevel.objects.get(variant=variant)
    assert (level.on_hand, level.reserved) == (5, 0)


def test_refund_action_refunds_the_payment_and_issues_a_credit_note(client):
    # given
    order = order_paid(variant=variant_stocked(price="12.50"), quantity=2)
    client.force_login(staff_user("support"))

    # when
    response = run_action(
        client, ORDERS_URL, "refund_orders", [order], apply="Refund", reason="arrived broken"
    )

    # then
    assert messages_of(response) == [f"{order.number} refunded."]
    order.refresh_from_db()
    assert order.status == OrderStatus.REFUNDED
    refund = Refund.objects.get(order=order)
    assert (refund.amount, refund.reason) == (order.total, "arrived broken")
    credit_note = CreditNote.objects.get(refund=refund)
    assert credit_note.amount == order.total
    page = client.get(reverse("admin:orders_order_change", args=[order.pk]))
    assert credit_note.number in page.content.decode()


def test_refund_action_on_an_unpaid_order_says_why_and_refunds_nothing(client):
    # given
    order = order_placed(variant=variant_stocked())
    client.force_login(staff_user("support"))

    # when
    response = run_action(client, ORDERS_URL, "refund_orders", [order], apply="Refund", reason="")

    # then
    assert messages_of(response) == [
        f"{order.number} not refunded: order {order.number} has no payment to refund "
        "(refund_impossible)"
    ]
    assert not Refund.objects.filter(order=order).exists()


def test_mark_delivered_moves_a_shipped_order_only(client):
    # given
    variant = variant_stocked()
    shipped = order_ship(order=order_paid(variant=variant), tracking_number="TRK-1")
    paid = order_paid(variant=variant, email="other@example.com")
    client.force_login(staff_user("warehouse"))

    # when
    response = run_action(client, ORDERS_URL, "mark_delivered", [shipped, paid])

    # then
    shipped.refresh_from_db()
    paid.refresh_from_db()
    assert shipped.status == OrderStatus.DELIVERED
    assert paid.status == OrderStatus.PAID
    assert sorted(messages_of(response)) == sorted(
        [
            f"{shipped.number} marked delivered.",
            f"{paid.number} not marked delivered: order {paid.number} cannot be delivered: "
            "it is no longer shipped (invalid_transition)",
        ]
    )


# --- order pages ----------------------------------------------------------------------------


def test_the_order_page_served_is_the_one_orders_admin_defines():
    assert type(admin.site.get_model_admin(Order)) is OrderAdmin


def test_order_page_shows_lines_timeline_ledger_and_invoice_and_edits_nothing(client):
    # given
    order = order_paid(variant=variant_stocked(sku="TEE-S"), quantity=2)
    manager = staff_user("manager")
    client.force_login(manager)

    # when
    response = client.get(reverse("admin:orders_order_change", args=[order.pk]))

    # then
    html = response.content.decode()
    assert response.status_code == 200
    assert 'id="stock-ledger"' in html
    assert "<td>Reservation</td><td>TEE-S</td><td>main</td><td>+0</td><td>+2</td>" in html
    assert "TEE-S" in html
    assert order.invoice.number in html
    assert f"pay-{order.number}" in html
    assert "Grace Hopper<br>1 Navy Yard<br>22202 Arlington<br>US" in html
    for editable in ("status", "total", "subtotal", "shipping", "tracking_number"):
        assert f'name="{editable}"' not in html
    assert response.context["has_change_permission"] is False


@pytest.mark.parametrize(("role", "shown"), [("warehouse", False), ("support", True)])
def test_order_page_shows_invoice_and_credit_notes_only_to_who_may_read_them(client, role, shown):
    # given: a paid order, then refunded (an invoice and a credit note)
    order = order_paid(variant=variant_stocked(on_hand=10))
    refund_issue(order=order, reason="damaged")
    invoice = order.invoice
    credit_note = CreditNote.objects.get(invoice=invoice)
    user = staff_user(role)
    assert user.has_perm("payments.view_invoice") is shown
    assert user.has_perm("payments.view_creditnote") is shown
    client.force_login(user)

    # when
    response = client.get(reverse("admin:orders_order_change", args=[order.pk]))

    # then: the documents' numbers and amounts as their own lists would show or refuse them
    html = response.content.decode()
    assert response.status_code == 200
    assert order.number in html
    assert (invoice.number in html) is shown
    assert (credit_note.number in html) is shown
    assert (f"{invoice.total} {invoice.currency})" in html) is shown
    assert ("Documents</h2>" in html) is shown


@pytest.mark.parametrize(
    ("query", "expected"), [("grace@example.com", 1), ("TRK-SEARCH", 1), ("nobody", 0)]
)
def test_orders_are_found_by_number_email_and_tracking_number(client, query, expected):
    # given
    variant = variant_stocked()
    order = order_paid(variant=variant)
    Order.objects.filter(pk=order.pk).update(tracking_number="TRK-SEARCH")
    client.force_login(staff_user("support"))

    # when
    by_query = client.get(ORDERS_URL, {"q": query})
    by_number = client.get(ORDERS_URL, {"q": order.number})

    # then
    assert by_query.context["cl"].result_count == expected
    assert by_number.context["cl"].result_count == 1


def test_needs_attention_filter_lists_only_flagged_orders(client):
    # given
    variant = variant_stocked()
    flagged = order_placed(variant=variant)
    order_placed(variant=variant)
    Order.objects.filter(pk=flagged.pk).update(needs_attention=True, attention_reason="x")
    client.force_login(staff_user("support"))

    # when
    response = client.get(ORDERS_URL, {"needs_attention__exact": "1"})

    # then
    assert [o.pk for o in response.context["cl"].result_list] == [flagged.pk]


# --- stock actions --------------------------------------------------------------------------


def test_receive_action_adds_units_and_writes_the_ledger_row(client):
    # given
    variant = variant_stocked(on_hand=2)
    level = StockLevel.objects.get(variant=variant)
    user = staff_user("warehouse")
    client.force_login(user)

    # when
    page = run_action(client, LEVELS_URL, "receive_stock", [level])
    response = run_action(
        client,
        LEVELS_URL,
        "receive_stock",
        [level],
        apply="Receive",
        quantity=7,
        reason="Supplier delivery",
        reference="PO-42",
        note="pallet 3",
    )

    # then
    assert page.status_code == 200
    assert messages_of(response) == ["MUG-BLUE in main received: 9 on hand, 9 available."]
    level.refresh_from_db()
    assert level.on_hand == 9
    receipt = StockMovement.objects.filter(level=level).first()
    assert (receipt.reason, receipt.on_hand_delta, receipt.reference) == (
        MovementReason.RECEIPT,
        7,
        "PO-42",
    )
    assert receipt.note == "Supplier delivery: pallet 3"
    assert receipt.actor == user


@pytest.mark.parametrize(
    ("action", "apply", "quantity", "reason"),
    [
        ("receive_stock", "Receive", 0, "Other"),
        # beyond what the stock columns hold
        ("receive_stock", "Receive", 10**12, "Supplier delivery"),
        ("adjust_stock", "Adjust", -(10**12), "Lost or stolen"),
    ],
)
def test_stock_forms_refuse_a_quantity_out_of_range_and_change_nothing(
    client, action, apply, quantity, reason
):
    # given
    variant = variant_stocked(on_hand=2)
    level = StockLevel.objects.get(variant=variant)
    client.force_login(staff_user("warehouse"))

    # when
    response = run_action(
        client, LEVELS_URL, action, [level], apply=apply, quantity=quantity, reason=reason, note=""
    )

    # then
    assert response.status_code == 200
    assert "quantity" in response.context["form"].errors
    level.refresh_from_db()
    assert level.on_hand == 2


def test_receive_action_that_would_overflow_the_level_says_so_and_changes_nothing(client):
    # given
    variant = variant_stocked(on_hand=2)
    level = StockLevel.objects.get(variant=variant)
    movements = StockMovement.objects.count()
    client.force_login(staff_user("warehouse"))

    # when: the largest quantity the form takes, onto units already there
    response = run_action(
        client,
        LEVELS_URL,
        "receive_stock",
        [level],
        apply="Receive",
        quantity=MAX_UNITS,
        reason="Supplier delivery",
        note="",
    )

    # then
    assert messages_of(response) == [
        f"MUG-BLUE in main not received: receiving {MAX_UNITS} would put more than "
        f"{MAX_UNITS} units on hand"
    ]
    level.refresh_from_db()
    assert level.on_hand == 2
    assert StockMovement.objects.count() == movements


def test_adjust_action_refuses_to_go_below_reserved_and_says_so(client):
    # given
    variant = variant_stocked(on_hand=5)
    order_placed(variant=variant, quantity=4)
    level = StockLevel.objects.get(variant=variant)
    client.force_login(staff_user("warehouse"))

    # when
    response = run_action(
        client,
        LEVELS_URL,
        "adjust_stock",
        [level],
        apply="Adjust",
        quantity=-3,
        reason="Damaged",
        note="",
    )

    # then
    assert messages_of(response) == [
        "MUG-BLUE in main not adjusted: adjusting by -3 would leave fewer units on hand than "
        "are reserved"
    ]
    level.refresh_from_db()
    assert (level.on_hand, level.reserved) == (5, 4)
    assert not StockMovement.objects.filter(level=level, reason=MovementReason.ADJUSTMENT).exists()


def test_adjust_action_removes_damaged_units_with_the_reason(client):
    # given
    variant = variant_stocked(on_hand=5)
    level = StockLevel.objects.get(variant=variant)
    client.force_login(staff_user("manager"))

    # when
    run_action(
        client,
        LEVELS_URL,
        "adjust_stock",
        [level],
        apply="Adjust",
        quantity=-2,
        reason="Damaged",
        note="dropped",
    )

    # then
    level.refresh_from_db()
    assert level.on_hand == 3
    adjustment = StockMovement.objects.get(level=level, reason=MovementReason.ADJUSTMENT)
    assert (adjustment.on_hand_delta, adjustment.note) == (-2, "Damaged: dropped")


def test_receive_page_creates_the_level_of_a_new_warehouse(client):
    # given
    variant = variant_stocked(on_hand=0)
    warehouse = warehouse_main()
    client.force_login(staff_user("warehouse"))

    # when
    response = client.post(
        f"{LEVELS_URL}receive/",
        {
            "variant": variant.pk,
            "warehouse": warehouse.pk,
            "quantity": 12,
            "reason": "Supplier delivery",
            "reference": "",
            "note": "",
        },
    )

    # then
    assert response.status_code == 302
    assert StockLevel.objects.get(variant=variant, warehouse=warehouse).on_hand == 12


def test_receive_page_finds_skus_as_the_user_types(client):
    # given
    variant_stocked(sku="MUG-BLUE", on_hand=0)
    variant_stocked(sku="CAP-RED", on_hand=0)
    client.force_login(staff_user("warehouse"))

    # when
    page = client.get(f"{LEVELS_URL}receive/")
    found = client.get(
        "/admin/autocomplete/",
        {
            "term": "MUG",
            "app_label": "inventory",
            "model_name": "stocklevel",
            "field_name": "variant",
        },
    )

    # then
    assert page.status_code == 200
    assert "admin-autocomplete" in page.content.decode()
    assert [row["text"] for row in found.json()["results"]] == ["MUG-BLUE (MUG-BLUE)"]


def test_low_stock_filter_lists_levels_at_or_below_the_threshold(client):
    # given
    low = variant_stocked(sku="LOW", on_hand=3, threshold=3)
    variant_stocked(sku="PLENTY", on_hand=30, threshold=3)
    client.force_login(staff_user("support"))

    # when
    response = client.get(LEVELS_URL, {"stock": "low"})

    # then
    assert [level.variant_id for level in response.context["cl"].result_list] == [low.pk]
    html = response.content.decode()
    assert "Receive stock" not in html


def test_ledger_is_read_only_and_filterable_by_reason(client):
    # given
    variant = variant_stocked(on_hand=5)
    order_placed(variant=variant, quantity=1)
    client.force_login(staff_user("manager"))

    # when
    receipts = client.get("/admin/inventory/stockmovement/", {"reason__exact": "receipt"})
    by_sku = client.get("/admin/inventory/stockmovement/", {"q": "MUG-BLUE"})
    add = client.get("/admin/inventory/stockmovement/add/")

    # then
    assert receipts.context["cl"].result_count == 1
    assert by_sku.context["cl"].result_count == 2
    assert add.status_code == 403


# --- dashboard and read-only pages ----------------------------------------------------------


def test_dashboard_shows_today_chart_low_stock_and_attention(client, django_assert_max_num_queries):
    # given
    variant = variant_stocked(sku="LAST-FEW", price="10.00", on_hand=4, threshold=3)
    paid = order_paid(variant=variant, quantity=2)
    flagged = order_placed(variant=variant, quantity=1)
    Order.objects.filter(pk=flagged.pk).update(needs_attention=True, attention_reason="odd")
    client.force_login(staff_user("manager"))

    # when
    with django_assert_max_num_queries(20):
        response = client.get("/admin/")

    # then
    html = response.content.decode()
    assert response.context["today"].orders == 2
    assert response.context["today"].revenue == paid.total
    assert len(response.context["chart"]["bars"]) == 30
    assert html.count('class="bar"') == 30
    assert [v.sku for v in response.context["low_stock"]] == ["LAST-FEW"]
    assert response.context["low_stock"][0].available == 1
    assert [o.number for o in response.context["attention_orders"]] == [flagged.number]
    assert "<svg" in html


def test_dashboard_hides_sales_from_a_user_without_order_access(client):
    # given
    user = get_user_model().objects.create_user(username="clerk", is_staff=True)
    client.force_login(user)

    # when
    response = client.get("/admin/")

    # then
    assert response.status_code == 200
    assert "chart" not in response.context
    assert "low_stock" not in response.context


@pytest.mark.parametrize(
    "url",
    [
        "/admin/catalog/product/",
        "/admin/catalog/variant/",
        "/admin/catalog/category/",
        "/admin/catalog/collection/",
        "/admin/inventory/warehouse/",
        "/admin/inventory/stockallocation/",
        "/admin/orders/customer/",
        "/admin/payments/payment/",
        "/admin/payments/refund/",
        "/admin/payments/invoice/",
        "/admin/payments/creditnote/",
        "/admin/payments/processedevent/",
        "/admin/audit/auditentry/",
    ],
)
def test_every_list_renders_and_searches_for_a_manager(client, url):
    # given
    order_paid(variant=variant_stocked())
    client.force_login(staff_user("manager"))

    # when
    listed = client.get(url)
    searched = client.get(url, {"q": "MUG"})

    # then
    assert listed.status_code == 200
    assert searched.status_code == 200


@pytest.mark.parametrize(
    ("role", "shown"), [("manager", True), ("support", True), ("warehouse", False)]
)
def test_product_page_shows_its_price_history_to_who_may_read_the_audit_trail(client, role, shown):
    # given: a manager changed a price in the admin (an audit entry naming them, with the diff)
    variant = variant_stocked(sku="CAP-RED", price="15.00")
    manager = staff_user("manager")
    client.force_login(manager)
    client.post(
        reverse("admin:catalog_variant_change", args=[variant.pk]),
        {
            "product": variant.product_id,
            "sku": "CAP-RED",
            "name": "CAP-RED",
            "attributes": "{}",
            "price": "17.00",
            "low_stock_threshold": 3,
            "is_active": "on",
        },
    )
    user = manager if role == "manager" else staff_user(role)
    assert user.has_perm("audit.view_auditentry") is shown
    client.force_login(user)

    # when
    page = client.get(reverse("admin:catalog_product_change", args=[variant.product_id]))

    # then: the variants, and the same rows the audit trail's own list would show or refuse
    html = page.content.decode()
    variant.refresh_from_db()
    assert variant.price == Decimal("17.00")
    assert page.status_code == 200
    assert "CAP-RED" in html
    assert ("15.00 → 17.00" in html) is shown
    assert ("manager@stockwire.example" in html) is shown
    assert ("/admin/audit/auditentry/" in html) is shown


@pytest.mark.parametrize("new_parent", ["itself", "its grandchild"])
def test_category_cannot_be_moved_under_itself_or_its_descendants(client, new_parent):
    # given
    clothes = Category.objects.create(name="Clothes", slug="clothes")
    shirts = Category.objects.create(name="Shirts", slug="shirts", parent=clothes)
    linen = Category.objects.create(name="Linen", slug="linen", parent=shirts)
    client.force_login(staff_user("manager"))
    parent = {"itself": clothes, "its grandchild": linen}[new_parent]

    # when
    response = client.post(
        reverse("admin:catalog_category_change", args=[clothes.pk]),
        {"name": "Clothes", "slug": "clothes", "parent": parent.pk},
    )

    # then
    assert response.status_code == 200  # the form again, with the error
    assert response.context["adminform"].form.errors["parent"] == [
        "A category cannot be placed under itself or one of its own subcategories."
    ]
    clothes.refresh_from_db()
    assert clothes.parent_id is None


def test_category_can_be_moved_under_another_branch(client):
    # given
    clothes = Category.objects.create(name="Clothes", slug="clothes")
    shirts = Category.objects.create(name="Shirts", slug="shirts", parent=clothes)
    sale = Category.objects.create(name="Sale", slug="sale")
    client.force_login(staff_user("manager"))

    # when
    response = client.post(
        reverse("admin:catalog_category_change", args=[shirts.pk]),
        {"name": "Shirts", "slug": "shirts", "parent": sale.pk},
    )

    # then
    assert response.status_code == 302
    shirts.refresh_from_db()
    assert shirts.parent_id == sale.pk


def test_support_downloads_the_invoice_document_and_warehouse_may_not(
    client, django_capture_on_commit_callbacks, settings, tmp_path
):
    # given: the payment's commit requests the document, rendered by the (eager) task
    settings.MEDIA_ROOT = tmp_path
    with django_capture_on_commit_callbacks(execute=True):
        order = order_paid(variant=variant_stocked())
    invoice = order.invoice
    invoice.refresh_from_db()
    url = reverse("admin:payments_invoice_document", args=[invoice.pk])

    # when
    client.force_login(staff_user("support"))
    download = client.get(url)
    client.force_login(staff_user("warehouse"))
    refused = client.get(url)

    # then
    assert download.status_code == 200
    assert download["Content-Disposition"].startswith("attachment;")
    assert invoice.number in b"".join(download.streaming_content).decode()
    assert refused.status_code == 403


def test_order_list_costs_the_same_queries_for_one_order_or_many(
    client, django_assert_max_num_queries
):
    # given
    variant = variant_stocked(on_hand=50)
    for index in range(12):
        order_paid(variant=variant, quantity=1, email=f"c{index}@example.com")
    client.force_login(staff_user("support"))

    # when / then: session, user, permissions, count, page; no query per row
    with django_assert_max_num_queries(12):
        response = client.get(ORDERS_URL)
    assert response.context["cl"].result_count == 12


def test_stock_list_costs_the_same_queries_for_one_level_or_many(
    client, django_assert_max_num_queries
):
    # given
    for index in range(12):
        variant_stocked(sku=f"SKU-{index}", on_hand=index + 1)
    client.force_login(staff_user("warehouse"))

    # when / then
    with django_assert_max_num_queries(12):
        response = client.get(LEVELS_URL)
    assert response.context["cl"].result_count == 12


def png_upload(name: str) -> SimpleUploadedFile:
    buffer = io.BytesIO()
    PILImage.new("RGB", (40, 30), "teal").save(buffer, format="PNG")
    return SimpleUploadedFile(name, buffer.getvalue(), content_type="image/png")


@pytest.mark.parametrize("count", [1, 30])
def test_product_page_costs_the_same_queries_for_one_variant_and_image_or_many(
    client, django_assert_max_num_queries, settings, tmp_path, count
):
    # given: variants without a name of their own (the storefront shows the product's)
    settings.MEDIA_ROOT = tmp_path
    product = baker.make(Product, name="Many", slug="", is_active=True)
    for index in range(count):
        baker.make(Variant, product=product, sku=f"MANY-{index}", name="", price=Decimal("1"))
        ProductImage.objects.create(product=product, image=png_upload(f"many-{index}.png"))
    client.force_login(staff_user("manager"))

    # when / then: session, user, permissions, the product, its variants, its images, the
    # audit panel; no query per variant or image
    with django_assert_max_num_queries(12):
        response = client.get(reverse("admin:catalog_product_change", args=[product.pk]))
    assert response.status_code == 200
    assert f"MANY-{count - 1}" in response.content.decode()


@pytest.mark.parametrize("count", [1, 20])
def test_ledger_list_costs_the_same_queries_for_one_sku_or_many(
    client, django_assert_max_num_queries, count
):
    # given: SKUs of different products, without a name of their own
    for index in range(count):
        product = baker.make(Product, name=f"Product {index}", slug="", is_active=True)
        variant = baker.make(
            Variant, product=product, sku=f"LEDGER-{index}", name="", price=Decimal("1")
        )
        stock_receive(variant=variant, warehouse=warehouse_main(), quantity=3)
    client.force_login(staff_user("warehouse"))

    # when / then: the SKU filter lists every SKU of the ledger without a query per SKU
    with django_assert_max_num_queries(12):
        response = client.get("/admin/inventory/stockmovement/")
    assert response.context["cl"].result_count == count
    assert f"LEDGER-{count - 1}" in response.content.decode()


def test_dashboard_low_stock_link_lists_the_levels_of_that_variant(client):
    # given
    low = variant_stocked(sku="LOW-ONE", on_hand=1, threshold=3)
    variant_stocked(sku="OTHER", on_hand=1, threshold=3)
    client.force_login(staff_user("warehouse"))
    dashboard = client.get("/admin/").content.decode()
    link = f"{LEVELS_URL}?variant__id__exact={low.pk}"

    # when
    response = client.get(link)

    # then
    assert f'href="{link}"' in dashboard
    assert [level.variant.sku for level in response.context["cl"].result_list] == ["LOW-ONE"]


OUTBOX_URL = "/admin/outbox/outboxmessage/"
TASK_FAILURES_URL = "/admin/outbox/taskfailure/"


@pytest.mark.parametrize(
    ("role", "reads", "acknowledges"),
    [("warehouse", False, False), ("support", True, False), ("manager", True, True)],
)
def test_support_and_manager_see_the_outbox_and_failed_tasks_and_the_manager_deals_with_them(
    client, role, reads, acknowledges
):
    # given: a task that failed for good, and a request the broker did not take
    failure = TaskFailure.objects.create(task_name="orders.email_send", exception="SMTP down")
    OutboxMessage.objects.create(task_name="orders.email_send", kwargs={}, attempts=1)
    user = staff_user(role)
    client.force_login(user)

    # when
    failures = client.get(TASK_FAILURES_URL)
    outbox = client.get(OUTBOX_URL)
    acknowledged = client.post(
        reverse("admin:outbox_taskfailure_delete", args=[failure.pk]), {"post": "yes"}
    )

    # then
    assert (failures.status_code, outbox.status_code) == ((200, 200) if reads else (403, 403))
    if reads:
        assert "SMTP down" in failures.content.decode()
        assert outbox.context["cl"].result_count == 1
    assert acknowledged.status_code == (302 if acknowledges else 403)
    assert TaskFailure.objects.filter(pk=failure.pk).exists() is not acknowledges
    assert user.has_perm("outbox.change_outboxmessage") is acknowledges


def test_manager_relays_open_requests_from_the_outbox_list(client):
    # given
    message = OutboxMessage.objects.create(task_name="orders.email_send", kwargs={}, attempts=1)
    client.force_login(staff_user("manager"))

    # when
    choices = action_choices(client, OUTBOX_URL)
    response = run_action(client, OUTBOX_URL, "relay_now", [message])

    # then: the action ran (whether the broker took the row is the outbox's own tests' matter)
    assert "relay_now" in choices
    assert response.status_code == 302
    assert messages_of(response)[0].endswith("of 1 open requests to the broker.")


def test_support_reads_the_outbox_but_cannot_relay_it(client):
    # given
    message = OutboxMessage.objects.create(task_name="orders.email_send", kwargs={}, attempts=1)
    client.force_login(staff_user("support"))

    # when
    choices = action_choices(client, OUTBOX_URL)
    response = run_action(client, OUTBOX_URL, "relay_now", [message])

    # then: the action is neither offered nor run
    assert "relay_now" not in choices
    message.refresh_from_db()
    assert (message.attempts, message.published_at) == (1, None)
    assert response.status_code in (200, 302)


@pytest.mark.parametrize("role", ["support", "manager"])
def test_support_and_manager_rerun_a_failed_email_once_its_cause_is_fixed(
    client, role, django_capture_on_commit_callbacks
):
    # given: an order whose confirmation failed for good while the mail server was down
    order = order_placed(variant=variant_stocked(), quantity=1)
    failure = TaskFailure.objects.create(
        task_name="orders.email_send",
        kwargs={"order_id": order.pk, "kind": "confirmation"},
        exception="SMTPServerDisconnected('Connection unexpectedly closed')",
    )
    user = staff_user(role)
    client.force_login(user)

    # when: re-run twice (a double click, a second member of staff)
    with django_capture_on_commit_callbacks(execute=True):
        first = run_action(client, TASK_FAILURES_URL, "rerun", [failure])
        second = run_action(client, TASK_FAILURES_URL, "rerun", [failure])

    # then: one new request, run, and the e-mail sent once; the failure says who re-ran it
    assert "rerun" in action_choices(client, TASK_FAILURES_URL)
    assert messages_of(first)[0] == "Requested 1 of 1 failed tasks again."
    assert messages_of(second)[-1].startswith("Requested 0 of 1 failed tasks again. 1 had been")
    assert [message.subject for message in mail.outbox] == [
        f"Your order {order.number} is confirmed"
    ]
    failure.refresh_from_db()
    assert (failure.rerun_by, failure.rerun_at is not None) == (user, True)
    request = OutboxMessage.objects.get(pk=failure.rerun_request)
    assert (request.task_name, request.kwargs) == (failure.task_name, failure.kwargs)
    assert request.done_at is not None


def test_warehouse_cannot_rerun_a_failed_task(client, django_capture_on_commit_callbacks):
    # given
    failure = TaskFailure.objects.create(
        task_name="stockwire.slow_mark", kwargs={"key": "k", "seconds": 0}, exception="x"
    )
    client.force_login(staff_user("warehouse"))

    # when
    with django_capture_on_commit_callbacks(execute=True):
        response = run_action(client, TASK_FAILURES_URL, "rerun", [failure])

    # then
    assert response.status_code == 403
    failure.refresh_from_db()
    assert failure.rerun_at is None
    assert OutboxMessage.objects.count() == 0


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


def test_product_page_previews_image_thumbnails(client, settings, tmp_path):
    # given
    settings.MEDIA_ROOT = tmp_path
    variant = variant_stocked(sku="PIC-1")
    ProductImage.objects.create(
        product=variant.product,
        image=png_upload("mug.png"),
        alt_text="a teal mug",
    )
    client.force_login(staff_user("manager"))

    # when
    page = client.get(reverse("admin:catalog_product_change", args=[variant.product_id]))
    listing = client.get("/admin/catalog/product/")

    # then
    assert '<img src="/media/products/' in page.content.decode()
    assert 'alt="a teal mug"' in page.content.decode()
    assert 'alt="a teal mug"' in listing.content.decode()
