"""A commit is read and pushed only for the groups some socket listens to (`live.following`),
on the Redis channel layer as production runs it: no database work for a SKU nobody follows or
an order whose customer and staff have no socket open, nothing missed by a socket that
connects meanwhile, and everything pushed while Redis does not answer."""

import asyncio
import copy
import logging
import threading
import uuid

import pytest
from channels.db import database_sync_to_async
from django.db import OperationalError, connection, transaction
from django.db import connections as db_connections
from django.test import TestCase
from django.test.utils import CaptureQueriesContext

from live import following
from live.consumers import AuthenticatedSocket
from live.groups import STAFF_ORDERS, customer_group
from live.models import StockVersion
from live.publish import publisher
from live.selectors import stock_rows
from orders.services import customer_for_user
from payments.services import webhook_handle
from tests.faults import REFUSE, BrokerGate, wait_until
from tests.live_helpers import (
    committed,
    connected_customer,
    messages,
    redis_layer_through,
    scenario,
    socket,
    subscribed,
)
from tests.orders_helpers import order_new, variant_stocked
from tests.payments_helpers import payment_event, signed
from tests.storefront_helpers import FAST_HASHERS, user_with_token

pytestmark = [pytest.mark.redis, pytest.mark.django_db]


@pytest.fixture(autouse=True)
def redis_layer(settings, monkeypatch):
    """The Redis channel layer of the test settings, and neither marks nor an outage left by
    another test or run (a run's database numbers its SKUs afresh, and a mark lasts a
    minute). Channels closes the thread's database connection around consumer calls when it
    looks unusable, as one inside the test's transaction does: kept open here."""
    assert "Redis" in settings.CHANNEL_LAYERS["default"]["BACKEND"]
    settings.LIVE_LAYER_PREFIX = f"{settings.LIVE_LAYER_PREFIX}:{uuid.uuid4().hex[:8]}"
    monkeypatch.setattr("channels.db.close_old_connections", lambda: None)
    monkeypatch.setattr(following, "_outage_until", 0.0)
    settings.PASSWORD_HASHERS = FAST_HASHERS


def _buyer(email: str = "ada@example.com"):
    user, _ = user_with_token(email=email)
    return customer_for_user(user=user)


def _live_queries_after_commit(work) -> list[str]:
    """The statements live's on-commit callbacks ran after `work` committed."""
    with TestCase.captureOnCommitCallbacks() as callbacks:
        work()
    live = [c for c in callbacks if getattr(c, "func", c).__module__ == "live.receivers"]
    assert live, "live's receivers registered nothing"
    with CaptureQueriesContext(connection) as queries:
        for callback in live:
            callback()
    return [q["sql"] for q in queries.captured_queries]


def _version(variant) -> int | None:
    row = StockVersion.objects.filter(variant=variant).first()
    return None if row is None else row.version


def test_a_sku_nobody_follows_is_never_handed_to_the_publisher(monkeypatch):
    """The checkout's on-commit work asks Redis, finds no socket following the SKU, and hands
    the publisher nothing: no version bump (a row lock), no read, no send, in any thread."""
    mug = variant_stocked("MUG-NOBODY", on_hand=5)
    buyer = _buyer()
    handed = []
    hand = publisher.stock_changed
    monkeypatch.setattr(
        publisher, "stock_changed", lambda ids, read: handed.append(list(ids)) or hand(ids, read)
    )

    with TestCase.captureOnCommitCallbacks(execute=True) as callbacks:
        order_new(buyer, ("MUG-NOBODY", 1))

    assert any(c.func.__name__ == "_stock_push" for c in callbacks if hasattr(c, "func"))
    assert handed == [[]]
    assert _version(mug) is None


def test_a_buyer_of_a_followed_sku_neither_bumps_nor_reads_it_in_the_request():
    """The publisher bumps the version and reads the availability when the push goes out,
    once per coalescing window for all the buyers in it; the request only says the SKU
    changed. The subscriber still hears the sale."""
    mug = variant_stocked("MUG-FOLLOWED", on_hand=5)
    buyer = _buyer()

    async def body():
        communicator = await subscribed("MUG-FOLLOWED")
        in_request = await database_sync_to_async(_live_queries_after_commit)(
            lambda: order_new(buyer, ("MUG-FOLLOWED", 1))
        )
        pushed = await communicator.receive_json_from(timeout=3)
        await communicator.disconnect()
        return in_request, pushed

    in_request, pushed = scenario(body)

    assert not [sql for sql in in_request if "live_stockversion" in sql or "inventory_" in sql]
    assert (pushed["available"], pushed["version"]) == (4, 1)
    assert _version(mug) == 1


