"""The order state machine: guarded transitions, their events, stock and e-mails."""

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core import serializers
from django.utils import timezone

from audit.context import acting_as
from audit.models import AuditEntry
from inventory.models import MovementReason, StockAllocation, StockLevel, StockMovement
from orders.models import Customer, Order, OrderEvent, OrderStatus
from orders.services import (
    InvalidOrder,
    InvalidTransition,
    NotFlagged,
    expiry,
    order_cancel,
    order_flag,
    order_mark_delivered,
    order_mark_paid,
    order_resolve,
    order_ship,
    orders_expire_unpaid,
)
from outbox.models import OutboxMessage
from tests.orders_helpers import customer_new, order_new, variant_stocked

pytestmark = pytest.mark.django_db


def _emails_requested() -> set[str]:
    return {
        message.kwargs["kind"]
        for message in OutboxMessage.objects.filter(task_name="orders.email_send")
    }


def _level(variant) -> tuple[int, int]:
    level = StockLevel.objects.get(variant=variant)
    return level.on_hand, level.reserved


def test_new_user_gets_a_customer_profile_and_a_normalised_identity():
    # when
    user = get_user_model().objects.create_user(
        username="whatever", email="  Ada.Lovelace@Example.COM "
    )

    # then
    user.refresh_from_db()
    assert (user.email, user.username) == ("ada.lovelace@example.com", "ada.lovelace@example.com")
    assert Customer.objects.filter(user=user).count() == 1


def test_staff_keep_their_username_lower_cased():
    user = get_user_model().objects.create_user(
        username=" Grace ", email="Grace@Example.com", is_staff=True
    )
    user.refresh_from_db()
    assert (user.username, user.email) == ("grace", "grace@example.com")


def test_raw_fixture_load_creates_no_profile_and_keeps_the_stored_spelling():
    # given
    data = (
        '[{"model": "auth.user", "pk": 900, "fields": {"username": "Raw", '
        '"email": "Raw@Example.com", "password": "x"}}]'
    )

    # when
    for obj in serializers.deserialize("json", data):
        obj.save()

    # then
    user = get_user_model().objects.get(pk=900)
    assert (user.username, user.email) == ("Raw", "Raw@Example.com")
    assert not Customer.objects.filter(user=user).exists()


def test_paid_order_ships_once_its_reservation_becomes_a_shipment():
    # given
    variant = variant_stocked("MUG-1", on_hand=10)
    order = order_new(customer_new(), ("MUG-1", 3))
    order_mark_paid(order=order)
    staff = get_user_model().objects.create_user(username="staff", email="s@x.io", is_staff=True)

    # when
    order_ship(order=order, tracking_number="TRACK-123", actor=staff)

    # then
    order.refresh_from_db()
    assert (order.status, order.tracking_number) == (OrderStatus.SHIPPED, "TRACK-123")
    assert order.shipped_at is not None
    assert _level(variant) == (7, 0)
    assert StockAllocation.objects.get(reference=order.number).state == "shipped"
    assert list(order.events.values_list("kind", "from_status", "to_status", "actor")) == [
        ("placed", "", "pending_payment", None),
        ("paid", "pending_payment", "paid", None),
        ("shipped", "paid", "shipped", staff.pk),
    ]
    assert _emails_requested() == {"confirmation", "shipped"}

    # and a delivered order cannot ship again
    order_mark_delivered(order=order)
    with pytest.raises(InvalidTransition):
        order_ship(order=order, tracking_number="AGAIN")


def test_unpaid_order_cannot_ship_and_nothing_moves():
    # given
    variant = variant_stocked("MUG-1", on_hand=10)
    order = order_new(customer_new(), ("MUG-1", 3))

    # when
    with pytest.raises(InvalidTransition) as error:
        order_ship(order=order, tracking_number="TRACK-1")

    # then
    assert error.value.code == "invalid_transition"
    order.refresh_from_db()
    assert order.status == OrderStatus.PENDING_PAYMENT
    assert _level(variant) == (10, 3)
    assert _emails_requested() == {"confirmation"}


def test_tracking_number_is_required_to_ship():
    variant_stocked("MUG-1")
    order = order_new(customer_new(), ("MUG-1", 1))
    order_mark_paid(order=order)
    with pytest.raises(InvalidOrder):
        order_ship(order=order, tracking_number="  ")
    order.refresh_from_db()
    assert order.status == OrderStatus.PAID


