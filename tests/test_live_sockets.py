"""The live sockets on the real ASGI application (Channels' WebsocketCommunicator, in-memory
layer): who hears what, snapshots and versions, authentication, limits, bad messages."""

import asyncio
import logging
import threading
import time

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.contrib.auth.models import Group, Permission
from django.db import OperationalError, transaction
from django.db import connections as db_connections
from django.test import TestCase
from django.utils import timezone

from config.logging import request_id_var
from inventory.models import StockMovement, StockPolicy
from inventory.services import stock_receive, stock_safety_set
from live import consumers, receivers
from live import selectors as live_selectors
from live.connections import connections
from live.hub import hub_for
from live.models import StockVersion
from live.publish import publisher
from live.selectors import stock_rows
from orders.models import Order, OrderEvent, OrderStatus
from orders.services import (
    LineRequest,
    fulfilment_create,
    order_cancel,
    order_lines_cancel,
    order_mark_delivered,
    order_resolve,
)
from payments.services import webhook_handle
from storefront.models import ApiToken
from storefront.services import token_issue, token_revoke
from tests.faults import BLACKHOLE, REFUSE, BrokerGate
from tests.live_helpers import (
    closed_with,
    committed,
    connected_customer,
    messages,
    redis_layer_through,
    scenario,
    socket,
    subscribed,
    text,
)
from tests.orders_helpers import customer_for_user, order_new, variant_stocked, warehouse
from tests.payments_helpers import payment_event, signed
from tests.storefront_helpers import FAST_HASHERS, client_for, order_post, user_with_token

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def in_memory_layer(settings, monkeypatch):
    """A fresh in-memory layer per test (its queues belong to one event loop), short limits.

    Channels closes the thread's database connection around each consumer call when it is
    "unusable or obsolete", which a connection inside the test's transaction looks like;
    Django's test client keeps it open the same way (it does not close at request end).
    """
    monkeypatch.setattr("channels.db.close_old_connections", lambda: None)
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    settings.PASSWORD_HASHERS = FAST_HASHERS
    settings.LIVE_AUTH_TIMEOUT_SECONDS = 0.5
    connections._memory.clear()
    publisher._outage = False


def _customer(email: str):
    user, token = user_with_token(email=email)
    return customer_for_user(user=user), token


def _pay(order: Order) -> None:
    webhook_handle(**signed(payment_event(order)))


def test_a_customer_hears_every_change_of_their_order_in_order_and_nobody_elses():
    variant_stocked("MUG-1", price="10.00", on_hand=10)
    ada, ada_token = _customer("ada@example.com")
    _, bob_token = _customer("bob@example.com")

    async def body():
        ada_socket, ada_snapshot = await connected_customer(ada_token)
        bob_socket, bob_snapshot = await connected_customer(bob_token)
        assert (
            ada_snapshot
            == bob_snapshot
            == {
                "type": "snapshot",
                "orders": [],
                "complete": True,
            }
        )

        order = await committed(order_new, ada, ("MUG-1", 3))
        (placed,) = await messages(ada_socket, 1)
        await committed(_pay, order)
        (paid,) = await messages(ada_socket, 1)
        await committed(
            fulfilment_create,
            order=order,
            tracking_number="TRK-1",
            carrier="DHL",
            lines=[LineRequest(sku="MUG-1", quantity=1)],
        )
        (shipped,) = await messages(ada_socket, 1)
        await committed(order_lines_cancel, order=order, lines=[LineRequest("MUG-1", 2)])
        cancelled_lines = await messages(ada_socket, 2)
        await committed(order_mark_delivered, order=order)
        (delivered,) = await messages(ada_socket, 1)

        assert await bob_socket.receive_nothing(timeout=0.3)
        await ada_socket.disconnect()
        await bob_socket.disconnect()
        return order, placed, paid, shipped, cancelled_lines, delivered

    order, placed, paid, shipped, cancelled_lines, delivered = scenario(body)

    assert [placed["event"], placed["status"]] == ["placed", "pending_payment"]
    assert [paid["event"], paid["status"]] == ["paid", "paid"]
    assert [shipped["event"], shipped["status"]] == ["shipped", "partially_shipped"]
    assert shipped["tracking_number"] == "TRK-1"
    assert shipped["shipment"] == {"tracking_number": "TRK-1", "carrier": "DHL", "units": 1}
    by_event = {message["event"]: message for message in cancelled_lines}
    assert sorted(by_event) == ["lines_cancelled", "refunded"]
    assert by_event["lines_cancelled"]["lines"] == [{"sku": "MUG-1", "quantity": 2}]
    assert by_event["lines_cancelled"]["amount"] == by_event["refunded"]["amount"] == "20.00"
    assert {m["status"] for m in cancelled_lines} == {"shipped"}
    assert [delivered["event"], delivered["status"]] == ["delivered", "delivered"]
    # Each message names the order and carries its version: the latest timeline entry then.
    timeline = list(OrderEvent.objects.filter(order=order).order_by("id"))
    versions = [placed, paid, shipped, cancelled_lines[0], delivered]
    assert {m["number"] for m in versions} == {order.number}
    assert [m["event_id"] for m in versions] == sorted(m["event_id"] for m in versions)
    assert delivered["event_id"] == timeline[-1].pk
    assert delivered["at"] == timeline[-1].created_at.isoformat()


def test_a_cancelled_paid_order_is_heard_as_cancelled_and_refunded():
    variant_stocked("MUG-2", on_hand=5)
    ada, token = _customer("ada@example.com")
    order = order_new(ada, ("MUG-2", 1))
    _pay(order)

    async def body():
        ada_socket, _ = await connected_customer(token)
        await committed(order_cancel, order=order, reason="changed my mind")
        heard = await messages(ada_socket, 2)
        await ada_socket.disconnect()
        return heard

    heard = scenario(body)

    assert sorted(m["event"] for m in heard) == ["cancelled", "refunded"]
    assert {m["status"] for m in heard} == {"cancelled"}


