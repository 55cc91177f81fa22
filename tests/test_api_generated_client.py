"""A client generated from the live OpenAPI document with openapi-python-client works end to end:
register, browse, order and cancel against a running server, with typed answers (the order's
status an enum, money decimal strings, the product's ETag a declared header)."""

import importlib
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from django.core.cache import cache

from tests.storefront_helpers import FAST_HASHERS, product_make

pytestmark = pytest.mark.django_db(transaction=True)

PACKAGE = "stockwire_client"
GENERATOR = Path(sys.executable).parent / "openapi-python-client"
# No post-generation hooks: the generator would run ruff from PATH over the code it wrote.
GENERATOR_CONFIG = f"package_name_override: {PACKAGE}\npost_hooks: []\n"
ADDRESS = {
    "name": "Gen Client",
    "line1": "1 Schema Street",
    "city": "Berlin",
    "postal_code": "10115",
    "country": "DE",
}


@pytest.fixture
def generated_client(live_server, tmp_path, monkeypatch):
    """Generate the client package from the server's own schema into tmp_path and import it."""
    schema = tmp_path / "openapi.json"
    schema.write_text(httpx.get(f"{live_server.url}/api/v1/openapi.json").text)
    config = tmp_path / "generator.yml"
    config.write_text(GENERATOR_CONFIG)
    result = subprocess.run(
        [
            str(GENERATOR),
            "generate",
            f"--path={schema}",
            f"--config={config}",
            "--meta=none",
            f"--output-path={tmp_path / PACKAGE}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Warning" not in result.stdout, result.stdout
    monkeypatch.syspath_prepend(str(tmp_path))
    yield importlib.import_module(PACKAGE)
    for name in [name for name in sys.modules if name.split(".")[0] == PACKAGE]:
        del sys.modules[name]


@pytest.fixture
def connect(generated_client, live_server):
    """Open a generated client on the live server (with `token`, an authenticated one); each is
    closed after the test."""
    opened = []

    def open_client(token: str | None = None):
        options = {"base_url": live_server.url, "raise_on_unexpected_status": True}
        if token is None:
            client = generated_client.Client(**options)
        else:
            client = generated_client.AuthenticatedClient(token=token, **options)
        opened.append(client.__enter__())
        return client

    yield open_client
    for client in opened:
        client.__exit__(None, None, None)


def test_generated_client_registers_browses_orders_and_cancels(connect, settings):
    # given: a mug in stock, and the generated modules
    settings.PASSWORD_HASHERS = FAST_HASHERS
    cache.clear()
    product_make(name="Enamel mug", skus=("MUG-1",), price="9.90", on_hand=5)
    models = importlib.import_module(f"{PACKAGE}.models")
    register = importlib.import_module(f"{PACKAGE}.api.auth.register")
    product_list = importlib.import_module(f"{PACKAGE}.api.catalog.product_list")
    product_detail = importlib.import_module(f"{PACKAGE}.api.catalog.product_detail")
    order_place = importlib.import_module(f"{PACKAGE}.api.orders.order_place")
    order_list = importlib.import_module(f"{PACKAGE}.api.orders.order_list")
    order_cancel = importlib.import_module(f"{PACKAGE}.api.orders.order_cancel")
    anonymous = connect()

    # when: register
    registered = register.sync(
        client=anonymous,
        body=models.CredentialsIn(email="gen@example.com", password="a long client password"),
    )
    customer = connect(token=registered.token)

    # then
    assert registered.customer.email == "gen@example.com"

    # when: browse
    page = product_list.sync(client=anonymous, limit=10)
    detail = product_detail.sync_detailed(client=anonymous, slug=page.items[0].slug)

    # then
    assert page.count == 1
    variant = page.items[0].variants[0]
    assert (variant.sku, variant.price, variant.currency, variant.available) == (
        "MUG-1",
        "9.90",
        "EUR",
        5,
    )
    assert detail.status_code == 200
    assert detail.headers["ETag"].startswith('"')

    # when: order two mugs
    placed = order_place.sync_detailed(
        client=customer,
        body=models.OrderIn(
            lines=[models.LineIn(sku="MUG-1", quantity=2)],
            shipping_address=models.AddressIn(**ADDRESS),
        ),
        idempotency_key="generated-client-order-1",
    )

    # then
    assert placed.status_code == 201
    order = placed.parsed
    assert order.status == models.OrderStatus.PENDING_PAYMENT
    assert (order.subtotal, order.shipping, order.total) == ("19.80", "4.90", "24.70")
    assert [(line.sku, line.quantity, line.line_total) for line in order.lines] == [
        ("MUG-1", 2, "19.80")
    ]
    mine = order_list.sync(client=customer)
    assert (mine.count, [item.number for item in mine.items]) == (1, [order.number])
    assert product_list.sync(client=anonymous).items[0].variants[0].available == 3

    # when: cancel it
    cancelled = order_cancel.sync(client=customer, number=order.number)

    # then: cancelled, and the mugs are back on the shelf
    assert cancelled.status == models.OrderStatus.CANCELLED
    assert cancelled.cancelled_at is not None
    assert product_list.sync(client=anonymous).items[0].variants[0].available == 5
