"""Catalog reads on a real streaming replica: who reads where, and what happens when it fails.

One primary and one hot standby (`tests/replica_pair.py`) run for the session. Each test points
Django's `default` at that primary and adds its replica as `replica_1`, as DATABASE_URL and
DATABASE_REPLICA_URLS would (the replica's database is the primary's, as TEST MIRROR says), and
counts the statements each alias runs. Data is committed (replication only ships commits) and
flushed after each test.
"""

import contextlib
import copy
import io
import json
import logging
import re
from collections.abc import Iterator
from decimal import Decimal
from functools import partial

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.core.management import call_command
from django.db import connections, transaction
from django.http import HttpResponse
from django.test import Client, RequestFactory

from catalog.models import Product, Variant
from core.replica_monitor import LAGGING, UP, replica_monitor
from core.replicas import (
    _PRIMARY_COMMITTED_SQL,
    PRIMARY,
    ReplicaPinMiddleware,
    replica_reads,
    replica_report,
)
from tests.faults import wait_until
from tests.replica_pair import PairUnavailable, StreamingPair
from tests.storefront_helpers import (
    FAST_HASHERS,
    client_for,
    order_post,
    product_make,
    user_with_token,
)

pytestmark = pytest.mark.replica

REPLICA = "replica_1"
DETAIL = "/api/v1/products/linen-shirt"
# Every opted-in catalog read: the detail twice, as its first visit only learns the slug.
CATALOG = (
    "/api/v1/categories",
    "/api/v1/products",
    DETAIL,
    DETAIL,
    "/api/v1/products/linen-shirt/reviews",
)


@contextlib.contextmanager
def databases_on(pair: StreamingPair) -> Iterator[None]:
    """Point `default` at the pair's primary and add its replica as `replica_1`."""
    default = connections.settings[PRIMARY]
    saved = {key: default[key] for key in ("HOST", "PORT", "USER", "PASSWORD")}
    connections[PRIMARY].close()
    default.update(HOST="127.0.0.1", PORT=pair.primary_port, USER="postgres", PASSWORD="")
    connections.settings[REPLICA] = {
        **copy.deepcopy(default),
        "PORT": pair.replica_port,
        "OPTIONS": {**default["OPTIONS"], "connect_timeout": 2},
        "TEST": {**default["TEST"], "MIRROR": PRIMARY},
    }
    try:
        yield
    finally:
        for alias in (REPLICA, PRIMARY):
            connections[alias].close()
        with contextlib.suppress(AttributeError):
            del connections[REPLICA]
        del connections.settings[REPLICA]
        default.update(saved)


@pytest.fixture(scope="session")
def streaming_pair(django_db_setup, django_db_blocker) -> Iterator[StreamingPair]:
    """A primary with the test database, migrated, and its streaming replica."""
    try:
        pair = StreamingPair()
    except PairUnavailable as error:
        pytest.skip(f"cannot run a PostgreSQL primary and replica here: {error}")
    try:
        pair.start()
        name = connections.settings[PRIMARY]["NAME"]
        pair.execute(port=pair.primary_port, sql=f'CREATE DATABASE "{name}"')
        with django_db_blocker.unblock(), databases_on(pair):
            call_command("migrate", interactive=False, verbosity=0)
        pair.wait_replayed()
        yield pair
    finally:
        pair.stop()


@pytest.fixture
def pair(streaming_pair, django_db_blocker, settings, tmp_path, caplog) -> Iterator[StreamingPair]:
    """The pair as this process's databases, replication running; emptied afterwards."""
    settings.DATABASE_REPLICAS = [REPLICA]
    settings.DATABASE_ROUTERS = ["core.replicas.ReplicaRouter"]
    settings.MEDIA_ROOT = tmp_path
    settings.PASSWORD_HASHERS = FAST_HASHERS
    caplog.set_level(logging.INFO, logger="stockwire.replicas")
    with django_db_blocker.unblock(), databases_on(streaming_pair):
        cache.clear()
        try:
            yield streaming_pair
        finally:
            replica_monitor().stop()
            if not streaming_pair.replica_running():
                streaming_pair.replica_start()
            streaming_pair.replay_resume()
            call_command("flush", interactive=False, verbosity=0, inhibit_post_migrate=True)
            cache.clear()


@contextlib.contextmanager
def statements_by_alias() -> Iterator[dict[str, list[str]]]:
    """Record the SQL this thread runs on the primary and on the replica."""

    def record(sqls, execute, sql, params, many, context):
        sqls.append(sql)
        return execute(sql, params, many, context)

    recorded: dict[str, list[str]] = {PRIMARY: [], REPLICA: []}
    with contextlib.ExitStack() as stack:
        for alias, sqls in recorded.items():
            stack.enter_context(connections[alias].execute_wrapper(partial(record, sqls)))
        yield recorded


