"""End to end: Daphne serving the sockets, gunicorn the HTTP API, the Redis channel layer
between them, a real `websockets` client; and a Redis stopped in the middle of it all."""

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis
import yaml
from asgiref.sync import sync_to_async
from django.db import transaction
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from conftest import PROJECT_DIR, child_env
from live.consumers import CLOSE_RATE_LIMITED, CLOSE_TRY_AGAIN_LATER
from live.groups import variant_group
from live.models import StockVersion
from orders.models import Order
from orders.services import customer_for_user
from payments.demo_provider import demo_event, demo_event_signed
from tests.live_helpers import (
    DAPHNE_MAX_MESSAGE_BYTES,
    DAPHNE_MESSAGE_LIMITS,
    ServerProcess,
    daphne,
    gunicorn,
    redis_server,
    scenario,
)
from tests.orders_helpers import order_new
from tests.storefront_helpers import ADDRESS, product_make, user_with_token

pytestmark = [pytest.mark.redis, pytest.mark.postgres]

# How long a push may take from the commit to the client (the promise).
PUSH_WITHIN_SECONDS = 2
# Daphne's blocking wait on Redis for the next message (LIVE_LAYER_WAIT_SECONDS).
LAYER_WAIT_SECONDS = 1.0


@dataclass
class Stack:
    redis: ServerProcess
    live: ServerProcess
    web: ServerProcess
    folder: Path


@pytest.fixture(scope="module")
def stack(django_db_setup, tmp_path_factory) -> Iterator[Stack]:
    """The production shape, started once for this module: the HTTP API on gunicorn, the
    sockets on Daphne, and between them a Redis of the module's own (never the machine's
    shared one: a test here stops it)."""
    folder = tmp_path_factory.mktemp("live-stack")
    redis = redis_server(log=folder / "redis.log").wait_ready()
    env = {
        **child_env(folder),
        "REDIS_URL": f"redis://127.0.0.1:{redis.port}/0",
        # Short enough to hold a socket idle past several of the layer's waits in seconds.
        "LIVE_LAYER_WAIT_SECONDS": str(LAYER_WAIT_SECONDS),
        "LIVE_PING_SECONDS": str(LAYER_WAIT_SECONDS / 2),
    }
    live = daphne(env=env, log=folder / "daphne.log")
    web = gunicorn(env=env, log=folder / "gunicorn.log")
    stack = Stack(redis=redis, live=live, web=web, folder=folder)
    try:
        live.wait_ready()
        web.wait_ready()
        yield stack
    finally:
        # `stack.redis`: a test may have replaced the Redis it stopped with a new one.
        for server in (web, live, stack.redis):
            server.stop()


@pytest.fixture
def settings_on_the_stack(stack, transactional_db, settings) -> Stack:
    """The test process pushes through the stack's Redis too (orders it places itself), on
    the database its servers use (they inherit REDIS_CHANNEL_LAYER_DB)."""
    database = settings.REDIS_CHANNEL_LAYER_DB
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                "hosts": [f"redis://127.0.0.1:{stack.redis.port}/{database}"],
                "prefix": settings.LIVE_LAYER_PREFIX,
            },
        }
    }
    return stack


async def _socket(port: int, path: str, token: str | None = None) -> ClientConnection:
    subprotocols = ["stockwire.v1", f"bearer.{token}"] if token else None
    return await connect(
        f"ws://127.0.0.1:{port}{path}",
        origin=f"http://127.0.0.1:{port}",
        subprotocols=subprotocols,
        open_timeout=5,
    )


async def _next(socket: ClientConnection, timeout: float = PUSH_WITHIN_SECONDS) -> dict:
    """The next message that is not a ping, within `timeout` seconds."""
    while True:
        message = json.loads(await asyncio.wait_for(socket.recv(), timeout))
        if message["type"] != "ping":
            return message


async def _silent(socket: ClientConnection, timeout: float = 0.5) -> bool:
    try:
        await _next(socket, timeout)
    except TimeoutError:
        return True
    return False


