"""Which events are written, with what, and what they cost: each in the transaction of its
cause, numbered per resource, nothing for a rollback, no query while nobody subscribes."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from catalog.services import variant_price_bulk_set
from inventory.services import stock_adjust
from orders.models import Fulfilment, Order
from orders.services import (
    LineRequest,
    LinesOutOfStock,
    fulfilment_create,
    order_cancel,
    order_ship,
)
from outbox.models import OutboxMessage
from payments.services import webhook_handle
from tests.orders_helpers import customer_new, order_new, variant_stocked, warehouse
from tests.payments_helpers import payment_event, signed
from tests.webhooks_helpers import ConnectionGuard, endpoint_for
from webhooks.models import PendingChange, WebhookDelivery, WebhookEndpoint, WebhookEvent
from webhooks.selectors import subscriptions_forget
from webhooks.services import changes_emit, endpoint_update, events_prune

pytestmark = pytest.mark.django_db

# No attempt is made here (the test transaction never commits, so no on-commit callback
# runs); the guard fails any connection all the same.
URL = "https://127.0.0.1:9/hooks"


@pytest.fixture(autouse=True)
def guard(monkeypatch, settings) -> ConnectionGuard:
    """Receivers listen on loopback, which these tests allow; nothing leaves 127.0.0.1."""
    settings.WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    return ConnectionGuard(monkeypatch)


def _payloads(event_type: str | None = None) -> list[dict]:
    events = WebhookEvent.objects.order_by("created_at", "sequence")
    if event_type:
        events = events.filter(type=event_type)
    return [event.payload for event in events]


def _pay(order) -> None:
    webhook_handle(**signed(payment_event(order)))


def test_an_order_s_events_carry_an_increasing_sequence_of_their_own():
    # given
    endpoint_for(URL, "order.placed", "order.paid", "order.shipped", "order.cancelled",
                 "order.refunded")  # fmt: skip
    variant_stocked("SEQ-1", price="20.00", on_hand=10)
    first, second = order_new(customer_new(), ("SEQ-1", 1)), order_new(customer_new(), ("SEQ-1", 2))

    # when: the first is paid and shipped; the second paid and cancelled (so refunded)
    _pay(first)
    order_ship(order=first, tracking_number="1Z-TRACK")
    _pay(second)
    order_cancel(order=second, reason="changed my mind")

    # then: in the order they were written; a paid order's cancellation refunds it inside
    # the cancellation (payments reacts to order_cancelled before webhooks do), so its
    # order.refunded comes first, both showing the order cancelled
    by_order = {
        number: [
            (p["sequence"], p["type"], p["data"]["order"]["status"])
            for p in _payloads()
            if p["data"]["order"]["number"] == number
        ]
        for number in (first.number, second.number)
    }
    assert by_order[first.number] == [
        (1, "order.placed", "pending_payment"),
        (2, "order.paid", "paid"),
        (3, "order.shipped", "shipped"),
    ]
    assert by_order[second.number] == [
        (1, "order.placed", "pending_payment"),
        (2, "order.paid", "paid"),
        (3, "order.refunded", "cancelled"),
        (4, "order.cancelled", "cancelled"),
    ]
    [shipped] = _payloads("order.shipped")
    shipment = Fulfilment.objects.get(order__number=first.number)
    assert shipped["data"]["shipment"] == {
        "id": shipment.pk,
        "tracking_number": "1Z-TRACK",
        "carrier": None,
        "shipped_at": shipment.created_at.isoformat(),
        "lines": [{"sku": "SEQ-1", "quantity": 1, "warehouse": "main"}],
    }
    assert shipped["data"]["order"]["status"] == "shipped"
    [paid, _] = _payloads("order.paid")
    assert paid["data"]["payment"]["amount"] == "24.90"
    [cancelled] = _payloads("order.cancelled")
    assert cancelled["data"]["cancellation"] == {
        "previous_status": "paid",
        "reason": "changed my mind",
    }
    [refunded] = _payloads("order.refunded")
    assert (refunded["data"]["refund"]["amount"], refunded["data"]["refund"]["currency"]) == (
        "44.90",
        "EUR",
    )
    assert WebhookDelivery.objects.count() == 7


def test_an_order_shipped_in_two_parcels_sends_one_order_shipped_per_parcel_with_its_units():
    # given
    endpoint_for(URL, "order.shipped")
    variant_stocked("PART-A", price="10.00", on_hand=5)
    variant_stocked("PART-B", price="10.00", on_hand=5)
    order = order_new(customer_new(), ("PART-A", 2), ("PART-B", 1))
    _pay(order)

    # when
    fulfilment_create(order=order, tracking_number="T-1", lines=[LineRequest("PART-A", 1)])
    fulfilment_create(order=order, tracking_number="T-2", carrier="DHL")

    # then
    first, second = _payloads("order.shipped")
    assert (first["data"]["order"]["status"], second["data"]["order"]["status"]) == (
        "partially_shipped",
        "shipped",
    )
    assert first["data"]["shipment"]["lines"] == [
        {"sku": "PART-A", "quantity": 1, "warehouse": "main"}
    ]
    assert (
        second["data"]["shipment"]["tracking_number"],
        second["data"]["shipment"]["carrier"],
    ) == (
        "T-2",
        "DHL",
    )
    assert second["data"]["shipment"]["lines"] == [
        {"sku": "PART-A", "quantity": 1, "warehouse": "main"},
        {"sku": "PART-B", "quantity": 1, "warehouse": "main"},
    ]


def test_an_order_that_rolls_back_emits_nothing():
    # given
    endpoint_for(URL, "order.placed", "stock.low")
    variant_stocked("RB-1", on_hand=1)

    # when: one order is refused for want of stock, another (whose receivers had run) is
    # rolled back by its caller
    with pytest.raises(LinesOutOfStock):
        order_new(customer_new(), ("RB-1", 2))
    with pytest.raises(RuntimeError), transaction.atomic():
        order_new(customer_new(), ("RB-1", 1))
        raise RuntimeError("the caller gives up")

    # then: no event, delivery or request survives
    assert WebhookEvent.objects.count() == 0
    assert WebhookDelivery.objects.count() == 0
    assert not OutboxMessage.objects.filter(task_name__startswith="webhooks.").exists()


def _queries_to_place(sku: str) -> int:
    customer = customer_new()
    with CaptureQueriesContext(connection) as captured:
        order_new(customer, (sku, 1))
    return len(captured)


def test_placing_an_order_nobody_subscribes_to_costs_no_query_for_webhooks(
    django_assert_num_queries,
):
    # given: the cost of an order without any endpoint
    variant_stocked("COST-1", on_hand=50)
    without_endpoints = _queries_to_place("COST-1")

    # when: an endpoint subscribes to other events only (its copy loaded by the first order)
    endpoint_for(URL, "order.shipped", "product.updated")
    _queries_to_place("COST-1")

    # then: the same statements, to the query
    customer = customer_new()
    with django_assert_num_queries(without_endpoints):
        order_new(customer, ("COST-1", 1))
    assert WebhookEvent.objects.count() == 0
    print(f"order_place: {without_endpoints} queries with or without unrelated endpoints")


def test_subscribing_to_order_placed_adds_six_queries_to_a_checkout():
    # given
    variant_stocked("COST-2", on_hand=50)
    baseline = _queries_to_place("COST-2")
    endpoint_for(URL, "order.placed")
    _queries_to_place("COST-2")

    # when
    subscribed = _queries_to_place("COST-2")

    # then: the sequence, the lines for the payload, the event, the endpoints still active,
    # the delivery and its outbox request
    assert subscribed - baseline == 6
    print(f"order_place: {baseline} queries, {subscribed} with one endpoint on order.placed")


def test_a_deactivated_endpoint_gets_no_delivery_even_from_a_stale_copy():
    # given: this process's copy still lists the endpoint after another process deactivated it
    endpoint, _ = endpoint_for(URL, "order.placed")
    variant_stocked("STALE-1", on_hand=5)
    subscriptions_forget(known={"order.placed": (endpoint.pk,)})
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(active=False)

    # when
    order_new(customer_new(), ("STALE-1", 1))

    # then
    assert WebhookDelivery.objects.count() == 0


def test_an_endpoint_saved_here_receives_the_next_event_at_once():
    # given: the copy was loaded before the endpoint existed
    variant_stocked("NEW-1", on_hand=5)
    order_new(customer_new(), ("NEW-1", 1))

    # when
    endpoint, _ = endpoint_for(URL, "order.placed")
    order_new(customer_new(), ("NEW-1", 1))

    # then
    assert list(WebhookDelivery.objects.values_list("endpoint", flat=True)) == [endpoint.pk]


def test_stock_low_is_sent_once_per_fall_through_the_threshold():
    # given: 6 units, threshold 5
    endpoint_for(URL, "stock.low")
    variant = variant_stocked("LOW-1", on_hand=6)

    # when: two sales take it to 5 then 4
    order_new(customer_new(), ("LOW-1", 1))
    order_new(customer_new(), ("LOW-1", 1))

    # then
    [payload] = _payloads("stock.low")
    assert payload["data"] == {
        "variant": {
            "id": variant.pk,
            "sku": "LOW-1",
            "name": "Item LOW-1",
            "product": {
                "id": variant.product_id,
                "slug": "product-low-1",
                "name": "Product LOW-1",
            },
        },
        "available": 5,
        "threshold": 5,
    }


def test_stock_changes_are_coalesced_into_one_event_per_variant_with_the_final_state():
    # given
    endpoint_for(URL, "stock.changed")
    variant = variant_stocked("MOVE-1", on_hand=10)
    other = variant_stocked("MOVE-2", on_hand=10)

    # when: three movements of one variant, one of another, then the emitter's run
    order_new(customer_new(), ("MOVE-1", 2))
    order_new(customer_new(), ("MOVE-1", 1), ("MOVE-2", 4))
    stock_adjust(variant=variant, warehouse=warehouse(), on_hand_delta=-1, note="broken")
    emitted = changes_emit()

    # then: one event per variant, with the availability as committed at the run
    assert emitted == 2
    available = {p["data"]["variant"]["sku"]: p["data"]["available"] for p in _payloads()}
    assert available == {"MOVE-1": 6, "MOVE-2": 6}
    assert PendingChange.objects.count() == 0
    assert changes_emit() == 0
    assert other.pk != variant.pk


def test_stock_changed_is_opt_in_nothing_is_noted_without_a_subscriber():
    # given: an endpoint on every other event type
    endpoint_for(URL, "order.placed", "stock.low", "product.updated")
    variant_stocked("QUIET-1", on_hand=10)

    # when
    order_new(customer_new(), ("QUIET-1", 1))

    # then
    assert not PendingChange.objects.filter(kind="stock").exists()


def test_product_edits_and_bulk_reprices_become_one_product_updated_each():
    # given
    endpoint, _ = endpoint_for(URL, "product.updated")
    variant = variant_stocked("PROD-1", price="10.00", on_hand=0)
    PendingChange.objects.all().delete()  # the product's creation

    # when: the product is renamed, then its variant repriced in bulk
    product = variant.product
    product.name = "Renamed"
    product.save()
    variant_price_bulk_set(prices={variant.pk: Decimal("12.00")})
    changes_emit()

    # then
    [payload] = _payloads("product.updated")
    assert payload["sequence"] == 1
    data = payload["data"]["product"]
    assert (data["name"], data["slug"], data["is_active"]) == ("Renamed", "product-prod-1", True)
    assert [(v["sku"], v["price"]) for v in data["variants"]] == [("PROD-1", "12.00")]
    assert endpoint.pk


def test_an_endpoint_s_events_are_validated_and_kept_in_documented_order():
    # given
    endpoint, _ = endpoint_for(URL, "stock.low", "order.placed")

    # when
    updated = endpoint_update(
        endpoint=endpoint,
        url=URL,
        events=["product.updated", "order.paid", "order.paid"],
        description="",
        active=True,
    )

    # then
    assert endpoint.events == ["order.placed", "stock.low"]
    assert updated.events == ["order.paid", "product.updated"]


def test_events_are_pruned_after_their_retention_unless_a_delivery_still_waits():
    # given: three events a month old; one still has a pending delivery
    endpoint_for(URL, "order.placed")
    variant_stocked("OLD-1", on_hand=10)
    orders = [order_new(customer_new(), ("OLD-1", 1)) for _ in range(3)]
    WebhookEvent.objects.update(created_at=timezone.now() - timedelta(days=31))
    pending = WebhookDelivery.objects.get(event__resource_id=orders[0].pk)
    WebhookDelivery.objects.exclude(pk=pending.pk).update(state="succeeded", next_attempt_at=None)
    order_new(customer_new(), ("OLD-1", 1))  # a fresh event

    # when
    pruned = events_prune()

    # then: the two finished old ones are gone with their deliveries
    assert pruned == 2
    assert sorted(WebhookEvent.objects.values_list("resource_id", flat=True)) == sorted(
        [orders[0].pk, Order.objects.latest("pk").pk]
    )
    assert WebhookDelivery.objects.count() == 2
