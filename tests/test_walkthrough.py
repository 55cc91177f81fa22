"""The README's walkthrough is true: its shell blocks, run as written with bash against a served
shop (only the base URL changed), register, browse, order with an Idempotency-Key, pay with
`pay_order`, read the invoice and cancel, each step answering what the README says.

The server is `manage.py runserver` in the embedded default, as `make run` starts it, on a new
database of its own (a SQLite file, or a PostgreSQL database on this run's server), migrated
and holding one product in stock, imported with `import_catalog` as a shop's catalog would be.
`pay_order` runs with the server's environment, so against the same database.
"""

import json
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator

import httpx
import psycopg
import pytest
from django.conf import settings
from psycopg import sql

from conftest import PROJECT_DIR, _database_url_for_children
from tests.embedded_helpers import embedded_env, manage
from tests.faults import closed_port, wait_until

DEMO_URL = "http://127.0.0.1:8000"
WALKTHROUGH = re.compile(r"<!-- walkthrough:start -->(.*?)<!-- walkthrough:end -->", re.S)
SHELL_BLOCK = re.compile(r"^```sh\n(.*?)^```", re.M | re.S)
STEP_MARK = re.compile(r"^@@ step (\d+) @@$", re.M)
CATALOG_CSV = (
    "sku,product,variant,category,price,warehouse,on_hand\n"
    "WALK-MUG-BLUE,Enamel mug,Blue,Kitchen > Mugs,9.90,main,10\n"
)


def walkthrough_blocks() -> list[str]:
    """The shell blocks between the README's walkthrough markers, in order."""
    (section,) = WALKTHROUGH.findall((PROJECT_DIR / "README.md").read_text())
    return SHELL_BLOCK.findall(section)


def _postgres_url(database: str) -> str:
    """The URL of `database` on this run's PostgreSQL server, with the test's credentials."""
    return _database_url_for_children().rsplit("/", 1)[0] + f"/{database}"


@pytest.fixture
def shop_database_url(tmp_path) -> Iterator[str]:
    """A new, empty database for the shop's server, dropped afterwards: a SQLite file, or on
    PostgreSQL a database of its own beside the test database (which the server must not share:
    the test database is emptied between tests)."""
    if not settings.DATABASES["default"]["ENGINE"].endswith("postgresql"):
        yield f"sqlite:///{tmp_path / 'shop.sqlite3'}"
        return
    name = f"sw_walkthrough_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(_postgres_url("postgres"), autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield _postgres_url(name)
    finally:
        with psycopg.connect(_postgres_url("postgres"), autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@pytest.fixture
def shop_server(tmp_path, shop_database_url) -> Iterator[tuple[str, dict[str, str]]]:
    """Serve a migrated shop with one product in stock; yield its base URL and the environment
    its commands run with (mail and downloads go to the test's temporary folder)."""
    env = embedded_env(
        tmp_path,
        DATABASE_URL=shop_database_url,
        EMAIL_URL=f"filemail:///{tmp_path / 'mail'}",
        TMPDIR=str(tmp_path),
    )
    catalog = tmp_path / "catalog.csv"
    catalog.write_text(CATALOG_CSV)
    for command in (("migrate", "--noinput"), ("import_catalog", str(catalog), "--no-progress")):
        result = manage(*command, env=env)
        assert result.returncode == 0, result.stdout + result.stderr
    port = closed_port()
    base = f"http://127.0.0.1:{port}"
    log_path = tmp_path / "server.log"
    with log_path.open("w") as log:
        server = subprocess.Popen(
            [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
            cwd=PROJECT_DIR,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            assert wait_until(lambda: _answers(f"{base}/healthz"), timeout=60), log_path.read_text()
            yield base, env
        finally:
            server.terminate()
            server.wait(timeout=15)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def _run(blocks: list[str], *, base: str, env: dict[str, str]) -> list[str]:
    """Run the blocks in one bash, as a reader pastes them into one shell, stopping at the first
    command that fails (curl fails on an HTTP error); return each block's output."""
    script = "set -euo pipefail\n" + "".join(
        f"echo '@@ step {index} @@'\n{block.replace(DEMO_URL, base)}"
        for index, block in enumerate(blocks)
    )
    result = subprocess.run(
        ["bash", "-c", script],
        cwd=PROJECT_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    parts = STEP_MARK.split(result.stdout)
    assert [int(number) for number in parts[1::2]] == list(range(len(blocks)))
    return [output.strip() for output in parts[2::2]]


def _json_lines(output: str) -> list:
    """The JSON documents a step printed, one a line."""
    return [json.loads(line) for line in output.splitlines() if line.startswith(("{", "["))]


def test_the_readme_walkthrough_runs_against_a_served_shop(shop_server, tmp_path):
    # given: the README's blocks, whose only address is the one `make run` serves on
    base, env = shop_server
    blocks = walkthrough_blocks()
    assert len(blocks) == 8
    assert sum(block.count(DEMO_URL) for block in blocks) == 1

    # when
    setup, register, browse, place, replay, pay, invoice, cancel = _run(blocks, base=base, env=env)

    # then: a new customer with a token
    assert setup == ""
    (registered,) = _json_lines(register)
    assert registered["customer"]["email"].startswith("reader-")
    token = re.search(r"^token: (\S+)$", register, re.M).group(1)

    # then: the categories, and a SKU of the product in stock
    categories, products = _json_lines(browse)
    assert [category["slug"] for category in categories] == ["kitchen", "kitchen-mugs"]
    assert products["items"][0]["variants"][0]["available"] == 10
    assert browse.endswith("ordering one WALK-MUG-BLUE")

    # then: the order is placed, awaiting payment, and the same key places nothing again
    (order,) = _json_lines(place)
    assert (order["status"], order["lines"][0]["sku"], order["total"]) == (
        "pending_payment",
        "WALK-MUG-BLUE",
        "14.80",
    )
    assert place.endswith(f"order {order['number']}")
    assert re.match(r"HTTP/1\.[01] 201 ", replay)
    assert re.search(r"^Idempotent-Replayed: true\r?$", replay, re.M)
    assert _json_lines(replay) == [order]

    # then: the demo payment paid it
    assert re.search(rf"^sent \S+ for {order['number']} \(14\.80 EUR\): 200$", pay, re.M)
    (paid,) = _json_lines(pay)
    assert paid["status"] == "paid"

    # then: its invoice is served, with its document
    (invoice_body,) = _json_lines(invoice)
    assert (invoice_body["total"], invoice_body["document_url"]) == (
        "14.80",
        f"{base}/api/v1/orders/{order['number']}/invoice/document",
    )
    document = tmp_path / f"{order['number']}.html"
    assert invoice.endswith(f"invoice saved to {document}")
    assert invoice_body["number"] in document.read_text()

    # then: the paid order is cancelled and refunded in full, and it was the only one placed
    (cancelled,) = _json_lines(cancel)
    assert (cancelled["status"], cancelled["refunded"]) == ("cancelled", "14.80")
    orders = httpx.get(
        f"{base}/api/v1/orders", headers={"Authorization": f"Bearer {token}"}, timeout=10
    ).json()
    assert (orders["count"], orders["items"][0]["status"]) == (1, "cancelled")

    # then: the customer was told at each step
    subjects = sorted(
        line.removeprefix("Subject: ")
        for message in (tmp_path / "mail").iterdir()
        for line in message.read_text().splitlines()
        if line.startswith("Subject: ")
    )
    number = order["number"]
    assert subjects == [
        f"Order {number} was cancelled",
        f"Payment received for order {number}",
        f"Refund for order {number}",
        f"Your order {number} is confirmed",
    ]