def test_a_payment_that_does_not_match_is_heard_as_needs_attention_by_customer_and_staff(
    client,
):
    variant_stocked("MUG-3", on_hand=5)
    ada, token = _customer("ada@example.com")
    order = order_new(ada, ("MUG-3", 1))
    staff, _ = user_with_token(email="boss@example.com", is_staff=True, is_superuser=True)
    client.force_login(staff)
    cookie = client.cookies["sessionid"].value

    async def body():
        ada_socket, _ = await connected_customer(token)
        staff_socket = socket("/ws/v1/staff", headers=[(b"cookie", f"sessionid={cookie}".encode())])
        assert (await staff_socket.connect())[0]
        staff_snapshot = await staff_socket.receive_json_from(timeout=2)
        await committed(_pay_wrong_amount, order)
        customer_heard = await ada_socket.receive_json_from(timeout=2)
        staff_heard = await staff_socket.receive_json_from(timeout=2)
        await ada_socket.disconnect()
        await staff_socket.disconnect()
        return staff_snapshot, customer_heard, staff_heard

    staff_snapshot, customer_heard, staff_heard = scenario(body)

    assert staff_snapshot["type"] == "snapshot"
    assert staff_snapshot["attention_count"] == 0
    assert customer_heard["event"] == "needs_attention"
    assert customer_heard["needs_attention"] is True
    assert "attention_reason" not in customer_heard
    assert staff_heard["event"] == "needs_attention"
    assert staff_heard["number"] == order.number
    assert staff_heard["attention_reason"] == Order.objects.get(pk=order.pk).attention_reason


def _pay_wrong_amount(order: Order) -> None:
    webhook_handle(**signed(payment_event(order, amount="0.01")))


def test_staff_hear_new_orders_and_low_stock_by_token_and_a_customer_token_is_forbidden():
    variant = variant_stocked("MUG-4", on_hand=7)
    variant.low_stock_threshold = 5
    variant.save()
    ada, customer_token = _customer("ada@example.com")
    _, staff_token = user_with_token(email="boss@example.com", is_staff=True, is_superuser=True)

    async def body():
        refused = socket("/ws/v1/staff")
        await refused.connect()
        await refused.send_json_to({"type": "auth", "token": customer_token})
        refused_code = await closed_with(refused)

        staff_socket = socket("/ws/v1/staff")
        await staff_socket.connect()
        await staff_socket.send_json_to({"type": "auth", "token": staff_token})
        snapshot = await staff_socket.receive_json_from(timeout=2)
        await committed(order_new, ada, ("MUG-4", 3))
        heard = await messages(staff_socket, 2)
        await staff_socket.disconnect()
        return refused_code, snapshot, heard

    refused_code, snapshot, heard = scenario(body)

    assert refused_code == consumers.CLOSE_FORBIDDEN
    assert snapshot["low_stock_count"] == 0
    by_type = {message["type"]: message for message in heard}
    assert by_type["order"]["event"] == "placed"
    assert by_type["low_stock"]["sku"] == "MUG-4"
    assert by_type["low_stock"]["available"] == 4
    assert by_type["low_stock"]["threshold"] == 5


def test_the_snapshot_lists_open_orders_and_since_a_version_what_closed_meanwhile():
    variant_stocked("MUG-5", on_hand=10)
    ada, token = _customer("ada@example.com")
    kept = order_new(ada, ("MUG-5", 1))
    dropped = order_new(ada, ("MUG-5", 1))
    version = OrderEvent.objects.filter(order=dropped).latest("id").pk
    order_cancel(order=dropped)
    other = order_new(
        customer_for_user(user=user_with_token(email="bob@example.com")[0]), ("MUG-5", 1)
    )

    async def body():
        plain_socket, plain = await connected_customer(token)
        await plain_socket.disconnect()
        since_socket, since = await connected_customer(token, f"/ws/v1/orders?since={version}")
        await since_socket.send_json_to({"type": "resync", "since": version})
        asked = await since_socket.receive_json_from(timeout=2)
        await since_socket.disconnect()
        return plain, since, asked

    plain, since, asked = scenario(body)

    assert [o["number"] for o in plain["orders"]] == [kept.number]
    assert plain["orders"][0]["status"] == "pending_payment"
    assert plain["orders"][0]["event_id"] == OrderEvent.objects.get(order=kept).pk
    assert sorted(o["number"] for o in since["orders"]) == sorted([kept.number, dropped.number])
    assert asked["orders"] == since["orders"]
    cancelled = next(o for o in since["orders"] if o["number"] == dropped.number)
    assert cancelled["status"] == OrderStatus.CANCELLED
    assert other.number not in {o["number"] for o in since["orders"]}


@pytest.mark.parametrize("how", ["subprotocol", "first message", "revoked", "none in time"])
def test_a_bad_revoked_or_missing_token_closes_with_4401(how):
    _, token = _customer("ada@example.com")
    if how == "revoked":
        token_revoke(raw=token)

    async def body():
        if how == "subprotocol":
            communicator = socket("/ws/v1/orders", subprotocols=["stockwire.v1", "bearer.wrong"])
            await communicator.connect()
        else:
            communicator = socket("/ws/v1/orders")
            await communicator.connect()
            if how != "none in time":
                sent = token if how == "revoked" else "wrong"
                await communicator.send_json_to({"type": "auth", "token": sent})
        return await closed_with(communicator)

    assert scenario(body) == consumers.CLOSE_UNAUTHENTICATED


def test_a_token_revoked_while_connected_closes_its_sockets_at_once_and_no_other(settings):
    settings.LIVE_PING_SECONDS = 30  # no ping in the test: the revocation alone closes it
    customer, token = _customer("ada@example.com")
    other_token = token_issue(user=customer.user)

    async def body():
        revoked, _ = await connected_customer(token)
        other, _ = await connected_customer(other_token)
        await committed(token_revoke, raw=token)
        code = await closed_with(revoked)
        other_still_open = await other.receive_nothing(timeout=0.3)
        await other.disconnect()
        return code, other_still_open

    assert scenario(body) == (consumers.CLOSE_UNAUTHENTICATED, True)


