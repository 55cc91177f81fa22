"""Order actions (ship, cancel, refund, mark delivered): each calls the service, order by order,
and says what happened or why not."""

import pytest
from django.urls import reverse

from audit.models import AuditEntry
from inventory.models import MovementReason, StockLevel, StockMovement
from orders.models import OrderStatus
from orders.services import order_ship
from payments.models import CreditNote, Refund
from tests.admin.client import ORDERS_URL, messages_of, run_action
from tests.admin_shop import (
    order_paid,
    order_placed,
    staff_user,
    variant_stocked,
)

pytestmark = pytest.mark.django_db


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
        "longer paid or partially_shipped (invalid_transition)",
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


def test_ship_action_without_a_tracking_number_keeps_the_form_and_ships_nothing(client):
    # given
    variant = variant_stocked()
    order = order_paid(variant=variant)
    other = order_paid(variant=variant, email="other@example.com")
    client.force_login(staff_user("warehouse"))

    # when
    response = run_action(
        client,
        ORDERS_URL,
        "ship_orders",
        [order, other],
        apply="Ship",
        **{f"tracking_{order.pk}": "TRK-KEPT", f"tracking_{other.pk}": " "},
    )

    # then: the same page again, the number typed kept, the empty one marked, nothing shipped
    assert response.status_code == 200
    form = response.context["form"]
    assert form.errors == {f"tracking_{other.pk}": ["This field is required."]}
    assert form[f"tracking_{order.pk}"].value() == "TRK-KEPT"
    assert f'name="_selected_action" value="{other.pk}"' in response.content.decode()
    assert messages_of(response) == []
    order.refresh_from_db()
    other.refresh_from_db()
    assert (order.status, other.status) == (OrderStatus.PAID, OrderStatus.PAID)


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
