"""Two relays at once: every pending row is published exactly once (SKIP LOCKED at work)."""

import json
import threading
import uuid
from datetime import timedelta

import pytest
import redis
from django.conf import settings
from django.db import connections, transaction
from django.utils import timezone
from model_bakery import baker

from outbox.models import OutboxMessage
from outbox.services import outbox_relay
from tests.faults import celery_broker

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


def _messages_in(queue: str) -> list[str]:
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    return [json.loads(raw)["headers"]["id"] for raw in client.lrange(queue, 0, -1)]


def _due_rows(count: int) -> set[str]:
    rows = baker.make(
        OutboxMessage,
        task_name="stockwire.ping",
        kwargs={},
        _quantity=count,
    )
    OutboxMessage.objects.update(created_at=timezone.now() - timedelta(minutes=1))
    return {str(row.pk) for row in rows}


def test_a_relay_skips_the_rows_another_relay_is_publishing(transactional_db):
    # given: 30 due rows; relay A has claimed (locked) 10 of them and not yet committed
    rows = _due_rows(30)
    queue = f"test-relays-{uuid.uuid4().hex[:12]}"
    claimed = threading.Event()
    release = threading.Event()
    published: dict[str, int] = {}

    def relay_a() -> None:
        try:
            with transaction.atomic():
                published["a"] = outbox_relay(batch_size=10)
                claimed.set()
                release.wait(timeout=20)
        finally:
            connections.close_all()

    with celery_broker(settings.CELERY_BROKER_URL, queue=queue):
        thread = threading.Thread(target=relay_a)
        thread.start()
        try:
            assert claimed.wait(timeout=20)

            # when: relay B runs meanwhile
            published["b"] = outbox_relay(batch_size=100)
        finally:
            release.set()
            thread.join(timeout=20)

    # then: B took the 20 rows A had not claimed, and every row was published once
    assert published == {"a": 10, "b": 20}
    messages = _messages_in(queue)
    redis.Redis.from_url(settings.CELERY_BROKER_URL).delete(queue)
    assert sorted(messages) == sorted(rows)
    assert OutboxMessage.objects.filter(published_at__isnull=True).count() == 0


def test_two_relays_racing_publish_every_row_exactly_once(transactional_db, run_concurrently):
    # given
    rows = _due_rows(120)
    queue = f"test-relays-{uuid.uuid4().hex[:12]}"

    def relay(index: int) -> int:
        total = 0
        while published := outbox_relay(batch_size=7):
            total += published
        return total

    # when
    with celery_broker(settings.CELERY_BROKER_URL, queue=queue):
        totals = run_concurrently(relay, 2)

    # then
    messages = _messages_in(queue)
    redis.Redis.from_url(settings.CELERY_BROKER_URL).delete(queue)
    assert sum(totals) == 120, totals
    assert len(messages) == 120
    assert set(messages) == rows
    assert OutboxMessage.objects.filter(published_at__isnull=True).count() == 0