def test_cancel_releases_the_stock_and_sends_the_cancellation_email():
    # given
    variant = variant_stocked("MUG-1", on_hand=10)
    order = order_new(customer_new(), ("MUG-1", 4))

    # when
    order_cancel(order=order, reason="changed my mind")

    # then
    order.refresh_from_db()
    assert order.status == OrderStatus.CANCELLED
    assert _level(variant) == (10, 0)
    assert StockMovement.objects.filter(
        reference=order.number, reason=MovementReason.RELEASE, reserved_delta=-4
    ).exists()
    event = order.events.get(kind="cancelled")
    assert (event.from_status, event.note) == ("pending_payment", "changed my mind")
    assert _emails_requested() == {"confirmation", "cancelled"}

    # and cancelling twice is refused
    with pytest.raises(InvalidTransition):
        order_cancel(order=order)


def _order_audit(order: Order) -> list[tuple[str, str, str, dict]]:
    return list(
        AuditEntry.objects.filter(object_type="orders.Order", object_id=str(order.pk))
        .order_by("id")
        .values_list("actor_label", "action", "object_repr", "changes")
    )


def test_every_status_change_lands_in_the_audit_trail_with_its_actor_and_diff():
    # given: placing an order records nothing (the order's creation is its "placed" event)
    variant_stocked("MUG-1", on_hand=10)
    order = order_new(customer_new(), ("MUG-1", 1))
    assert _order_audit(order) == []
    staff = get_user_model().objects.create_user(username="staff", email="s@x.io", is_staff=True)
    clerk = get_user_model().objects.create_user(username="clerk", email="c@x.io", is_staff=True)

    # when: paid by the provider (no user), shipped by staff, delivered in a clerk's request
    order_mark_paid(order=order)
    order_ship(order=order, tracking_number="TRACK-9", actor=staff)
    with acting_as(clerk):
        order_mark_delivered(order=order)

    # then
    number = order.number
    assert _order_audit(order) == [
        ("system", "update", number, {"status": ["pending_payment", "paid"]}),
        (
            "staff",
            "update",
            number,
            {"status": ["paid", "shipped"], "tracking_number": ["", "TRACK-9"]},
        ),
        ("clerk", "update", number, {"status": ["shipped", "delivered"]}),
    ]
    assert AuditEntry.objects.filter(actor=staff).count() == 1


def test_a_cancellation_is_audited_and_a_refused_transition_is_not():
    # given
    variant_stocked("MUG-1", on_hand=10)
    order = order_new(customer_new(), ("MUG-1", 1))

    # when
    order_cancel(order=order, reason="changed my mind")
    with pytest.raises(InvalidTransition):
        order_ship(order=order, tracking_number="TRACK-1")

    # then
    assert _order_audit(order) == [
        ("system", "update", order.number, {"status": ["pending_payment", "cancelled"]}),
    ]


def test_flag_marks_the_order_for_staff_and_keeps_its_status():
    variant_stocked("MUG-1")
    order = order_new(customer_new(), ("MUG-1", 1))
    order_flag(order=order, reason="address looks wrong")
    order.refresh_from_db()
    assert (order.needs_attention, order.attention_reason, order.status) == (
        True,
        "address looks wrong",
        OrderStatus.PENDING_PAYMENT,
    )
    assert order.events.filter(kind="flagged", note="address looks wrong").count() == 1


def test_resolving_a_flagged_order_clears_the_flag_with_the_note_on_its_timeline_and_audit():
    # given
    variant_stocked("MUG-1")
    order = order_new(customer_new(), ("MUG-1", 1))
    order_flag(order=order, reason="payment pay_2 arrived for an order that is paid")
    staff = get_user_model().objects.create_user(username="sam", is_staff=True)

    # when
    order_resolve(order=order, note="  refunded pay_2 at the provider  ", actor=staff)

    # then
    order.refresh_from_db()
    assert (order.needs_attention, order.attention_reason, order.status) == (
        False,
        "",
        OrderStatus.PENDING_PAYMENT,
    )
    event = order.events.get(kind="resolved")
    assert (event.note, event.actor, event.from_status, event.to_status) == (
        "refunded pay_2 at the provider",
        staff,
        "pending_payment",
        "pending_payment",
    )
    assert _order_audit(order) == [
        (
            "sam",
            "update",
            order.number,
            {
                "needs_attention": [True, False],
                "attention_reason": ["payment pay_2 arrived for an order that is paid", ""],
            },
        )
    ]


