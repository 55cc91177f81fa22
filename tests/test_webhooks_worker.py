"""Webhooks through real processes: a Celery worker on Redis delivers to a receiver on
127.0.0.1, and a broker outage delays the delivery without losing it (the outbox)."""

import pytest
from django.conf import settings

from outbox import services as outbox_services
from outbox.models import OutboxMessage
from outbox.services import outbox_relay
from tests.faults import FORWARD, REFUSE, BrokerGate, celery_broker, wait_until, workers
from tests.orders_helpers import customer_new, order_new, variant_stocked
from tests.webhooks_helpers import Receiver, endpoint_for, readme_verify
from webhooks.models import DeliveryState, WebhookDelivery

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


@pytest.fixture(autouse=True)
def loopback_allowed(settings) -> None:
    """The receiver listens on loopback: allowed here and in the workers (DEBUG on)."""
    settings.WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.0/8"]


@pytest.fixture
def receiver():
    receiver = Receiver().start()
    yield receiver
    receiver.stop()


@pytest.mark.worker
def test_a_worker_delivers_a_placed_order_to_the_receiver(celery_worker, receiver):
    # given
    endpoint, secret = endpoint_for(receiver.url(), "order.placed")
    variant_stocked("WORK-1", on_hand=5)

    # when: the order commits (no test transaction here): its request goes to the broker
    order = order_new(customer_new(), ("WORK-1", 1))

    # then: the worker process POSTed it, signed, and recorded the acknowledgement
    assert wait_until(
        lambda: WebhookDelivery.objects.filter(state=DeliveryState.SUCCEEDED).exists(),
        timeout=30,
    )
    [request] = receiver.requests
    assert request.payload["data"]["order"]["number"] == order.number
    assert readme_verify()(request.body, request.headers["Stockwire-Signature"], secret)
    assert WebhookDelivery.objects.get().attempt_log.get().status_code == 200
    assert endpoint.deliveries.count() == 1


@pytest.mark.worker
def test_a_broker_outage_delays_the_delivery_and_loses_nothing(
    transactional_db, child_process_env, receiver
):
    # given: a worker on the real Redis; this process publishes through a gate that refuses
    gate = BrokerGate(target_url=settings.REDIS_URL, mode=REFUSE)
    queue = child_process_env["CELERY_TASK_DEFAULT_QUEUE"]
    endpoint_for(receiver.url(), "order.placed")
    variant_stocked("DOWN-1", on_hand=5)
    outbox_services._resume_broker()
    try:
        with celery_broker(gate.url(0), queue=queue), workers(env=child_process_env, queue=queue):
            # when: an order commits while the broker is down
            order = order_new(customer_new(), ("DOWN-1", 1))

            # then: the order stands, its delivery waits in the outbox, nothing was sent
            requests = OutboxMessage.objects.filter(task_name="webhooks.delivery_attempt")
            assert requests.filter(published_at__isnull=True).count() == 1
            assert WebhookDelivery.objects.get().attempts == 0
            assert receiver.requests == []

            # when: the broker is back and the relay runs
            gate.set_mode(FORWARD)
            outbox_services._resume_broker()
            relayed = outbox_relay(now_due=True)
            delivered = wait_until(
                lambda: WebhookDelivery.objects.filter(state=DeliveryState.SUCCEEDED).exists(),
                timeout=30,
            )
    finally:
        gate.close()
        outbox_services._resume_broker()

    # then: delivered exactly once
    assert relayed >= 1
    assert delivered
    assert [r.payload["data"]["order"]["number"] for r in receiver.requests] == [order.number]