async def _settled_version(quiet: float = 1.0) -> int:
    """The SKU's push version once it stayed put for `quiet` seconds (several windows)."""
    read = sync_to_async(lambda: StockVersion.objects.get().version)
    version, previous = await read(), None
    while version != previous:
        await asyncio.sleep(quiet)
        version, previous = await read(), version
    return version


def _order_body(sku: str, quantity: int) -> dict:
    return {"lines": [{"sku": sku, "quantity": quantity}], "shipping_address": ADDRESS}


async def _place(http: httpx.AsyncClient, token: str, sku: str, quantity: int, key: str) -> dict:
    response = await http.post(
        "/api/v1/orders",
        json=_order_body(sku, quantity),
        headers={"Authorization": f"Bearer {token}", "Idempotency-Key": key},
    )
    assert response.status_code == 201, response.text
    return response.json()


async def _pay(http: httpx.AsyncClient, order: dict) -> None:
    event = demo_event(
        order_number=order["number"], amount=order["total"], currency=order["currency"]
    )
    body, signature = demo_event_signed(event)
    response = await http.post(
        "/api/v1/payments/webhook",
        content=body,
        headers={"Stockwire-Signature": signature, "Content-Type": "application/json"},
    )
    assert response.status_code == 200, response.text


def test_a_subscriber_hears_its_order_placed_paid_shipped_and_cancelled_in_order(
    settings_on_the_stack,
):
    live, web = settings_on_the_stack.live, settings_on_the_stack.web
    product_make(name="Mug", skus=("MUG-E2E",), price="12.50", on_hand=10)
    ada, ada_token = user_with_token(email="ada@example.com")
    _, bob_token = user_with_token(email="bob@example.com")
    boss, staff_token = user_with_token(email="boss@example.com", is_staff=True)
    boss.is_superuser = True
    boss.save()
    staff = {"Authorization": f"Bearer {staff_token}"}
    ada_customer = customer_for_user(user=ada)

    def placed_then_rolled_back() -> None:
        with transaction.atomic():
            order_new(ada_customer, ("MUG-E2E", 1))
            transaction.set_rollback(True)

    async def body():
        ada_socket = await _socket(live.port, "/ws/v1/orders", ada_token)
        bob_socket = await _socket(live.port, "/ws/v1/orders", bob_token)
        stock_socket = await _socket(live.port, "/ws/v1/stock")
        assert (await _next(ada_socket))["orders"] == []
        assert (await _next(bob_socket))["orders"] == []
        await stock_socket.send(json.dumps({"type": "subscribe", "skus": ["MUG-E2E"]}))
        first_stock = (await _next(stock_socket))["stock"][0]

        heard = []
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{web.port}") as http:
            kept = await _place(http, ada_token, "MUG-E2E", 2, "e2e-1")
            heard.append(await _next(ada_socket))
            await _pay(http, kept)
            heard.append(await _next(ada_socket))
            response = await http.post(
                f"/api/v1/staff/orders/{kept['number']}/ship",
                json={"tracking_number": "TRK-E2E", "carrier": "DHL"},
                headers=staff,
            )
            assert response.status_code == 200, response.text
            heard.append(await _next(ada_socket))
            dropped = await _place(http, ada_token, "MUG-E2E", 3, "e2e-2")
            heard.append(await _next(ada_socket))
            response = await http.post(
                f"/api/v1/orders/{dropped['number']}/cancel",
                headers={"Authorization": f"Bearer {ada_token}"},
            )
            assert response.status_code == 200, response.text
            heard.append(await _next(ada_socket))

        # The last push's version: of the cancelled order's units released, read by the
        # publisher when its window let it out (after the last change).
        final = await _settled_version()
        stock = [first_stock]
        while stock[-1]["version"] < final:
            stock.append(await _next(stock_socket))

        # This process pushes through the same Redis: a rollback sends nothing, a commit does.
        await sync_to_async(placed_then_rolled_back)()
        committed = await sync_to_async(order_new)(ada_customer, ("MUG-E2E", 1))
        after_rollback = await _next(ada_socket)
        bob_heard_nothing = await _silent(bob_socket)
        for socket in (ada_socket, bob_socket, stock_socket):
            await socket.close()
        return kept, dropped, heard, stock, committed, after_rollback, bob_heard_nothing

    kept, dropped, heard, stock, committed, after_rollback, bob_silent = scenario(body)

    assert [(m["number"], m["event"], m["status"]) for m in heard] == [
        (kept["number"], "placed", "pending_payment"),
        (kept["number"], "paid", "paid"),
        (kept["number"], "shipped", "shipped"),
        (dropped["number"], "placed", "pending_payment"),
        (dropped["number"], "cancelled", "cancelled"),
    ]
    assert heard[2]["tracking_number"] == "TRK-E2E"
    assert [m["event_id"] for m in heard[:3]] == sorted(m["event_id"] for m in heard[:3])
    # Availability: 10, less 2 sold and shipped; the cancelled order's 3 came back.
    assert stock[0]["available"] == 10
    assert stock[-1]["available"] == 8
    assert [m["version"] for m in stock] == sorted(m["version"] for m in stock)
    assert (after_rollback["number"], after_rollback["event"]) == (committed.number, "placed")
    assert Order.objects.filter(customer__user=ada).count() == 3
    assert bob_silent


