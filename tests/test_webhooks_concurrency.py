"""Webhook deliveries under real concurrency on PostgreSQL: dispatchers and workers racing for
the same rows send each attempt once."""

from datetime import timedelta
from functools import partial

import pytest
from django.utils import timezone

from outbox.models import OutboxMessage
from tests.webhooks_helpers import ConnectionGuard, Receiver, endpoint_for
from webhooks.models import DeliveryState, WebhookDelivery
from webhooks.services import deliveries_dispatch, delivery_attempt, event_emit

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

DELIVERIES = 20


@pytest.fixture
def receiver(monkeypatch, settings):
    settings.WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    ConnectionGuard(monkeypatch)
    receiver = Receiver(answers=[500]).start()
    yield receiver
    receiver.stop()


def _failed_once_and_due(receiver: Receiver) -> None:
    """DELIVERIES events whose first attempt failed, all due for their second now."""
    endpoint_for(receiver.url(), "stock.low")
    for variant_id in range(1, DELIVERIES + 1):
        event_emit(
            event_type="stock.low",
            resource_type="variant",
            resource_id=variant_id,
            data=partial(dict, variant={"id": variant_id}),
        )
    assert len(receiver.requests) == DELIVERIES
    WebhookDelivery.objects.update(next_attempt_at=timezone.now() - timedelta(seconds=1))
    receiver.answers = [200]
    receiver.requests.clear()


def test_two_dispatchers_at_once_request_each_due_attempt_once(receiver, run_concurrently):
    # given
    _failed_once_and_due(receiver)

    # when: two dispatchers run at the same moment (beat on two hosts)
    results = run_concurrently(lambda _: deliveries_dispatch(), 2)

    # then: every delivery was requested by one of them (one outbox request for its first
    # attempt, one for its second) and POSTed once
    assert sum(results) == DELIVERIES
    requests = OutboxMessage.objects.filter(task_name="webhooks.delivery_attempt")
    assert requests.count() == 2 * DELIVERIES
    assert len(receiver.requests) == DELIVERIES
    assert len({r.payload["id"] for r in receiver.requests}) == DELIVERIES
    assert set(WebhookDelivery.objects.values_list("state", "attempts")) == {
        (DeliveryState.SUCCEEDED, 2)
    }


def test_the_same_attempt_run_by_two_workers_at_once_is_sent_once(receiver, run_concurrently):
    # given
    _failed_once_and_due(receiver)
    delivery = WebhookDelivery.objects.order_by("pk").first()

    # when: the task of its second attempt runs twice at the same moment
    results = run_concurrently(lambda _: delivery_attempt(delivery_id=delivery.pk, attempt=2), 2)

    # then
    assert sorted(results, key=str) == [None, DeliveryState.SUCCEEDED]
    assert len(receiver.requests) == 1
    assert delivery.attempt_log.count() == 2