def test_a_token_that_expires_while_connected_closes_the_socket_at_the_next_ping(settings):
    settings.LIVE_PING_SECONDS = 0.1
    _, token = _customer("ada@example.com")

    async def body():
        communicator, _ = await connected_customer(token)
        assert (await communicator.receive_json_from(timeout=1)) == {"type": "ping"}
        await database_sync_to_async(
            ApiToken.objects.filter(key_hash=ApiToken.hash_of(token)).update
        )(expires_at=timezone.now())
        return await closed_with(communicator)

    assert scenario(body) == consumers.CLOSE_UNAUTHENTICATED


def test_a_user_holds_at_most_the_configured_number_of_sockets(settings):
    settings.LIVE_MAX_CONNECTIONS_PER_USER = 2
    _, token = _customer("ada@example.com")

    async def body():
        first, _ = await connected_customer(token)
        second, _ = await connected_customer(token)
        third = socket("/ws/v1/orders", subprotocols=["stockwire.v1", f"bearer.{token}"])
        await third.connect()
        refused = await closed_with(third)
        await first.disconnect()
        fourth, snapshot = await connected_customer(token)
        await second.disconnect()
        await fourth.disconnect()
        return refused, snapshot

    refused, snapshot = scenario(body)

    assert refused == consumers.CLOSE_TOO_MANY_CONNECTIONS
    assert snapshot["type"] == "snapshot"


def test_bad_messages_get_an_error_and_the_socket_stays_open(settings):
    settings.LIVE_MAX_MESSAGE_BYTES = 200
    variant_stocked("MUG-6", on_hand=3)

    async def body():
        communicator = socket("/ws/v1/stock")
        assert (await communicator.connect())[0]
        errors = []
        for frame in [
            "not json",
            "[1, 2]",
            text({"no": "type"}),
            text({"type": "dance"}),
            text({"type": "subscribe", "skus": "MUG-6"}),
            text({"type": "subscribe", "skus": [], "products": [True]}),
            text({"type": "subscribe", "skus": ["x" * 300]}),
            "[" * 40 + "]" * 40,  # nests deeper than any message
            text({"type": "subscribe", "skus": ["MUG-6\ud800"]}),  # an unpaired surrogate
            text({"type": "subscribe", "skus": ["MUG-6\x00"]}),  # PostgreSQL stores no NUL
        ]:
            await communicator.send_to(text_data=frame)
            errors.append((await communicator.receive_json_from(timeout=1))["code"])
        await communicator.send_to(bytes_data=b"\x00\x01")
        errors.append((await communicator.receive_json_from(timeout=1))["code"])
        await communicator.send_json_to({"type": "subscribe", "skus": ["MUG-6"]})
        still_open = await communicator.receive_json_from(timeout=1)
        await communicator.disconnect()
        return errors, still_open

    errors, still_open = scenario(body)

    assert errors == [
        "not_json",
        "bad_message",
        "bad_message",
        "unknown_type",
        "bad_message",
        "bad_message",
        "message_too_large",
        "not_json",
        "bad_message",
        "bad_message",
        "bad_message",
    ]
    assert still_open["stock"][0]["sku"] == "MUG-6"


def test_a_token_no_database_can_hold_closes_with_4401_and_a_since_beyond_every_version_is_0():
    _, token = _customer("ada@example.com")

    async def body():
        bad = socket("/ws/v1/orders")
        await bad.connect()
        await bad.send_to(text_data=text({"type": "auth", "token": token + "\ud800"}))
        refused = await closed_with(bad)
        good = socket("/ws/v1/orders")
        await good.connect()
        # JSON's 1e400 reads as an infinite float: no version, so everything is sent.
        await good.send_to(text_data=f'{{"type": "auth", "token": "{token}", "since": 1e400}}')
        first = await good.receive_json_from(timeout=2)
        await good.send_to(text_data='{"type": "resync", "since": 1e400}')
        again = await good.receive_json_from(timeout=2)
        await good.send_to(text_data=text({"type": "resync", "since": 10**40}))
        beyond = await good.receive_json_from(timeout=2)
        await good.disconnect()
        return refused, first, again, beyond

    refused, first, again, beyond = scenario(body)

    assert refused == consumers.CLOSE_UNAUTHENTICATED
    assert first["type"] == again["type"] == beyond["type"] == "snapshot"


def test_a_silent_socket_is_pinged_then_closed_as_idle(settings):
    settings.LIVE_PING_SECONDS = 0.1
    settings.LIVE_IDLE_TIMEOUT_SECONDS = 0.35

    async def body():
        communicator = socket("/ws/v1/stock")
        await communicator.connect()
        pings = [await communicator.receive_json_from(timeout=1) for _ in range(2)]
        await communicator.send_json_to({"type": "pong"})
        await communicator.receive_json_from(timeout=1)  # a ping: it was heard, so it lives on
        return pings, await closed_with(communicator)

    pings, code = scenario(body)

    assert pings == [{"type": "ping"}, {"type": "ping"}]
    assert code == consumers.CLOSE_IDLE


def test_a_handshake_from_a_foreign_origin_or_without_one_is_refused():
    async def body():
        foreign = await socket("/ws/v1/stock", origin="https://evil.example").connect()
        missing = await socket("/ws/v1/stock", origin=None).connect()
        return foreign[0], missing[0]

    assert scenario(body) == (False, False)


def test_stock_subscribers_get_a_snapshot_then_the_latest_availability_coalesced(settings):
    # Longer than six orders take on a busy machine: the five sales fall in one window.
    settings.LIVE_STOCK_COALESCE_SECONDS = 1.0
    mug = variant_stocked("MUG-7", on_hand=20)
    variant_stocked("MUG-8", on_hand=5)
    buyer, _ = _customer("ada@example.com")

    async def body():
        communicator = socket("/ws/v1/stock")
        await communicator.connect()
        await communicator.send_json_to(
            {"type": "subscribe", "skus": ["MUG-7", "NOPE"], "products": [mug.product_id]}
        )
        snapshot = await communicator.receive_json_from(timeout=1)
        started = time.monotonic()
        for _ in range(5):
            await committed(order_new, buyer, ("MUG-7", 1))
        await committed(order_new, buyer, ("MUG-8", 1))  # nobody here follows MUG-8
        first = await communicator.receive_json_from(timeout=1)
        last = await communicator.receive_json_from(timeout=1)
        gap = time.monotonic() - started
        quiet = await communicator.receive_nothing(timeout=0.5)
        await communicator.disconnect()
        return snapshot, first, last, gap, quiet

    snapshot, first, last, gap, quiet = scenario(body)

    assert snapshot["stock"] == [
        {
            "sku": "MUG-7",
            "product_id": mug.product_id,
            "available": 20,
            "version": 0,  # never pushed yet
        }
    ]
    assert snapshot["unknown"] == ["NOPE"]
    # Five sales, two messages: the first at once, then the newest at the window's end.
    assert first["sku"] == last["sku"] == "MUG-7"
    assert first["available"] > last["available"] == 15
    # And two reads, not five: each bumped the version once.
    assert (first["version"], last["version"]) == (1, 2)
    assert last["version"] == StockVersion.objects.get(variant=mug).version
    assert gap >= 0.3
    assert quiet


