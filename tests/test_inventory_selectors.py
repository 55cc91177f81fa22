"""Stock reads in fixed query counts, the ledger check, the staff alerts, fixture loading."""

import io
import json
import smtplib

import pytest
from celery.exceptions import Retry
from django.core import mail
from django.core.management import CommandError, call_command
from django.db.models import F
from model_bakery import baker

from audit.models import AuditEntry
from catalog.models import Product
from core.retries import BackoffTask
from inventory.alerts import low_stock_alert_send
from inventory.models import SentAlert, StockAllocation, StockLevel, Warehouse
from inventory.selectors import (
    availability_by_variant,
    products_in_stock,
    stock_level_list,
    variants_low_on_stock,
)
from inventory.services import stock_receive, stock_reserve
from inventory.tasks import low_stock_alert, low_stock_digest
from orders.tasks import order_email_send as order_email_send_task
from outbox.models import OutboxMessage
from tests.inventory_helpers import make_variant, make_warehouse

pytestmark = pytest.mark.django_db


def test_availability_of_a_page_of_fifty_products_costs_one_query(django_assert_num_queries):
    # given
    main, closed = make_warehouse("main"), make_warehouse("closed", is_active=False)
    for index in range(50):
        product = baker.make(Product, name=f"P{index}", slug=f"p-{index}")
        for _ in range(2):
            variant = make_variant(product=product)
            stock_receive(variant=variant, warehouse=main, quantity=index + 1)
            stock_receive(variant=variant, warehouse=closed, quantity=100)
    page = list(Product.objects.prefetch_related("variants").order_by("name")[:50])
    variant_ids = [variant.pk for product in page for variant in product.variants.all()]

    # when
    with django_assert_num_queries(1):
        availability = availability_by_variant(variant_ids=variant_ids)

    # then: closed warehouses do not count
    assert len(availability) == 100
    assert sum(availability.values()) == 2 * sum(range(1, 51))


def test_variants_without_stock_are_available_zero():
    variant = make_variant()

    assert availability_by_variant(variant_ids=[variant.pk]) == {variant.pk: 0}


def test_products_in_stock_keeps_only_products_with_a_sellable_unit():
    # given
    main, closed = make_warehouse("main"), make_warehouse("closed", is_active=False)
    in_stock, all_held, only_closed, inactive_variant = (make_variant() for _ in range(4))
    stock_receive(variant=in_stock, warehouse=main, quantity=1)
    stock_receive(variant=all_held, warehouse=main, quantity=2)
    stock_reserve(reference="SW-1", quantities=[(all_held.pk, 2)])
    stock_receive(variant=only_closed, warehouse=closed, quantity=5)
    stock_receive(variant=inactive_variant, warehouse=main, quantity=5)
    inactive_variant.is_active = False
    inactive_variant.save(update_fields=["is_active"])

    # when
    kept = products_in_stock(Product.objects.all())

    # then
    assert list(kept) == [in_stock.product]


def test_level_listing_joins_variant_product_and_warehouse(django_assert_num_queries):
    # given
    main = make_warehouse("main")
    for _ in range(5):
        stock_receive(variant=make_variant(), warehouse=main, quantity=1)

    # when / then
    with django_assert_num_queries(1):
        rows = [(level.variant.product.name, level.warehouse.code) for level in stock_level_list()]
    assert len(rows) == 5


def test_inventory_verify_is_clean_for_a_sound_ledger():
    # given
    variant = make_variant()
    stock_receive(variant=variant, warehouse=make_warehouse("main"), quantity=3)
    stock_reserve(reference="SW-2", quantities=[(variant.pk, 2)])
    out = io.StringIO()

    # when
    call_command("inventory_verify", stdout=out)

    # then
    assert out.getvalue() == "stock ledger and levels agree\n"


def test_inventory_verify_lists_levels_changed_behind_the_ledger_and_fails():
    # given
    variant = make_variant()
    stock_receive(variant=variant, warehouse=make_warehouse("main"), quantity=3)
    stock_reserve(reference="SW-3", quantities=[(variant.pk, 2)])
    level = StockLevel.objects.get()
    StockLevel.objects.filter(pk=level.pk).update(on_hand=F("on_hand") + 1, unavailable=1)
    StockAllocation.objects.update(quantity=1)
    out = io.StringIO()

    # when
    with pytest.raises(CommandError, match="1 stock figure"):
        call_command("inventory_verify", stdout=out)

    # then
    assert out.getvalue() == (
        f"level {level.pk} ({variant.sku} @ main): on_hand 4 vs ledger 3, "
        "unavailable 1 vs ledger 0, reserved 2 vs allocations 1\n"
    )


def test_low_stock_alert_is_not_sent_once_the_variant_was_refilled(settings):
    # given
    settings.STAFF_ALERT_EMAILS = ["stock@example.com"]
    variant = make_variant(threshold=3)
    stock_receive(variant=variant, warehouse=make_warehouse("main"), quantity=10)

    # when
    sent = low_stock_alert.delay(variant_id=variant.pk).get()

    # then
    assert sent is False
    assert mail.outbox == []


