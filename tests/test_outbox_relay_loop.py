"""`manage.py outbox_relay --loop` as a real process: relays as rows fall due, stops on SIGTERM."""

import json
import signal
import subprocess
import sys
from datetime import timedelta

import pytest
import redis
from django.conf import settings
from django.utils import timezone
from model_bakery import baker

from outbox.models import OutboxMessage
from tests.faults import PROJECT_DIR, wait_until

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


def _due_row() -> OutboxMessage:
    row = baker.make(OutboxMessage, task_name="stockwire.ping", kwargs={})
    OutboxMessage.objects.filter(pk=row.pk).update(created_at=timezone.now() - timedelta(minutes=1))
    return row


def _sent(row: OutboxMessage) -> bool:
    return OutboxMessage.objects.filter(pk=row.pk, published_at__isnull=False).exists()


def test_relay_loop_publishes_rows_as_they_fall_due_and_stops_cleanly(
    transactional_db, child_process_env, tmp_path
):
    # given: a row due now, and a relay loop in its own process
    queue = child_process_env["CELERY_TASK_DEFAULT_QUEUE"]
    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    first = _due_row()
    log = (tmp_path / "relay.log").open("w+")
    relay = subprocess.Popen(
        [sys.executable, "manage.py", "outbox_relay", "--loop", "--interval=0.2"],
        cwd=PROJECT_DIR,
        env=child_process_env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        assert wait_until(lambda: _sent(first), timeout=20), log.read()

        # when: another row falls due while it loops
        second = _due_row()
        assert wait_until(lambda: _sent(second), timeout=10)

        # when: asked to stop
        relay.send_signal(signal.SIGTERM)
        exit_code = relay.wait(timeout=10)
    finally:
        if relay.poll() is None:
            relay.kill()
            relay.wait(timeout=5)
        log.close()
        queued = [json.loads(raw)["headers"]["id"] for raw in broker.lrange(queue, 0, -1)]
        broker.delete(queue)

    # then: each row published once, into the broker, and the loop exited cleanly
    assert exit_code == 0
    assert sorted(queued) == sorted([str(first.pk), str(second.pk)])