def test_a_socket_follows_at_most_the_configured_number_of_skus(settings):
    settings.LIVE_MAX_SUBSCRIPTIONS = 2
    for sku in ("A-1", "A-2", "A-3"):
        variant_stocked(sku, on_hand=1)

    async def body():
        communicator = socket("/ws/v1/stock")
        await communicator.connect()
        await communicator.send_json_to({"type": "subscribe", "skus": ["A-1", "A-2"]})
        two = await communicator.receive_json_from(timeout=1)
        await communicator.send_json_to({"type": "subscribe", "skus": ["A-3"]})
        refused = await communicator.receive_json_from(timeout=1)
        await communicator.send_json_to({"type": "unsubscribe", "skus": ["A-1"]})
        one = await communicator.receive_json_from(timeout=1)
        await communicator.disconnect()
        return two, refused, one

    two, refused, one = scenario(body)

    assert [s["sku"] for s in two["stock"]] == ["A-1", "A-2"]
    assert refused["code"] == "too_many_subscriptions"
    assert [s["sku"] for s in one["stock"]] == ["A-2"]


def test_a_rolled_back_order_and_stock_movement_push_nothing():
    variant_stocked("MUG-9", on_hand=5)
    ada, token = _customer("ada@example.com")

    def placed_then_rolled_back():
        from django.db import transaction

        with pytest.raises(RuntimeError), transaction.atomic():
            order_new(ada, ("MUG-9", 1))
            raise RuntimeError("the caller's transaction fails after the order")

    async def body():
        orders_socket, _ = await connected_customer(token)
        stock_socket = socket("/ws/v1/stock")
        await stock_socket.connect()
        await stock_socket.send_json_to({"type": "subscribe", "skus": ["MUG-9"]})
        await stock_socket.receive_json_from(timeout=1)
        await committed(placed_then_rolled_back)
        nothing = await orders_socket.receive_nothing(0.4) and await stock_socket.receive_nothing(
            0.1
        )
        await orders_socket.disconnect()
        await stock_socket.disconnect()
        return nothing

    assert scenario(body)
    assert not Order.objects.exists()


@pytest.mark.parametrize("mode", [REFUSE, BLACKHOLE])
def test_a_channel_layer_that_is_down_or_hangs_costs_the_checkout_nothing(settings, caplog, mode):
    """No socket in this process: pushes go through the Redis layer, here a gate that refuses
    connections (Redis down) or accepts them and never answers (Redis hung). The checkout and
    its on-commit callbacks return with the push still waiting on the hung layer (it gives up
    after LIVE_PUBLISH_TIMEOUT_SECONDS, on the publisher's loop), and nothing raises into them."""
    settings.LIVE_PUBLISH_TIMEOUT_SECONDS = 1.0
    gate = BrokerGate(target_url="redis://127.0.0.1:6379/0", mode=mode)
    settings.CHANNEL_LAYERS = redis_layer_through(gate)
    product = variant_stocked("MUG-10", on_hand=5)
    _, token = user_with_token(email="ada@example.com")
    client = client_for(token)

    caplog.set_level(logging.WARNING)
    # The outage is read off live's own logger: a handler on it hears the publisher's thread
    # whatever happens to the root logger's handlers meanwhile.
    outage_logged = threading.Event()
    heard = logging.Handler(level=logging.WARNING)
    heard.emit = lambda record: (
        outage_logged.set() if "channel layer unavailable" in record.getMessage() else None
    )
    live_logger = logging.getLogger("stockwire.live")
    live_logger.addHandler(heard)
    pending_before = publisher.sends_pending()
    try:
        with TestCase.captureOnCommitCallbacks(execute=True) as callbacks:
            response = order_post(client, lines=[{"sku": product.sku, "quantity": 1}])
        # The callbacks ran as the block ended, and have returned.
        pending_after_callbacks = publisher.sends_pending() - pending_before

        assert response.status_code == 201
        assert any(c.func.__name__ == "_order_push" for c in callbacks if hasattr(c, "func"))
        if mode == BLACKHOLE:
            assert pending_after_callbacks >= 1  # still waiting on the layer: not in the request
        # A refused connection is retried by redis-py with a back-off first, which a loaded
        # machine stretches past the publish timeout.
        assert outage_logged.wait(timeout=20)
    finally:
        live_logger.removeHandler(heard)
        gate.close()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and publisher.sends_pending() != pending_before:
        time.sleep(0.05)
    assert publisher.sends_pending() == pending_before
    # A robust on-commit callback that raised would be logged by Django, not by live.
    assert [r for r in caplog.records if "on_commit" in r.getMessage()] == []


def test_safety_stock_set_aside_is_pushed_as_availability_with_a_newer_version():
    """Availability as inventory counts it (held and safety-stock units are not for sale),
    and every ledger row a newer version, whatever bucket moved."""
    mug = variant_stocked("MUG-11", on_hand=10)
    main = warehouse()

    async def body():
        communicator = socket("/ws/v1/stock")
        await communicator.connect()
        await communicator.send_json_to({"type": "subscribe", "skus": ["MUG-11"]})
        (before,) = (await communicator.receive_json_from(timeout=1))["stock"]
        await committed(stock_safety_set, variant=mug, warehouse=main, quantity=4)
        after = await communicator.receive_json_from(timeout=1)
        await communicator.disconnect()
        return before, after

    before, after = scenario(body)

    assert (before["available"], after["available"]) == (10, 6)
    assert after["version"] > before["version"]