def test_an_idle_socket_stays_open_past_several_of_the_layers_waits_on_redis(
    stack, transactional_db
):
    """Each wait of Daphne's for the next message is a blocking read on Redis; one that timed
    out on the client side (the connection's read timeout no longer than the wait) closed every
    idle socket with 4503 while Redis was healthy."""
    _, token = user_with_token(email="ada@example.com")

    async def body():
        socket = await _socket(stack.live.port, "/ws/v1/orders", token)
        assert (await _next(socket))["type"] == "snapshot"
        loop = asyncio.get_running_loop()
        until = loop.time() + 2.5 * LAYER_WAIT_SECONDS
        pings = 0
        while (left := until - loop.time()) > 0:
            try:
                message = json.loads(await asyncio.wait_for(socket.recv(), left))
            except TimeoutError:
                break
            assert message["type"] == "ping", message
            pings += 1
            await socket.send(json.dumps({"type": "pong"}))
        await socket.send(json.dumps({"type": "ping"}))
        answer = await _next(socket)
        await socket.close()
        return pings, answer

    pings, answer = scenario(body)

    assert pings >= 2
    assert answer == {"type": "pong"}


def test_daphne_refuses_a_huge_message_the_app_a_large_one_as_the_compose_file_runs_it(stack):
    compose = yaml.safe_load((PROJECT_DIR / "docker-compose.yml").read_text())
    command = compose["services"]["live"]["command"]

    async def body():
        socket = await _socket(stack.live.port, "/ws/v1/stock")
        await socket.send(json.dumps({"type": "ping", "pad": "x" * 5000}))
        large = await _next(socket)
        await socket.send(json.dumps({"type": "ping"}))
        still_open = await _next(socket)
        await socket.send("x" * (DAPHNE_MAX_MESSAGE_BYTES + 1))
        try:
            await _next(socket)
            answered = True
        except ConnectionClosed as closed:
            # Autobahn drops the connection at once, no close frame (the client sees 1006).
            answered = closed.rcvd is not None
        return large, still_open, answered

    large, still_open, answered = scenario(body)

    assert " ".join(DAPHNE_MESSAGE_LIMITS) in " ".join(command)
    assert (large["type"], large["code"]) == ("error", "message_too_large")
    assert still_open == {"type": "pong"}
    assert not answered


def test_daphne_closes_a_client_that_keeps_sending_while_rate_limited(stack, settings):
    """The close code reaches the client: Daphne sends only the application's own codes."""
    burst = settings.LIVE_MESSAGE_BURST

    async def body():
        socket = await _socket(stack.live.port, "/ws/v1/stock")
        heard = []
        try:
            for _ in range(3 * burst):
                await socket.send(json.dumps({"type": "ping"}))
            while True:
                heard.append((await _next(socket))["type"])
        except ConnectionClosed as closed:
            return heard, closed.rcvd.code if closed.rcvd else None

    heard, code = scenario(body)

    assert code == CLOSE_RATE_LIMITED
    assert heard.count("pong") >= burst and "error" in heard


