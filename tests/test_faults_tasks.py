"""Work that a broker or the database dropped is done anyway: a real worker, a real Redis, a
real SMTP server and real cuts.

An outbox request stays open until its task has done its work, so a request the broker lost
(a Redis without persistence restarted) is published again by the relay after the redelivery
deadline; a task whose database connection is cut retries instead of failing for good.
"""

import contextlib

import pytest
import redis
from django.conf import settings as django_settings
from django.db import transaction
from django.utils import timezone

from orders.models import Order, SentEmail
from outbox.models import OutboxMessage
from outbox.services import outbox_relay
from tests.faults import (
    backend_terminate,
    backend_waiting_for_a_lock,
    celery_broker,
    wait_until,
    workers,
)
from tests.orders_helpers import customer_new, order_new, variant_stocked

pytestmark = [pytest.mark.worker, pytest.mark.redis, pytest.mark.postgres]


@pytest.fixture
def queue(transactional_db, child_process_env, smtp_server):
    """The queue of this test's workers, whose mail goes to `smtp_server`; the test's own
    requests are published to it."""
    child_process_env.update(EMAIL_URL=smtp_server.url, EMAIL_TIMEOUT="5")
    name = child_process_env["CELERY_TASK_DEFAULT_QUEUE"]
    with celery_broker(django_settings.CELERY_BROKER_URL, queue=name):
        yield name
    redis.Redis.from_url(django_settings.CELERY_BROKER_URL).delete(name)


def _confirmation_request() -> OutboxMessage:
    return OutboxMessage.objects.get(task_name="orders.email_send", kwargs__kind="confirmation")


def _done(order: Order) -> bool:
    return OutboxMessage.objects.filter(
        task_name="orders.email_send", kwargs__order_id=order.pk, done_at__isnull=False
    ).exists()


def test_a_request_the_broker_lost_is_sent_again_after_the_deadline_and_mailed_once(
    child_process_env, queue, smtp_server, settings
):
    # given: an order's confirmation published while no worker ran, then lost with the
    # broker's queue (a Redis without persistence restarted)
    broker = redis.Redis.from_url(django_settings.CELERY_BROKER_URL)
    variant_stocked("LOST-1", on_hand=5)
    order = order_new(customer_new("lovelace@example.com"), ("LOST-1", 1))
    assert _confirmation_request().published_at is not None
    assert broker.delete(queue) == 1

    with workers(env=child_process_env, queue=queue) as (worker,):
        # when: the relay runs before the redelivery deadline, and once it has passed
        settings.OUTBOX_REDELIVER_AFTER_SECONDS = 3600
        before_deadline = outbox_relay()
        settings.OUTBOX_REDELIVER_AFTER_SECONDS = 0
        after_deadline = outbox_relay()
        done = wait_until(lambda: _done(order), timeout=30)

    # then: published again once, run by the worker, the e-mail sent exactly once
    assert (before_deadline, after_deadline) == (0, 1)
    assert done, worker.output
    assert smtp_server.subjects() == [f"Your order {order.number} is confirmed"]
    request = _confirmation_request()
    assert (request.redeliveries, request.failed_at) == (1, None)


def test_an_email_task_whose_connection_is_cut_before_it_sends_retries_and_sends(
    child_process_env, queue, smtp_server
):
    # given: an order's confirmation waiting in the queue, and its e-mail claim's key held by
    # a transaction of the test's, so the worker's claim waits on it
    variant_stocked("CUT-2", on_hand=5)
    order = order_new(customer_new("hamilton@example.com"), ("CUT-2", 1))
    with contextlib.ExitStack() as running:
        with transaction.atomic():
            SentEmail.objects.create(
                order=order,
                kind="confirmation",
                recipient="x@example.com",
                claimed_at=timezone.now(),
            )
            (worker,) = running.enter_context(workers(env=child_process_env, queue=queue))
            waiting = wait_until(
                lambda: backend_waiting_for_a_lock(on_table="orders_sentemail") is not None,
                timeout=30,
            )
            assert waiting, worker.output

            # when: the worker's connection is cut before it could send
            backend_terminate(backend_waiting_for_a_lock(on_table="orders_sentemail"))
            transaction.set_rollback(True)

        # then: the task retries on a fresh connection and sends, once
        done = wait_until(lambda: _done(order), timeout=30)
    assert done, worker.output
    assert "Retry in" in worker.output
    assert smtp_server.subjects() == [f"Your order {order.number} is confirmed"]
    assert _confirmation_request().failed_at is None