def _staff_with_session(client):
    staff, token = user_with_token(email="boss@example.com", is_staff=True, is_superuser=True)
    client.force_login(staff)
    return staff, token, client.cookies["sessionid"].value


async def _staff_socket(how: str, token: str, cookie: str):
    if how == "token":
        communicator = socket("/ws/v1/staff", subprotocols=["stockwire.v1", f"bearer.{token}"])
    else:
        communicator = socket("/ws/v1/staff", headers=[(b"cookie", f"sessionid={cookie}".encode())])
    assert (await communicator.connect())[0]
    assert (await communicator.receive_json_from(timeout=2))["type"] == "snapshot"
    return communicator


def test_logging_out_closes_the_staff_sockets_of_that_session_at_once(client, settings):
    settings.LIVE_PING_SECONDS = 30  # no ping in the test: the log-out alone closes it
    _, token, cookie = _staff_with_session(client)

    async def body():
        by_session = await _staff_socket("session", token, cookie)
        by_token = await _staff_socket("token", token, cookie)
        await committed(client.logout)
        code = await closed_with(by_session)
        token_socket_open = await by_token.receive_nothing(timeout=0.3)
        await by_token.disconnect()
        return code, token_socket_open

    assert scenario(body) == (consumers.CLOSE_UNAUTHENTICATED, True)


@pytest.mark.parametrize("how", ["session", "token"])
def test_a_user_no_longer_staff_loses_the_staff_socket_at_once(client, settings, how):
    settings.LIVE_PING_SECONDS = 30
    staff, token, cookie = _staff_with_session(client)

    def demote() -> None:
        staff.is_staff = False
        staff.save()

    async def body():
        communicator = await _staff_socket(how, token, cookie)
        await committed(demote)
        return await closed_with(communicator)

    assert scenario(body) == consumers.CLOSE_FORBIDDEN


@pytest.mark.parametrize("change", ["logged out elsewhere", "deactivated", "permission lost"])
def test_a_session_staff_socket_is_checked_again_at_each_ping(client, settings, change):
    """Changes no receiver hears (a session deleted, a row updated in bulk) close it at the
    next ping."""
    settings.LIVE_PING_SECONDS = 0.1
    staff, token, cookie = _staff_with_session(client)
    staff.is_superuser = False
    staff.save()
    staff.user_permissions.add(*_view_permissions())

    def change_it() -> None:
        if change == "logged out elsewhere":
            client.session.delete()
        elif change == "deactivated":
            type(staff).objects.filter(pk=staff.pk).update(is_active=False)
        else:
            staff.user_permissions.through.objects.filter(user=staff).delete()

    async def body():
        communicator = await _staff_socket("session", token, cookie)
        await database_sync_to_async(change_it)()
        return await closed_with(communicator)

    expected = consumers.CLOSE_FORBIDDEN if change == "permission lost" else None
    assert scenario(body) == (expected or consumers.CLOSE_UNAUTHENTICATED)


def _view_permissions():
    return Permission.objects.filter(
        codename__in=["view_order", "view_stocklevel"],
        content_type__app_label__in=["orders", "inventory"],
    )


@pytest.mark.parametrize(
    "taken",
    [
        "role taken from the user",
        "user taken from the role",
        "role's holders cleared",
        "permission taken from the role",
        "role taken from the permission",
        "role's permissions cleared",
        "permission's roles cleared",
    ],
)
def test_a_staff_socket_closes_at_once_when_a_role_no_longer_grants_it(client, settings, taken):
    """Roles (auth groups) are how the back office grants staff their permissions: taking a
    permission from a role, or a role from a user, from either side, closes at once."""
    settings.LIVE_PING_SECONDS = 30  # no ping during the test: only the receivers close it
    staff, token, cookie = _staff_with_session(client)
    staff.is_superuser = False
    staff.save()
    role = Group.objects.create(name="Support")
    role.permissions.add(*_view_permissions())
    staff.groups.add(role)
    view_order = Permission.objects.get(codename="view_order")

    def take_it_away() -> None:
        {
            "role taken from the user": lambda: staff.groups.remove(role),
            "user taken from the role": lambda: role.user_set.remove(staff),
            "role's holders cleared": lambda: role.user_set.clear(),
            "permission taken from the role": lambda: role.permissions.remove(view_order),
            "role taken from the permission": lambda: view_order.group_set.remove(role),
            "role's permissions cleared": lambda: role.permissions.clear(),
            "permission's roles cleared": lambda: view_order.group_set.clear(),
        }[taken]()

    async def body():
        communicator = await _staff_socket("token", token, cookie)
        await committed(take_it_away)
        return await closed_with(communicator)

    assert scenario(body) == consumers.CLOSE_FORBIDDEN