async def _reconnected(port: int, token: str, since: int, timeout: float = 15) -> dict:
    """Reconnect as a client does (every 0.2 s) until a socket opens and sends its snapshot."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            socket = await _socket(port, f"/ws/v1/orders?since={since}", token)
            snapshot = await _next(socket)
            await socket.close()
            return snapshot
        except (ConnectionClosed, OSError, TimeoutError):
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.2)


def test_with_redis_stopped_the_api_still_answers_and_a_reconnect_repairs_the_socket(
    stack, transactional_db
):
    live, web = stack.live, stack.web
    product_make(name="Mug", skus=("MUG-DOWN",), price="5.00", on_hand=10)
    _, token = user_with_token(email="ada@example.com")

    async def body():
        socket = await _socket(live.port, "/ws/v1/orders", token)
        assert (await _next(socket))["orders"] == []
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{web.port}") as http:
            before = await _place(http, token, "MUG-DOWN", 1, "down-1")
            placed = await _next(socket)

            stack.redis.stop()
            during = await _place(http, token, "MUG-DOWN", 1, "down-2")
            await _pay(http, before)
            try:
                await _next(socket, timeout=10)
                closed_by_server = None
            except ConnectionClosed as closed:
                closed_by_server = closed.rcvd.code if closed.rcvd else None

            stack.redis = redis_server(log=stack.folder / "redis.log", port=stack.redis.port)
            stack.redis.wait_ready()
            snapshot = await _reconnected(live.port, token, since=placed["event_id"])
        return before, during, placed, closed_by_server, snapshot

    before, during, placed, closed_by_server, snapshot = scenario(body)

    assert placed["number"] == before["number"]
    # The socket was closed asking the client to come back later, not left hanging.
    assert closed_by_server == CLOSE_TRY_AGAIN_LATER
    missed = {order["number"]: order for order in snapshot["orders"]}
    assert missed[before["number"]]["status"] == "paid"
    assert missed[during["number"]]["status"] == "pending_payment"
    assert missed[before["number"]]["event_id"] > placed["event_id"]
    assert "channel layer unavailable" in web.output()


def test_daphne_joins_a_skus_group_once_for_all_its_sockets_and_each_hears_the_push(
    settings_on_the_stack, settings
):
    """On Redis, the serving process's hub (`live.hub`) is the SKU group's one member however
    many of its sockets follow the SKU: one layer message per push reaches all of them."""
    stack = settings_on_the_stack
    mug = product_make(name="Mug", skus=("MUG-FAN",), price="12.50", on_hand=10)
    ada, _ = user_with_token(email="ada@example.com")
    ada_customer = customer_for_user(user=ada)
    # channels_redis keeps a group's members in a sorted set under this key.
    group = variant_group(mug.variants.get().pk)
    group_key = f"{settings.LIVE_LAYER_PREFIX}:group:{group}"
    layer_redis = redis.Redis(port=stack.redis.port, db=settings.REDIS_CHANNEL_LAYER_DB)

    async def body():
        sockets = [await _socket(stack.live.port, "/ws/v1/stock") for _ in range(3)]
        for socket in sockets:
            await socket.send(json.dumps({"type": "subscribe", "skus": ["MUG-FAN"]}))
            assert (await _next(socket))["type"] == "snapshot"
        members = layer_redis.zcard(group_key)
        await sync_to_async(order_new)(ada_customer, ("MUG-FAN", 1))
        heard = [await _next(socket) for socket in sockets]
        for socket in sockets:
            await socket.close()
        return members, heard

    members, heard = scenario(body)

    assert members == 1
    assert [(m["sku"], m["available"]) for m in heard] == [("MUG-FAN", 9)] * 3