def test_a_checkout_asks_redis_once_for_its_order_and_all_its_skus(monkeypatch):
    """The order push and the stock push of one commit share one question (one MGET)."""
    for sku in ("MUG-Q1", "MUG-Q2", "MUG-Q3"):
        variant_stocked(sku, on_hand=5)
    buyer = _buyer()
    asked = []
    ask = following.followed
    monkeypatch.setattr(
        following, "followed", lambda groups: asked.append(set(groups)) or ask(groups)
    )

    with TestCase.captureOnCommitCallbacks(execute=True) as callbacks:
        order_new(buyer, ("MUG-Q1", 1), ("MUG-Q2", 1), ("MUG-Q3", 2))

    live = [c for c in callbacks if getattr(c, "func", c).__module__ == "live.receivers"]
    assert len(live) >= 2  # the order's push and the stock push
    assert len(asked) == 1
    assert {customer_group(buyer.pk), STAFF_ORDERS} < asked[0]
    assert len([group for group in asked[0] if group.startswith("live.stock.")]) == 3


def test_a_socket_that_subscribes_later_hears_the_next_change_with_a_newer_version():
    mug = variant_stocked("MUG-LATER", on_hand=5)
    buyer = _buyer()

    async def body():
        await committed(order_new, buyer, ("MUG-LATER", 1))  # nobody follows it yet
        before = await database_sync_to_async(_version)(mug)
        communicator = socket("/ws/v1/stock")
        await communicator.connect()
        await communicator.send_json_to({"type": "subscribe", "skus": ["MUG-LATER"]})
        snapshot = await communicator.receive_json_from(timeout=2)
        await committed(order_new, buyer, ("MUG-LATER", 1))
        pushed = await communicator.receive_json_from(timeout=3)
        await communicator.disconnect()
        return before, snapshot, pushed

    before, snapshot, pushed = scenario(body)

    assert before is None
    assert (snapshot["stock"][0]["available"], snapshot["stock"][0]["version"]) == (4, 0)
    assert (pushed["available"], pushed["version"]) == (3, 1)
    assert _version(mug) == 1


@pytest.mark.django_db(transaction=True)
def test_with_redis_not_answering_every_change_is_pushed_as_before(settings, caplog):
    """Fail open: without Redis's answer the SKU counts as followed (the publisher bumps its
    version and reads it, on a thread of its own in this process without sockets, and pushes
    it, the push dropped by the layer that is down too), and the checkout goes on."""
    gate = BrokerGate(target_url="redis://127.0.0.1:6379/0", mode=REFUSE)
    settings.CHANNEL_LAYERS = redis_layer_through(gate)
    mug = variant_stocked("MUG-DOWN", on_hand=5)
    buyer = _buyer()
    caplog.set_level(logging.WARNING, logger="stockwire.live")
    try:
        order = order_new(buyer, ("MUG-DOWN", 1))
        bumped = wait_until(lambda: _version(mug) == 1, timeout=5)
    finally:
        gate.close()

    assert order.pk is not None
    assert bumped
    warned = [r.getMessage() for r in caplog.records]
    assert any("could not ask which groups have listeners" in message for message in warned)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_sockets_subscribing_while_buyers_commit_all_end_on_the_final_availability(settings):
    """Real threads on PostgreSQL: a buyer commits order after order while sockets subscribe
    in between, some of them while a commit asks whether the SKU is followed. Whichever came
    first, each socket's newest message (snapshot or push) is the availability committed
    last."""
    settings.LIVE_STOCK_COALESCE_SECONDS = 0.05
    mug = variant_stocked("MUG-RACE-FOLLOW", on_hand=100)
    buyer = _buyer()
    orders = 40
    placed = threading.Event()

    def buy() -> None:
        try:
            for _ in range(orders):
                with transaction.atomic():
                    order_new(buyer, ("MUG-RACE-FOLLOW", 1))
                placed.set()
        finally:
            db_connections.close_all()

    async def newest_heard(communicator) -> dict:
        heard = [await communicator.receive_json_from(timeout=2)]  # the snapshot
        heard[0] = heard[0]["stock"][0]
        while not await communicator.receive_nothing(timeout=1.0):
            heard.append(await communicator.receive_json_from())
        return max(heard, key=lambda message: message["version"])

    async def body():
        buyer_thread = threading.Thread(target=buy)
        buyer_thread.start()
        await asyncio.to_thread(placed.wait, 10)
        sockets = []
        for _ in range(8):
            communicator = socket("/ws/v1/stock")
            await communicator.connect()
            await communicator.send_json_to({"type": "subscribe", "skus": ["MUG-RACE-FOLLOW"]})
            sockets.append(communicator)
            await asyncio.sleep(0.02)
        await asyncio.to_thread(buyer_thread.join, 30)
        newest = [await newest_heard(c) for c in sockets]
        for communicator in sockets:
            await communicator.disconnect()
        return newest

    newest = scenario(body)

    final = stock_rows(variant_ids=[mug.pk])[0]
    assert final.available == 100 - orders
    assert {message["available"] for message in newest} == {final.available}