def test_a_staff_token_revoked_while_connected_closes_the_socket_at_once(client, settings):
    settings.LIVE_PING_SECONDS = 30
    _, token, cookie = _staff_with_session(client)

    async def body():
        communicator = await _staff_socket("token", token, cookie)
        await committed(token_revoke, raw=token)
        return await closed_with(communicator)

    assert scenario(body) == consumers.CLOSE_UNAUTHENTICATED


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_stock_moves_committed_out_of_movement_order_end_on_the_availability_committed(settings):
    """Two warehouses of one SKU: the move recorded first commits last. Its push must not be
    taken for an older one: the subscriber's last message is the availability committed."""
    settings.LIVE_STOCK_COALESCE_SECONDS = 0.05
    mug = variant_stocked("MUG-RACE", on_hand=10)
    east = warehouse("east", priority=20)
    stock_receive(variant=mug, warehouse=east, quantity=5)
    first_moved, second_committed = threading.Event(), threading.Event()

    def moved_first_committed_last() -> None:
        try:
            with transaction.atomic():
                stock_receive(variant=mug, warehouse=warehouse(), quantity=1)
                first_moved.set()
                assert second_committed.wait(10)
        finally:
            db_connections.close_all()

    def moved_second_committed_first() -> None:
        try:
            assert first_moved.wait(10)
            stock_receive(variant=mug, warehouse=east, quantity=2)
            second_committed.set()
        finally:
            db_connections.close_all()

    async def body():
        communicator = socket("/ws/v1/stock")
        await communicator.connect()
        await communicator.send_json_to({"type": "subscribe", "skus": ["MUG-RACE"]})
        snapshot = await communicator.receive_json_from(timeout=2)
        threads = [
            threading.Thread(target=moved_first_committed_last),
            threading.Thread(target=moved_second_committed_first),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            await asyncio.to_thread(thread.join, 10)
        heard = []
        while not await communicator.receive_nothing(timeout=0.5):
            heard.append(await communicator.receive_json_from())
        await communicator.disconnect()
        return snapshot, heard

    snapshot, heard = scenario(body)

    movements = list(StockMovement.objects.filter(level__variant=mug).order_by("id"))
    assert [m.level.warehouse.code for m in movements[-2:]] == ["main", "east"]
    assert snapshot["stock"][0]["available"] == 15
    assert heard[-1]["available"] == 18 == stock_rows(variant_ids=[mug.pk])[0].available


def test_a_resolved_flag_is_heard_by_the_customer_and_staff():
    variant_stocked("MUG-RES", on_hand=5)
    ada, token = _customer("ada@example.com")
    order = order_new(ada, ("MUG-RES", 1))
    _pay_wrong_amount(order)
    staff, staff_token = user_with_token(email="boss@example.com", is_staff=True, is_superuser=True)

    async def body():
        ada_socket, _ = await connected_customer(token)
        staff_socket = await _staff_socket("token", staff_token, "")
        await committed(order_resolve, order=order, note="refunded the difference", actor=staff)
        heard = (
            await ada_socket.receive_json_from(timeout=2),
            await staff_socket.receive_json_from(timeout=2),
        )
        await ada_socket.disconnect()
        await staff_socket.disconnect()
        return heard

    customer_heard, staff_heard = scenario(body)

    for message in (customer_heard, staff_heard):
        assert (message["number"], message["event"]) == (order.number, "resolved")
        assert message["needs_attention"] is False
    assert staff_heard["attention_reason"] == ""


def test_back_ordered_units_getting_stock_are_heard_with_the_lines_complete():
    mug = variant_stocked("MUG-BO", on_hand=1)
    StockPolicy.objects.create(variant=mug, policy="backorder")
    ada, token = _customer("ada@example.com")
    order = order_new(ada, ("MUG-BO", 3))
    main = warehouse()

    async def body():
        communicator, _ = await connected_customer(token)
        await committed(stock_receive, variant=mug, warehouse=main, quantity=5)
        heard = await communicator.receive_json_from(timeout=2)
        await communicator.disconnect()
        return heard

    heard = scenario(body)

    assert (heard["number"], heard["event"]) == (order.number, "lines_allocated")
    assert heard["lines"] == [{"sku": "MUG-BO", "quantity": 2, "still_awaited": 0}]
    assert heard["completed"] == ["MUG-BO"]


def test_a_failure_that_is_not_the_channel_layers_closes_with_4500_and_is_logged(
    monkeypatch, caplog
):
    """Only a channel layer that is down asks the client to come back later (4503)."""
    customer, token = _customer("ada@example.com")

    def broken(**kwargs):  # a bug in the snapshot's read
        raise KeyError("status")

    monkeypatch.setattr("live.selectors.customer_orders", broken)

    async def body():
        communicator = socket("/ws/v1/orders", subprotocols=["stockwire.v1", f"bearer.{token}"])
        await communicator.connect()
        code = await closed_with(communicator)
        await communicator.wait()  # the consumer's end, after its close
        return code

    assert scenario(body) == consumers.CLOSE_INTERNAL_ERROR == 4500
    (logged,) = [r for r in caplog.records if r.getMessage() == "live: socket failed"]
    assert logged.exc_info[0] is KeyError
    # No disconnect comes to a failed consumer: it gave its user's connection slot back itself.
    assert connections._memory.get(customer.user_id, {}) == {}


def test_a_stock_socket_that_failed_is_followed_no_more(monkeypatch):
    mug = variant_stocked("MUG-1", on_hand=10)

    def broken(**kwargs):  # a bug in the snapshot's read
        raise KeyError("version")

    async def body():
        communicator = await subscribed("MUG-1")
        hub = hub_for(get_channel_layer())
        following_before = len(hub.followers.get(mug.pk, ()))
        monkeypatch.setattr("live.selectors.stock_states", broken)
        await communicator.send_json_to({"type": "resync"})
        code = await closed_with(communicator)
        await communicator.wait()  # the consumer's end, after its close
        return following_before, code, len(hub.followers.get(mug.pk, ()))

    before, code, after = scenario(body)

    assert (before, code, after) == (1, consumers.CLOSE_INTERNAL_ERROR, 0)


def test_a_stock_socket_cancelled_while_reading_its_snapshot_is_followed_no_more(monkeypatch):
    # given: a snapshot read that lasts until the test lets it end
    mug = variant_stocked("MUG-GONE", on_hand=5)
    read = live_selectors.stock_states
    reading, finish = threading.Event(), threading.Event()

    def held_read(**kwargs):
        reading.set()
        finish.wait(5)
        return read(**kwargs)

    monkeypatch.setattr(live_selectors, "stock_states", held_read)

    async def until(condition) -> bool:
        deadline = asyncio.get_running_loop().time() + 3
        while not condition() and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.01)
        return condition()

    async def body():
        communicator = socket("/ws/v1/stock")
        await communicator.connect()
        await communicator.send_json_to({"type": "subscribe", "skus": ["MUG-GONE"]})
        assert await until(reading.is_set)  # it follows the SKU, and reads its snapshot
        hub = hub_for(get_channel_layer())
        during = len(hub.followers.get(mug.pk, ()))
        # when: the client goes, and the server cancels the application it waited 0.3 s for
        await communicator.disconnect(timeout=0.3)
        finish.set()
        let_go = await until(lambda: not hub.followers.get(mug.pk))
        return during, let_go

    # then: the cancelled socket let go of the hub
    assert scenario(body) == (1, True)


