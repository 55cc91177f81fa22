"""`manage.py outbox_relay --loop` as a real process: relays as rows fall due, rides out a
database restart and a cut connection, stops on SIGTERM."""

import contextlib
import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import pytest
import redis
from django.conf import settings
from django.db import connection
from django.utils import timezone
from model_bakery import baker

from outbox.models import OutboxMessage
from tests.faults import FORWARD, PROJECT_DIR, REFUSE, BrokerGate, backend_terminate, wait_until

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


def _due_row() -> OutboxMessage:
    row = baker.make(OutboxMessage, task_name="stockwire.ping", kwargs={})
    OutboxMessage.objects.filter(pk=row.pk).update(created_at=timezone.now() - timedelta(minutes=1))
    return row


def _sent(row: OutboxMessage) -> bool:
    return OutboxMessage.objects.filter(pk=row.pk, published_at__isnull=False).exists()


@dataclass
class _RelayLoop:
    process: subprocess.Popen
    log_path: Path
    queued: list[str] = field(default_factory=list)

    @property
    def output(self) -> str:
        return self.log_path.read_text()


@contextlib.contextmanager
def _relay_loop(env: dict[str, str], log_path: Path) -> Iterator[_RelayLoop]:
    """Run `outbox_relay --loop` in its own process; afterwards make sure it is gone and note
    the task ids it left in the broker queue (then emptied)."""
    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    queue = env["CELERY_TASK_DEFAULT_QUEUE"]
    with log_path.open("w") as log:
        relay = _RelayLoop(
            process=subprocess.Popen(
                [sys.executable, "manage.py", "outbox_relay", "--loop", "--interval=0.2"],
                cwd=PROJECT_DIR,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            ),
            log_path=log_path,
        )
        try:
            yield relay
        finally:
            if relay.process.poll() is None:
                relay.process.kill()
                relay.process.wait(timeout=5)
            relay.queued = [json.loads(raw)["headers"]["id"] for raw in broker.lrange(queue, 0, -1)]
            broker.delete(queue)


def _stop(relay: _RelayLoop) -> int:
    relay.process.send_signal(signal.SIGTERM)
    return relay.process.wait(timeout=10)


def test_relay_loop_publishes_rows_as_they_fall_due_and_stops_cleanly(
    transactional_db, child_process_env, tmp_path
):
    # given: a row due now, and a relay loop in its own process
    first = _due_row()
    with _relay_loop(child_process_env, tmp_path / "relay.log") as relay:
        assert wait_until(lambda: _sent(first), timeout=20), relay.output

        # when: another row falls due while it loops
        second = _due_row()
        assert wait_until(lambda: _sent(second), timeout=10)

        # when: asked to stop
        exit_code = _stop(relay)

    # then: each row published once, into the broker, and the loop exited cleanly
    assert exit_code == 0
    assert sorted(relay.queued) == sorted([str(first.pk), str(second.pk)])


def _relay_sessions() -> list[int]:
    """The other sessions of the test database: the relay's, here."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
            " AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
        )
        return [pid for (pid,) in cursor.fetchall()]


def test_relay_loop_rides_out_a_database_restart_and_a_cut_connection(
    transactional_db, child_process_env, tmp_path
):
    # given: a relay loop whose database is reached through a gate the test controls
    db = connection.settings_dict
    gate = BrokerGate(target_url=f"postgres://{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}")
    child_process_env["DATABASE_URL"] = (
        f"postgres://{db['USER']}:{db['PASSWORD'] or ''}@127.0.0.1:{gate.port}/{db['NAME']}"
    )
    try:
        with _relay_loop(child_process_env, tmp_path / "relay.log") as relay:
            first = _due_row()
            assert wait_until(lambda: _sent(first), timeout=20), relay.output

            # when: the database restarts (every connection dropped, then refused for a while)
            gate.set_mode(REFUSE)
            noticed = wait_until(lambda: "database unavailable" in relay.output, timeout=20)
            gate.set_mode(FORWARD)
            second = _due_row()
            relayed_after_restart = wait_until(lambda: _sent(second), timeout=20)

            # when: its connection is cut from the server side (a failover, an operator)
            for pid in _relay_sessions():
                backend_terminate(pid)
            third = _due_row()
            relayed_after_cut = wait_until(lambda: _sent(third), timeout=20)
            still_running = relay.process.poll() is None
            exit_code = _stop(relay)
    finally:
        gate.close()

    # then: the loop lived through both, said so, and published each row once
    assert noticed and relayed_after_restart and relayed_after_cut, relay.output
    assert (still_running, exit_code) == (True, 0), relay.output
    assert "database reachable again" in relay.output
    assert sorted(relay.queued) == sorted(str(row.pk) for row in (first, second, third))
