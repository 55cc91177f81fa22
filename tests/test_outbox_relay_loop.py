"""`manage.py outbox_relay --loop` as a real process: relays as rows fall due, rides out a
database restart and a cut connection, stops on SIGTERM; with `OUTBOX_PUBLISH = "relay"` it is
woken by the commit of each request (LISTEN/NOTIFY) and publishes it at once."""

from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone
from model_bakery import baker

from config.celery import app as celery_app
from outbox.models import OutboxMessage
from outbox.services import RELAY_CHANNEL, outbox_enqueue
from tests.embedded_helpers import embedded_env, manage
from tests.faults import FORWARD, REFUSE, BrokerGate, backend_terminate, relay_loop, wait_until

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
    first = _due_row()
    with relay_loop(child_process_env, tmp_path / "relay.log", interval=0.2) as relay:
        assert wait_until(lambda: _sent(first), timeout=20), relay.output

        # when: another row falls due while it loops
        second = _due_row()
        assert wait_until(lambda: _sent(second), timeout=10)

        # when: asked to stop
        exit_code = relay.stop()

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
        with relay_loop(child_process_env, tmp_path / "relay.log", interval=0.2) as relay:
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
            exit_code = relay.stop()
    finally:
        gate.close()

    # then: the loop lived through both, said so, and published each row once
    assert noticed and relayed_after_restart and relayed_after_cut, relay.output
    assert (still_running, exit_code) == (True, 0), relay.output
    assert "database reachable again" in relay.output
    assert sorted(relay.queued) == sorted(str(row.pk) for row in (first, second, third))


# Far longer than any wait below: a row published sooner was published because its commit woke
# the relay, not by a timed pass.
NO_TIMED_PASS = 120


@pytest.fixture
def relay_publishes(settings, child_process_env) -> Iterator[None]:
    """`OUTBOX_PUBLISH=relay` here and in the relay processes the test starts: this process
    leaves its requests to the listening relay."""
    child_process_env["OUTBOX_PUBLISH"] = "relay"
    settings.OUTBOX_PUBLISH = "relay"
    settings.CELERY_TASK_ALWAYS_EAGER = False
    celery_app.conf.task_always_eager = False
    yield
    celery_app.conf.task_always_eager = True


def _listening() -> bool:
    """Whether a session of the test database is LISTENing on the relay's channel."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND query = %s",
            [f"LISTEN {RELAY_CHANNEL}"],
        )
        return cursor.fetchone()[0] > 0


def _request_ping() -> OutboxMessage:
    with transaction.atomic():
        message_id = outbox_enqueue(task_name="stockwire.ping", kwargs={})
    return OutboxMessage.objects.get(pk=message_id)


def test_a_committed_request_wakes_the_listening_relay_which_publishes_it_at_once(
    transactional_db, child_process_env, tmp_path, relay_publishes
):
    # given: a listening relay whose timed passes are minutes apart
    with relay_loop(child_process_env, tmp_path / "relay.log", interval=NO_TIMED_PASS) as relay:
        assert wait_until(_listening, timeout=20), relay.output

        # when: a request commits
        message = _request_ping()

        # then: the relay publishes it within seconds, not at its next timed pass
        assert wait_until(lambda: _sent(message), timeout=10), relay.output
        exit_code = relay.stop()

    # then: into the broker, once, by its row's id, and the relay stopped cleanly
    assert exit_code == 0
    assert relay.queued == [str(message.pk)]


def test_a_rolled_back_request_wakes_nothing_and_is_never_published(
    transactional_db, child_process_env, tmp_path, relay_publishes
):
    with relay_loop(child_process_env, tmp_path / "relay.log", interval=NO_TIMED_PASS) as relay:
        assert wait_until(_listening, timeout=20), relay.output

        # when: a request's transaction rolls back, then another commits
        with pytest.raises(RuntimeError), transaction.atomic():
            outbox_enqueue(task_name="stockwire.ping", kwargs={"rolled": "back"})
            raise RuntimeError("the business transaction fails")
        committed = _request_ping()
        assert wait_until(lambda: _sent(committed), timeout=10), relay.output
        relay.stop()

    # then: only the committed one exists and reached the broker
    assert list(OutboxMessage.objects.values_list("pk", flat=True)) == [committed.pk]
    assert relay.queued == [str(committed.pk)]


def test_requests_committed_while_no_relay_listens_are_published_when_one_starts(
    transactional_db, child_process_env, tmp_path, relay_publishes
):
    # given: requests committed while no relay runs: nobody publishes them
    first, second = _request_ping(), _request_ping()
    assert not wait_until(lambda: _sent(first) or _sent(second), timeout=1)

    # when: a relay starts (its timed passes minutes apart)
    with relay_loop(child_process_env, tmp_path / "relay.log", interval=NO_TIMED_PASS) as relay:
        # then: its first pass publishes both, without waiting for a grace period
        assert wait_until(lambda: _sent(first) and _sent(second), timeout=20), relay.output
        relay.stop()
    assert sorted(relay.queued) == sorted([str(first.pk), str(second.pk)])


@pytest.mark.parametrize("interval", ["0", "-1", "nan", "inf", "soon"])
def test_the_relay_refuses_an_interval_that_is_no_wait(interval, tmp_path):
    # when
    done = manage("outbox_relay", "--loop", f"--interval={interval}", env=embedded_env(tmp_path))

    # then: a usage error at once, not a busy loop nor a traceback
    assert done.returncode == 2
    assert "must be a number of seconds above 0" in done.stderr
    assert "Traceback" not in done.stderr