def test_a_client_sending_too_fast_is_refused_then_closed(settings):
    settings.LIVE_MESSAGES_PER_SECOND = 0.01  # nothing refills within the test
    settings.LIVE_MESSAGE_BURST = 3

    async def body():
        communicator = socket("/ws/v1/stock")
        await communicator.connect()
        for _ in range(3):
            await communicator.send_json_to({"type": "ping"})
        answered = await messages(communicator, 3)
        refused = []
        for _ in range(3):
            await communicator.send_json_to({"type": "ping"})
            refused.append((await communicator.receive_json_from(timeout=2))["code"])
        await communicator.send_json_to({"type": "ping"})
        return answered, refused, await closed_with(communicator)

    answered, refused, code = scenario(body)

    assert answered == [{"type": "pong"}] * 3
    assert refused == ["rate_limited"] * 3
    assert code == consumers.CLOSE_RATE_LIMITED


def test_with_no_socket_to_reach_the_shipped_receiver_queries_nothing(
    django_assert_num_queries,
):
    """No query inside the sender's transaction, even for a shipment whose lines were not
    prefetched: the push (and its count of units) waits for the commit, and is skipped while
    nobody could hear it (the in-memory layer, no socket in this process)."""
    variant_stocked("MUG-SHIP", on_hand=5)
    ada, _ = _customer("ada@example.com")
    order = order_new(ada, ("MUG-SHIP", 2))
    _pay(order)
    shipment = fulfilment_create(order=Order.objects.get(pk=order.pk), tracking_number="T-9")
    shipment = type(shipment).objects.get(pk=shipment.pk)  # lines not prefetched

    with django_assert_num_queries(0), TestCase.captureOnCommitCallbacks() as callbacks:
        receivers.push_order_shipped(sender=fulfilment_create, order=order, shipment=shipment)

    assert callbacks == []


def test_an_orders_snapshot_cut_at_its_limit_says_it_is_not_complete(settings, monkeypatch):
    monkeypatch.setattr("live.selectors.SNAPSHOT_ORDERS", 2)
    variant_stocked("MUG-MANY", on_hand=10)
    ada, token = _customer("ada@example.com")
    orders = [order_new(ada, ("MUG-MANY", 1)) for _ in range(3)]

    async def body():
        communicator, snapshot = await connected_customer(token)
        await communicator.disconnect()
        return snapshot

    snapshot = scenario(body)

    assert [o["number"] for o in snapshot["orders"]] == [orders[2].number, orders[1].number]
    assert snapshot["complete"] is False


@pytest.mark.parametrize(
    ("text", "over"),
    [("a" * 4096, False), ("a" * 4097, True), ("€" * 1365, False), ("€" * 1366, True)],
)
def test_a_message_is_measured_in_utf8_bytes_as_it_came_over_the_wire(text, over):
    assert consumers._utf8_length_over(text, 4096) is over


def test_fifty_sockets_on_one_sku_are_one_group_member_each_push_reaches_all_and_a_leaver_none(
    settings,
):
    """The process's hub (`live.hub`) joins the SKU's group once for all its sockets: the layer
    carries one message per push, which every local follower hears; one that unsubscribed or
    disconnected hears nothing more, and the last one out leaves the group."""
    settings.LIVE_STOCK_COALESCE_SECONDS = 0.05
    mug = variant_stocked("MUG-HUB", on_hand=100)
    buyer, _ = _customer("ada@example.com")
    group = f"live.stock.{mug.pk}"

    async def body():
        sockets = [await subscribed("MUG-HUB") for _ in range(50)]
        layer = get_channel_layer()
        members = len(layer.groups.get(group, {}))
        await committed(order_new, buyer, ("MUG-HUB", 1))
        heard = [await c.receive_json_from(timeout=2) for c in sockets]
        leaver, gone = sockets[0], sockets[1]
        await leaver.send_json_to({"type": "unsubscribe", "skus": ["MUG-HUB"]})
        await leaver.receive_json_from(timeout=2)
        await gone.disconnect()
        await asyncio.sleep(0.1)  # past the coalescing window
        await committed(order_new, buyer, ("MUG-HUB", 1))
        second = [await c.receive_json_from(timeout=2) for c in sockets[2:]]
        leaver_silent = await leaver.receive_nothing(timeout=0.3)
        for communicator in sockets[2:]:
            await communicator.disconnect()
        left = len(layer.groups.get(group, {}))
        await leaver.disconnect()
        return members, heard, second, leaver_silent, left

    members, heard, second, leaver_silent, left = scenario(body)

    assert members == 1
    assert {(m["sku"], m["available"]) for m in heard} == {("MUG-HUB", 99)}
    assert {(m["sku"], m["available"]) for m in second} == {("MUG-HUB", 98)}
    assert leaver_silent
    assert left == 0


def test_a_push_arriving_while_the_snapshot_is_read_follows_the_snapshot(settings, monkeypatch):
    """The hub hands pushes to a socket at any time, also while it reads its snapshot: one that
    arrives meanwhile is held and sent after the snapshot, never before an older snapshot."""
    mug = variant_stocked("MUG-HOLD", on_hand=10)
    buyer, _ = _customer("ada@example.com")
    read = consumers.selectors.stock_states

    def read_then_sell(**kwargs):
        states = read(**kwargs)  # the snapshot holds the stock before the sale
        monkeypatch.setattr(consumers.selectors, "stock_states", read)
        with TestCase.captureOnCommitCallbacks(execute=True):
            order_new(buyer, ("MUG-HOLD", 1))
        time.sleep(0.3)  # the push reaches the socket on the loop meanwhile
        return states

    async def body():
        communicator = socket("/ws/v1/stock")
        await communicator.connect()
        monkeypatch.setattr(consumers.selectors, "stock_states", read_then_sell)
        await communicator.send_json_to({"type": "subscribe", "skus": ["MUG-HOLD"]})
        received = await messages(communicator, 2)
        await communicator.disconnect()
        return received

    snapshot, push = scenario(body)

    assert snapshot["type"] == "snapshot"
    assert snapshot["stock"][0]["available"] == 10
    assert (push["sku"], push["available"]) == ("MUG-HOLD", 9)
    assert push["version"] == StockVersion.objects.get(variant=mug).version