def test_low_stock_digest_mails_every_variant_at_or_below_its_threshold(settings):
    # given
    settings.STAFF_ALERT_EMAILS = ["stock@example.com", "boss@example.com"]
    main = make_warehouse("main")
    low, at, fine = make_variant(threshold=3), make_variant(threshold=3), make_variant(threshold=3)
    stock_receive(variant=low, warehouse=main, quantity=1)
    stock_receive(variant=at, warehouse=main, quantity=3)
    stock_receive(variant=fine, warehouse=main, quantity=4)

    # when
    listed = low_stock_digest.delay().get()

    # then
    assert listed == 2
    assert [variant.sku for variant, _ in variants_low_on_stock()] == sorted([low.sku, at.sku])
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["stock@example.com", "boss@example.com"]
    assert low.sku in mail.outbox[0].body and at.sku in mail.outbox[0].body
    assert fine.sku not in mail.outbox[0].body


def test_a_low_stock_alert_delivered_twice_sends_one_email(settings):
    # given: the same outbox row handed out again (a relay after a failed mark-sent, a
    # redelivery after a worker was killed)
    settings.STAFF_ALERT_EMAILS = ["stock@example.com"]
    variant = make_variant(threshold=3)
    stock_receive(variant=variant, warehouse=make_warehouse("main"), quantity=2)

    # when
    first = low_stock_alert.apply(kwargs={"variant_id": variant.pk}, task_id="row-1").get()
    second = low_stock_alert.apply(kwargs={"variant_id": variant.pk}, task_id="row-1").get()

    # then
    assert (first, second) == (True, False)
    assert [message.subject for message in mail.outbox] == [f"Low stock: {variant.sku} (2 left)"]


def test_a_low_stock_alert_that_failed_to_send_is_sent_by_its_retry(settings):
    # given
    settings.STAFF_ALERT_EMAILS = ["stock@example.com"]
    variant = make_variant(threshold=3)
    stock_receive(variant=variant, warehouse=make_warehouse("main"), quantity=2)
    settings.EMAIL_BACKEND = "tests.test_orders_emails_counters.FailingBackend"

    # when
    with pytest.raises(smtplib.SMTPException):
        low_stock_alert_send(variant_id=variant.pk)

    # then the claim went with the failure
    assert SentAlert.objects.count() == 0

    # when the server is back
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    assert low_stock_alert_send(variant_id=variant.pk) is True
    assert low_stock_alert_send(variant_id=variant.pk) is False
    assert len(mail.outbox) == 1


def test_the_low_stock_digest_delivered_twice_the_same_day_sends_one_email(settings):
    # given
    settings.STAFF_ALERT_EMAILS = ["stock@example.com"]
    stock_receive(variant=make_variant(threshold=3), warehouse=make_warehouse("main"), quantity=1)

    # when
    first = low_stock_digest.apply(task_id="beat-1").get()
    second = low_stock_digest.apply(task_id="beat-1").get()

    # then
    assert (first, second) == (1, 0)
    assert len(mail.outbox) == 1


@pytest.mark.parametrize("task", [low_stock_alert, low_stock_digest], ids=lambda t: t.name)
def test_the_alert_tasks_retry_like_the_order_emails(task):
    assert task.autoretry_for == order_email_send_task.autoretry_for
    assert task.max_retries == order_email_send_task.max_retries
    assert isinstance(task, BackoffTask)


def test_a_low_stock_alert_rides_out_an_smtp_blip_with_a_retry(settings):
    # given
    settings.STAFF_ALERT_EMAILS = ["stock@example.com"]
    variant = make_variant(threshold=3)
    stock_receive(variant=variant, warehouse=make_warehouse("main"), quantity=2)
    settings.EMAIL_BACKEND = "tests.test_orders_emails_counters.FailingBackend"

    # when / then: the task asks to run again instead of failing for good
    with pytest.raises(Retry):
        low_stock_alert.apply(kwargs={"variant_id": variant.pk})
    assert SentAlert.objects.count() == 0


def test_loading_a_fixture_triggers_no_task_no_mail_and_no_audit_entry(tmp_path):
    # given
    variant = make_variant()
    fixture = tmp_path / "stock.json"
    fixture.write_text(
        json.dumps(
            [
                {
                    "model": "inventory.warehouse",
                    "pk": 900,
                    "fields": {
                        "code": "fixture",
                        "name": "Fixture depot",
                        "priority": 5,
                        "is_active": True,
                        "created_at": "2026-01-01T00:00:00Z",
                        "updated_at": "2026-01-01T00:00:00Z",
                    },
                },
                {
                    "model": "inventory.stocklevel",
                    "pk": 900,
                    "fields": {
                        "variant": variant.pk,
                        "warehouse": 900,
                        "on_hand": 0,
                        "reserved": 0,
                        "updated_at": "2026-01-01T00:00:00Z",
                    },
                },
            ]
        )
    )
    entries = AuditEntry.objects.count()

    # when
    call_command("loaddata", str(fixture), verbosity=0)

    # then
    assert Warehouse.objects.filter(code="fixture").exists()
    assert AuditEntry.objects.count() == entries
    assert OutboxMessage.objects.count() == 0
    assert mail.outbox == []