def tables(sqls: list[str]) -> set[str]:
    """The tables these statements read."""
    return {table for sql in sqls for table in re.findall(r'(?:FROM|JOIN) "(\w+)"', sql)}


def replica_status() -> str:
    """Check the replica now and return what the check found."""
    monitor = replica_monitor()
    monitor.check()
    return {state.alias: state.status for state in monitor.states()}[REPLICA]


def on_replica(pair: StreamingPair, sql: str) -> tuple:
    return pair.execute(
        port=pair.replica_port, dbname=connections.settings[PRIMARY]["NAME"], sql=sql
    )


def shirt_price(answer) -> str:
    return answer.json()["variants"][0]["price"]


def logged(caplog, start: str) -> list[str]:
    return [message for message in caplog.messages if message.startswith(start)]


def shirt_on_both(pair: StreamingPair) -> Product:
    """The linen shirt, 5 in stock, replayed by a replica a check has just found healthy."""
    product = product_make(name="Linen shirt", skus=("SHIRT-M",), price="19.99", on_hand=5)
    pair.wait_replayed()
    assert replica_status() == UP
    return product


def buyer_beside_a_paused_replica(pair: StreamingPair, settings) -> str:
    """The shirt, a buyer's token, and a replica that stopped replaying but stays usable (the
    lag bound is far off)."""
    settings.DATABASE_REPLICA_MAX_LAG_SECONDS = 600
    shirt_on_both(pair)
    _, token = user_with_token()
    pair.wait_replayed()
    pair.replay_pause()
    return token


def test_anonymous_catalog_reads_are_served_by_the_replica(pair, client):
    # given: a product the replica has replayed, and a replica found healthy
    shirt_on_both(pair)
    before = client.get("/readyz").json()["replicas"]["reads"]

    # when: an anonymous shopper browses every catalog page, then again from the cache
    with statements_by_alias() as built:
        answers = [client.get(path) for path in CATALOG]
    with statements_by_alias() as cached:
        again = [client.get(path) for path in CATALOG]

    # then: the pages were read on the replica; the primary was asked only for its position
    # (once per page stored in the cache, so the replica had to have replayed up to it)
    assert [answer.status_code for answer in answers + again] == [200] * 10
    assert [answer.content for answer in again] == [answer.content for answer in answers]
    assert shirt_price(answers[2]) == "19.99"
    assert answers[2].json()["variants"][0]["available"] == 5
    assert {
        "catalog_category",
        "catalog_product",
        "catalog_variant",
        "inventory_stocklevel",
        "reviews_review",
    } <= tables(built[REPLICA])
    assert built[PRIMARY] == [_PRIMARY_COMMITTED_SQL] * 4
    assert cached == {PRIMARY: [], REPLICA: []}
    after = client.get("/readyz").json()["replicas"]
    assert after["reads"] == {**before, "replica": before["replica"] + 5}
    assert after["replicas"] == [{"alias": REPLICA, "status": UP, "lag_seconds": 0.0}]


def test_a_customer_reads_the_order_just_placed_from_the_primary(pair, settings):
    # given: a usable replica that has stopped replaying (behind, but within the bound)
    customer = client_for(buyer_beside_a_paused_replica(pair, settings))

    # when: the customer places an order and reads it back at once
    with statements_by_alias() as statements:
        placed = order_post(customer, lines=[{"sku": "SHIRT-M", "quantity": 2}])
        number = placed.json()["number"]
        read = customer.get(f"/api/v1/orders/{number}")
        listed = customer.get("/api/v1/orders")

    # then: both reads found it on the primary; the replica, which lacks it, was not asked
    assert placed.status_code == 201
    assert (read.status_code, read.json()["number"], read.json()["status"]) == (
        200,
        number,
        "pending_payment",
    )
    assert [order["number"] for order in listed.json()["items"]] == [number]
    assert statements[REPLICA] == []
    assert on_replica(pair, "SELECT count(*) FROM orders_order") == (0,)
    assert replica_status() == UP


def test_staff_pages_and_commands_read_the_primary(pair, client):
    # given: a healthy replica and a superuser
    product = shirt_on_both(pair)
    admin = get_user_model().objects.create_superuser("boss@example.com", "boss@example.com")
    client.force_login(admin)

    # when: staff work in the admin and run a command
    with statements_by_alias() as statements:
        pages = [
            client.get(path)
            for path in (
                "/admin/",
                "/admin/catalog/product/",
                f"/admin/catalog/product/{product.pk}/change/",
                "/admin/orders/order/",
            )
        ]
        call_command("inventory_verify", stdout=io.StringIO())

    # then: everything was read on the primary
    assert [page.status_code for page in pages] == [200] * 4
    assert statements[REPLICA] == []
    assert {"catalog_product", "inventory_stocklevel"} <= tables(statements[PRIMARY])