def _stock_push(variant, version: int, available: int) -> dict:
    """A `live.stock` layer message as a committing process sends it (`live.receivers`)."""
    state = {"sku": variant.sku, "product_id": variant.product_id, "available": available}
    return {
        "type": "live.stock",
        "key": variant.pk,
        "version": version,
        "text": text({"type": "stock", **state, "version": version}),
    }


def test_a_burst_reaches_every_socket_as_the_first_push_at_once_then_the_newest(settings):
    """Several processes may push one SKU within a window (each coalesces only its own
    commits; the window they share on Redis fails open): the serving process coalesces once
    for all its sockets. Every socket gets the first push, then the newest at the window's
    end and nothing in between: the same two messages for the first socket and the last."""
    settings.LIVE_STOCK_COALESCE_SECONDS = 0.3
    mug = variant_stocked("MUG-BURST", on_hand=100)

    async def body():
        sockets = [await subscribed("MUG-BURST") for _ in range(20)]
        layer = get_channel_layer()
        started = time.monotonic()
        for version in range(1, 6):
            await layer.group_send(f"live.stock.{mug.pk}", _stock_push(mug, version, 100 - version))
        first = [await c.receive_json_from(timeout=2) for c in sockets]
        second = [await c.receive_json_from(timeout=2) for c in sockets]
        newest_after = time.monotonic() - started
        quiet = [await c.receive_nothing(timeout=0.05) for c in sockets]
        for communicator in sockets:
            await communicator.disconnect()
        return first, second, newest_after, quiet

    first, second, newest_after, quiet = scenario(body)

    assert {(m["version"], m["available"]) for m in first} == {(1, 99)}
    assert {(m["version"], m["available"]) for m in second} == {(5, 95)}
    assert newest_after >= 0.3
    assert all(quiet)


def test_a_push_not_newer_than_what_the_socket_holds_is_dropped(settings):
    """A socket's snapshot (version 7 here) or last push is what its client holds: a push of
    that version or older would step the client back, a newer one goes out."""
    settings.LIVE_STOCK_COALESCE_SECONDS = 0.05
    mug = variant_stocked("MUG-OLD", on_hand=10)
    StockVersion.objects.create(variant=mug, version=7)

    async def body():
        communicator = socket("/ws/v1/stock")
        await communicator.connect()
        await communicator.send_json_to({"type": "subscribe", "skus": ["MUG-OLD"]})
        snapshot = await communicator.receive_json_from(timeout=2)
        layer = get_channel_layer()
        group = f"live.stock.{mug.pk}"
        await layer.group_send(group, _stock_push(mug, 6, 11))
        await layer.group_send(group, _stock_push(mug, 7, 11))
        await asyncio.sleep(0.15)  # past the window
        await layer.group_send(group, _stock_push(mug, 8, 9))
        pushed = await communicator.receive_json_from(timeout=2)
        await asyncio.sleep(0.15)
        await layer.group_send(group, _stock_push(mug, 8, 9))  # what the socket holds now
        quiet = await communicator.receive_nothing(timeout=0.2)
        await communicator.disconnect()
        return snapshot, pushed, quiet

    snapshot, pushed, quiet = scenario(body)

    assert snapshot["stock"][0]["version"] == 7
    assert (pushed["version"], pushed["available"]) == (8, 9)
    assert quiet


def test_a_failed_availability_read_is_tried_once_more_then_dropped(settings, caplog):
    """A read that fails (the database went away for a moment) is tried again a window later
    and pushed; one that fails twice is dropped, logged, and the SKU's next change is read as
    usual."""
    settings.LIVE_STOCK_COALESCE_SECONDS = 0.1
    mug = variant_stocked("MUG-FLAKY", on_hand=5)
    attempts = []

    def failing(times: int):
        def read(variant_ids):
            attempts.append(times)
            if attempts.count(times) <= times:
                raise OperationalError("the database went away")
            return receivers._stock_messages(variant_ids)

        return read

    async def body():
        communicator = await subscribed("MUG-FLAKY")
        publisher.stock_changed([mug.pk], failing(1))
        retried = await communicator.receive_json_from(timeout=2)
        await asyncio.sleep(0.2)  # past the window: the next change goes out at once
        publisher.stock_changed([mug.pk], failing(2))
        dropped = await communicator.receive_nothing(timeout=0.6)
        publisher.stock_changed([mug.pk], failing(0))
        next_change = await communicator.receive_json_from(timeout=2)
        await communicator.disconnect()
        return retried, dropped, next_change

    caplog.set_level(logging.ERROR, logger="stockwire.live")
    retried, dropped, next_change = scenario(body)

    assert (retried["available"], retried["version"]) == (5, 1)
    assert attempts == [1, 1, 2, 2, 0]
    assert dropped
    assert next_change["version"] == 2
    failures = [r.getMessage() for r in caplog.records if "could not read" in r.getMessage()]
    assert failures == [
        "live: could not read the availability of 1 SKUs (1 read again in 0.1 s)",
        "live: could not read the availability of 1 SKUs (1 read again in 0.1 s)",
        "live: could not read the availability of 1 SKUs (0 read again in 0.1 s)",
    ]


def test_a_push_takes_nothing_of_the_committing_requests_context():
    """The publisher works in a context of its own: the request's id does not follow its
    pushes into the log, nor does the thread its sync work runs on (Django's ASGI handler
    keeps one per request) decide where the read runs."""
    mug = variant_stocked("MUG-CONTEXT", on_hand=5)
    seen = []

    def read(variant_ids):
        seen.append(request_id_var.get())
        return receivers._stock_messages(variant_ids)

    def commit_in_a_request() -> None:
        request_id_var.set("request-1234")
        publisher.stock_changed([mug.pk], read)

    async def body():
        communicator = await subscribed("MUG-CONTEXT")
        await database_sync_to_async(commit_in_a_request)()
        pushed = await communicator.receive_json_from(timeout=2)
        await communicator.disconnect()
        return pushed

    assert scenario(body)["available"] == 5
    assert seen == ["-"]
