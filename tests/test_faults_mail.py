"""A mail server that hangs: it holds no database lock and no worker for good.

The SMTP server is real (tests/smtp_server.py, on 127.0.0.1) and hangs before its greeting, the
way an overloaded relay or a dropped firewall state does.
"""

import contextlib
import threading
import uuid
from collections.abc import Callable, Iterator
from functools import partial

import pytest
import redis
from django.conf import settings as django_settings
from django.db import connection, connections

from catalog.models import Variant
from inventory.alerts import low_stock_alert_send
from inventory.models import SentAlert
from orders.models import Order, OrderStatus, SentEmail
from orders.services import order_cancel, order_email_send
from outbox.claims import ClaimHeld
from payments.models import Refund
from payments.services import webhook_handle
from tests.faults import celery_broker, wait_until, workers
from tests.orders_helpers import customer_new, order_new, variant_stocked
from tests.payments_helpers import payment_event, signed

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


@pytest.fixture
def parked_tasks():
    """Publish tasks to a queue no worker reads, so only what the test runs itself runs."""
    queue = f"test-parked-{uuid.uuid4().hex[:12]}"
    with celery_broker(django_settings.CELERY_BROKER_URL, queue=queue):
        yield queue
    redis.Redis.from_url(django_settings.CELERY_BROKER_URL).delete(queue)


@pytest.fixture
def mail_to(settings, tmp_path, smtp_server):
    settings.MEDIA_ROOT = tmp_path
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", smtp_server.port
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    return smtp_server


def _connections_idle_in_a_transaction() -> int:
    """Other sessions of this database that hold a transaction open while doing nothing."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND pid <> pg_backend_pid() AND state LIKE 'idle in transaction%%'"
        )
        return cursor.fetchone()[0]


@contextlib.contextmanager
def _sending_while_the_server_hangs(server, send: Callable[[], object]) -> Iterator[dict]:
    """Run `send()` in a thread whose mail server hangs before its greeting; inside the block
    the send is in progress. The server answers when the block ends, and the yielded dict then
    holds the send's `result` (or the error it raised)."""
    server.hold()
    outcome: dict = {}

    def run() -> None:
        try:
            outcome["result"] = send()
        except BaseException as error:
            outcome["result"] = error
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    try:
        assert wait_until(lambda: server.held_sessions == 1, timeout=10)
        yield outcome
        outcome["was_sending"] = thread.is_alive()
    finally:
        server.release()
        thread.join(timeout=30)


def test_a_receipt_hanging_on_the_mail_server_holds_no_transaction_and_blocks_no_cancel(
    transactional_db, parked_tasks, mail_to
):
    # given: a paid order whose receipt is being sent to a mail server that has not answered
    variant_stocked("HANG-1", price="20.00", on_hand=5)
    order = order_new(customer_new("grace@example.com"), ("HANG-1", 1))
    webhook_handle(**signed(payment_event(order)))
    send = partial(order_email_send, order_id=order.pk, kind="receipt")
    with _sending_while_the_server_hangs(mail_to, send) as outcome:
        open_transactions = _connections_idle_in_a_transaction()
        claim = SentEmail.objects.get(order=order, kind="receipt")

        # when: a second copy of the task runs, and staff cancel the order (the refund locks
        # the order row), both while the mail server still hangs
        with pytest.raises(ClaimHeld):
            send()
        cancelled = order_cancel(order=Order.objects.get(pk=order.pk), reason="out of paper")

    # then: the claim was committed before the send, no transaction stayed open across it, the
    # copy stood back at once, the cancel finished meanwhile, and the receipt went out once
    assert (open_transactions, claim.sent_at) == (0, None)
    assert outcome == {"result": True, "was_sending": True}
    assert cancelled.status == OrderStatus.CANCELLED
    assert Refund.objects.filter(order=order).count() == 1
    assert mail_to.subjects() == [f"Payment received for order {order.number}"]
    claim.refresh_from_db()
    assert claim.sent_at is not None


def test_a_low_stock_alert_hanging_on_the_mail_server_holds_no_transaction(
    transactional_db, settings, mail_to
):
    # given: a variant below its threshold
    settings.STAFF_ALERT_EMAILS = ["stock@example.com"]
    variant = variant_stocked("HANG-2", on_hand=2)
    Variant.objects.filter(pk=variant.pk).update(low_stock_threshold=5)

    # when: its alert is being sent to a mail server that has not answered
    send = partial(low_stock_alert_send, variant_id=variant.pk)
    with _sending_while_the_server_hangs(mail_to, send) as outcome:
        open_transactions = _connections_idle_in_a_transaction()
        claimed = SentAlert.objects.filter(sent_at__isnull=True).count()

    # then
    assert (open_transactions, claimed) == (0, 1)
    assert outcome == {"result": True, "was_sending": True}
    assert mail_to.subjects() == ["Low stock: HANG-2 (2 left)"]
    assert SentAlert.objects.filter(sent_at__isnull=False).count() == 1


@pytest.fixture
def mail_worker(transactional_db, child_process_env, smtp_server):
    """A real worker whose mail goes to `smtp_server`, giving up on a silent SMTP step after
    1 s; tasks the test requests are published to its queue."""
    child_process_env.update(EMAIL_URL=smtp_server.url, EMAIL_TIMEOUT="1")
    queue = child_process_env["CELERY_TASK_DEFAULT_QUEUE"]
    with (
        celery_broker(django_settings.CELERY_BROKER_URL, queue=queue),
        workers(env=child_process_env, queue=queue) as (worker,),
    ):
        yield worker


def _sent(order: Order, kind: str) -> bool:
    return SentEmail.objects.filter(order=order, kind=kind, sent_at__isnull=False).exists()


@pytest.mark.worker
def test_an_email_to_a_hung_mail_server_times_out_and_is_sent_by_a_retry(smtp_server, mail_worker):
    # given: a mail server that accepts connections and never answers
    variant_stocked("HANG-3", on_hand=5)
    smtp_server.hold()

    # when: an order is placed, and the server answers only after the worker tried it twice
    order = order_new(customer_new("hopper@example.com"), ("HANG-3", 1))
    retried = wait_until(lambda: smtp_server.held_sessions >= 2, timeout=30)
    smtp_server.release()

    # then: the worker gave up on the silent server, retried, and the e-mail went out once
    assert retried, mail_worker.output
    assert wait_until(lambda: _sent(order, "confirmation"), timeout=30), mail_worker.output
    assert smtp_server.subjects() == [f"Your order {order.number} is confirmed"]