def test_reads_in_a_transaction_an_unsafe_request_or_after_a_write_stay_on_the_primary(pair):
    # given: a view whose opted-in read may run in a transaction or after a write
    shirt_on_both(pair)

    @replica_reads
    def names() -> list[str]:
        return list(Product.objects.values_list("name", flat=True))

    def view(request) -> HttpResponse:
        if request.GET.get("then") == "write":
            Product.objects.filter(name="Linen shirt").update(description="Soft")
        if request.GET.get("then") == "transaction":
            with transaction.atomic():
                return HttpResponse(json.dumps(names()))
        return HttpResponse(json.dumps(names()))

    served = ReplicaPinMiddleware(view)
    factory = RequestFactory()
    pinned_requests = {
        "in a transaction": factory.get("/", {"then": "transaction"}),
        "after a write": factory.get("/", {"then": "write"}),
        **{method: getattr(factory, method)("/") for method in ("post", "put", "patch", "delete")},
    }

    # when: each is served, and then a plain GET
    answers, pinned = {}, {}
    for name, request in pinned_requests.items():
        with statements_by_alias() as pinned[name]:
            answers[name] = served(request)
    with statements_by_alias() as plain:
        answers["plain"] = served(factory.get("/"))

    # then: only the plain read of a safe request went to the replica
    assert {name: json.loads(answer.content) for name, answer in answers.items()} == {
        name: ["Linen shirt"] for name in answers
    }
    assert {name: tables(statements[REPLICA]) for name, statements in pinned.items()} == {
        name: set() for name in pinned_requests
    }
    assert {name: tables(statements[PRIMARY]) for name, statements in pinned.items()} == {
        name: {"catalog_product"} for name in pinned_requests
    }
    assert (tables(plain[PRIMARY]), tables(plain[REPLICA])) == (set(), {"catalog_product"})


def test_a_stopped_replica_is_skipped_and_used_again_once_it_is_back(pair, client, caplog):
    # given: a product on both servers
    shirt_on_both(pair)

    # when: the replica stops
    pair.replica_stop()
    status_stopped = replica_status()
    with statements_by_alias() as stopped:
        answer = client.get("/api/v1/products")

    # then: the catalog answers from the primary, and the outage is logged once
    assert status_stopped == "down"
    assert answer.status_code == 200
    assert [item["slug"] for item in answer.json()["items"]] == ["linen-shirt"]
    assert stopped[REPLICA] == []
    assert "catalog_product" in tables(stopped[PRIMARY])
    assert len(logged(caplog, "replica replica_1 is down, reads go to the primary")) == 1

    # when: it is back
    pair.replica_start()
    pair.wait_replayed()
    status_back = replica_status()
    cache.clear()
    with statements_by_alias() as back:
        again = client.get("/api/v1/products")

    # then: reads go to it again, and that is logged
    assert status_back == UP
    assert again.content == answer.content
    assert "catalog_product" in tables(back[REPLICA])
    assert tables(back[PRIMARY]) == set()
    assert logged(caplog, "replica replica_1 serves reads again") == [
        "replica replica_1 serves reads again"
    ]


def test_a_read_that_fails_on_the_replica_is_read_again_on_the_primary(pair, client, caplog):
    # given: a healthy replica this thread has a session with
    shirt_on_both(pair)
    assert client.get("/api/v1/categories").status_code == 200
    session = connections[REPLICA].connection.info.backend_pid
    before = replica_report()["reads"]

    # when: that session dies (as in a restart or a failover) while the monitor still finds
    # the replica healthy, and the next page is read
    pair.execute(port=pair.replica_port, sql=f"SELECT pg_terminate_backend({session}, 5000)")
    with statements_by_alias() as statements:
        answer = client.get("/api/v1/products")

    # then: the page is read again on the primary, once, and that is logged
    assert answer.status_code == 200
    assert [item["slug"] for item in answer.json()["items"]] == ["linen-shirt"]
    assert "catalog_product" in tables(statements[PRIMARY])
    assert replica_report()["reads"] == {**before, "fallback": before["fallback"] + 1}
    assert len(logged(caplog, "a read failed on replica replica_1 and is read again")) == 1