def test_an_order_nobody_watches_costs_no_read_after_its_commit():
    """No socket of the customer, no staff socket, no subscriber of the SKU: after the
    commit live asks Redis once per push and reads nothing (the order's state, the SKU's
    version and availability)."""
    variant_stocked("MUG-ALONE", on_hand=5)
    buyer = _buyer()

    assert _live_queries_after_commit(lambda: order_new(buyer, ("MUG-ALONE", 1))) == []


def test_a_customer_who_connects_after_ordering_sees_it_and_hears_it_paid():
    """The order placed before the socket opened is in its snapshot (nobody heard the
    placement: nobody listened), and its payment, committed after, is pushed."""
    variant_stocked("MUG-THEN", on_hand=5)
    user, token = user_with_token(email="ada@example.com")
    order = order_new(customer_for_user(user=user), ("MUG-THEN", 1))

    async def body():
        communicator, snapshot = await connected_customer(token)
        await committed(lambda: webhook_handle(**signed(payment_event(order))))
        (heard,) = await messages(communicator, 1)
        await communicator.disconnect()
        return snapshot, heard

    snapshot, heard = scenario(body)

    assert [(o["number"], o["status"]) for o in snapshot["orders"]] == [
        (order.number, "pending_payment")
    ]
    assert (heard["event"], heard["number"], heard["status"]) == ("paid", order.number, "paid")


def test_staff_watching_hear_a_new_order_whose_customer_has_no_socket():
    variant_stocked("MUG-STAFF", on_hand=50)
    buyer = _buyer()
    _, staff_token = user_with_token(email="boss@example.com", is_staff=True, is_superuser=True)

    async def body():
        staff_socket = socket("/ws/v1/staff")
        await staff_socket.connect()
        await staff_socket.send_json_to({"type": "auth", "token": staff_token})
        await staff_socket.receive_json_from(timeout=2)  # the snapshot
        order = await committed(order_new, buyer, ("MUG-STAFF", 1))
        (heard,) = await messages(staff_socket, 1)
        await staff_socket.disconnect()
        return order, heard

    order, heard = scenario(body)

    assert (heard["type"], heard["event"], heard["number"]) == ("order", "placed", order.number)


def test_a_socket_open_longer_than_a_mark_lasts_still_hears_its_orders(settings, monkeypatch):
    """A socket renews its marks at every ping: one open for several lapses of a mark is
    still pushed to."""
    monkeypatch.setattr(following, "LAPSE_SECONDS", 1)
    settings.LIVE_PING_SECONDS = 0.2
    variant_stocked("MUG-LONG", on_hand=5)
    user, token = user_with_token(email="ada@example.com")
    buyer = customer_for_user(user=user)

    async def body():
        communicator, _ = await connected_customer(token)
        deadline = asyncio.get_running_loop().time() + 2.5
        while asyncio.get_running_loop().time() < deadline:  # pings, answered as a page does
            ping = await communicator.receive_json_from(timeout=1)
            assert ping["type"] == "ping"
            await communicator.send_json_to({"type": "pong"})
        order = await committed(order_new, buyer, ("MUG-LONG", 1))
        heard = await communicator.receive_json_from(timeout=2)
        while heard["type"] == "ping":
            heard = await communicator.receive_json_from(timeout=2)
        await communicator.disconnect()
        return order, heard

    order, heard = scenario(body)

    assert following.lapse_seconds() == 1
    assert (heard["event"], heard["number"]) == ("placed", order.number)