def test_resolving_needs_a_note_and_a_flag_and_otherwise_changes_nothing():
    # given
    variant_stocked("MUG-1")
    flagged, calm = (order_new(customer_new(), ("MUG-1", 1)) for _ in range(2))
    order_flag(order=flagged, reason="address looks wrong")

    # when / then
    with pytest.raises(InvalidOrder, match="note"):
        order_resolve(order=flagged, note="   ")
    with pytest.raises(NotFlagged) as error:
        order_resolve(order=calm, note="looked at it")

    # then
    assert error.value.code == "not_flagged"
    flagged.refresh_from_db()
    assert (flagged.needs_attention, flagged.attention_reason) == (True, "address looks wrong")
    assert not OrderEvent.objects.filter(kind="resolved").exists()
    assert _order_audit(flagged) == _order_audit(calm) == []


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_staff_resolving_one_flag_at_once_resolve_it_once(run_concurrently):
    # given
    variant_stocked("MUG-1")
    order = order_new(customer_new(), ("MUG-1", 1))
    order_flag(order=order, reason="address looks wrong")

    # when
    results = run_concurrently(
        lambda index: order_resolve(
            order=Order.objects.get(pk=order.pk), note=f"called the customer ({index})"
        ),
        2,
    )

    # then
    assert sorted(type(result).__name__ for result in results) == ["NotFlagged", "Order"]
    assert order.events.filter(kind="resolved").count() == 1
    assert len(_order_audit(order)) == 1


def test_expiry_cancels_only_old_unpaid_orders_and_releases_their_stock(settings):
    # given
    settings.RESERVATION_TTL_MINUTES = 30
    variant = variant_stocked("MUG-1", on_hand=20)
    customer = customer_new()
    old_unpaid = order_new(customer, ("MUG-1", 2))
    old_paid = order_new(customer, ("MUG-1", 3))
    order_mark_paid(order=old_paid)
    fresh_unpaid = order_new(customer, ("MUG-1", 5))
    Order.objects.filter(pk__in=[old_unpaid.pk, old_paid.pk]).update(
        placed_at=timezone.now() - timedelta(minutes=31)
    )

    # when
    first = orders_expire_unpaid(batch_size=1)
    second = orders_expire_unpaid()

    # then
    assert (first, second) == (1, 0)
    statuses = dict(Order.objects.values_list("pk", "status"))
    assert statuses == {
        old_unpaid.pk: OrderStatus.CANCELLED,
        old_paid.pk: OrderStatus.PAID,
        fresh_unpaid.pk: OrderStatus.PENDING_PAYMENT,
    }
    assert _level(variant) == (20, 8)
    assert old_unpaid.events.get(kind="cancelled").note == "unpaid after 30 minutes"


def test_expiry_skips_an_order_it_cannot_cancel_and_expires_the_ones_after_it(
    settings, monkeypatch, caplog
):
    # given two old unpaid orders, the first of which cannot be cancelled (drifted stock, say)
    settings.RESERVATION_TTL_MINUTES = 30
    variant = variant_stocked("MUG-1", on_hand=20)
    customer = customer_new()
    stuck, behind = order_new(customer, ("MUG-1", 2)), order_new(customer, ("MUG-1", 3))
    Order.objects.update(placed_at=timezone.now() - timedelta(minutes=31))
    cancel = expiry.order_cancel

    def cancel_all_but_the_stuck_one(*, order, **kwargs):
        if order.pk == stuck.pk:
            raise RuntimeError("stock drifted")
        return cancel(order=order, **kwargs)

    monkeypatch.setattr(expiry, "order_cancel", cancel_all_but_the_stuck_one)

    # when
    expired = orders_expire_unpaid()

    # then: the order behind it is cancelled and its stock released; the stuck one is logged
    assert expired == 1
    statuses = dict(Order.objects.values_list("pk", "status"))
    assert statuses == {stuck.pk: OrderStatus.PENDING_PAYMENT, behind.pk: OrderStatus.CANCELLED}
    assert _level(variant) == (20, 2)
    assert [r.order_id for r in caplog.records if r.getMessage() == "unpaid order not expired"] == [
        stuck.pk
    ]
