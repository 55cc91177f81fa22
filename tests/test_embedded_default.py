"""The embedded default as `make run` starts it, in real processes: SQLite, no Redis, no broker.

Each test runs manage.py or Celery with none of the services' variables set, on a SQLite file
and media, mail and log folders in its temporary folder.
"""

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from conftest import PROJECT_DIR
from tests.embedded_helpers import embedded_env, manage
from tests.faults import closed_port, port_open, wait_until


@pytest.fixture(scope="module")
def migrated(tmp_path_factory) -> Path:
    """A folder holding a migrated SQLite database of the embedded default."""
    folder = tmp_path_factory.mktemp("embedded")
    result = manage("migrate", "--noinput", env=embedded_env(folder))
    assert result.returncode == 0, result.stderr
    return folder


# Ids that are not the `worker` marker's name, which would make the test need Redis.
@pytest.mark.parametrize(
    "role", [pytest.param("worker", id="celery-worker"), pytest.param("beat", id="celery-beat")]
)
def test_a_worker_or_beat_without_a_broker_stops_and_says_what_to_set(tmp_path, role):
    # when
    result = subprocess.run(
        [sys.executable, "-m", "celery", "-A", "config", role, "--loglevel=WARNING"]
        + ([f"--schedule={tmp_path / 'schedule'}"] if role == "beat" else []),
        cwd=PROJECT_DIR,
        env=embedded_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    # then
    assert result.returncode == 1
    assert (
        f"No broker is configured, so tasks run in the web process and there is nothing for a "
        f"{role} to do. Set REDIS_URL (or CELERY_BROKER_URL)"
    ) in result.stderr + result.stdout


def test_mail_of_the_embedded_default_is_written_to_var_mail(tmp_path):
    # when
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import django; django.setup(); from django.conf import settings; "
            "print(settings.EMAIL_BACKEND, settings.EMAIL_FILE_PATH)",
        ],
        cwd=PROJECT_DIR,
        env=embedded_env(tmp_path, DJANGO_SETTINGS_MODULE="config.settings"),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )

    # then
    assert result.stdout.split() == [
        "django.core.mail.backends.filebased.EmailBackend",
        str(PROJECT_DIR / "var" / "mail"),
    ]


ORDER_SCRIPT = """
from django.contrib.auth.models import User
from orders import services
from inventory.services import warehouse_ensure
from catalog.models import Product, Variant
from inventory.services import stock_receive
product = Product.objects.create(name="Mug")
variant = Variant.objects.create(product=product, sku="MUG-1", name="Mug", price="9.90")
stock_receive(variant=variant, warehouse=warehouse_ensure(code="main", name="Main"), quantity=5)
user = User.objects.create_user(username="buyer@example.com", email="buyer@example.com")
order = services.order_place(
    customer=services.customer_for_user(user=user),
    lines=[services.LineRequest(sku="MUG-1", quantity=1)],
    shipping_address={"name": "B", "line1": "1 Road", "city": "C", "postal_code": "1",
                      "country": "DE"},
    actor=user,
)
print(order.number)
"""


def test_first_order_logs_no_broker_warning_and_writes_its_mail(migrated, tmp_path):
    # given
    mail = tmp_path / "mail"

    # when
    result = manage(
        "shell",
        "--no-imports",
        "-c",
        ORDER_SCRIPT,
        env=embedded_env(migrated, EMAIL_URL=f"filemail:///{mail}"),
    )

    # then
    assert result.returncode == 0, result.stderr
    number = result.stdout.strip()
    assert "No hostname was supplied" not in result.stderr
    assert [line for line in result.stderr.splitlines() if "WARNING" in line] == []
    (message,) = [path.read_text() for path in mail.iterdir()]
    assert f"Subject: Your order {number} is confirmed" in message


