"""A stock change is read and pushed only for the SKUs some socket follows (`live.following`),
on the Redis channel layer as production runs it: no database work for a SKU nobody follows,
nothing missed by a socket that subscribes meanwhile, and every SKU pushed while Redis does
not answer."""

import asyncio
import logging
import threading
import uuid

import pytest
from channels.db import database_sync_to_async
from django.db import connection, transaction
from django.db import connections as db_connections
from django.test import TestCase
from django.test.utils import CaptureQueriesContext

from live import following
from live.models import StockVersion
from live.selectors import stock_rows
from orders.services import customer_for_user
from tests.faults import REFUSE, BrokerGate
from tests.live_helpers import committed, scenario, socket
from tests.orders_helpers import order_new, variant_stocked
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


def _version(variant) -> int | None:
    row = StockVersion.objects.filter(variant=variant).first()
    return None if row is None else row.version


def test_a_sku_nobody_follows_costs_its_buyers_no_version_write():
    """The checkout's on-commit work asks Redis, finds no socket following the SKU, and
    neither bumps its version (a row lock every buyer of the SKU would queue on) nor reads
    its availability again."""
    mug = variant_stocked("MUG-NOBODY", on_hand=5)
    buyer = _buyer()

    with (
        CaptureQueriesContext(connection) as queries,
        TestCase.captureOnCommitCallbacks(execute=True) as callbacks,
    ):
        order_new(buyer, ("MUG-NOBODY", 1))

    assert any(c.func.__name__ == "_stock_push" for c in callbacks if hasattr(c, "func"))
    assert _version(mug) is None
    assert not [q for q in queries.captured_queries if "live_stockversion" in q["sql"]]


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


def test_with_redis_not_answering_every_change_is_pushed_as_before(settings, caplog):
    """Fail open: without Redis's answer the SKU counts as followed (its version bumped and
    pushed, the push dropped by the layer that is down too), and the checkout goes on."""
    gate = BrokerGate(target_url="redis://127.0.0.1:6379/0", mode=REFUSE)
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [gate.url(3)]},
        }
    }
    mug = variant_stocked("MUG-DOWN", on_hand=5)
    buyer = _buyer()
    caplog.set_level(logging.WARNING, logger="stockwire.live")
    try:
        with TestCase.captureOnCommitCallbacks(execute=True):
            order = order_new(buyer, ("MUG-DOWN", 1))
    finally:
        gate.close()

    assert order.pk is not None
    assert _version(mug) == 1
    assert any("could not ask which SKUs are followed" in r.getMessage() for r in caplog.records)


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
