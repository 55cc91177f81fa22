"""`manage.py run_periodic`: beat's schedule run in-process for the embedded default (no broker),
so unpaid orders expire after RESERVATION_TTL_MINUTES as the confirmation e-mail promises."""

import datetime
import signal
import subprocess
import sys

import pytest
from django.core import mail
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from config.management.commands.run_periodic import due_entries
from conftest import PROJECT_DIR
from inventory.selectors import availability_by_variant
from orders.models import Order, OrderStatus
from tests.embedded_helpers import embedded_env, manage
from tests.orders_helpers import customer_new, order_new, variant_stocked, warehouse

pytestmark = pytest.mark.django_db


def test_run_periodic_cancels_orders_left_unpaid_past_the_reservation_time(
    settings, django_capture_on_commit_callbacks
):
    # given: one order unpaid for 31 minutes, one placed just now
    warehouse()
    variant = variant_stocked("MUG", on_hand=5)
    stale = order_new(customer_new("stale@example.com"), ("MUG", 2))
    fresh = order_new(customer_new("fresh@example.com"), ("MUG", 1))
    Order.objects.filter(pk=stale.pk).update(
        placed_at=timezone.now() - datetime.timedelta(minutes=settings.RESERVATION_TTL_MINUTES + 1)
    )
    mail.outbox.clear()

    # when
    with django_capture_on_commit_callbacks(execute=True):
        call_command("run_periodic", "--once")

    # then
    stale.refresh_from_db()
    fresh.refresh_from_db()
    assert stale.status == OrderStatus.CANCELLED
    assert fresh.status == OrderStatus.PENDING_PAYMENT
    assert availability_by_variant(variant_ids=[variant.pk]) == {variant.pk: 4}
    # the customer is told; the daily digest ran too (the scarce mug)
    assert [(message.to, message.subject) for message in mail.outbox] == [
        (["staff@stockwire.example"], "Low stock digest: 1 SKU(s) at or below threshold"),
        (["stale@example.com"], f"Order {stale.number} was cancelled"),
    ]


def test_run_periodic_refuses_when_a_broker_runs_the_schedule(settings):
    # given
    settings.CELERY_TASK_ALWAYS_EAGER = False

    # when
    with pytest.raises(CommandError) as refusal:
        call_command("run_periodic", "--once")

    # then
    assert "A broker is configured, so periodic tasks are beat's work" in str(refusal.value)


def test_an_entry_is_due_once_its_interval_has_passed_since_its_last_run():
    # given
    now = timezone.now()
    entries = {
        "every-minute": {"task": "orders.expire_unpaid", "schedule": 60.0},
        "every-five-seconds": {"task": "outbox.relay", "schedule": 5.0},
    }

    # when
    due = due_entries(
        entries,
        {"every-minute": now - datetime.timedelta(seconds=61), "every-five-seconds": now},
    )

    # then
    assert due == ["every-minute"]


def test_once_exits_non_zero_naming_the_tasks_that_failed(tmp_path):
    # given: the embedded default on a database never migrated: every task fails
    env = embedded_env(tmp_path)

    # when
    done = manage("run_periodic", "--once", env=env)

    # then
    assert done.returncode == 1
    (summary,) = [line for line in done.stderr.splitlines() if "periodic task(s) failed:" in line]
    assert "orders-expire-unpaid" in summary


def test_sigterm_stops_it_between_tasks_with_exit_0(tmp_path):
    # given: the scheduler running as `make run` starts it
    process = subprocess.Popen(
        [sys.executable, "manage.py", "run_periodic"],
        cwd=PROJECT_DIR,
        env=embedded_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert "running" in process.stdout.readline()

        # when: `make run` ends, as its trap stops it
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

    # then: it stopped, it was not killed
    assert code == 0