def test_each_request_is_logged_once(migrated, tmp_path):
    # given: the development server, as `make run` starts it
    port = closed_port()
    log_path = tmp_path / "server.log"
    with log_path.open("w") as log:
        server = subprocess.Popen(
            [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
            cwd=PROJECT_DIR,
            env=embedded_env(migrated),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            # Daphne's runserver says "Quit the server" before it listens: wait for the port.
            assert wait_until(lambda: port_open(port), timeout=60)

            # when: a refused, a missing, an invalid and a good request
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
                statuses = [
                    client.get("/api/v1/orders").status_code,
                    client.get("/api/v1/nowhere").status_code,
                    client.post("/api/v1/auth/token", json={}).status_code,
                    client.get("/healthz").status_code,
                ]
        finally:
            server.terminate()
            server.wait(timeout=15)

    # then: one line each, the access line with the request id
    assert statuses == [401, 404, 422, 200]
    lines = log_path.read_text().splitlines()
    for path, status in [
        ("/api/v1/orders", 401),
        ("/api/v1/nowhere", 404),
        ("/api/v1/auth/token", 422),
        ("/healthz", 200),
    ]:
        (line,) = [line for line in lines if path in line]
        assert line.endswith(
            f"stockwire.request: {'POST' if 'token' in path else 'GET'} {path} {status}"
        )


LIVE_SHOP_SCRIPT = """
from django.contrib.auth.models import User
from catalog.models import Product, Variant
from inventory.services import stock_receive, warehouse_ensure
from storefront.services import token_issue
product = Product.objects.create(name="Live mug")
variant = Variant.objects.create(product=product, sku="LIVE-1", name="Live mug", price="9.90")
stock_receive(variant=variant, warehouse=warehouse_ensure(code="main", name="Main"), quantity=5)
user = User.objects.create_user(username="live@example.com", email="live@example.com")
print(token_issue(user=user))
"""


def test_runserver_serves_the_api_and_the_live_sockets_from_one_process(migrated, tmp_path):
    """`make run`: one process, the in-memory channel layer, a push from an HTTP request."""
    import asyncio
    import json

    from websockets.asyncio.client import connect

    # given: a mug in stock, a customer's token, the development server
    made = manage("shell", "--no-imports", "-c", LIVE_SHOP_SCRIPT, env=embedded_env(migrated))
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    port = closed_port()
    with (tmp_path / "server.log").open("w") as log:
        server = subprocess.Popen(
            [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
            cwd=PROJECT_DIR,
            env=embedded_env(migrated, EMAIL_URL=f"filemail:///{tmp_path / 'mail'}"),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base = f"127.0.0.1:{port}"

    async def body():
        origin = f"http://{base}"
        async with (
            connect(f"ws://{base}/ws/v1/stock", origin=origin) as stock,
            connect(
                f"ws://{base}/ws/v1/orders",
                origin=origin,
                subprotocols=["stockwire.v1", f"bearer.{token}"],
            ) as orders,
        ):
            await stock.send(json.dumps({"type": "subscribe", "skus": ["LIVE-1"]}))
            snapshot = json.loads(await asyncio.wait_for(stock.recv(), 5))
            await asyncio.wait_for(orders.recv(), 5)  # its snapshot
            async with httpx.AsyncClient(base_url=f"http://{base}", timeout=10) as http:
                response = await http.post(
                    "/api/v1/orders",
                    json={
                        "lines": [{"sku": "LIVE-1", "quantity": 2}],
                        "shipping_address": {
                            "name": "B",
                            "line1": "1 Road",
                            "city": "C",
                            "postal_code": "1",
                            "country": "DE",
                        },
                    },
                    headers={"Authorization": f"Bearer {token}", "Idempotency-Key": "live-1"},
                )
            placed = json.loads(await asyncio.wait_for(orders.recv(), 5))
            moved = json.loads(await asyncio.wait_for(stock.recv(), 5))
            return snapshot, response, placed, moved

    try:
        assert wait_until(lambda: port_open(port), timeout=60)
        snapshot, response, placed, moved = asyncio.run(body())
    finally:
        server.terminate()
        server.wait(timeout=15)

    # then: the order's own push and the mug's availability, through the one server
    assert snapshot["stock"][0]["available"] == 5
    assert response.status_code == 201
    assert (placed["number"], placed["event"]) == (response.json()["number"], "placed")
    assert (moved["sku"], moved["available"]) == ("LIVE-1", 3)