def test_a_replica_lagging_beyond_the_bound_is_skipped_until_it_catches_up(
    pair, client, settings, caplog
):
    # given: a replica one second may separate from the primary
    settings.DATABASE_REPLICA_MAX_LAG_SECONDS = 1
    shirt_on_both(pair)

    # when: it stops replaying while the primary goes on writing
    pair.replay_pause()
    Product.objects.filter(name="Linen shirt").update(description="Soft linen")
    lagging = wait_until(lambda: replica_status() == LAGGING, timeout=15, interval=0.2)
    with statements_by_alias() as skipped:
        answer = client.get("/api/v1/products")

    # then: it is skipped, and that is logged
    assert lagging
    assert answer.json()["items"][0]["description"] == "Soft linen"
    assert skipped[REPLICA] == []
    assert "catalog_product" in tables(skipped[PRIMARY])
    assert len(logged(caplog, "replica replica_1 is lagging, reads go to the primary")) == 1

    # when: it replays again
    pair.replay_resume()
    caught_up = wait_until(lambda: replica_status() == UP, timeout=15, interval=0.2)
    cache.clear()
    with statements_by_alias() as back:
        again = client.get("/api/v1/products")

    # then: it serves reads again
    assert caught_up
    assert again.content == answer.content
    assert "catalog_product" in tables(back[REPLICA])
    assert len(logged(caplog, "replica replica_1 serves reads again")) == 1


def test_an_idle_primary_does_not_make_its_replica_look_lagging(pair, settings):
    # given: a replica that has replayed the primary's last commit
    settings.DATABASE_REPLICA_MAX_LAG_SECONDS = 1
    shirt_on_both(pair)

    # when: nothing is committed for longer than the bound
    def last_commit_age() -> float:
        sql = "SELECT extract(epoch FROM now() - pg_last_xact_replay_timestamp())"
        return on_replica(pair, sql)[0]

    assert wait_until(lambda: last_commit_age() > 2, timeout=15, interval=0.2)

    # then: its last replayed commit is old, yet it misses nothing and is not lagging
    assert replica_status() == UP
    assert [state.lag_seconds for state in replica_monitor().states()] == [0.0]


def test_a_caught_up_replica_builds_pages_while_the_primarys_position_lies_past_its_last_record(
    pair, client, monkeypatch
):
    # given: a replica that has replayed the shirt, and a primary whose flush position lies past
    # its last whole record, as when it ends inside one that crosses into a page not written yet
    # (a replica replays only whole records, so its replay never reaches that position)
    shirt_on_both(pair)
    monkeypatch.setattr(
        "core.replicas._PRIMARY_COMMITTED_SQL",
        "SELECT pg_current_wal_flush_lsn() + 48, pg_current_snapshot()::text",
    )

    # when: a detail is built to be stored (its first visit is built without the check)
    client.get(DETAIL)
    with statements_by_alias() as built:
        answer = client.get(DETAIL)

    # then: the replica, which has seen every transaction end, built it
    assert shirt_price(answer) == "19.99"
    assert "catalog_variant" in tables(built[REPLICA])
    assert tables(built[PRIMARY]) == set()


def test_a_detail_rebuilt_while_the_replica_is_behind_is_never_cached_stale(pair, client, settings):
    # given: a detail cached from a replica that then stops replaying (within the bound)
    settings.DATABASE_REPLICA_MAX_LAG_SECONDS = 600
    shirt_on_both(pair)
    client.get(DETAIL)
    client.get(DETAIL)
    pair.replay_pause()

    # when: the price changes on the primary, whose commit replaces the detail's version, and
    # the detail is read while the replica lacks that commit, then after it replayed it
    variant = Variant.objects.get(sku="SHIRT-M")
    variant.price = Decimal("29.99")
    variant.save()
    with statements_by_alias() as rebuilt_from:
        rebuilt = client.get(DETAIL)
    pair.replay_resume()
    pair.wait_replayed()
    with statements_by_alias() as cached_from:
        cached = client.get(DETAIL)

    # then: the rebuild read the primary, and what the cache keeps is the new price
    assert shirt_price(rebuilt) == "29.99"
    assert "catalog_variant" in tables(rebuilt_from[PRIMARY])
    assert tables(rebuilt_from[REPLICA]) == set()
    assert shirt_price(cached) == "29.99"
    assert cached_from == {PRIMARY: [], REPLICA: []}


def test_a_first_visit_is_read_from_a_replica_that_is_behind_within_the_bound(pair, settings):
    # given: the replica has stopped replaying before a sale (within the bound)
    token = buyer_beside_a_paused_replica(pair, settings)
    sale = order_post(client_for(token), lines=[{"sku": "SHIRT-M", "quantity": 2}])
    assert sale.status_code == 201

    # when: a shopper opens the product for the first time (a page not stored in the cache)
    first = Client().get(DETAIL)
    stored = Client().get(DETAIL)

    # then: the first visit shows the replica's availability, a little behind; the page the
    # cache stores is read on the primary, as the replica has not caught up
    assert first.json()["variants"][0]["available"] == 5
    assert stored.json()["variants"][0]["available"] == 3