async def _answering_pings(communicator, seconds: float) -> int:
    """Answer the server's pings for `seconds`, as a page does; return how many came."""
    loop = asyncio.get_running_loop()
    deadline, pings = loop.time() + seconds, 0
    while loop.time() < deadline:
        if not await communicator.receive_nothing(timeout=0.1):
            message = await communicator.receive_json_from()
            assert message["type"] == "ping", message
            pings += 1
            await communicator.send_json_to({"type": "pong"})
    return pings


async def _next_push(communicator, seconds: float = 2) -> dict | None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while loop.time() < deadline:
        if not await communicator.receive_nothing(timeout=0.1):
            message = await communicator.receive_json_from()
            if message["type"] != "ping":
                return message
    return None


def test_a_ping_whose_check_met_a_database_error_goes_on_and_its_socket_still_hears(
    settings, monkeypatch
):
    # given: marks lasting a second, and the first ping's check of the user meeting a
    # database that went away (a failover)
    monkeypatch.setattr(following, "LAPSE_SECONDS", 1)
    settings.LIVE_PING_SECONDS = 0.2
    variant_stocked("MUG-HB", on_hand=5)
    user, token = user_with_token(email="ada@example.com")
    buyer = customer_for_user(user=user)
    checked = AuthenticatedSocket.current_user
    calls = []

    async def current_user_once_failing(self):
        calls.append(1)
        if len(calls) == 1:
            raise OperationalError("server closed the connection unexpectedly")
        return await checked(self)

    monkeypatch.setattr(AuthenticatedSocket, "current_user", current_user_once_failing)

    async def body():
        communicator, _ = await connected_customer(token)
        pings = await _answering_pings(communicator, 2.5)
        order = await committed(order_new, buyer, ("MUG-HB", 1))
        heard = await _next_push(communicator)
        await communicator.disconnect()
        return pings, order, heard

    pings, order, heard = scenario(body)

    # then: the pings went on past the failed one, the marks with them
    assert pings > 5
    assert heard is not None and (heard["event"], heard["number"]) == ("placed", order.number)


@pytest.mark.parametrize("who", ["customer", "staff"])
def test_a_socket_open_longer_than_a_group_membership_lasts_still_hears_its_orders(settings, who):
    # given: a layer that forgets a membership after a second (channels: a day)
    layers = copy.deepcopy(settings.CHANNEL_LAYERS)
    layers["default"]["CONFIG"].update(group_expiry=1, prefix=settings.LIVE_LAYER_PREFIX)
    settings.CHANNEL_LAYERS = layers
    settings.LIVE_PING_SECONDS = 0.2
    variant_stocked("MUG-DAY", on_hand=5)
    user, token = user_with_token(email="ada@example.com")
    buyer = customer_for_user(user=user)
    _, staff_token = user_with_token(email="boss@example.com", is_staff=True, is_superuser=True)

    async def body():
        if who == "customer":
            communicator, _ = await connected_customer(token)
        else:
            communicator = socket("/ws/v1/staff")
            await communicator.connect()
            await communicator.send_json_to({"type": "auth", "token": staff_token})
            assert (await communicator.receive_json_from(timeout=2))["type"] == "snapshot"
        # when: the socket stays open for three memberships' lengths
        await _answering_pings(communicator, 3)
        order = await committed(order_new, buyer, ("MUG-DAY", 1))
        heard = await _next_push(communicator)
        await communicator.disconnect()
        return order, heard

    order, heard = scenario(body)

    # then
    assert heard is not None and (heard["event"], heard["number"]) == ("placed", order.number)
